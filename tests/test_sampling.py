"""Samplers: hand-computed expectations and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipaction.config import SamplerConfig
from clipaction.video.sampling import (
    SAMPLERS,
    VideoMeta,
    center_clip,
    indices_to_timestamps,
    list_samplers,
    middle,
    sample_indices,
    uniform,
    window_length,
)

UCF = VideoMeta(num_frames=250, fps=25.0, duration=10.0)


def test_registry_lists_the_samplers() -> None:
    assert list_samplers() == ["center-clip", "middle", "multi-clip", "uniform"]
    assert list_samplers("c*") == ["center-clip"]
    assert SAMPLERS.get("middle").pick is middle


def test_unknown_sampler_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="center-clip, middle, multi-clip, uniform"):
        SAMPLERS.get("random")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_frames": 0, "fps": 25.0, "duration": 0.0}, "num_frames"),
        ({"num_frames": 10, "fps": 0.0, "duration": 1.0}, "fps"),
        ({"num_frames": 10, "fps": float("nan"), "duration": 1.0}, "fps"),
        ({"num_frames": 10, "fps": 25.0, "duration": -1.0}, "duration"),
        ({"num_frames": 2.5, "fps": 25.0, "duration": 1.0}, "num_frames"),
    ],
)
def test_video_meta_validates(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VideoMeta(**kwargs)


def test_video_meta_from_frames() -> None:
    assert VideoMeta.from_frames(50, 25) == VideoMeta(50, 25.0, 2.0)


def test_middle() -> None:
    assert middle(UCF) == [125]
    assert middle(VideoMeta(7, 25, 0.28), frames=8, window=3.0) == [3]
    assert middle(VideoMeta(1, 25, 0.04)) == [0]
    assert sample_indices(UCF, SamplerConfig(name="middle", frames=8)) == [125]


def test_uniform_250_frames_8() -> None:
    # segment width 250 / 8 = 31.25; centres at 15.625, 46.875, 78.125, ... 234.375
    assert uniform(UCF, frames=8) == [15, 46, 78, 109, 140, 171, 203, 234]


def test_uniform_fewer_frames_than_requested_repeats() -> None:
    # centres (k + 0.5) * 3 / 8 = 0.1875, 0.5625, 0.9375, 1.3125, 1.6875, 2.0625, 2.4375, 2.8125
    assert uniform(VideoMeta(3, 25, 0.12), frames=8) == [0, 0, 0, 1, 1, 2, 2, 2]
    assert uniform(VideoMeta(1, 25, 0.04), frames=4) == [0, 0, 0, 0]


def test_center_clip_ucf_3s_8_frames() -> None:
    # L = 3 s * 25 fps = 75 frames; the window is [87.5, 162.5); step 75 / 8 = 9.375;
    # positions 87.5 + 4.6875 + 9.375 k = 92.19, 101.56, 110.94, 120.31, 129.69, 139.06, 148.44, 157.81
    expected = [92, 101, 110, 120, 129, 139, 148, 157]
    assert center_clip(UCF, frames=8, window=3.0) == expected
    assert sample_indices(UCF, SamplerConfig(name="center-clip", frames=8, window=3.0)) == expected


def test_center_clip_other_rate() -> None:
    # 100 frames at 10 fps: L = 30, start = 35, step 3.75 -> 36.875, 40.625, 44.375, 48.125, ...
    meta = VideoMeta(100, 10.0, 10.0)
    assert center_clip(meta, frames=8, window=3.0) == [36, 40, 44, 48, 51, 55, 59, 63]


def test_center_clip_rounds_window_frames() -> None:
    assert window_length(VideoMeta(1000, 29.97, 33.4), 3.0) == 90  # round(89.91)
    assert window_length(VideoMeta(1000, 25.0, 40.0), 0.01) == 1  # never empty


def test_center_clip_one_frame_window_straddles_the_centre() -> None:
    # L = 1 on 250 frames: start = 124.5, positions 124.5 + (k + 0.5) / 8 cross 125 at k = 4.
    assert center_clip(UCF, frames=8, window=0.01) == [124, 124, 124, 124, 125, 125, 125, 125]


def test_center_clip_video_shorter_than_window_uses_all_of_it() -> None:
    # 50 frames (2 s) < 3 s: L = 50, start = 0, positions 3.125 + 6.25 k
    short = VideoMeta(50, 25.0, 2.0)
    assert center_clip(short, frames=8, window=3.0) == [3, 9, 15, 21, 28, 34, 40, 46]
    assert center_clip(short, frames=8, window=3.0) == uniform(short, frames=8)


def test_center_clip_single_frame_video() -> None:
    assert center_clip(VideoMeta(1, 25.0, 0.04), frames=8, window=3.0) == [0] * 8


def test_samplers_reject_bad_counts() -> None:
    with pytest.raises(ValueError, match="frames"):
        uniform(UCF, frames=0)
    with pytest.raises(ValueError, match="window"):
        center_clip(UCF, frames=8, window=0.0)


def test_indices_to_timestamps() -> None:
    assert indices_to_timestamps([0, 25, 92], 25.0) == [0.0, 1.0, 3.68]
    with pytest.raises(ValueError):
        indices_to_timestamps([1], 0.0)


metas = st.builds(
    VideoMeta.from_frames,
    num_frames=st.integers(min_value=1, max_value=20_000),
    fps=st.floats(min_value=1.0, max_value=120.0, allow_nan=False),
)
counts = st.integers(min_value=1, max_value=64)
windows = st.floats(min_value=0.01, max_value=30.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(meta=metas, frames=counts, window=windows, name=st.sampled_from(["middle", "uniform", "center-clip"]))
def test_indices_in_range_sorted_and_counted(meta: VideoMeta, frames: int, window: float, name: str) -> None:
    idx = sample_indices(meta, SamplerConfig(name=name, frames=frames, window=window))
    assert len(idx) == (1 if name == "middle" else frames)
    assert idx == sorted(idx)
    assert all(isinstance(i, int) and 0 <= i < meta.num_frames for i in idx)


@settings(max_examples=300, deadline=None)
@given(meta=metas, frames=counts, window=windows)
def test_center_clip_is_centred_and_inside_its_window(meta: VideoMeta, frames: int, window: float) -> None:
    idx = center_clip(meta, frames=frames, window=window)
    length = window_length(meta, window)
    start = (meta.num_frames - length) / 2
    step = length / frames
    middle_of_video = (meta.num_frames - 1) / 2
    assert abs(sum(idx) / len(idx) - middle_of_video) <= max(1.0, step)
    assert all(math.floor(start) <= i <= math.ceil(start + length) - 1 for i in idx)
    # Without repeats when the window has room for every frame.
    if length >= frames:
        assert len(set(idx)) == frames


@settings(max_examples=200, deadline=None)
@given(meta=metas, frames=counts)
def test_uniform_spreads_over_the_whole_video(meta: VideoMeta, frames: int) -> None:
    idx = uniform(meta, frames=frames)
    step = meta.num_frames / frames
    assert idx[0] <= step / 2 and idx[-1] >= meta.num_frames - 1 - step / 2
    if meta.num_frames >= frames:
        assert len(set(idx)) == frames


def test_multi_clip_places_clips_at_quarters_and_one_clip_is_the_centre_clip():
    from clipaction.video.sampling import center_clip, multi_clip

    meta = VideoMeta.from_frames(200, 25)  # 8 s; a 2 s window is 50 frames
    indices = multi_clip(meta, frames=2, window=2.0, clips=3)
    # centres at 50, 100, 150: windows 25..75, 75..125, 125..175, frames at 1/4 and 3/4 of each
    assert indices == [37, 62, 87, 112, 137, 162]
    for n in (1, 7, 40, 175, 1000):
        meta = VideoMeta.from_frames(n, 25)
        assert multi_clip(meta, frames=8, window=3.0, clips=1) == center_clip(meta, frames=8, window=3.0)


@given(
    n=st.integers(1, 5000),
    fps=st.sampled_from([12.0, 25.0, 29.97, 60.0]),
    frames=st.integers(1, 16),
    clips=st.integers(1, 5),
    window=st.floats(0.1, 20.0),
)
def test_multi_clip_properties(n, fps, frames, clips, window):
    from clipaction.video.sampling import multi_clip

    indices = multi_clip(VideoMeta.from_frames(n, fps), frames=frames, window=window, clips=clips)
    assert len(indices) == frames * clips
    assert indices == sorted(indices)
    assert all(0 <= i < n for i in indices)
