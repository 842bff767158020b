"""The ray engine against the local one: the same cache entries and results (also from shards
and from a copied dataset), an actor lost mid-run, a driver killed with SIGKILL and restarted.

One local Ray instance (2 CPUs) serves every test of the session; the videos and model are tiny,
so what is timed is mostly Ray starting its workers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

try:
    import ray
except ImportError as error:  # the extra is not installed: say so in the summary, run the rest
    pytest.skip(f"ray cannot be imported ({error}); pip install -e '.[ray]'", allow_module_level=True)

from clipaction.cli import main
from clipaction.config import EngineConfig, ModelConfig, SamplerConfig
from clipaction.features.cache import FeatureCache, video_key
from clipaction.features.extract import cache_space
from clipaction.models import load_backend
from clipaction.testing.videos import SyntheticVideo, make_folder_dataset

# Every test here uses the one local Ray instance of the session (seconds to start).
pytestmark = [pytest.mark.ray, pytest.mark.slow]

LABELS = ["jump", "run", "wave"]
SAMPLER_FLAGS = ["--sampler", "uniform", "--frames", "3"]
SAMPLER = SamplerConfig(name="uniform", frames=3)
N_VIDEOS = 6


@pytest.fixture(scope="session")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = make_folder_dataset(
        tmp_path_factory.mktemp("engines") / "videos", LABELS, videos_per_label=2, spec=SyntheticVideo(num_frames=16)
    )
    (root / "wave" / "broken.mp4").write_bytes(b"\x00not a video" * 50)  # comes back as a failure row
    return root


def _common(root: Path, model: Path) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(root), "--model", str(model), "--device", "cpu",
            "--batch-size", "6", "--no-progress", *SAMPLER_FLAGS]  # fmt: skip


def _entries(cache: Path) -> dict[str, dict[str, np.ndarray]]:
    return {p.name: load_file(str(p)) for p in sorted(cache.rglob("*.safetensors")) if p.parent.name != "texts"}


def _assert_same_entries(got: Path, expected: Path) -> None:
    got_entries, expected_entries = _entries(got), _entries(expected)
    assert sorted(got_entries) == sorted(expected_entries) and len(expected_entries) == N_VIDEOS
    for name, arrays in expected_entries.items():
        for array in ("indices", "pooled", "embeds"):
            np.testing.assert_allclose(got_entries[name][array], arrays[array], atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def runs(ray_cluster, dataset, tiny_model_dir, tmp_path_factory):
    """The same zeroshot through the local engine, the ray engine, and two shards then zeroshot."""
    tmp = tmp_path_factory.mktemp("runs")
    common = _common(dataset, tiny_model_dir)
    codes = {
        "local": main(["zeroshot", *common, "--cache-dir", str(tmp / "local"), "--out", str(tmp / "out-local")]),
        "ray": main(
            ["zeroshot", *common, "--engine", "ray", "--cache-dir", str(tmp / "ray"), "--out", str(tmp / "out-ray")]
        ),
        "shard1": main(["extract", *common, "--shard", "1/2", "--cache-dir", str(tmp / "shards")]),
        "shard2": main(["extract", *common, "--shard", "2/2", "--cache-dir", str(tmp / "shards")]),
        "shards": main(["zeroshot", *common, "--cache-dir", str(tmp / "shards"), "--out", str(tmp / "out-shards")]),
    }
    results = {
        name: json.loads((tmp / f"out-{name}" / "results.json").read_text()) for name in ("local", "ray", "shards")
    }
    return tmp, codes, results


def test_local_ray_and_shards_give_the_same_features_and_results(runs):
    tmp, codes, results = runs
    assert codes["local"] == codes["ray"] == codes["shards"] == 1  # finished, with the broken file failed
    assert codes["shard1"] + codes["shard2"] == 1  # exactly one shard owns the broken file
    _assert_same_entries(tmp / "ray", tmp / "local")
    _assert_same_entries(tmp / "shards", tmp / "local")
    local = results["local"]
    for name in ("ray", "shards"):
        assert results[name]["metrics"] == local["metrics"]
        assert results[name]["failures"] == local["failures"]
        assert results[name]["dataset"]["n_evaluated"] == N_VIDEOS
    assert [Path(f["path"]).name for f in local["failures"]] == ["broken.mp4"]
    assert results["ray"]["cache"] == {"cached": 0, "encoded": N_VIDEOS}  # the engine encoded them
    assert results["shards"]["cache"] == {"cached": N_VIDEOS, "encoded": 0}


def test_a_copied_dataset_hits_the_cache_of_the_ray_engine(runs, dataset, tiny_model_dir, tmp_path):
    tmp, _, results = runs
    copy = tmp_path / "mounted elsewhere"
    shutil.copytree(dataset, copy)
    out = tmp_path / "out"
    before = {p: p.stat().st_mtime_ns for p in (tmp / "ray").rglob("*.safetensors")}
    code = main(
        [
            "zeroshot",
            *_common(copy, tiny_model_dir),
            "--engine",
            "ray",
            "--cache-dir",
            str(tmp / "ray"),
            "--out",
            str(out),
        ]
    )
    assert code == 1
    relocated = json.loads((out / "results.json").read_text())
    assert relocated["cache"] == {"cached": N_VIDEOS, "encoded": 0}
    assert relocated["metrics"] == results["ray"]["metrics"]
    assert {p: p.stat().st_mtime_ns for p in (tmp / "ray").rglob("*.safetensors")} == before  # nothing rewritten


def _videos(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.mp4") if p.name != "broken.mp4")


DRIVER = textwrap.dedent(
    """
    import sys
    import ray
    from clipaction.config import EngineConfig, ModelConfig, SamplerConfig
    from clipaction.features.cache import FeatureCache
    from clipaction.features.engines.ray_engine import FaultHooks, fill_cache
    from clipaction.features.extract import cache_space
    from clipaction.models import load_backend

    address, model_dir, cache_dir, log, *paths = sys.argv[1:]
    ray.init(address=address, logging_level="WARNING")
    model = ModelConfig(name_or_path=model_dir, device="cpu", batch_size=3)
    backend = load_backend(model)
    cache = FeatureCache(cache_dir, cache_space(backend))
    print("started", flush=True)
    fill_cache(paths, backend, model, SamplerConfig(name="uniform", frames=3), cache, engine=EngineConfig(name="ray"),
               batch_size=3, progress=False, hooks=FaultHooks(write_log=log, delay_s=0.5))
    print("finished", flush=True)
    """
)


@pytest.mark.subprocess
def test_a_driver_killed_then_restarted_and_an_actor_lost_complete_the_cache_each_entry_written_once(
    runs, ray_cluster, dataset, tiny_model_dir, tmp_path
):
    """A driver killed with SIGKILL mid-run; the restarted run encodes only what is missing, and
    loses its actor (os._exit) on one video's first attempt: Ray restarts it and retries."""
    from clipaction.features.engines.ray_engine import FaultHooks, fill_cache

    tmp, _, _ = runs
    paths = _videos(dataset)
    cache_dir, first_log = tmp_path / "cache", tmp_path / "first.log"
    model = ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", batch_size=3)
    backend = load_backend(model)
    entries = lambda: sorted(p.stem for p in cache_dir.rglob("*.safetensors") if p.parent.name != "texts")  # noqa: E731
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, ray_cluster, str(tiny_model_dir), str(cache_dir), str(first_log), *paths],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while len(entries()) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    output = driver.communicate()[0]
    assert "finished" not in output, "the driver ended before it could be killed mid-run"
    assert driver.returncode == -signal.SIGKILL
    time.sleep(1.0)  # Ray notices the dead driver and ends its actors
    before = entries()
    assert 2 <= len(before) < N_VIDEOS, output
    first_written = first_log.read_text().split()
    assert sorted(first_written) == before  # what the killed driver wrote, each once, all whole

    victim = next(Path(p).name for p in paths[::-1] if video_key(p) not in before)
    second_log = tmp_path / "second.log"
    cache = FeatureCache(cache_dir, cache_space(backend))
    hooks = FaultHooks(crash_once_on=victim, marker_dir=str(tmp_path), write_log=str(second_log))
    filled = fill_cache(paths, backend, model, SAMPLER, cache, engine=EngineConfig(name="ray"), batch_size=3,
                        progress=False, hooks=hooks)  # fmt: skip
    assert (tmp_path / f"crashed-{victim}").exists()  # the actor did die mid-run
    assert filled.failures == []
    written = second_log.read_text().split()
    assert len(written) == len(set(written))  # each entry written once, the victim's included
    assert not set(written) & set(before)  # nothing the killed driver finished is encoded again
    assert sorted(set(before) | set(written)) == entries() and len(entries()) == N_VIDEOS
    assert filled.n_encoded == len(written) and filled.n_cached == len(before)
    _assert_same_entries(cache_dir, tmp / "local")


