"""The ray engine against a cluster started the usual way: `ray start --head` in another process,
with token authentication on (Ray 2.60's default). Drivers run as child processes, so neither
the cluster nor its authentication mode is this test process's.

The head gets its own Ray temp folder ($RAY_TMPDIR), so `auto` finds it and no other Ray user of
this machine finds it (or the address file it leaves), and its own token file
($RAY_AUTH_TOKEN_PATH), so ~/.ray/auth_token is neither read nor written. The teardown ends the
head's whole process session, also when a test failed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

from clipaction.cli import main  # noqa: E402
from clipaction.testing.videos import SyntheticVideo, make_folder_dataset  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.subprocess]

RAY = Path(sys.executable).with_name("ray")
FLAGS = ["--sampler", "uniform", "--frames", "3", "--device", "cpu", "--batch-size", "6", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    """The processes of session `sid` (the head and all it started, workers included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:  # after the name: state, ppid, pgrp, session
                pids.append(int(entry.name))
    return pids


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    return env


@pytest.fixture(scope="module")
def head():
    """A `ray start --head --block` (3 CPUs: a model actor with 2, a decoding task) with token
    authentication; yields (address, the drivers' environment: the token file, no auth mode)."""
    tmp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths live under it
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    port = _free_port()
    env = {**_base_env(), "RAY_TMPDIR": str(tmp), "RAY_AUTH_TOKEN_PATH": str(token)}
    log = open(tmp / "head.log", "w")
    process = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", "--num-cpus=3", "--disable-usage-stats",
         "--include-dashboard=false", "--node-ip-address=127.0.0.1"],
        env={**env, "RAY_AUTH_MODE": "token"}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in (tmp / "head.log").read_text():
            assert process.poll() is None and time.monotonic() < deadline, (tmp / "head.log").read_text()
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        for pid in _session_pids(process.pid):  # what outlived it (workers have their own groups)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if process.poll() is None:
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return make_folder_dataset(
        tmp_path_factory.mktemp("cluster") / "videos", ["jump", "wave"], videos_per_label=1,
        spec=SyntheticVideo(num_frames=12),
    )  # fmt: skip


@pytest.fixture(scope="module")
def local_cache(videos, tiny_model_dir, tmp_path_factory) -> Path:
    """The local engine's cache, with the model on as many torch threads as the cluster's actor
    (`--ray-cpus-per-worker 2`): another thread count may change the last bit of a sum."""
    cache = tmp_path_factory.mktemp("local") / "cache"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    args = ["extract", "--dataset", "folder", "--data-root", str(videos), "--model", str(tiny_model_dir)]
    try:
        assert main([*args, *FLAGS, "--cache-dir", str(cache)]) == 0
    finally:
        torch.set_num_threads(threads)
    return cache


def _extract(address: str, env: dict[str, str], videos: Path, model: Path, cache: Path, **extra: str):
    command = [sys.executable, "-m", "clipaction.cli", "extract", "--dataset", "folder", "--data-root", str(videos),
               "--model", str(model), *FLAGS, "--cache-dir", str(cache), "--engine", "ray", "--ray-address", address, "--ray-cpus-per-worker", "2"]  # fmt: skip
    return subprocess.run(command, env={**env, **extra}, capture_output=True, text=True, timeout=180)


def _entries(cache: Path) -> dict[str, dict[str, np.ndarray]]:
    return {p.name: load_file(str(p)) for p in sorted(cache.rglob("*.safetensors")) if p.parent.name != "texts"}


@pytest.mark.parametrize("how", ["auto", "host:port"])
def test_a_ray_start_head_cluster_with_token_auth_fills_the_local_engines_cache(
    how, head, videos, tiny_model_dir, local_cache, tmp_path
):
    address, env = head
    done = _extract(address if how == "host:port" else "auto", env, videos, tiny_model_dir, tmp_path / "cache")
    assert done.returncode == 0, done.stdout + done.stderr
    got, expected = _entries(tmp_path / "cache"), _entries(local_cache)
    assert sorted(got) == sorted(expected) and len(expected) == 2
    for name, arrays in expected.items():
        assert sorted(got[name]) == sorted(arrays)
        for array, values in arrays.items():
            np.testing.assert_array_equal(got[name][array], values)  # exactly: max difference 0


def test_a_driver_without_the_token_is_told_in_one_line_that_authentication_failed(
    head, videos, tiny_model_dir, tmp_path
):
    address, env = head
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN_PATH"} | {"HOME": str(tmp_path)}
    # Ray retries a refused connection once a second: two tries are enough to see the refusal.
    done = _extract(address, no_token, videos, tiny_model_dir, tmp_path / "cache", RAY_gcs_server_port_wait_time_s="2")
    assert done.returncode == 2, done.stdout + done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("clipaction: error")]
    assert len(error) == 1, done.stderr
    assert "token authentication" in error[0] and "RAY_AUTH_MODE=token" in error[0]
    assert not list((tmp_path / "cache").rglob("*.safetensors"))
