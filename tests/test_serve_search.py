"""The Search tab of `clipaction serve --index IDX`: captions and middle-frame thumbnails, the
files the page may serve (only videos of the index, one file at a time), and, on a real server
behind a login over an index built with `clipaction.index` and a tiny CLIP, the results through
HTTP (equal to `clipaction.search`) and in headless Chromium (log in, type a sentence, see the
thumbnails with names and times, click one: the video plays from the moment's start).
Set CLIPACTION_SEARCH_SCREENSHOT=PATH to keep the browser's screenshot."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import numpy as np
import pytest

from clipaction.serve.moments import Moment, as_moment, caption, clock, player_html, write_thumbnail
from clipaction.testing.footage import PALETTE, Scene, write_scenes

#: Each video's scenes (PALETTE index); the colour at a time says which scene a frame is from.
FIRST = (Scene(6, 0), Scene(6, 1), Scene(6, 2))  # red 0-6, green 6-12, blue 12-18
SECOND = (Scene(5, 3), Scene(7, 4), Scene(6, 5))  # yellow 0-5, magenta 5-12, cyan 12-18
ACCOUNT = ("ann", "correct horse")
QUERY = "someone riding a bike"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _colour_at(scenes, t: float) -> tuple[int, int, int] | None:
    """The scene colour shown at `t`, or None within 0.3 s of a cut (either side may show)."""
    edge = 0.0
    for scene in scenes:
        if edge + 0.3 < t < edge + scene.seconds - 0.3:
            return PALETTE[scene.pattern]
        edge += scene.seconds
    return None


def _mean_colour(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return np.median(pixels.reshape(-1, 3), axis=0)  # the median ignores the moving grey square


def _near(colour: np.ndarray, expected) -> bool:
    return bool(np.abs(colour - np.asarray(expected, dtype=np.float32)).max() < 40)


# -- without a server ------------------------------------------------------------------------


def test_a_result_is_a_moment_with_a_caption():
    as_dict = as_moment({"video": "/footage/a b.mp4", "start": 62.04, "end": 64.0, "score": 0.31234})
    as_object = as_moment(SimpleNamespace(video="/footage/a b.mp4", start=62.04, end=64.0, score=0.31234))
    assert as_dict == as_object == Moment("/footage/a b.mp4", 62.04, 64.0, 0.31234)
    assert as_dict.middle == pytest.approx(63.02) and as_dict.name == "a b.mp4"
    assert caption(as_dict) == "a b.mp4 · 1:02.0–1:04.0 · 0.312"
    sigmoid = as_moment({"video": "x.mp4", "start": 0, "end": 2, "score": 0.2, "probability": 0.734})
    assert caption(sigmoid).endswith("· p 73.4%")
    assert (clock(0), clock(9.96), clock(3725.0)) == ("0:00.0", "0:10.0", "1:02:05.0")
    with pytest.raises(TypeError, match="'start'"):
        as_moment({"video": "x.mp4", "end": 2, "score": 0.1})


def test_the_player_starts_at_the_moment_and_escapes_the_path():
    html = player_html("gradio_api/file=/v/a%22b.mp4", Moment('/v/a"b.mp4', 12.5, 14.0, 0.3))
    assert 'src="gradio_api/file=/v/a%22b.mp4#t=12.500"' in html and "autoplay" in html
    assert "a&quot;b.mp4, 0:12.5–0:14.0" in html


def test_a_thumbnail_is_the_frame_at_the_moments_middle(tmp_path, monkeypatch):
    video = write_scenes(tmp_path / "v.mp4", FIRST, fps=10, width=96, height=64)
    thumbs = tmp_path / "thumbs"
    for start, end in ((0.0, 4.0), (6.0, 8.0), (11.0, 17.0)):  # middles 2 s, 7 s, 14 s
        path = write_thumbnail(Moment(str(video), start, end, 0.5), thumbs)
        assert _near(_mean_colour(path), _colour_at(FIRST, (start + end) / 2)), (start, end)
    # the same moment again decodes nothing
    import clipaction.serve.moments as moments_module

    monkeypatch.setattr(moments_module, "frames_at", lambda *a, **k: pytest.fail("decoded again"))
    assert write_thumbnail(Moment(str(video), 0.0, 4.0, 0.9), thumbs).is_file()
    # a video gone since indexing is a grey tile, not a failed search
    monkeypatch.undo()
    grey = write_thumbnail(Moment(str(tmp_path / "gone.mp4"), 0.0, 2.0, 0.5), thumbs)
    assert _near(_mean_colour(grey), (96, 96, 96))


@pytest.mark.slow  # imports Gradio, makes a preview
def test_the_tab_serves_only_the_videos_a_search_returned(tmp_path):
    pytest.importorskip("gradio", reason='the ui extra is not installed (pip install -e ".[ui]")')
    import gradio as gr

    from clipaction.errors import DataError
    from clipaction.serve.search_tab import SearchTab

    videos = tmp_path / "videos"
    mp4 = write_scenes(videos / "a.mp4", FIRST[:2], fps=10, width=64, height=48)
    avi = write_scenes(videos / "b.avi", SECOND[:2], fps=10, width=64, height=48, codec="mpeg4")
    sibling = write_scenes(videos / "private.mp4", FIRST[:1], fps=10, width=64, height=48)
    results = [
        {"video": str(mp4), "start": 6.0, "end": 8.0, "score": 0.9},
        {"video": str(avi), "start": 1.0, "end": 3.0, "score": 0.8},
    ]
    blocks = SimpleNamespace(allowed_paths=[])
    tab = SearchTab(lambda query, top: results[:top], tmp_path / "work", blocks)  # type: ignore[arg-type]
    items, moments, summary, player = tab.search("  a sentence ")
    assert [c for _, c in items] == [caption(as_moment(r)) for r in results] and "2 moment(s)" in summary
    assert player == "" and [m["video"] for m in moments] == [str(mp4), str(avi)]
    # Only the browser-playable indexed file itself: not the AVI (played from a copy), not the
    # sibling, never the folder.
    assert blocks.allowed_paths == [os.path.realpath(mp4)]

    html = tab.play(moments, SimpleNamespace(index=0))
    assert "#t=6.000" in html and str(mp4) in html
    html = tab.play(moments, SimpleNamespace(index=1))  # the AVI: an H.264 copy in the work folder
    preview = Path(html.split('src="gradio_api/file=')[1].split("#")[0])
    assert preview.is_file() and preview.is_relative_to(tmp_path / "work") and "#t=1.000" in html
    assert blocks.allowed_paths == [os.path.realpath(mp4)]

    with pytest.raises(DataError, match="not a video of this index"):
        tab._playable(Moment(str(sibling), 0.0, 2.0, 1.0))  # a path no search returned
    with pytest.raises(gr.Error):
        tab.play(moments, SimpleNamespace(index=5))
    with pytest.raises(gr.Error, match="type what you are looking for"):
        tab.search("   ")


@pytest.mark.slow
def test_serve_refuses_a_folder_that_is_not_an_index(tmp_path, capsys):
    pytest.importorskip("lancedb")
    from clipaction.cli import main

    (tmp_path / "notes.txt").write_text("not an index")
    assert main(["serve", "--index", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--index: {tmp_path} is not a clipaction index" in err


# -- a real server over a real index ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def library(tiny_model_dir, tmp_path_factory):
    """Two indexed videos of known scenes, a video and a text file beside them that are not
    indexed, and an index built by `clipaction.index` with the tiny CLIP."""
    pytest.importorskip("lancedb")
    import clipaction

    root = tmp_path_factory.mktemp("search-serve")
    videos = root / "videos"
    ns = SimpleNamespace(
        root=root,
        first=write_scenes(videos / "first.mp4", FIRST, fps=10, width=160, height=120),
        second=write_scenes(videos / "second.mp4", SECOND, fps=10, width=160, height=120, seed=1),
        index=root / "idx",
        cache=root / "cache",
    )
    clipaction.index([ns.first, ns.second], ns.index, model=str(tiny_model_dir), cache_dir=str(ns.cache))
    ns.private = write_scenes(videos / "private.mp4", FIRST[:1], fps=10, width=64, height=48)  # not indexed
    ns.notes = videos / "notes.txt"
    ns.notes.write_text("not indexed\n")
    ns.scenes = {ns.first.name: FIRST, ns.second.name: SECOND}
    return ns


@pytest.fixture(scope="module")
def search_page(library, tiny_model_dir):
    pytest.importorskip("gradio", reason='the ui extra is not installed (pip install -e ".[ui]")')
    from clipaction.config import ModelConfig
    from clipaction.serve import ServeConfig, start_page

    config = ServeConfig(
        port=_free_port(),
        model=ModelConfig(name_or_path=str(tiny_model_dir)),
        cache_dir=str(library.cache),
        index=str(library.index),  # the real path: the index's model loads from its manifest
        auth=[ACCOUNT],
    )
    page = start_page(config)
    yield page
    page.close()


def _expected(library, query: str) -> list[Moment]:
    import clipaction
    from clipaction.serve.search_tab import DEFAULT_TOP

    return [as_moment(m) for m in clipaction.search(query, index=library.index, top=DEFAULT_TOP)]


@pytest.mark.slow
def test_search_through_http_equals_the_library_and_serves_only_indexed_videos(search_page, library):
    import httpx
    from gradio_client import Client

    expected = _expected(library, QUERY)
    assert len(expected) >= 3
    client = Client(search_page.url, auth=ACCOUNT, verbose=False)
    items, summary, _player = client.predict(QUERY, api_name="/search")
    assert f"{len(expected)} moment(s)" in summary
    checked = 0
    for item, moment in zip(items, expected, strict=True):
        name = Path(moment.video).name
        assert item["caption"] == f"{name} · {clock(moment.start)}–{clock(moment.end)} · {moment.score:.3f}"
        colour = _colour_at(library.scenes[name], moment.middle)
        if colour is not None:  # the thumbnail is the frame at the moment's middle
            image = item["image"]  # the client downloads it: a local path (a dict in other versions)
            image = image["path"] if isinstance(image, dict) else image
            assert _near(_mean_colour(Path(image)), colour), item["caption"]
            checked += 1
    assert checked >= 2

    session = httpx.Client(base_url=search_page.url.rstrip("/"), timeout=30)
    assert session.post("/login", data={"username": ACCOUNT[0], "password": ACCOUNT[1]}).status_code == 200
    returned = {m.video for m in expected}
    for video in returned:  # an indexed video a search returned is served...
        response = session.get(f"/gradio_api/file={video}", headers={"Range": "bytes=0-99"})
        assert response.status_code in (200, 206) and len(response.content) == 100
    refused = [
        library.private,  # a video beside the indexed ones
        library.notes,
        library.first.parent,  # their folder
        library.index / "index.json",  # the index itself
        Path(f"{library.first.parent}/../{library.first.parent.name}/private.mp4"),
        Path("/etc/passwd"),
    ]
    for path in refused:  # ...and nothing else
        response = session.get(f"/gradio_api/file={path}")
        assert response.status_code == 403, (path, response.status_code)
    assert os.path.realpath(library.private) not in search_page.demo.allowed_paths
    assert set(search_page.demo.allowed_paths) <= {os.path.realpath(v) for v in returned}


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.slow
@pytest.mark.browser
def test_in_a_real_browser_log_in_search_and_play_a_moment(search_page, library, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the ui extra has it)")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium to drive: apt-get install -y chromium (CI does)")
    expected = _expected(library, QUERY)
    # the moment to click: the best one that does not start at 0 (so a start at 0 proves nothing)
    chosen = next(i for i, m in enumerate(expected) if m.start >= 2.0)
    moment = expected[chosen]
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            context.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost")
                    else route.abort()
                ),
            )
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            expect = sync_api.expect
            tab.goto(search_page.url)
            # the door: a login form and nothing of the page
            expect(tab.get_by_role("button", name="Login")).to_be_visible(timeout=60_000)
            expect(tab.locator("#search-query")).to_have_count(0)
            tab.get_by_label("username").fill(ACCOUNT[0])
            tab.get_by_label("password").fill(ACCOUNT[1])
            tab.get_by_role("button", name="Login").click()

            tab.get_by_role("tab", name="Search").click()
            tab.locator("#search-query textarea").fill(QUERY)
            tab.locator("#search-run").click()
            results = tab.locator("#search-results")
            # the first query loads the index's model: minutes on a busy machine, not 5 s
            expect(tab.locator("#search-summary")).to_contain_text(f"{len(expected)} moment(s)", timeout=180_000)
            expect(results.locator("img")).to_have_count(len(expected))
            for m in expected[:3]:
                expect(results).to_contain_text(f"{Path(m.video).name} · {clock(m.start)}–{clock(m.end)}")

            results.locator("img").nth(chosen).click()
            video = tab.locator("#search-player video")
            expect(video).to_have_count(1, timeout=60_000)
            assert f"{moment.video}#t={moment.start:.3f}" in video.get_attribute("src")
            tab.wait_for_function(
                "() => { const v = document.querySelector('#search-player video'); return v && v.readyState >= 1 }"
            )
            state = video.evaluate(
                "v => ({time: v.currentTime, error: v.error && v.error.code,"
                " from: v.played.length ? v.played.start(0) : v.currentTime})"
            )
            assert state["error"] is None, state
            # it starts at the moment: playback began there (autoplay may have moved it on since)
            assert state["from"] == pytest.approx(moment.start, abs=0.25), (state, moment)
            assert state["time"] >= moment.start - 0.25, (state, moment)
            expect(tab.locator("#search-playing")).to_contain_text(Path(moment.video).name)
            shot = tmp_path / "search.png"
            tab.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    if os.environ.get("CLIPACTION_SEARCH_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CLIPACTION_SEARCH_SCREENSHOT"])
