"""Streaming decode by time: the frame a player shows at each time, on generated videos whose
frames carry their own number (variable frame rate, non-zero start, sparse times that seek,
and a corrupt middle stretch)."""

from __future__ import annotations

import numpy as np
import pytest

from clipaction.testing.footage import numbered_frames, read_number, write_frames
from clipaction.video.timed import Sample, Skipped, frames_at, probe_stream, should_seek


def _shown(times: list[float], query: float) -> int:
    """The number of the frame shown at `query`: the last one starting at or before it."""
    return int(np.searchsorted(times, query, side="right") - 1)


def _read(path, queries):
    events = list(frames_at(path, list(enumerate(queries))))
    return {e.index: read_number(e.frame) for e in events if isinstance(e, Sample)}, [
        e for e in events if isinstance(e, Skipped)
    ]


@pytest.mark.parametrize(("suffix", "start"), [(".mkv", 5.0), (".ts", 3.0), (".mp4", 0.0)])
def test_variable_frame_rate_and_start_time_give_the_frame_shown(tmp_path, suffix, start):
    rng = np.random.default_rng(1)
    durations = rng.choice([0.02, 0.04, 0.1, 0.5, 1.3], size=40)
    relative = np.round(np.concatenate([[0], np.cumsum(durations)[:-1]]), 3)
    path = write_frames(tmp_path / f"vfr{suffix}", numbered_frames(40), [start + t for t in relative], gop=10)
    info = probe_stream(path)
    assert info.start_time == pytest.approx(start, abs=1e-3)
    # times in the middle of frames and right on their starts
    queries = sorted(set(np.round(np.linspace(0.001, relative[-1] + 0.01, 90), 4)) | set(relative[1:] + 1e-4))
    found, skipped = _read(path, queries)
    assert not skipped
    assert len(found) == len(queries)
    wrong = [
        (queries[i], got, _shown(list(relative), queries[i]))
        for i, got in found.items()
        if got != _shown(list(relative), queries[i])
    ]
    assert not wrong


def test_sparse_times_seek_to_keyframes_and_stay_exact(tmp_path):
    path = write_frames(tmp_path / "long.mkv", numbered_frames(250), fps=10, gop=10)  # 25 s, a keyframe a second
    queries = [0.55, 6.05, 12.35, 19.95, 24.95]
    stats: dict = {}
    events = list(frames_at(path, list(enumerate(queries)), stats=stats))
    assert [read_number(e.frame) for e in events] == [5, 60, 123, 199, 249]
    assert stats["seeks"] >= 3 and stats["decoded"] < 120  # far fewer than the 250 frames
    dense: dict = {}
    list(frames_at(path, [(k, (k + 0.5) / 2) for k in range(50)], stats=dense))
    assert dense["seeks"] == 0  # samples every 0.5 s: decoding on is cheaper


def test_should_seek_only_past_a_keyframe_interval():
    assert not should_seek(0.5, 1.0) and not should_seek(1.9, 0.5)
    assert should_seek(5.0, 2.0) and should_seek(5.0, 4.0) and not should_seek(5.0, 6.0)
    assert not should_seek(9.0, None) and should_seek(20.0, None)


def _corrupt(path, fraction=(0.45, 0.55), seed=0):
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * fraction[0]), int(len(data) * fraction[1])
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_corrupt_stretch_is_skipped_with_its_time_range_and_the_rest_is_exact(tmp_path, suffix):
    path = write_frames(tmp_path / f"bad{suffix}", numbered_frames(300), fps=10, gop=10)
    _corrupt(path)
    queries = [(k + 0.5) / 2 for k in range(60)]
    found, skipped = _read(path, queries)
    assert len(skipped) == 1
    skip = skipped[0]
    assert skip.reason == "corrupt data" and "corrupt data from" in skip.warning
    assert 5 < skip.start < skip.end < 28 and skip.end - skip.start < 12
    lost = range(skip.first, skip.last + 1)
    assert all(skip.start <= queries[k] < skip.end for k in lost)
    # every sample outside the stretch has the exact frame (numbers wrap at 256)
    assert len(found) == 60 - len(lost) >= 40
    assert all(number == int(queries[k] * 10) % 256 for k, number in found.items())
    assert any(queries[k] > skip.end for k in found)  # the rest after the damage is labelled


def test_a_stream_that_ends_before_its_declared_length_says_so(tmp_path):
    path = write_frames(tmp_path / "short.mkv", numbered_frames(50), fps=10, gop=10)
    queries = [0.5, 4.5, 6.0, 7.0]  # the video has 5 s
    found, skipped = _read(path, queries)
    assert found == {0: 5, 1: 45}
    assert [(s.first, s.last, s.reason) for s in skipped] == [(2, 3, "the stream ends early")]
