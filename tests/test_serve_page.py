"""The page of `clipaction serve` on a real server on 127.0.0.1: driven through HTTP with
gradio_client (the ranking equals `clipaction predict --json`; bad inputs get their messages;
uploads are deleted), then in headless Debian Chromium (upload, type, submit, see the top
label, screenshot). One server serves the whole module. Set CLIPACTION_SERVE_SCREENSHOT=PATH
to keep the browser's screenshot (docs/serve.png was made that way)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest

pytest.importorskip("gradio", reason='the ui extra is not installed (pip install -e ".[ui]")')
from gradio_client import Client, handle_file  # noqa: E402

from clipaction.cli import main  # noqa: E402
from clipaction.config import ModelConfig  # noqa: E402
from clipaction.serve import ServeConfig, start_page  # noqa: E402
from clipaction.serve.preview import browser_playable  # noqa: E402
from clipaction.testing.footage import Scene, write_scenes  # noqa: E402
from clipaction.testing.videos import SyntheticVideo, write_video  # noqa: E402

# Every test here shares a Gradio page started once for the module (seconds to start).
pytestmark = pytest.mark.slow

LABELS = ["riding a bike", "juggling", "swimming"]
MAX_UPLOAD_MB = 1.0
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    videos = root / "videos"
    ns = SimpleNamespace(
        root=root,
        videos=videos,
        cache=root / "cache",
        # three 2-second scenes in MPEG-4 Part 2 in AVI (as UCF101): needs a preview, has a timeline
        avi=write_scenes(
            videos / "clip.avi", [Scene(2, 0), Scene(2, 2), Scene(2, 4)], width=160, height=120, codec="mpeg4"
        ),
        mp4=write_video(videos / "sub" / "other.mp4", SyntheticVideo(codec="h264", pattern=5, seed=1)),
        secret=write_video(root / "outside" / "secret.mp4", SyntheticVideo(codec="h264", pattern=1)),
        garbage=root / "garbage.mp4",
        text=root / "notes.txt",
        big=root / "big.mp4",
    )
    os.symlink(ns.secret, videos / "escape.mp4")
    ns.garbage.write_bytes(os.urandom(4000))
    ns.text.write_text("not a video\n")
    ns.big.write_bytes(b"\0" * int(MAX_UPLOAD_MB * 1_000_000 * 1.5))
    return ns


@pytest.fixture(scope="module")
def page(tiny_model_dir, media):
    config = ServeConfig(
        port=_free_port(),
        videos_dir=str(media.videos),
        max_upload_mb=MAX_UPLOAD_MB,
        model=ModelConfig(name_or_path=str(tiny_model_dir)),
        cache_dir=str(media.cache),
    )
    served = start_page(config)
    yield served
    workdir = served.workdir
    served.close()
    assert not workdir.exists()  # uploads, previews and downloads go with the server


def _ranking(label_output: dict) -> list[tuple[str, float]]:
    return [(c["label"], c["confidence"]) for c in label_output["confidences"]]


def _files_named(folder: Path, name: str) -> list[Path]:
    return [p for p in folder.rglob(name) if "sessions" not in p.parts]


def test_ranking_and_timeline_through_http_equal_the_cli(page, media, tiny_model_dir, capsys, monkeypatch, tmp_path):
    backend = page.analyzer.backend
    encoded: list[int] = []
    real_encode = backend.encode_pixels
    monkeypatch.setattr(backend, "encode_pixels", lambda pixels: encoded.append(len(pixels)) or real_encode(pixels))
    client = Client(page.url, verbose=False)

    outputs = client.predict(handle_file(str(media.avi)), None, "\n".join(LABELS), api_name="/analyse")
    video, summary, ranking, table, timeline, segments, json_file, csv_file, segments_file, vtt_file = outputs
    assert sum(encoded) > 0
    assert (
        main(
            [
                "predict",
                str(media.avi),
                "--labels",
                ",".join(LABELS),
                "--json",
                "--model",
                str(tiny_model_dir),
                "--cache-dir",
                str(media.cache),
                "--no-progress",
            ]
        )
        == 0
    )
    expected = json.loads(capsys.readouterr().out)[0]
    want = [(item["label"], item["probability"]) for item in expected["labels"]]
    got = _ranking(ranking)
    assert [label for label, _ in got] == [label for label, _ in want]
    assert [p for _, p in got] == pytest.approx([p for _, p in want], abs=1e-6)
    assert ranking["label"] == want[0][0]
    assert [row[1] for row in table["data"]] == [label for label, _ in want]
    assert expected["score"] == "softmax" and "softmax" in summary and want[0][0] in summary

    download = json.loads(Path(json_file["value"]).read_text())
    assert download["video"] == "clip.avi" and download["score"] == expected["score"]
    assert [(i["label"], i["probability"]) for i in download["labels"]] == want
    assert download["model"]["family"] == "clip" and download["model"]["precision"] == "fp32"
    assert Path(csv_file["value"]).read_text().splitlines()[1].startswith(f"1,{want[0][0]},")
    assert browser_playable(video["value"]) and video["value"].endswith(".mp4")  # an H.264 preview of the AVI

    # The timeline is `clipaction timeline`'s, file for file; the VTT is the video's subtitles.
    assert (
        main(
            [
                "timeline",
                str(media.avi),
                "--labels",
                ",".join(LABELS),
                "--out",
                str(tmp_path / "timeline"),
                "--model",
                str(tiny_model_dir),
                "--cache-dir",
                str(media.cache),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    cli = tmp_path / "timeline" / "clip"
    assert Path(segments_file["value"]).read_bytes() == (cli / "segments.csv").read_bytes()
    assert Path(vtt_file["value"]).read_bytes() == (cli / "clip.vtt").read_bytes()
    assert Path(video["subtitles"]).read_bytes() == (cli / "clip.vtt").read_bytes()
    assert Path(vtt_file["value"]).read_text().startswith("WEBVTT")
    assert Path(timeline["value"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected_segments = json.loads((cli / "segments.json").read_text())["results"]["clip"]
    assert [row[2] for row in segments["value"]["data"]] == [s["label"] for s in expected_segments]
    assert download["timeline"]["segments"] == [
        {"start": s["segment"][0], "end": s["segment"][1], "label": s["label"], "score": s["score"]}
        for s in expected_segments
    ]
    assert download["timeline"]["duration"] == pytest.approx(6.0, abs=0.05)

    # New labels on the same video: its frames come from the cache, only the labels are encoded.
    before = sum(encoded)
    outputs = client.predict(handle_file(str(media.avi)), None, "cooking, dancing", api_name="/analyse")
    assert sum(encoded) == before and {label for label, _ in _ranking(outputs[2])} == {"cooking", "dancing"}
    assert _files_named(page.workdir, "clip.avi"), "kept while its session may ask again"

    # The next video of the session replaces the upload, which is deleted.
    outputs = client.predict(handle_file(str(media.mp4)), None, ",".join(LABELS), api_name="/analyse")
    assert outputs[2]["label"] in LABELS
    assert not _files_named(page.workdir, "clip.avi")


def test_bad_inputs_get_readable_messages(page, media):
    from gradio_client.exceptions import AppError

    client = Client(page.url, verbose=False)
    video = handle_file(str(media.avi))
    cases = [
        ((video, None, " \n "), "give at least one label"),
        ((video, None, "juggling\nswimming\njuggling"), "'juggling' given more than once"),
        ((handle_file(str(media.garbage)), None, "a, b"), "cannot read garbage.mp4 as a video"),
        ((handle_file(str(media.text)), None, "a, b"), "Invalid file type"),
        ((None, None, "a, b"), "upload a video or pick one from the folder"),
        ((None, "../outside/secret.mp4", "a, b"), "not in the list of choices"),
        ((None, "escape.mp4", "a, b"), "not in the list of choices"),  # a link out is not listed
    ]
    for args, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/analyse")
    assert not _files_named(page.workdir, "garbage.mp4")  # an unusable upload is deleted at once

    # Over the limit: the client is told the server's limit, and the server refuses the upload.
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(str(media.big)), None, "a, b", api_name="/analyse")
    import httpx

    with open(media.big, "rb") as handle:
        response = httpx.post(f"{page.url}gradio_api/upload", files={"files": ("big.mp4", handle)}, timeout=30)
    assert response.status_code == 413 and "file size" in response.text.lower()

    # A listed video of the folder works and stays where it is.
    outputs = client.predict(None, "sub/other.mp4", "a, b", api_name="/analyse")
    assert outputs[2]["label"] in ("a", "b") and media.mp4.exists()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.browser
def test_in_a_real_browser(page, media, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the ui extra has it)")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium to drive: apt-get install -y chromium (CI does)")
    expected_top = page.analyzer.rank(media.avi, LABELS).labels[0][0]
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a new, empty profile
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            # the page must need nothing but this server
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
            tab.goto(page.url)
            expect = sync_api.expect
            expect(tab.locator("#model-line")).to_contain_text("family clip")
            tab.locator("#upload input[type=file]").set_input_files(str(media.avi))
            expect(tab.locator("#upload")).to_contain_text("clip.avi")
            tab.locator("#labels textarea").fill("\n".join(LABELS))
            tab.locator("#run").click()
            expect(tab.locator("#summary")).to_contain_text(f"Top label: {expected_top}")
            expect(tab.locator("#ranking")).to_contain_text(expected_top)
            expect(tab.locator("#video video")).to_have_count(1)
            assert tab.locator("#video video").get_attribute("src")
            expect(tab.locator("#video track")).to_have_count(1)  # the timeline's WebVTT as subtitles
            expect(tab.locator("#timeline img")).to_be_visible()
            expect(tab.locator("#segments")).to_contain_text("end (s)")
            expect(tab.locator("#download-vtt")).to_be_visible()
            assert _files_named(page.workdir, "clip.avi")  # held while the tab is open
            shot = tmp_path / "serve.png"
            tab.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    assert shot.stat().st_size > 10_000
    # The tab closed: its session's upload is deleted (Gradio's unload runs in the background).
    deadline = time.monotonic() + 20
    while _files_named(page.workdir, "clip.avi") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _files_named(page.workdir, "clip.avi")
    if os.environ.get("CLIPACTION_SERVE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CLIPACTION_SERVE_SCREENSHOT"])


@pytest.mark.subprocess
def test_the_command_serves_until_sigterm_then_deletes_its_files(tiny_model_dir, media, tmp_path):
    """`clipaction serve` as a user starts it: it prints its URL, serves the page, and SIGTERM
    stops it with exit code 0 and its work folder deleted. In its own process: a server and a
    signal handler beside the browser test's threads in pytest's process can crash it."""
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the server's work folder goes here
    command = [sys.executable, "-m", "clipaction.cli", "serve", "--port", str(port), "--model", str(tiny_model_dir),
               "--cache-dir", str(media.cache), "--videos", str(media.videos), "--no-progress"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline, status, page, folders = time.monotonic() + 120, None, b"", []
        while status is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                    status, page = response.status, response.read()
                    folders = list(tmp_path.glob("clipaction-serve-*"))
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    assert out.startswith(f"clipaction serve: open http://127.0.0.1:{port}/")
    assert status == 200 and b"clipaction" in page and folders
    assert not list(tmp_path.glob("clipaction-serve-*"))
