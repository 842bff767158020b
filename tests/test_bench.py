"""The benchmark runs end to end and reports every figure (timings themselves are not tested)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

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


class _Encoder:
    """Records each call's batch size in `calls` (shared with a fake extraction's "extract")."""

    def __init__(self, calls):
        self.calls = calls

    def preprocess(self, frames):
        return torch.from_numpy(frames).permute(0, 3, 1, 2)

    def encode_pixels(self, pixels):
        self.calls.append(len(pixels))


@pytest.mark.parametrize(
    ("seconds", "picked"),
    [
        ({4: 0.004, 8: 0.002, 16: 0.008}, 8),  # made-up times per batch: 8 runs fastest
        ({4: 0.004, 8: 0.002, 16: 0.0041}, 16),  # 16 within 5% of 8's speed (3902 frames/s against 4000): the larger
        ({4: 0.004, 8: 0.002, 16: 0.0043}, 8),  # 16 at 3721 frames/s: more than 5% slower
    ],
)
def test_the_batch_size_is_picked_by_one_round_each(monkeypatch, seconds, picked):
    import clipaction.speed.run as bench

    encoder = _Encoder([])

    def clock(function):
        value = function()
        return seconds[encoder.calls[-1]], value

    monkeypatch.setattr(bench, "_timed", clock)
    assert bench.pick_batch_size(encoder, (4, 8, 16), size=2, min_seconds=0.03) == picked


def test_the_encoder_and_extraction_figures_come_from_interleaved_rounds_of_the_same_work(monkeypatch, tmp_path):
    import clipaction.speed.run as bench
    from clipaction.features.cache import CachedVideo
    from clipaction.features.core import Extraction

    calls = []
    encoder = _Encoder(calls)
    frames = np.arange(8)

    def extract_features(paths, *args, **kwargs):  # 8 frames per video, no decoding
        calls.append("extract")
        video = CachedVideo(frames, np.zeros((8, 2)), np.zeros((8, 2)), {})
        return Extraction(
            features={str(p): video for p in paths}, n_encoded=len(paths), n_frames_encoded=8 * len(paths)
        )

    # Made-up clock: the extraction rounds take 0.5, 0.4, 0.6 s for 32 frames (best 80 frames/s),
    # a batch of 16 through the encoder alone 0.2, 0.16, 0.25 s by round (best 100 frames/s).
    extract_seconds, batch_seconds = iter([0.5, 0.4, 0.6]), {1: 0.2, 2: 0.16, 3: 0.25}

    def clock(function):
        value = function()
        if calls[-1] == "extract":
            return next(extract_seconds), value
        return batch_seconds[calls.count("extract") - 1], value

    monkeypatch.setattr(bench, "_timed", clock)
    monkeypatch.setattr(bench, "extract_features", extract_features)
    monkeypatch.setattr(bench, "cache_space", lambda backend: {})
    monkeypatch.setattr(bench, "FeatureCache", lambda folder, space: None)
    paths = [tmp_path / f"v{i}.avi" for i in range(4)]
    figures = bench.measure_extraction(paths, encoder, BenchConfig(), batch_size=16, cache_dir=tmp_path, size=2)
    # a warm-up video and batch, then each round: the extraction, then its 32 frames alone
    assert calls == ["extract", 16] + ["extract", 16, 16] * bench.ROUNDS
    assert figures["extract_fps_rounds"] == pytest.approx([64.0, 80.0, 32 / 0.6])
    assert figures["model_fps_rounds"] == pytest.approx([80.0, 100.0, 64.0])
    assert figures["extract_fps"] == pytest.approx(80.0) and figures["model_fps"] == pytest.approx(100.0)
    assert figures["efficiency"] == pytest.approx(0.8)


def test_encoder_speedups_come_from_side_by_side_rounds(monkeypatch):
    import clipaction.speed.run as bench

    calls = []
    # made-up seconds per batch: fp32 (batches of 4) 0.1 s, int8 (of 10) 0.04 s; the machine's speed moves by round
    slowdown = {1: 1.0, 2: 2.0, 3: 1.5}
    per_batch = {4: 0.1, 10: 0.04}
    encoders = {"torch fp32": (_Encoder(calls), 4), "torch int8": (_Encoder(calls), 10)}

    def clock(function):
        value = function()
        round_ = 1 + (len(calls) - 3) // 4  # after one warm-up batch each, 2 batches per encoder per round
        return per_batch[calls[-1]] * slowdown[round_], value

    monkeypatch.setattr(bench, "_timed", clock)
    speedups = bench.encoder_speedups(encoders, size=2, seconds=0.0)
    # fp32 then int8 in each round, 2 batches each (a round's least)
    assert calls == [4, 10] + [4, 4, 10, 10] * bench.ROUNDS
    assert speedups["torch fp32"]["rounds"] == pytest.approx([40.0, 20.0, 40 / 1.5])
    assert speedups["torch int8"]["model_fps"] == pytest.approx(250.0)
    assert speedups["torch int8"]["speedup"] == pytest.approx(6.25)
    assert speedups["torch fp32"]["speedup"] == 1.0


@pytest.mark.slow
def test_bench_reports_every_figure(tmp_path, monkeypatch):
    import clipaction.speed.run as bench

    # The image encoder's timing runs for real, but run_bench is handed known figures instead,
    # so the ratios built on them have known values whatever the machine's speed.
    known = {
        ("torch", "fp32"): 200.0, ("torch", "int8"): 500.0, ("torch", "bf16"): 400.0,
        ("openvino", "fp32"): 250.0, ("openvino", "int8"): 1000.0, ("openvino", "bf16"): 450.0,
    }  # fmt: skip
    measured = {}
    real_encoder_round = bench.encoder_round

    def encoder_round(backend, *args, **kwargs):
        fps = real_encoder_round(backend, *args, **kwargs)
        path = (backend.config.runtime, backend.fingerprint["precision"])
        measured[path] = fps
        return known[path]

    monkeypatch.setattr(bench, "encoder_round", encoder_round)
    # the bf16 row is measured on CPUs with bf16 units; here on any CPU (slowly where it lacks them)
    monkeypatch.setattr(bench, "_bf16_here", lambda device: True)
    monkeypatch.setenv("CLIPACTION_ALLOW_SLOW_BF16", "1")
    monkeypatch.setattr(bench, "TIMELINE_MEMORY_SECONDS", (2.0, 6.0))  # the timeline's memory row, short
    config = BenchConfig(videos=2, seconds=1.0, architecture="tiny", batch_sizes=(4,), min_seconds=0.05, device="cpu")
    results = run_bench(config, work_dir=tmp_path, ray=False)  # the ray rows: test_engines.py
    assert KEYS <= set(results)
    assert {path for path in measured if path[0] == "torch"} == {("torch", p) for p in ("fp32", "int8", "bf16")}
    assert all(v > 0 and math.isfinite(v) for v in measured.values())
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
    # every speed-up from the encoders' side-by-side rounds, one round each per ROUNDS
    assert all(len(row["rounds"]) == bench.ROUNDS for row in results["encoder_speedups"].values())
    if "openvino" in results:
        assert results["openvino"]["int8"]["speedup_over_torch_fp32"] == pytest.approx(5.0)
        assert results["openvino"]["int8"]["speedup_over_torch_int8"] == pytest.approx(2.0)
        assert results["openvino"]["int8"]["efficiency"] * 1000.0 == pytest.approx(
            results["openvino"]["int8"]["extract_fps"]
        )
        assert "folder" not in results["openvino"]["int8"]  # the run's temporary folder is not reported
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
