"""`clipaction serve`: a web page (Gradio) over the same library calls as the CLI.

    from clipaction.serve import ServeConfig, start_page
    page = start_page(ServeConfig(model=ModelConfig(name_or_path=...)))   # returns once listening
    print(page.url); page.wait()   # until Ctrl-C; or page.close()

`ServeConfig(index=IDX)` adds the Search tab over a search index; `ServeConfig(auth=[(user,
password)])` puts Gradio's login in front of every route. Listening beyond loopback without a
login is refused (ConfigError) unless `no_auth=True` says so.

Gradio is imported only by `clipaction.serve.app`, so this package and the other commands stay
fast and work without the `ui` extra; `start_page` says how to install it when it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipaction.serve.settings import ServeConfig

if TYPE_CHECKING:
    from clipaction.serve.analysis import Analyzer
    from clipaction.serve.app import Page
    from clipaction.serve.search_tab import SearchFn

__all__ = ["ServeConfig", "make_page", "start_page"]


def make_page(config: ServeConfig, analyzer: Analyzer | None = None, search: SearchFn | None = None) -> Page:
    """The page, built but not yet listening (the model is set up, weights load on first use).
    `search(query, top)` -> results with video, start, end, score: the Search tab's source
    (default: `clipaction.search` over `config.index`, when set)."""
    from clipaction.serve.app import Page

    return Page(config, analyzer, search)


def start_page(config: ServeConfig, search: SearchFn | None = None) -> Page:
    """Build the page and serve it on `config.host`:`config.port` in the background; `page.url`
    is its address, `page.wait()` serves until Ctrl-C or SIGTERM, `page.close()` stops it and
    deletes its files. Refuses (ConfigError, before anything is built) to listen beyond
    loopback without a login unless `config.no_auth`."""
    config.check_door()
    page = make_page(config, search=search)
    try:
        page.start()
    except BaseException:
        page.close()
        raise
    return page
