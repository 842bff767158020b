"""The Search tab of `clipaction serve --index IDX`: a sentence -> the best moments as
thumbnails of their middle frames with video name and time; a click plays the video from the
moment (an HTML5 <video> with a `#t=START` media fragment).

What the page opens: only videos that a search of the index returned. Gradio serves a file
outside its own folders only when it is in `allowed_paths`; each video is added there (the
file itself, never its folder) the first time a search returns it, and a video a browser asks
to play must be one of those. Sources a browser cannot play (MPEG-4 Part 2 in AVI) are played
from an H.264 copy in the page's work folder (made once per video).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gradio as gr

from clipaction.errors import ClipactionError, DataError
from clipaction.serve.moments import Moment, as_moment, caption, file_url, player_html, write_thumbnail
from clipaction.serve.preview import browser_playable, make_preview

log = logging.getLogger(__name__)

#: search(query, top) -> results (objects or dicts with video, start, end, score), best first.
SearchFn = Callable[[str, int], Sequence[Any]]

#: Moments a search shows.
DEFAULT_TOP = 12


class IndexSearch:
    """The Search tab's source over an index folder (`clipaction.search`). The folder is checked
    when this is made, so a folder that is not an index fails before the server starts; the
    index's own model loads on the first query and stays loaded."""

    def __init__(self, index: str | Path) -> None:
        from clipaction.lookup.store import read_manifest

        self.index = Path(index).expanduser()
        read_manifest(self.index)  # NotAnIndexError (one line) for anything else
        self._backend: Any = None

    def _model(self) -> Any:
        """The backend the index was built with, from its manifest (None when it was built with
        a model given in Python: `clipaction.search` then says so)."""
        from clipaction.config import ModelConfig
        from clipaction.lookup.store import read_manifest
        from clipaction.models import load_backend

        config = read_manifest(self.index)["model"].get("config")
        return None if config is None else load_backend(ModelConfig(**{**config, "device": "auto"}))

    def __call__(self, query: str, top: int) -> Sequence[Any]:
        from clipaction import api

        if self._backend is None:
            self._backend = self._model()
        return api.search(query, index=self.index, top=top, model=self._backend)


class SearchTab:
    """The tab's state on the server: the search function, the videos searches returned (the
    only ones it plays) and the thumbnails and previews in `folder`."""

    def __init__(self, search: SearchFn, folder: Path, blocks: gr.Blocks, top: int = DEFAULT_TOP) -> None:
        self._search = search
        self.folder = folder
        self.blocks = blocks
        self.top = top
        self._search_lock = threading.Lock()  # one query at a time through the index's model
        self._allow_lock = threading.Lock()
        self._preview_lock = threading.Lock()
        # real paths of the videos searches returned -> whether a browser plays the file itself
        self._served: dict[str, bool] = {}

    # -- requests ---------------------------------------------------------------------------

    def search(self, query: str) -> tuple[Any, list[dict[str, Any]], str, str]:
        """(gallery items, the moments for the session, a summary line, an empty player)."""
        query = (query or "").strip()
        if not query:
            raise gr.Error("type what you are looking for, e.g. someone riding a bike", print_exception=False)
        try:
            with self._search_lock:
                moments = [as_moment(result) for result in self._search(query, self.top)]
        except ClipactionError as error:
            raise gr.Error(error.message, print_exception=False) from None
        for moment in moments:
            self._register(moment)
        items = [(str(write_thumbnail(m, self.folder / "thumbs")), caption(m)) for m in moments]
        summary = (
            f"{len(moments)} moment(s) for “{query}”, best first. Click one to play it."
            if moments
            else f"No moment found for “{query}”."
        )
        return items, [asdict(m) for m in moments], summary, ""

    def play(self, moments: list[dict[str, Any]] | None, evt: gr.SelectData) -> str:
        """The player for the clicked result of this session's last search."""
        if not moments or evt.index is None or not 0 <= int(evt.index) < len(moments):
            raise gr.Error("search again: that result is gone", print_exception=False)
        moment = Moment(**moments[int(evt.index)])
        try:
            path = self._playable(moment)
        except ClipactionError as error:
            raise gr.Error(error.message, print_exception=False) from None
        return player_html(file_url(path), moment)

    # -- the files --------------------------------------------------------------------------

    def _register(self, moment: Moment) -> None:
        """Note a video a search returned; one a browser plays as it is may be served from now on."""
        real = os.path.realpath(moment.path)
        if real in self._served or not os.path.isfile(real):
            return
        playable = browser_playable(real)
        with self._allow_lock:
            self._served[real] = playable
        if playable:
            self._allow(real)

    def _playable(self, moment: Moment) -> Path:
        """A file the browser can play for `moment`'s video: the video itself (allowed when a
        search returned it) or an H.264 copy in the work folder."""
        real = os.path.realpath(moment.path)
        if real not in self._served:  # never a path no search of this index returned
            raise DataError(f"{moment.name} is not a video of this index", setting="video")
        if not os.path.isfile(real):
            raise DataError(f"{moment.name} is no longer where the index says ({moment.video})", setting="video")
        if self._served[real]:
            return Path(real)
        stat = os.stat(real)
        key = hashlib.sha256(f"{real}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:24]
        target = self.folder / "previews" / f"{key}.mp4"  # in Gradio's own folder: served as its file
        with self._preview_lock:
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                make_preview(real, target)
        return target

    def _allow(self, real: str) -> None:
        """Let Gradio serve this one file (replacing the list, which request threads read)."""
        with self._allow_lock:
            if real not in self.blocks.allowed_paths:
                self.blocks.allowed_paths = [*self.blocks.allowed_paths, real]

    # -- the tab ----------------------------------------------------------------------------

    def build(self) -> None:
        """The tab's components and events (inside a `gr.Blocks` context)."""
        with gr.Row():
            query = gr.Textbox(
                label="Find the moment",
                placeholder="someone falling off a bike",
                scale=4,
                elem_id="search-query",
            )
            button = gr.Button("Search", variant="primary", scale=1, elem_id="search-run")
        summary = gr.Markdown(elem_id="search-summary")
        results = gr.Gallery(
            label="Moments (middle frame)",
            columns=4,
            fit_columns=False,  # a few results stay thumbnails, not screen-wide tiles
            allow_preview=False,  # a click plays the moment instead
            object_fit="contain",
            interactive=False,
            elem_id="search-results",
        )
        player = gr.HTML(elem_id="search-player")
        moments = gr.State([])
        outputs = [results, moments, summary, player]
        button.click(self.search, [query], outputs, api_name="search")
        query.submit(self.search, [query], outputs, api_visibility="private")
        results.select(self.play, [moments], [player], api_visibility="private")
