"""The timeline end to end: generated footage whose scene changes at known times, a stand-in
backend whose features follow the content (`ColourBackend`), the cache by time, clip models,
damaged files, memory that does not grow with length, and the CLI with the tiny CLIP."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clipaction.errors import ConfigError
from clipaction.testing.footage import ColourBackend, Scene, write_scenes
from clipaction.timeline import TimelineConfig, label_videos

# changes at 10 s and 17 s
SCENES = (Scene(10, 0), Scene(7, 1), Scene(13, 2))
CHANGES = (10.0, 17.0)
LABELS = ("red", "green", "blue")


@pytest.fixture(scope="module")
def scenes_video(tmp_path_factory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("timeline") / "scenes.mp4", SCENES, fps=10, gop=10)


def _config(**changes) -> TimelineConfig:
    return TimelineConfig(**{"labels": LABELS, "chunk_seconds": 8.0, **changes})


def _segments(out: Path, video_id: str = "scenes") -> list[tuple[float, float, str]]:
    lines = (out / video_id / "segments.csv").read_text().splitlines()[1:]
    return [(float(s), float(e), label) for _, s, e, label, _ in (line.split(",") for line in lines)]


def test_change_points_are_found_within_one_stride(tmp_path, scenes_video):
    backend = ColourBackend()
    results = label_videos(
        [scenes_video], _config(cache_dir=str(tmp_path / "cache")), tmp_path / "out", backend=backend
    )
    segments = _segments(tmp_path / "out")
    assert [label for _, _, label in segments] == list(LABELS)
    assert segments[0][0] == 0.0 and segments[-1][1] == pytest.approx(30.0)
    for (_, end, _), change in zip(segments, CHANGES):
        assert abs(end - change) <= 1.0  # the stride
    summary = results["videos"][0]
    assert summary["n_segments"] == 3 and summary["seconds_per_label"]["green"] == pytest.approx(7.0, abs=1.0)
    assert backend.encoded == 60  # 30 s at 2 frames/s, each frame once
    vtt = (tmp_path / "out" / "scenes" / "scenes.vtt").read_text()
    assert vtt.startswith("WEBVTT") and vtt.count(" --> ") == 3
    assert (tmp_path / "out" / "scenes" / "timeline.png").stat().st_size > 1000
    windows = (tmp_path / "out" / "scenes" / "windows.csv").read_text().splitlines()
    assert windows[0] == "start,end,red,green,blue" and len(windows) == 1 + 29


def test_a_rerun_with_other_labels_window_or_threshold_encodes_no_frame(tmp_path, scenes_video):
    cache = str(tmp_path / "cache")
    backend = ColourBackend()
    label_videos([scenes_video], _config(cache_dir=cache), tmp_path / "a", backend=backend)
    first = backend.encoded
    results = label_videos(
        [scenes_video],
        _config(labels=("blue", "green", "red", "yellow"), window=4.0, stride=0.5, threshold=0.4, cache_dir=cache),
        tmp_path / "b",
        backend=backend,
    )
    assert backend.encoded == first  # only texts were encoded
    assert results["videos"][0]["cache"] == {"chunks_cached": 4, "chunks_encoded": 0, "frames_encoded": 0}
    assert {label for _, _, label in _segments(tmp_path / "b")} >= {"red", "green", "blue"}


def test_an_interrupted_run_resumes_at_the_missing_chunk(tmp_path, scenes_video):
    cache = tmp_path / "cache"
    backend = ColourBackend()
    label_videos([scenes_video], _config(cache_dir=str(cache)), tmp_path / "a", backend=backend)
    from safetensors import safe_open

    chunks = {}
    for entry in cache.glob("*/*/*.safetensors"):
        with safe_open(str(entry), framework="np") as handle:
            info = handle.metadata() or {}
        if "chunk" in info:
            chunks[int(info["chunk"])] = entry
    assert sorted(chunks) == [0, 1, 2, 3]  # 8 s chunks of 16 samples: 16, 16, 16, 12
    chunks[2].unlink()  # the third chunk: samples 32..47
    before = backend.encoded
    results = label_videos([scenes_video], _config(cache_dir=str(cache)), tmp_path / "b", backend=backend)
    assert backend.encoded - before == 16
    assert results["videos"][0]["decoder"]["seeks"] >= 1  # it went straight to 16 s
    assert _segments(tmp_path / "b") == _segments(tmp_path / "a")


def test_clip_models_score_each_window_as_one_clip(tmp_path, scenes_video):
    backend = ColourBackend(clip_frames=4)
    cache = str(tmp_path / "cache")
    label_videos([scenes_video], _config(cache_dir=cache, fps=4.0), tmp_path / "out", backend=backend)
    segments = _segments(tmp_path / "out")
    assert [label for _, _, label in segments] == list(LABELS)
    for (_, end, _), change in zip(segments, CHANGES):
        assert abs(end - change) <= 1.0
    assert backend.encoded == 29 * 4  # 29 windows, one clip of 4 frames each
    label_videos(
        [scenes_video],
        _config(cache_dir=cache, fps=4.0, labels=("green", "red", "blue"), threshold=0.5),
        tmp_path / "b",
        backend=backend,
    )
    assert backend.encoded == 29 * 4


def test_a_clip_model_that_does_not_say_its_clip_length_is_a_config_error(tmp_path, scenes_video):
    backend = ColourBackend(clip_frames=4)
    backend.clip_frames = 0
    with pytest.raises(ConfigError, match="clip_frames 0"):
        label_videos([scenes_video], _config(), tmp_path / "out", backend=backend)


def test_a_corrupt_middle_is_skipped_with_a_warning_and_the_rest_is_labelled(tmp_path):
    import numpy as np

    path = write_scenes(tmp_path / "damaged.mkv", SCENES, fps=10, gop=10)
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * 0.42), int(len(data) * 0.5)
    data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    results = label_videos(
        [path], _config(cache_dir=str(tmp_path / "cache")), tmp_path / "out", backend=ColourBackend()
    )
    warnings = [w["warning"] for w in results["warnings"]]
    assert len(warnings) == 1 and warnings[0].startswith("corrupt data from ") and " s to " in warnings[0]
    segments = _segments(tmp_path / "out", "damaged")
    assert segments[-1][2] == "blue" and segments[-1][1] == pytest.approx(30.0)
    assert results["videos"][0]["n_windows_scored"] < results["videos"][0]["n_windows"]
    # the warning survives a rerun from the cache
    again = label_videos(
        [path], _config(cache_dir=str(tmp_path / "cache")), tmp_path / "again", backend=ColourBackend()
    )
    assert [w["warning"] for w in again["warnings"]] == warnings


def test_ground_truth_gives_the_detection_map(tmp_path, scenes_video):
    truth = {
        "database": {
            "scenes": {
                "annotations": [
                    {"segment": [0, 10], "label": "red"},
                    {"segment": [10, 17], "label": "green"},
                    {"segment": [17, 30], "label": "blue"},
                ]
            }
        }
    }
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    config = _config(ground_truth=str(tmp_path / "gt.json"), cache_dir=str(tmp_path / "cache"))
    results = label_videos([scenes_video], config, tmp_path / "out", backend=ColourBackend())
    evaluation = results["evaluation"]
    keys = ["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95"]  # ActivityNet's
    assert evaluation["benchmark"] == "activitynet" and list(evaluation["map"]) == keys
    # segments red 0-10.5, green 10.5-16.5, blue 16.5-30 (segments.csv): tIoU 0.952, 6/7, 0.963
    assert evaluation["map"] == pytest.approx({**dict.fromkeys(keys[:8], 1.0), "0.9": 2 / 3, "0.95": 2 / 3})
    stored = json.loads((tmp_path / "out" / "results.json").read_text())
    assert stored["schema_version"] == 1 and stored["evaluation"]["average_map"] == pytest.approx((8 + 4 / 3) / 10)
    combined = json.loads((tmp_path / "out" / "segments.json").read_text())
    assert [s["label"] for s in combined["results"]["scenes"]] == list(LABELS)


_MEMORY_CHILD = textwrap.dedent(
    """
    import resource, sys, tracemalloc
    from clipaction.timeline import TimelineConfig, label_videos
    from clipaction.testing.footage import ColourBackend
    from clipaction.config import ModelConfig
    # batches of 8 frames: the decoding pipeline is full within the short video
    model = ModelConfig(batch_size=8)
    config = TimelineConfig(labels=("red", "green", "blue"), fps=1, model=model, cache_dir=sys.argv[1])
    tracemalloc.start()
    # a first run imports what the run needs (matplotlib, the prompt code): not per video
    warm_up = TimelineConfig(labels=config.labels, fps=1, model=model, cache_dir=sys.argv[1] + "-warm-up")
    label_videos([sys.argv[2]], warm_up, sys.argv[3] + "-warm-up", backend=ColourBackend())
    for video, out in zip(sys.argv[2::2], sys.argv[3::2]):
        tracemalloc.reset_peak()
        label_videos([video], config, out, backend=ColourBackend())
        print(tracemalloc.get_traced_memory()[1], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.subprocess
def test_peak_memory_does_not_grow_with_the_length_of_the_video(tmp_path):
    """One process labels a 1-minute video, then a 5-minute one (320x240, 1 frame/s): the
    peak of what the code allocates (tracemalloc: Python objects and numpy arrays, where
    frames, rows and scores live) for the long one stays within 10% of the short one's.
    Holding the long video's sampled frames would add 300 x 230 KB = 69 MB (over 50% of the
    peak); holding its frame features or window rows would grow it too.

    The process's peak RSS is printed as well; it is not asserted: after the first few
    minutes of footage it rises by a one-off 100-150 MB of C-level memory (glibc heap and
    FFmpeg buffers; with MALLOC_ARENA_MAX=1 it swings up and down instead) and then stays
    flat (an hour: +17 MB after the first 15 minutes), so a short run understates it."""
    args = [str(tmp_path / "cache")]
    for name, minutes in (("short", 1), ("long", 5)):
        scenes = [Scene(30, i % 3) for i in range(minutes * 2)]
        video = write_scenes(tmp_path / f"{name}.mkv", scenes, fps=1, width=320, height=240, gop=10)
        args += [str(video), str(tmp_path / name)]
    child = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, *args], capture_output=True, text=True, timeout=300, check=True
    )
    (short, short_rss), (long, long_rss) = (map(int, line.split()) for line in child.stdout.strip().splitlines()[-2:])
    for name, minutes in (("short", 1), ("long", 5)):
        summary = json.loads((tmp_path / name / "results.json").read_text())["videos"][0]
        assert summary["duration"] == pytest.approx(minutes * 60, abs=1)
        assert summary["cache"]["frames_encoded"] == minutes * 60
    print(
        f"allocated peak: 1 min {short / 2**20:.1f} MiB, 5 min {long / 2**20:.1f} MiB; "
        f"process peak RSS: {short_rss / 1024:.0f} MiB, {long_rss / 1024:.0f} MiB"
    )
    assert long <= 1.10 * short


