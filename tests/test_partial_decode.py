"""A video that decodes only partly is not silent (issue 10, section 4).

A stream that ends before its declared length, or a video too short for the sampler, is still
used, but the decoder says so in `SampledFrames.warnings`; `extract_features` lists it in
`Extraction.warnings` on the first run and again when the features come from the cache; the
report lists it. Whole videos get no warning.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from clipaction.config import SamplerConfig
from clipaction.features.cache import FeatureCache, video_key
from clipaction.features.extract import VideoWarning, cache_space, extract_features
from clipaction.report.html import render_html
from clipaction.report.markdown import build_document, render_markdown
from clipaction.testing.videos import SyntheticVideo, render_frames, write_video
from clipaction.video.decode import partial_warnings, read_sampled_frames
from clipaction.video.sampling import VideoMeta

UNIFORM = SamplerConfig(name="uniform", frames=8)
CLIP = SamplerConfig(name="center-clip", frames=8, window=3.0)
MULTI = SamplerConfig(name="multi-clip", frames=8, window=3.0, clips=3)
SAMPLERS = [SamplerConfig(name="middle"), UNIFORM, CLIP, MULTI]


def cut_after_frames(src: Path, dst: Path, frames: int) -> Path:
    """A copy of `src` cut where its packet number `frames` starts: `frames` whole frames remain
    and the header still declares them all (a truncated download)."""
    with av.open(str(src)) as container:
        starts = [packet.pos for packet in container.demux(video=0) if packet.size]
    dst.write_bytes(src.read_bytes()[: starts[frames]])
    return dst


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """whole: 80 frames (3.2 s); cut: its first 3 frames under the 80-frame header; short: a
    whole 5-frame (0.2 s) video; brief: a whole 40-frame (1.6 s) video, shorter than 3 s."""
    root = tmp_path_factory.mktemp("partial")
    whole = write_video(root / "whole.avi", SyntheticVideo(num_frames=80, pattern=1))
    return {
        "whole": whole,
        "cut": cut_after_frames(whole, root / "cut.avi", 3),
        "short": write_video(root / "short.mp4", SyntheticVideo(codec="h264", num_frames=5, gop=4, pattern=2)),
        "brief": write_video(root / "brief.mp4", SyntheticVideo(codec="h264", num_frames=40, gop=8, pattern=3)),
    }


# --- the decoder reports ----------------------------------------------------------------------


def test_truncated_file_says_how_much_of_it_decoded(videos) -> None:
    for sampler in (UNIFORM, CLIP):
        got = read_sampled_frames(videos["cut"], sampler)
        assert got.meta == VideoMeta.from_frames(3, 25.0)
        assert len(got.frames) == 8 and set(got.indices) == {0, 1, 2}  # still used: it reports, not refuses
        assert got.declared_duration == pytest.approx(3.2)
        assert got.warnings == ("decoded 3 of 8 requested frames: stream ends at 0.12 s of 3.2 s declared",)


def test_truncated_file_with_enough_frames_still_says_it_ends_early(videos, tmp_path: Path) -> None:
    # 40 of 80 frames: 8 distinct frames are there, but only from the first half of the video.
    half = cut_after_frames(videos["whole"], tmp_path / "half.avi", 40)
    for sampler in SAMPLERS:
        got = read_sampled_frames(half, sampler)
        assert got.meta.num_frames == 40
        if sampler is MULTI:  # 3 clips of a 3 s window in 1.6 s: the same 8 frames thrice
            assert got.warnings == ("decoded 8 of 24 requested frames: stream ends at 1.6 s of 3.2 s declared",)
        else:
            assert got.warnings == (
                "stream ends at 1.6 s of 3.2 s declared: frames sampled from the part that decodes",
            )


def test_truncated_mp4_whose_last_packets_do_not_decode(tmp_path: Path) -> None:
    # Faststart MP4: the index lists all 80 frames; cut in half, the packets still there are
    # fewer than 80 and the last of them do not decode: the retry with the real count warns too.
    full = tmp_path / "full.mp4"
    with av.open(str(full), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("h264", rate=25, options={"g": "10", "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i, rgb in enumerate(render_frames(SyntheticVideo(num_frames=80))):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    got = read_sampled_frames(cut, CLIP)
    assert 5 < got.meta.num_frames < 80
    seconds = f"{got.meta.duration:.2f}".rstrip("0").rstrip(".")
    assert got.warnings == (f"stream ends at {seconds} s of 3.2 s declared: frames sampled from the part that decodes",)


def test_video_shorter_than_the_window_with_repeated_frames(videos) -> None:
    assert read_sampled_frames(videos["short"], CLIP).warnings == (
        "video is 0.2 s, shorter than the 3 s window: frames repeated to fill 8",
    )
    assert read_sampled_frames(videos["short"], MULTI).warnings == (
        "video is 0.2 s, shorter than the 3 s window: frames repeated to fill 24",
    )
    assert read_sampled_frames(videos["short"], UNIFORM).warnings == (
        "video has 5 frames, fewer than the 8 requested: frames repeated to fill 8",
    )
    assert read_sampled_frames(videos["short"], SamplerConfig(name="middle")).warnings == ()


@pytest.mark.parametrize("name", ["whole", "brief"])
def test_whole_videos_give_no_warning(videos, name: str) -> None:
    # "brief" is shorter than the 3 s window but every frame is there: the clip is the whole
    # video, and multi-clip's clips coincide without anything missing.
    for sampler in SAMPLERS:
        got = read_sampled_frames(videos[name], sampler)
        assert got.warnings == (), (name, sampler)


def test_partial_warnings_tolerates_rounding_in_the_declared_length() -> None:
    meta = VideoMeta.from_frames(100, 25.0)  # 4 s
    assert partial_warnings(meta, CLIP, list(range(0, 80, 10)), declared=4.08) == ()  # 2 frames over
    assert partial_warnings(meta, CLIP, list(range(0, 80, 10)), declared=None) == ()
    assert partial_warnings(meta, CLIP, list(range(0, 80, 10)), declared=4.5) == (
        "stream ends at 4 s of 4.5 s declared: frames sampled from the part that decodes",
    )


# --- extraction reports, on the first run and from the cache -----------------------------------

EXPECTED = {
    ("cut", "decoded 3 of 8 requested frames: stream ends at 0.12 s of 3.2 s declared"),
    ("short", "video is 0.2 s, shorter than the 3 s window: frames repeated to fill 8"),
}


def named(videos: dict[str, Path], warnings: list[VideoWarning]) -> set[tuple[str, str]]:
    by_path = {str(path): name for name, path in videos.items()}
    return {(by_path[w.path], w.warning) for w in warnings}


def test_extract_features_reports_partial_videos_also_from_the_cache(videos, tiny_backend, tmp_path: Path) -> None:
    paths = [videos[name] for name in ("whole", "cut", "short", "brief")]
    cache = FeatureCache(tmp_path, cache_space(tiny_backend))
    first = extract_features(paths, tiny_backend, CLIP, cache, batch_size=5, progress=False)
    assert first.failures == [] and first.n_encoded == 4
    assert set(first.features) == {str(p) for p in paths}  # partial videos are used
    assert len(first.warnings) == 2 and named(videos, first.warnings) == EXPECTED

    again = extract_features(paths, tiny_backend, CLIP, cache, progress=False)
    assert again.n_cached == 4 and again.n_encoded == 0 and again.n_frames_encoded == 0
    assert len(again.warnings) == 2 and named(videos, again.warnings) == EXPECTED

    # Another sampler over the same cache entries words its own warning.
    uniform = extract_features(paths, tiny_backend, UNIFORM, cache, progress=False)
    assert named(videos, uniform.warnings) == {
        ("cut", "decoded 3 of 8 requested frames: stream ends at 0.12 s of 3.2 s declared"),
        ("short", "video has 5 frames, fewer than the 8 requested: frames repeated to fill 8"),
    }


def test_entry_written_before_the_declared_length_was_stored(videos, tiny_backend, tmp_path: Path) -> None:
    # An entry from an older version lacks `declared_duration`: served without it, a truncated
    # video would be silent. It is decoded again (no model) and the entry gains it.
    cache = FeatureCache(tmp_path, cache_space(tiny_backend))
    path = videos["cut"]
    extract_features([path], tiny_backend, CLIP, cache, progress=False)
    key = video_key(path)
    entry = cache.load(key)
    info = {k: v for k, v in entry.info.items() if k not in ("declared_duration", "sha256")}
    cache.store(key, type(entry)(entry.indices, entry.pooled, entry.embeds, info))
    assert "declared_duration" not in cache.load(key).info

    upgraded = extract_features([path], tiny_backend, CLIP, cache, progress=False)
    assert upgraded.n_frames_encoded == 0 and upgraded.n_cached == 1
    assert [w.warning for w in upgraded.warnings] == [
        "decoded 3 of 8 requested frames: stream ends at 0.12 s of 3.2 s declared"
    ]
    assert float(cache.load(key).info["declared_duration"]) == pytest.approx(3.2)
    np.testing.assert_array_equal(upgraded.features[str(path)].embeds, entry.embeds[[0, 0, 0, 1, 1, 2, 2, 2]])


# --- the report lists them ---------------------------------------------------------------------


def test_report_lists_videos_that_decoded_only_partly(tmp_path: Path) -> None:
    warnings = [
        {
            "path": "videos/cut.avi",
            "warning": "decoded 3 of 8 requested frames: stream ends at 0.12 s of 3.2 s declared",
        },
        {
            "path": "videos/short.mp4",
            "warning": "video is 0.2 s, shorter than the 3 s window: frames repeated to fill 8",
        },
    ]
    results = {"dataset": {"name": "folder", "classes": ["a", "b"]}, "warnings": warnings}
    markdown = render_markdown(build_document(results, {}, []))
    assert "### Videos that decoded only partly" in markdown
    assert "2 video(s) were used" in markdown
    for item in warnings:
        assert f"`{item['path']}`: {item['warning']}" in markdown
    page = render_html(build_document(results, {}, []), tmp_path)
    assert "<h3>Videos that decoded only partly</h3>" in page and "<code>videos/short.mp4</code>" in page

    for empty in ({**results, "warnings": []}, {k: v for k, v in results.items() if k != "warnings"}):
        assert "decoded only partly" not in render_markdown(build_document(empty, {}, []))


# --- end to end: results.json, the summary line, --strict ---------------------------------------


@pytest.fixture(scope="module")
def folder(videos, tmp_path_factory) -> Path:
    """A folder dataset: two whole videos per label, plus the truncated and the short video."""
    root = tmp_path_factory.mktemp("folder") / "videos"
    for label, pattern in (("jump", 0), ("swim", 1)):
        for k in range(2):
            write_video(root / label / f"{label}_{k}.mp4", SyntheticVideo(num_frames=30, pattern=pattern, seed=k))
    (root / "jump" / "cut.avi").write_bytes(videos["cut"].read_bytes())
    (root / "swim" / "short.mp4").write_bytes(videos["short"].read_bytes())
    return root


def _common(folder: Path, model_dir: Path, cache: Path, out: Path) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(folder), "--model", str(model_dir), "--device", "cpu",
            "--cache-dir", str(cache), "--no-progress", "--out", str(out)]  # fmt: skip


def _listed(results: dict) -> dict[str, str]:
    return {Path(item["path"]).name: item["warning"] for item in results["warnings"]}


LISTED = {
    "cut.avi": "decoded 3 of 8 requested frames: stream ends at 0.12 s of 3.2 s declared",
    "short.mp4": "video is 0.2 s, shorter than the 3 s window: frames repeated to fill 8",
}


def test_zeroshot_lists_partial_videos_and_strict_refuses_them(folder, tiny_model_dir, tmp_path: Path, capsys) -> None:
    from clipaction.cli import main

    sampler = ["--sampler", "center-clip", "--frames", "8", "--window", "3"]
    for attempt in ("first", "cached"):
        out = tmp_path / attempt
        assert main(["zeroshot", *_common(folder, tiny_model_dir, tmp_path / "cache", out), *sampler]) == 0
        results = json.loads((out / "results.json").read_text())
        assert results["failures"] == [] and results["dataset"]["n_evaluated"] == 6  # used, not refused
        assert _listed(results) == LISTED and len(results["warnings"]) == 2
        assert "2 video(s) decoded only partly: see results.json" in capsys.readouterr().out
    assert results["cache"] == {"cached": 6, "encoded": 0}

    strict = tmp_path / "strict"
    assert main(["zeroshot", *_common(folder, tiny_model_dir, tmp_path / "cache", strict), *sampler, "--strict"]) == 2
    assert "2 video(s) decoded only partly (--strict)" in capsys.readouterr().err
    assert not (strict / "results.json").exists()


def test_run_lists_partial_videos_in_results_and_report(folder, tiny_model_dir, tmp_path: Path, capsys) -> None:
    from clipaction.cli import main

    skips = [arg for stage in ("temporal", "fewshot", "full-finetune", "adapt", "embeddings", "ablations")
             for arg in ("--skip", stage)]  # fmt: skip
    out = tmp_path / "study"
    assert main(["run", *_common(folder, tiny_model_dir, tmp_path / "cache", out), *skips]) == 0
    results = json.loads((out / "results.json").read_text())
    assert _listed(results) == LISTED and len(results["warnings"]) == 2
    assert "2 video(s) decoded only partly: see results.json" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "### Videos that decoded only partly" in report and LISTED["cut.avi"] in report
