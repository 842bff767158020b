"""What made the timeline's memory grow with the video's length stays away: a new RGB scaler per
frame (PyAV's `to_ndarray(format=...)` builds one, with a pool of threads, for every frame;
benchmarks/timeline_memory.py measures the peak RSS per length)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import clipaction.video.frames as frames_module
from clipaction.testing.footage import Scene, write_scenes
from clipaction.video.timed import Sample, frames_at


@pytest.fixture
def counted_scalers(monkeypatch):
    """Fresh per-thread scalers, counting how many are made."""
    made: list[int] = []
    real = frames_module.VideoReformatter

    def make():
        made.append(threading.get_ident())
        return real()

    monkeypatch.setattr(frames_module, "_SCALERS", threading.local())
    monkeypatch.setattr(frames_module, "VideoReformatter", make)
    return made


def test_every_frame_of_a_pass_is_converted_by_one_scaler_per_thread(tmp_path, counted_scalers):
    video = write_scenes(tmp_path / "v.mp4", [Scene(2.0, 0), Scene(2.0, 1)], fps=25, width=96, height=64)
    wanted = [(k, (k + 0.5) / 10) for k in range(40)]  # 10 samples a second: 40 distinct frames
    got: dict[str, list[np.ndarray]] = {}

    def run(name: str) -> None:
        got[name] = [e.frame for e in frames_at(video, wanted) if isinstance(e, Sample)]

    run("main")
    worker = threading.Thread(target=run, args=("worker",))
    worker.start()
    worker.join()
    assert len(got["main"]) == len(got["worker"]) == 40
    # one scaler per converting thread, whatever the number of frames (not one per frame)
    assert len(counted_scalers) == len(set(counted_scalers)) == 2
    for a, b in zip(got["main"], got["worker"]):
        np.testing.assert_array_equal(a, b)


def test_a_reused_scaler_gives_the_pixels_of_a_fresh_conversion(tmp_path, counted_scalers):
    import av

    video = write_scenes(tmp_path / "v.mp4", [Scene(1.0, 2)], fps=25, width=96, height=64)
    with av.open(str(video)) as container:
        decoded = list(container.decode(video=0))
    for frame in decoded:
        np.testing.assert_array_equal(frames_module.to_rgb(frame), frame.to_ndarray(format="rgb24"))
    # and a downscaled one (the short side bounded) through the same scaler
    small = frames_module.to_rgb(decoded[0], max_short_side=32)
    assert small.shape == (32, 48, 3)
    assert len(counted_scalers) == 1
