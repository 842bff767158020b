"""The benchmark runs end to end and reports every figure (timings themselves are not tested)."""

from __future__ import annotations

import json
import math

from clipaction.bench import BenchConfig, make_videos, run_bench
from clipaction.cli import main
from clipaction.video.decode import probe

KEYS = {
    "model_fps", "decode_fps", "extract_fps", "extract_videos_per_s", "efficiency", "text_prompts_per_s",
    "peak_rss_mb", "fast", "fast_speedup", "fast_cosine_min", "fast_cosine_mean", "machine",
}  # fmt: skip


def test_generated_videos_are_like_ucf101(tmp_path):
    (path,) = make_videos(tmp_path, BenchConfig(videos=1, seconds=2.0))
    meta = probe(path)
    assert path.suffix == ".avi" and meta.fps == 25 and meta.num_frames == 50


def test_bench_reports_every_figure(tmp_path):
    config = BenchConfig(videos=2, seconds=1.0, architecture="tiny", batch_sizes=(4,), min_seconds=0.05, device="cpu")
    results = run_bench(config, work_dir=tmp_path)
    assert KEYS <= set(results)
    for key in ("model_fps", "decode_fps", "extract_fps", "text_prompts_per_s", "peak_rss_mb"):
        assert results[key] > 0 and math.isfinite(results[key]), key
    assert results["efficiency"] == results["extract_fps"] / results["model_fps"]
    assert results["fast"]["precision"] == "int8" and results["fast"]["failures"] == 0
    assert results["fast_speedup"] == results["fast"]["model_fps"] / results["model_fps"]
    assert 0.9 < results["fast_cosine_min"] <= results["fast_cosine_mean"] <= 1.0 + 1e-6
    assert results["machine"]["cores"] >= 1 and results["machine"]["device"] == "cpu"
    assert results["created_at"][:4].isdigit() and "T" in results["created_at"]  # dated
    assert not list(tmp_path.iterdir()), "the generated inputs are cleaned up"


def test_bench_command_prints_and_writes_json(tmp_path, capsys, monkeypatch):
    import clipaction.bench as bench

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
