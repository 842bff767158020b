"""The benchmark runs end to end and reports every figure (timings themselves are not tested)."""

from __future__ import annotations

import json
import math

import pytest

from clipaction.cli import main
from clipaction.speed.run import BenchConfig, make_videos, run_bench
from clipaction.video.decode import probe

KEYS = {
    "model_fps", "decode_fps", "extract_fps", "extract_videos_per_s", "efficiency", "text_prompts_per_s",
    "peak_rss_mb", "fast", "fast_speedup", "fast_cosine_min", "fast_cosine_mean", "machine",
}  # fmt: skip


def test_generated_videos_are_like_ucf101(tmp_path):
    (path,) = make_videos(tmp_path, BenchConfig(videos=1, seconds=2.0))
    meta = probe(path)
    assert path.suffix == ".avi" and meta.fps == 25 and meta.num_frames == 50


@pytest.mark.slow
def test_bench_reports_every_figure(tmp_path, monkeypatch):
    import clipaction.speed.run as bench

    # The image encoder's timing runs for real, but run_bench is handed known figures instead,
    # so the ratios built on them have known values whatever the machine's speed.
    known = {"fp32": 200.0, "int8": 500.0}
    measured = {}
    real_model_fps = bench.model_fps

    def model_fps(backend, *args, **kwargs):
        fps, batch_size = real_model_fps(backend, *args, **kwargs)
        precision = backend.fingerprint["precision"]
        measured[precision] = fps
        return known[precision], batch_size

    monkeypatch.setattr(bench, "model_fps", model_fps)
    config = BenchConfig(videos=2, seconds=1.0, architecture="tiny", batch_sizes=(4,), min_seconds=0.05, device="cpu")
    results = run_bench(config, work_dir=tmp_path, ray=False)  # the ray rows: test_engines.py
    assert KEYS <= set(results)
    assert set(measured) == {"fp32", "int8"} and all(v > 0 and math.isfinite(v) for v in measured.values())
    for key in ("decode_fps", "extract_fps", "extract_videos_per_s", "text_prompts_per_s", "peak_rss_mb"):
        assert results[key] > 0 and math.isfinite(results[key]), key
    assert results["fast"]["precision"] == "int8" and results["fast"]["failures"] == 0
    # each efficiency is against its own model's figure, the speed-up is fast over fp32
    assert results["model_fps"] == 200.0 and results["fast"]["model_fps"] == 500.0
    assert results["efficiency"] * 200.0 == pytest.approx(results["extract_fps"])
    assert results["fast"]["efficiency"] * 500.0 == pytest.approx(results["fast"]["extract_fps"])
    assert results["fast_speedup"] == pytest.approx(2.5)
    # frames over videos per second is frames per video: whole, and the same for both precisions
    per_video = [r["extract_fps"] / r["extract_videos_per_s"] for r in (results, results["fast"])]
    assert per_video[0] >= 1 and per_video[0] == pytest.approx(round(per_video[0]))
    assert per_video[1] == pytest.approx(per_video[0])
    assert 0.9 < results["fast_cosine_min"] <= results["fast_cosine_mean"] <= 1.0 + 1e-6
    assert results["machine"]["cores"] >= 1 and results["machine"]["device"] == "cpu"
    assert results["created_at"][:4].isdigit() and "T" in results["created_at"]  # dated
    assert not list(tmp_path.iterdir()), "the generated inputs are cleaned up"


def test_bench_command_prints_and_writes_json(tmp_path, capsys, monkeypatch):
    import clipaction.speed.run as bench

    seen = {}

    def fake_run(config):
        seen["config"] = config
        return {"model_fps": 1.0, "nan": float("nan")}

    monkeypatch.setattr(bench, "run_bench", fake_run)
    out = tmp_path / "bench.json"
    assert main(["bench", "--videos", "3", "--batch-sizes", "8,16", "--out", str(out)]) == 0
    assert seen["config"].videos == 3 and seen["config"].batch_sizes == (8, 16)
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text()) == {"model_fps": 1.0, "nan": None}
