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


def _rotated_video(path, frames: int, degrees: int):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(degrees)
        rng = np.random.default_rng(0)
        for _ in range(frames):
            image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("degrees", [0, 90])
def test_a_pass_reads_the_display_matrix_once_not_per_frame(tmp_path, monkeypatch, degrees):
    """Reading `frame.side_data` keeps memory PyAV does not give back (about a whole 720p frame
    each): a decoding pass reads the matrix once, and its frames still come out upright."""
    from clipaction.video.decode import decode_frames

    video = _rotated_video(tmp_path / "v.mp4", 30, degrees)
    reads: list[int] = []
    real = frames_module._display_matrix

    def counted(frame):
        reads.append(1)
        return real(frame)

    monkeypatch.setattr(frames_module, "_display_matrix", counted)
    frames = decode_frames(video, range(0, 30, 2), max_short_side=None)
    timed = [e.frame for e in frames_at(video, [(k, (2 * k + 0.5) / 25) for k in range(15)]) if isinstance(e, Sample)]
    assert len(reads) == 2  # one per pass: the sampled decode and the timed one
    assert frames.shape[1:] == ((64, 48, 3) if degrees == 90 else (48, 64, 3))
    monkeypatch.undo()
    fresh = [frames_module.to_rgb(f, None) for f in __import__("av").open(str(video)).decode(video=0)][::2]
    np.testing.assert_array_equal(frames, np.stack(fresh))
    np.testing.assert_array_equal(np.stack(timed), np.stack(fresh))