def test_cli_end_to_end_with_the_tiny_clip(tmp_path, tiny_model_dir, scenes_video, capsys):
    from clipaction.cli import main

    (tmp_path / "labels.txt").write_text("\ufeffred\ngreen\n", encoding="utf-8")  # a BOM, as Notepad writes
    truth = {"database": {"scenes": {"annotations": [{"segment": [10, 17], "label": "green"}]}}}
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    argv = [
        "timeline",
        str(scenes_video),
        "--labels",
        "@" + str(tmp_path / "labels.txt"),
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(tiny_model_dir),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--background",
        "nothing",
        "--ground-truth",
        str(tmp_path / "gt.json"),
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "scenes.mp4: 30 s" in printed and "detection mAP (activitynet) at tIoU 0.5 " in printed and ", 0.55 " in printed
    )
    # the ground truth has only green: red segments count for no class, and the CLI says so
    warning = next(line for line in printed.splitlines() if "matching no ground-truth class" in line)
    assert warning.endswith(": red")
    folder = tmp_path / "out" / "scenes"
    assert {p.name for p in folder.iterdir()} == {
        "windows.csv",
        "segments.csv",
        "segments.json",
        "scenes.vtt",
        "timeline.png",
    }
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["settings"]["labels"] == ["red", "green", "nothing"]
    assert (folder / "windows.csv").read_text().splitlines()[0] == "start,end,red,green,nothing"
    assert main([*argv[:-3], "--window", "0.2", "--no-progress"]) == 2
    assert "--window:" in capsys.readouterr().err


def test_timeline_flags_default_to_the_config():
    from clipaction.cli.parser import SETTING_FLAGS, build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    timeline = action.choices["timeline"]
    defaults = {a.option_strings[0]: a.default for a in timeline._actions if a.option_strings}
    config = TimelineConfig()
    checked = 0
    for setting, flag in SETTING_FLAGS.items():
        if setting.startswith("timeline."):
            assert defaults[flag] == getattr(config, setting.split(".", 1)[1]), flag
            checked += 1
    assert checked == 8
    assert defaults["--precision"] == config.model.precision and defaults["--prompts"] == config.templates
