"""Interruptions and concurrent runs lose nothing: SIGKILL, Ctrl-C, two writers, damaged entries."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clipaction.cli import main
from clipaction.config import SamplerConfig
from clipaction.features.cache import FeatureCache
from clipaction.features.extract import cache_space, extract_features
from clipaction.testing.videos import SyntheticVideo, make_folder_dataset

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LABELS = ["diving", "juggling", "running", "skating"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    return make_folder_dataset(root, LABELS, videos_per_label=12, spec=SyntheticVideo(num_frames=60))


def _args(command: str, videos: Path, model: Path, cache: Path) -> list[str]:
    # batch size 8 = one video's 8 frames: batches hold the same frames however a run resumes
    return [
        command, "--dataset", "folder", "--data-root", str(videos), "--model", str(model),
        "--device", "cpu", "--cache-dir", str(cache), "--batch-size", "8", "--workers", "1", "--no-progress",
    ]  # fmt: skip


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    # Ctrl-C as a shell delivers it: the child starts with SIGINT's default action even when this
    # test process ignores SIGINT (an ignored SIGINT is inherited through exec, and Python then
    # installs no KeyboardInterrupt handler; earlier tests in the session, e.g. Ray's, may leave it so)
    return subprocess.Popen(
        [sys.executable, "-m", "clipaction.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _entries(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*.safetensors") if not p.name.startswith(".")] if cache.exists() else []


def _wait_for_entries(cache: Path, count: int, process: subprocess.Popen, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while len(_entries(cache)) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # a tight poll: a tiny model stores a video every few milliseconds


def _stored(cache: Path) -> dict[str, np.ndarray]:
    """Every entry's embeddings by video path (checksums verified by the cache on load)."""
    from safetensors import safe_open

    out = {}
    for path in _entries(cache):
        with safe_open(str(path), framework="np") as handle:
            out[handle.metadata()["path"]] = handle.get_tensor("embeds")
    return out


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_result(videos, tiny_model_dir, tmp_path):
    reference = tmp_path / "reference"
    assert main(_args("extract", videos, tiny_model_dir, reference)) == 0
    cache = tmp_path / "killed"
    rng = random.Random(0)
    for _ in range(3):
        before = len(_entries(cache))
        process = _spawn(_args("extract", videos, tiny_model_dir, cache))
        _wait_for_entries(cache, before + rng.randint(1, 8), process)
        process.kill()
        process.wait()
    stored_before = len(_entries(cache))
    assert 0 < stored_before < 48, "the kills happened mid-way"
    finished = _spawn(_args("extract", videos, tiny_model_dir, cache))
    out, err = finished.communicate(timeout=120)
    assert finished.returncode == 0, err
    assert f"encoded {48 - stored_before}, from cache {stored_before}" in out
    ours, theirs = _stored(cache), _stored(reference)
    assert ours.keys() == theirs.keys() and len(ours) == 48
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key])

    # and the evaluation on top gives identical results
    for name, folder in (("a", cache), ("b", reference)):
        assert main([*_args("zeroshot", videos, tiny_model_dir, folder), "--out", str(tmp_path / name)]) == 0
    first, second = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("a", "b"))
    assert first["metrics"] == second["metrics"] and first["cache"]["encoded"] == 0


@pytest.mark.slow
@pytest.mark.subprocess
def test_ctrl_c_stops_keeps_work_and_says_how_to_resume(videos, tiny_model_dir, tmp_path):
    # How fast it stops is the bench's business (a wall-clock bound here fails on a loaded
    # machine); what is checked is that it stops at all, before the work is done.
    cache = tmp_path / "cache"
    process = _spawn(_args("extract", videos, tiny_model_dir, cache))
    _wait_for_entries(cache, 2, process)
    assert process.poll() is None, "still running when interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    # if this fails with 0, say whether the run had already finished every video (a race of
    # the test, not a lost Ctrl-C) or stopped early
    assert process.returncode == 130, f"{len(_entries(cache))} of 48 stored; stderr: {err[-1500:]}"
    assert "run the same command again to resume" in err and "Traceback" not in err
    kept = len(_entries(cache))
    assert 2 <= kept < 48, "interrupted mid-way, the finished videos kept"
    assert main(_args("extract", videos, tiny_model_dir, cache)) == 0
    assert len(_entries(cache)) == 48


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_processes_extracting_into_one_cache(videos, tiny_model_dir, tmp_path):
    cache = tmp_path / "shared-cache"
    processes = [_spawn(_args("extract", videos, tiny_model_dir, cache)) for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    reference = tmp_path / "alone"
    assert main(_args("extract", videos, tiny_model_dir, reference)) == 0
    ours, theirs = _stored(cache), _stored(reference)
    assert ours.keys() == theirs.keys() and len(ours) == 48
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key])
    assert not list(cache.rglob(".tmp-*")), "no temp files are left behind"


def test_a_damaged_entry_is_reported_and_encoded_again(videos, tiny_backend, tmp_path, caplog):
    sampler = SamplerConfig()
    paths = sorted(videos.rglob("*.mp4"))[:3]
    cache = FeatureCache(tmp_path, cache_space(tiny_backend))
    first = extract_features(paths, tiny_backend, sampler, cache, progress=False)
    entry = sorted(_entries(tmp_path))[0]
    data = bytearray(entry.read_bytes())
    data[-3] ^= 0x55  # inside the feature arrays, which end the file
    entry.write_bytes(bytes(data))
    # listen on the cache's own logger: what the root logger passes on depends on what the
    # rest of the process (other tests, other libraries) configured
    records: list[logging.LogRecord] = []
    listener = logging.Handler(logging.WARNING)
    listener.emit = records.append  # type: ignore[method-assign]
    cache_log = logging.getLogger("clipaction.features.cache")
    cache_log.addHandler(listener)
    try:
        again = extract_features(paths, tiny_backend, sampler, cache, progress=False)
    finally:
        cache_log.removeHandler(listener)
    assert (again.n_encoded, again.n_cached) == (1, 2)
    assert any("damaged cache entry" in record.getMessage() for record in records)
    for path in map(str, paths):
        np.testing.assert_array_equal(again.features[path].embeds, first.features[path].embeds)
