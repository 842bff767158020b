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


def test_the_encoder_figure_is_the_best_of_fresh_rounds_at_the_chosen_batch_size(monkeypatch):
    import clipaction.speed.run as bench

    class Encoder:  # records each call's batch size; the clock below is made up, not measured
        def __init__(self):
            self.sizes = []

        def encode_pixels(self, pixels):
            self.sizes.append(len(pixels))

    encoder, timed_at_8 = Encoder(), []

    def clock(function):
        function()
        size = encoder.sizes[-1]
        if size == 8:
            timed_at_8.append(size)
            # batches of 8: a lucky first round (8,000 frames/s), then 2,000 frames/s
            return (0.001 if len(timed_at_8) <= 2 else 0.004), None
        return 0.004, None  # batches of 4: 1,000 frames/s

    monkeypatch.setattr(bench, "_timed", clock)
    fps, chosen = bench.model_fps(encoder, (4, 8), size=2, min_seconds=0.006)
    assert chosen == 8
    # the figure is not the lucky round that chose the size, but the best of the rounds after it
    assert fps == pytest.approx(2000.0)
    after_choice = encoder.sizes[encoder.sizes.index(8) :]
    assert set(after_choice) == {8} and len(timed_at_8) == 2 + 2 * bench.ROUNDS


@pytest.mark.slow
def test_bench_reports_every_figure(tmp_path, monkeypatch):
    import clipaction.speed.run as bench

    # The image encoder's timing runs for real, but run_bench is handed known figures instead,
    # so the ratios built on them have known values whatever the machine's speed.
    known = {"fp32": 200.0, "int8": 500.0, "bf16": 400.0}
    measured = {}
    real_model_fps = bench.model_fps

    def model_fps(backend, *args, **kwargs):
        fps, batch_size = real_model_fps(backend, *args, **kwargs)
        precision = backend.fingerprint["precision"]
        measured[precision] = fps
        return known[precision], batch_size

    monkeypatch.setattr(bench, "model_fps", model_fps)
    # the bf16 row is measured on CPUs with bf16 units; here on any CPU (slowly where it lacks them)
    monkeypatch.setattr(bench, "_bf16_here", lambda device: True)
    monkeypatch.setenv("CLIPACTION_ALLOW_SLOW_BF16", "1")
    monkeypatch.setattr(bench, "TIMELINE_MEMORY_SECONDS", (2.0, 6.0))  # the timeline's memory row, short
    config = BenchConfig(videos=2, seconds=1.0, architecture="tiny", batch_sizes=(4,), min_seconds=0.05, device="cpu")
    results = run_bench(config, work_dir=tmp_path, ray=False)  # the ray rows: test_engines.py
    assert KEYS <= set(results)
    assert set(measured) == {"fp32", "int8", "bf16"} and all(v > 0 and math.isfinite(v) for v in measured.values())
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
    assert results["bf16"]["speedup_over_torch_fp32"] == pytest.approx(2.0)
    assert results["bf16"]["efficiency"] * 400.0 == pytest.approx(results["bf16"]["extract_fps"])
    assert 0.99 < results["bf16"]["cosine_min"] <= results["bf16"]["cosine_mean"] <= 1.0 + 1e-6
    assert results["machine"]["cores"] >= 1 and results["machine"]["device"] == "cpu"
    assert {"avx2", "avx512_bf16", "amx_bf16", "avx512_vnni"} <= set(results["machine"]["cpu_features"])
    named = {row["path"] for row in results["recommendation"]["paths"]}
    ov = {f"openvino {precision}" for precision in ("fp32", "int8", "bf16")} if "openvino" in results else set()
    assert named == {"torch fp32", "torch int8", "torch bf16"} | ov
    if "openvino" in results:  # the timeline's speed with the fastest encoder, at both sizes
        factors = results["openvino"]["int8"]["timeline_realtime_factor"]
        assert all(factors[size]["realtime_factor"] > 0 for size in ("320x240", "1280x720"))
        assert set(factors["memory"]["peak_rss_mb"]) == {"2", "6"}
    memory = results["timeline_realtime_factor"]["memory"]  # peak RSS per length, fresh processes
    assert all(peak > 0 for peak in memory["peak_rss_mb"].values())
    assert memory["ratio_long_to_short"] == pytest.approx(memory["peak_rss_mb"]["6"] / memory["peak_rss_mb"]["2"])
    assert results["recommendation"]["line"].startswith("fastest here within cosine 0.999 of fp32: ")
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
    assert seen["config"].fast_precision == "auto"  # int8 on a CPU, fp16 on a GPU: decided by run_bench
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text()) == {"model_fps": 1.0, "nan": None}


def _paths(**rows):
    """A bench result with torch fp32 at 10 frames/s end to end and the given other rows."""
    results = {"extract_fps": 10.0, "model_fps": 12.0}
    for name, (fps, cosine) in rows.items():
        row = {"extract_fps": fps, "model_fps": fps * 1.1, "cosine_min": cosine}
        if name == "int8":
            results["fast"] = {"precision": "int8", **row}
            results["fast_cosine_min"] = cosine
        elif name == "bf16":
            results["bf16"] = row
        else:
            results.setdefault("openvino", {})[name.removeprefix("ov_")] = row
    return results


def test_recommendation_is_the_fastest_path_within_the_cosine_bound():
    from clipaction.speed.run import recommend

    # int8 is fastest but moves features too far; bf16 is the fastest that keeps them
    advice = recommend(_paths(int8=(30.0, 0.998), bf16=(25.0, 0.9995), ov_int8=(40.0, 0.9985)))
    assert advice["safe"] == "torch bf16" and advice["fastest"] == "openvino int8"
    assert "torch bf16 (25.0 frames/s" in advice["line"] and "fastest overall: openvino int8" in advice["line"]


def test_recommendation_names_one_path_when_the_fastest_is_also_safe():
    from clipaction.speed.run import recommend

    advice = recommend(_paths(int8=(20.0, 0.9999), ov_fp32=(15.0, 1.0)))
    assert advice["safe"] == advice["fastest"] == "torch int8"
    assert "fastest overall" not in advice["line"]
    # with nothing faster than fp32 measured, fp32 is the advice
    assert recommend(_paths())["safe"] == "torch fp32"
