"""`clipaction serve`: a web page (Gradio) over the same library calls as the CLI.

    from clipaction.serve import ServeConfig, start_page
    page = start_page(ServeConfig(model=ModelConfig(name_or_path=...)))   # returns once listening
    print(page.url); page.wait()   # until Ctrl-C; or page.close()

Gradio is imported only by `clipaction.serve.app`, so this package and the other commands stay
fast and work without the `ui` extra; `start_page` says how to install it when it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipaction.serve.settings import ServeConfig

if TYPE_CHECKING:
    from clipaction.serve.analysis import Analyzer
    from clipaction.serve.app import Page

__all__ = ["ServeConfig", "make_page", "start_page"]


def make_page(config: ServeConfig, analyzer: Analyzer | None = None) -> Page:
    """The page, built but not yet listening (the model is set up, weights load on first use)."""
    from clipaction.serve.app import Page

    return Page(config, analyzer)


def start_page(config: ServeConfig) -> Page:
    """Build the page and serve it on `config.host`:`config.port` in the background; `page.url`
    is its address, `page.wait()` serves until Ctrl-C or SIGTERM, `page.close()` stops it and
    deletes its files."""
    page = make_page(config)
    try:
        page.start()
    except BaseException:
        page.close()
        raise
    return page