def test_bench_measures_the_ray_engine_against_the_local_one(ray_cluster, tiny_model_dir, tmp_path):
    from clipaction.speed.run import ROUNDS, BenchConfig, make_videos, measure_ray

    config = BenchConfig(videos=2, seconds=1.0, device="cpu", sampler=SamplerConfig(name="uniform", frames=3))
    paths = make_videos(tmp_path / "videos", config)
    figures = measure_ray(paths, str(tiny_model_dir), config, 6, tmp_path / "cache")
    assert figures["failures"] == 0 and figures["start_s"] == 0.0  # the session's Ray was reused
    assert figures["extract_fps"] > 0 and figures["run_start_s"] >= 0 and figures["local_extract_fps"] > 0
    assert figures["extract_fps_once_started"] >= figures["extract_fps"]
    assert figures["overhead_once_started"] == pytest.approx(
        1 - figures["extract_fps_once_started"] / figures["local_extract_fps"]
    )
    assert len(figures["local_extract_fps_rounds"]) == len(figures["extract_fps_once_started_rounds"]) == ROUNDS
    assert figures["local_extract_fps"] == max(figures["local_extract_fps_rounds"])  # the best round of each
    assert figures["extract_fps_once_started"] == max(figures["extract_fps_once_started_rounds"])
    for round_ in range(ROUNDS):  # both engines encoded both videos, into a fresh cache every round
        for name in (f"local-{round_}", f"ray-{round_}"):
            assert len(list((tmp_path / "cache" / name).rglob("*.safetensors"))) == 2


