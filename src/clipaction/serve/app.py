"""The Gradio page of `clipaction serve` (the only module that imports Gradio).

Files: everything the page writes (Gradio's uploads, previews, download files) lives in one
private work folder (`GRADIO_TEMP_DIR` while the server runs), deleted when the server closes.
An upload is deleted once its session is done with it: at once when it is not a usable video,
when the session analyses another video, when the browser tab closes (Gradio's unload event),
after `SESSION_TTL_S` idle for clients that never close, and at the latest with the server.
It is kept until then so that new labels on the same video need no second upload; its frame
features are in the cache (keyed by content), so that request only encodes the labels.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from clipaction.data.folder import VIDEO_EXTENSIONS
from clipaction.errors import ClipactionError, DataError
from clipaction.serve.analysis import Analysis, Analyzer, score_note
from clipaction.serve.picker import list_videos, resolve_choice
from clipaction.serve.presets import list_presets, parse_labels, preset_labels
from clipaction.serve.settings import ServeConfig

log = logging.getLogger(__name__)

try:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the server
    import gradio as gr
except ImportError:  # pragma: no cover - depends on the environment
    raise ClipactionError('the web page needs the ui extra: pip install -e ".[ui]"') from None

from starlette.middleware import Middleware  # noqa: E402  (Gradio's server is Starlette)

from clipaction.serve.door import LoginDoor  # noqa: E402
from clipaction.serve.search_tab import IndexSearch, SearchFn, SearchTab  # noqa: E402

#: The download buttons: Analysis.files key -> button text.
DOWNLOADS = {"json": "JSON", "csv": "Ranking CSV", "segments": "Segments CSV", "vtt": "Subtitles (VTT)"}

#: Seconds a session's files are kept after its last request when its browser never says
#: goodbye (a closed tab deletes them at once).
SESSION_TTL_S = 3600


class Uploads:
    """Gradio's upload folder and who holds which upload. Gradio names an upload's folder by
    its content, so two sessions uploading the same file share it: it is deleted when its last
    holder lets go."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._holders: dict[Path, set[int]] = {}
        self._lock = threading.Lock()

    def hold(self, path: Path, owner: object) -> None:
        with self._lock:
            self._holders.setdefault(path, set()).add(id(owner))

    def release(self, path: Path, owner: object) -> None:
        with self._lock:
            holders = self._holders.get(path, set())
            holders.discard(id(owner))
            if holders:
                return
            self._holders.pop(path, None)
        # Only ever a file in the upload folder: a picked server video is never deleted.
        if _inside(path, self.folder):
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # Gradio puts each upload in a folder of its own
            except OSError:
                pass


class Session:
    """One browser session's files: its current upload and its request folders."""

    def __init__(self, workdir: Path, uploads: Uploads) -> None:
        self.folder = workdir / "sessions" / uuid.uuid4().hex
        self.uploads = uploads
        self.upload: Path | None = None
        self.requests = 0
        self.last_used = time.monotonic()

    def own_upload(self, path: Path) -> None:
        """Make `path` (a Gradio upload) this session's video, letting go of the previous one."""
        if self.upload != path:
            self.drop_upload()
            self.uploads.hold(path, self)
            self.upload = path

    def drop_upload(self) -> None:
        if self.upload is not None:
            self.uploads.release(self.upload, self)
        self.upload = None

    def next_request_folder(self) -> Path:
        self.requests += 1
        return self.folder / f"request-{self.requests:04d}"

    def close(self) -> None:
        self.drop_upload()
        shutil.rmtree(self.folder, ignore_errors=True)


def exposure_warning(config: ServeConfig) -> str | None:
    """What to say when the page listens beyond this machine."""
    if not config.public:
        return None
    if config.auth:
        return (
            f"listening on {config.host}: the login protects the page, but plain HTTP sends passwords "
            "unencrypted; put the server behind HTTPS (a reverse proxy) on a network you do not trust"
        )
    return (
        f"listening on {config.host}: anyone who can reach port {config.port} can use this page "
        "and its model (the default, 127.0.0.1, keeps it to this machine)"
    )


def _inside(path: Path, folder: Path) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root


def _readable(error: ClipactionError) -> str:
    return error.message


class Page:
    """The app: a Gradio Blocks over an `Analyzer`, started with `start()`. With `search` (or
    `config.index`, whose `clipaction.search` it then uses) the page has a Search tab;
    `search(query, top)` returns results with video, start, end, score, best first."""

    def __init__(self, config: ServeConfig, analyzer: Analyzer | None = None, search: SearchFn | None = None) -> None:
        self.config = config
        self.videos_dir = Path(config.videos_dir).expanduser() if config.videos_dir else None
        if self.videos_dir is not None and not self.videos_dir.is_dir():
            raise DataError(f"not a folder: {self.videos_dir}", setting="videos_dir")
        if search is None and config.index is not None:
            search = IndexSearch(config.index)  # not an index: one line, before any file is made
        self._search_fn = search
        self.analyzer = analyzer or Analyzer(config)
        self.workdir = Path(tempfile.mkdtemp(prefix="clipaction-serve-"))
        self._old_temp = os.environ.get("GRADIO_TEMP_DIR")
        # Gradio reads its upload/cache folder from here when components and the app are made.
        os.environ["GRADIO_TEMP_DIR"] = str(self.workdir)
        self.uploads = Uploads(self.workdir)
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._sessions_lock = threading.Lock()
        self.search_tab: SearchTab | None = None
        self.demo = self._build()
        self.url: str | None = None

    # -- the request ------------------------------------------------------------------------

    def _video(self, upload: str | None, picked: str | None, session: Session) -> tuple[Path, str]:
        """(path to analyse, the name the user knows it by)."""
        if upload:
            path = Path(upload)
            if not _inside(path, self.uploads.folder):  # never a path the browser made up
                raise DataError("upload the video again", setting="video")
            if not path.is_file():
                raise DataError("the uploaded file is gone (the server removed it); upload it again", setting="video")
            session.own_upload(path)  # from now on deleted with the session, or at once if unusable
            size = path.stat().st_size
            if size > self.config.max_upload_bytes:
                raise DataError(
                    f"{path.name} is {size / 1e6:.1f} MB, over this server's upload limit of "
                    f"{self.config.max_upload_mb:g} MB (--max-upload-mb)",
                    setting="video",
                )
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                raise DataError(
                    f"{path.name} is not a video file (expected one of {', '.join(sorted(VIDEO_EXTENSIONS))})",
                    setting="video",
                )
            return path, path.name
        if picked:
            if self.videos_dir is None:
                raise DataError("this server has no video folder (--videos)", setting="video")
            return resolve_choice(self.videos_dir, picked), picked
        raise DataError("upload a video or pick one from the folder", setting="video")

    def _session(self, request: gr.Request | None) -> Session:
        """The session of `request` (Gradio's session hash: one per browser tab or client);
        sessions idle for `SESSION_TTL_S` are closed on the way."""
        key = request.session_hash if request is not None and request.session_hash else None
        now = time.monotonic()
        with self._sessions_lock:
            for old_key, old in list(self._sessions.items()):
                if now - old.last_used > SESSION_TTL_S:
                    self._sessions.pop(old_key).close()
            session = self._sessions.get(key) if key else None
            if session is None:
                session = Session(self.workdir, self.uploads)
                if key:
                    self._sessions[key] = session
            session.last_used = now
        return session

    def analyse(
        self,
        upload: str | None,
        picked: str | None,
        labels_text: str,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 - Gradio's way to ask for progress
    ) -> tuple[Any, ...]:
        session = self._session(request)
        try:
            video, name = self._video(upload, picked, session)  # the upload is the session's from here
            labels = parse_labels(labels_text)
            with self._lock:  # one model, one request at a time
                result = self.analyzer.analyse(
                    video,
                    labels,
                    session.next_request_folder(),
                    name=name,
                    progress=lambda fraction, desc: progress(fraction, desc=desc),
                )
        except ClipactionError as error:
            if error.setting == "video":
                session.drop_upload()  # a file that is not a usable video is deleted at once
            raise gr.Error(_readable(error), print_exception=False) from None
        return self._outputs(result)

    def _unload(self, request: gr.Request) -> None:
        """The browser tab closed: its session's upload and files are deleted now."""
        key = request.session_hash if request is not None else None
        with self._sessions_lock:
            session = self._sessions.pop(key, None) if key else None
        if session is not None:
            session.close()

    def _outputs(self, result: Analysis) -> tuple[Any, ...]:
        prediction = result.prediction
        top, prob = result.top
        confidences = {label: p for label, p in prediction.labels}
        if result.segments:
            timeline_line = f"Timeline: {len(result.segments)} segment(s), shown as subtitles on the video."
        else:
            timeline_line = f"No timeline: {result.timeline_note}." if result.timeline_note else ""
        summary = (
            f"### Top label: {top} ({prob:.1%})\n"
            f"{result.name}: {len(prediction.labels)} labels ranked in {result.seconds:.1f} s. "
            f"Scores: **{prediction.score}**, {score_note(prediction.score, len(prediction.labels))}. "
            f"{timeline_line}"
        )
        table = [[rank, label, round(p, 6)] for rank, (label, p) in enumerate(prediction.labels, 1)]
        video = gr.Video(value=str(result.preview), subtitles=str(result.subtitles) if result.subtitles else None)
        downloads = [
            gr.DownloadButton(value=str(result.files[kind]), visible=True)
            if kind in result.files
            else gr.DownloadButton(value=None, visible=False)
            for kind in DOWNLOADS
        ]
        figure = (
            gr.Image(value=str(result.timeline_png), visible=True)
            if result.timeline_png
            else gr.Image(value=None, visible=False)
        )
        rows = [[f"{s['start']:.2f}", f"{s['end']:.2f}", s["label"], round(s["score"], 4)] for s in result.segments]
        segments = gr.Dataframe(value=rows, visible=bool(rows))
        return (video, summary, confidences, table, figure, segments, *downloads)

    # -- the page ---------------------------------------------------------------------------

    def _model_line(self) -> str:
        m = self.analyzer.describe()
        return (
            f"Model `{m['name_or_path']}`: family **{m['family']}**, precision **{m['precision']}**, "
            f"device {m['device']}, frames: {m['sampler']}, scores: **{m['score']}** "
            f"({'one softmax over the labels' if m['score'] == 'softmax' else 'an independent sigmoid per label'})."
        )

    def _build(self) -> gr.Blocks:
        # System fonts only: the default theme would make every browser fetch fonts from the web.
        theme = gr.themes.Default(
            font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
        )
        with gr.Blocks(title="clipaction", analytics_enabled=False, delete_cache=(600, SESSION_TTL_S)) as demo:
            self._theme = theme
            gr.Markdown("# clipaction: which action is in this video?")
            with gr.Tabs() if self._search_fn is not None else nullcontext():
                with gr.Tab("Label a video", id="label") if self._search_fn is not None else nullcontext():
                    self._build_analyse()
                if self._search_fn is not None:
                    with gr.Tab("Search", id="search", elem_id="search-tab"):
                        self.search_tab = SearchTab(self._search_fn, self.workdir / "search", demo)
                        self.search_tab.build()
            demo.unload(self._unload)
        return demo

    def _build_analyse(self) -> None:
        """The labelling part: a video and labels -> ranking, timeline, downloads."""
        gr.Markdown(self._model_line(), elem_id="model-line")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Upload a video", file_types=sorted(VIDEO_EXTENSIONS), elem_id="upload")
                picked = gr.Dropdown(
                    choices=list_videos(self.videos_dir) if self.videos_dir else [],
                    value=None,
                    label=f"...or pick one from {self.videos_dir.name}/" if self.videos_dir else "Server folder",
                    visible=self.videos_dir is not None,
                    elem_id="picked",
                )
                preset = gr.Dropdown(choices=list_presets(), value=None, label="Preset labels", elem_id="preset")
                labels = gr.Textbox(
                    label="Labels (one per line, or comma-separated)",
                    lines=6,
                    placeholder="riding a bike\njuggling balls\nplaying the guitar",
                    elem_id="labels",
                )
                button = gr.Button("Rank the labels", variant="primary", elem_id="run")
            with gr.Column(scale=2):
                video = gr.Video(label="Video", interactive=False, height=360, elem_id="video")
                summary = gr.Markdown(elem_id="summary")
                ranking = gr.Label(label="Ranking", num_top_classes=10, elem_id="ranking")
                table = gr.Dataframe(headers=["rank", "label", "probability"], label="All labels", elem_id="table")
                with gr.Row():
                    buttons = [
                        gr.DownloadButton(text, visible=False, elem_id=f"download-{kind}")
                        for kind, text in DOWNLOADS.items()
                    ]
        timeline = gr.Image(label="Timeline", visible=False, interactive=False, elem_id="timeline")
        segments = gr.Dataframe(
            headers=["start (s)", "end (s)", "label", "score"], label="Segments", visible=False, elem_id="segments"
        )

        preset.change(
            lambda name: "\n".join(preset_labels(name)) if name else gr.skip(),
            preset,
            labels,
            api_visibility="private",
        )
        button.click(
            self.analyse,
            [upload, picked, labels],
            [video, summary, ranking, table, timeline, segments, *buttons],
            api_name="analyse",
        )

    # -- the server -------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving the page in the background; returns its URL. Refuses (ConfigError)
        to listen beyond loopback without a login unless `config.no_auth` says so."""
        self.config.check_door()
        warning = exposure_warning(self.config)
        if warning:
            log.warning("%s", warning)
        _, url, _ = self.demo.launch(
            server_name=self.config.host,
            server_port=self.config.port or None,
            prevent_thread_lock=True,
            max_file_size=self.config.max_upload_bytes,
            allowed_paths=[],  # the Search tab adds each video it plays, one file at a time
            auth=list(self.config.auth) or None,
            auth_message="clipaction: log in to use this page",
            # the door answers 401 to every route but the login page without a session
            app_kwargs={"middleware": [Middleware(LoginDoor)]},
            num_workers=0,  # static workers would serve files beside the door
            quiet=True,
            show_error=True,
            ssr_mode=False,
            theme=self._theme,
        )
        self.url = url
        return url

    def wait(self, stop: threading.Event | None = None) -> None:
        """Serve until Ctrl-C, SIGTERM or `stop` is set, then close (deleting the page's files).
        A caller that installed its own SIGTERM handler before starting the server (so that a
        SIGTERM during start-up also stops it cleanly) passes the event that handler sets."""
        previous = None
        if stop is None:
            stop = threading.Event()
            if threading.current_thread() is threading.main_thread():
                previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.close()

    def close(self) -> None:
        try:
            self.demo.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self._old_temp is None:
                os.environ.pop("GRADIO_TEMP_DIR", None)
            else:
                os.environ["GRADIO_TEMP_DIR"] = self._old_temp

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