def _refused(cause: str) -> ConnectionError:
    """What ray.init raises for a cluster it cannot join: its reason is in the cause's text."""
    error = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    error.__cause__ = RuntimeError(f"Failed to connect to GCS. Last connection error: {cause}")
    return error


def test_a_cluster_that_refuses_the_driver_is_named_an_authentication_failure_in_one_line():
    from clipaction.features.engines.ray_engine import _unreachable

    refused = _refused("Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing or incorrect")
    no_token = _unreachable("10.0.0.1:6379", refused, token=False)
    wrong_token = _unreachable("10.0.0.1:6379", refused, token=True)
    down = _unreachable("10.0.0.1:6379", _refused("Deadline Exceeded"), token=False)
    assert "token authentication" in no_token and "RAY_AUTH_MODE=token" in no_token
    assert "refused this driver's token" in wrong_token and "RAY_AUTH_TOKEN" in wrong_token
    assert down.startswith("cannot reach the Ray cluster at 10.0.0.1:6379") and "token" not in down
    assert all("\n" not in line for line in (no_token, wrong_token, down))


@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_decoding_tasks_hand_the_actor_the_input_its_runtime_takes(dataset, tiny_model_dir, runtime):
    """OpenVINO takes uint8 frames and normalises them in its graph: a decoding task's row
    carries them as uint8 (float values 0-255 would be read as normalised pixels)."""
    import torch

    from clipaction.features.engines.ray_engine import _decode_rows, row_pixels
    from clipaction.video.decode import read_sampled_frames

    if runtime == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install -e '.[openvino]')")
    model = ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", runtime=runtime)
    path = str(sorted((dataset / "jump").iterdir())[0])
    rows = _decode_rows({"path": [path], "key": ["k"], "have": ["[]"]}, model, SAMPLER)
    pixels = row_pixels(rows.to_dict("records")[0])
    assert pixels.dtype == (torch.uint8 if runtime == "openvino" else torch.float32)
    assert torch.equal(pixels, load_backend(model).preprocess(read_sampled_frames(path, SAMPLER).frames))
