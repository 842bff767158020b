"""Decoding: exact frames by seeking, fewer frames decoded, lying metadata, bad files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clipaction.config import SamplerConfig
from clipaction.testing.videos import SyntheticVideo, write_video
from clipaction.video import decode as decode_mod
from clipaction.video.decode import (
    FramesOutOfRange,
    SampledFrames,
    VideoDecodeError,
    decode_frames,
    probe,
    read_sampled_frames,
)
from clipaction.video.sampling import VideoMeta, center_clip, sample_indices


def sequential(path: Path) -> np.ndarray:
    """The reference: every frame of a full sequential decode, (N, H, W, 3) uint8."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def remux(src: Path, dst: Path, fmt: str) -> Path:
    """Copy the video packets of `src` into another container format (no re-encoding)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt) as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        for packet in inp.demux(ist):
            if packet.dts is None:
                continue
            packet.stream = ost
            out.mux(packet)
    return dst


# name -> (spec, suffix, remux format or None)
VIDEOS = {
    "avi-mpeg4-gop12": (SyntheticVideo(codec="mpeg4", num_frames=100, gop=12), ".avi", None),
    "avi-mpeg4-gop30": (SyntheticVideo(codec="mpeg4", num_frames=90, gop=30), ".avi", None),
    "mp4-h264-bframes-gop12": (SyntheticVideo(codec="h264", num_frames=100, gop=12), ".mp4", None),
    "mp4-h264-bframes-gop30-ntsc": (
        SyntheticVideo(codec="h264", num_frames=90, gop=30, fps=Fraction(30000, 1001)),
        ".mp4",
        None,
    ),
    "mkv-h264-ntsc-no-stream-duration": (
        SyntheticVideo(codec="h264", num_frames=70, gop=12, fps=Fraction(30000, 1001)),
        ".mkv",
        None,
    ),
    # MPEG-TS: B-frames and a first pts far from 0, no index to seek with.
    "ts-h264-bframes": (SyntheticVideo(codec="h264", num_frames=80, gop=12), ".mp4", "mpegts"),
    # H.264 in AVI: AVI cannot store B-frame pts, so pts are garbage -> sequential fallback.
    "avi-h264-garbage-pts": (SyntheticVideo(codec="h264", num_frames=60, gop=12), ".avi", None),
    # Raw H.264: no pts, no duration, no frame count at all.
    "raw-h264-no-pts": (SyntheticVideo(codec="h264", num_frames=60, gop=12, fps=30), ".mp4", "h264"),
}
REMUX_SUFFIX = {"mpegts": ".ts", "h264": ".h264"}


@pytest.fixture(scope="module", params=sorted(VIDEOS))
def video(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, str]:
    spec, suffix, fmt = VIDEOS[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    path = write_video(folder / f"v{suffix}", spec)
    if fmt is not None:
        path = remux(path, folder / f"v{REMUX_SUFFIX[fmt]}", fmt)
    ref = sequential(path)
    assert len(ref) == spec.num_frames
    return path, ref, request.param


class Spy:
    """Counts the frames decode.py decodes (every decoded frame passes through _iter_frames)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = decode_mod._iter_frames

        def counting(container, stream):
            for frame in original(container, stream):
                self.count += 1
                yield frame

        monkeypatch.setattr(decode_mod, "_iter_frames", counting)


def index_sets(n: int) -> list[list[int]]:
    clip = center_clip(VideoMeta.from_frames(n, 25.0), frames=8, window=1.0)
    sets = [
        [0],
        [n - 1],
        [n // 2],
        [0, n - 1],
        [n - 1, 3, n // 2, 3, n - 1],  # unsorted, duplicates
        [5, 5, 5],
        [11, 12, 13, 23, 24, 25],  # around keyframes of gop 12
        [29, 30, 31, 59, 60, 61],  # around keyframes of gop 30
        [n - 2, n - 1, 1],
        clip,
        list(range(0, n, 7)),
    ]
    return [[i for i in s if i < n] for s in sets]


def test_decode_frames_equals_sequential_decode(video: tuple[Path, np.ndarray, str]) -> None:
    path, ref, _ = video
    for indices in index_sets(len(ref)):
        got = decode_frames(path, indices)
        assert got.dtype == np.uint8 and got.shape == (len(indices), *ref.shape[1:])
        assert np.array_equal(got, ref[indices]), indices


@pytest.mark.parametrize("name", ["mp4-h264-bframes-gop12", "avi-mpeg4-gop30", "ts-h264-bframes"])
def test_every_frame_one_at_a_time(tmp_path: Path, name: str) -> None:
    spec, suffix, fmt = VIDEOS[name]
    path = write_video(tmp_path / f"v{suffix}", spec)
    if fmt is not None:
        path = remux(path, tmp_path / f"v{REMUX_SUFFIX[fmt]}", fmt)
    ref = sequential(path)
    for i in range(len(ref)):
        assert np.array_equal(decode_frames(path, [i])[0], ref[i]), i


def test_probe_reads_the_metadata(video: tuple[Path, np.ndarray, str]) -> None:
    path, ref, name = video
    spec = VIDEOS[name][0]
    meta = probe(path)
    assert meta.fps == pytest.approx(float(spec.fps), rel=1e-3)
    assert meta.num_frames == pytest.approx(len(ref), abs=1)
    assert meta.duration == pytest.approx(len(ref) / float(spec.fps), abs=0.1)


def test_read_sampled_frames_matches_sampler_on_true_metadata(video: tuple[Path, np.ndarray, str]) -> None:
    path, ref, _ = video
    config = SamplerConfig(name="center-clip", frames=8, window=1.0)
    got = read_sampled_frames(path, config)
    assert isinstance(got, SampledFrames)
    assert list(got.indices) == sample_indices(got.meta, config)
    assert got.meta.num_frames in (len(ref), len(ref) + 1)
    assert np.array_equal(got.frames, ref[list(got.indices)])


@pytest.mark.parametrize("gop", [12, 30])
@pytest.mark.parametrize("codec,suffix", [("mpeg4", ".avi"), ("h264", ".mp4")])
def test_late_frames_do_not_decode_the_whole_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str, suffix: str, gop: int
) -> None:
    n = 120
    path = write_video(tmp_path / f"v{suffix}", SyntheticVideo(codec=codec, num_frames=n, gop=gop))
    ref = sequential(path)
    spy = Spy(monkeypatch)
    indices = [n - 1, n - 5, n - 3]
    assert np.array_equal(decode_frames(path, indices), ref[indices])
    # First frame (to learn first_pts) + one GOP at most, with a little decoder delay.
    assert spy.count <= 1 + gop + 4
    spy.count = 0
    assert np.array_equal(decode_frames(path, [60]), ref[[60]])
    assert spy.count <= 1 + gop + 4
    # Wanted frames within one GOP are decoded forward, not re-sought.
    spy.count = 0
    clip = list(range(70, 70 + gop, 3))
    assert np.array_equal(decode_frames(path, clip), ref[clip])
    assert spy.count <= 1 + 2 * gop + 4


def test_sequential_fallback_is_used_when_pts_are_garbage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "v.avi", SyntheticVideo(codec="h264", num_frames=60, gop=12))
    ref = sequential(path)
    spy = Spy(monkeypatch)
    assert np.array_equal(decode_frames(path, [58, 2]), ref[[58, 2]])
    assert spy.count >= 59  # it had to count frames from the start


def write_with_timestamp_gap(path: Path, n: int = 60, gap_at: int = 30, gap: int = 5) -> Path:
    """An MKV whose frames jump `gap` frame durations at `gap_at` (a dropped-frame/VFR stream)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25, options={"g": "12"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        time_base = Fraction(1, 25)
        stream.time_base = time_base
        rng = np.random.default_rng(0)
        for i in range(n):
            rgb = np.full((48, 64, 3), (i * 4) % 256, np.uint8)
            rgb[:, : 2 + i % 60] = rng.integers(0, 255, 3, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i + (gap if i >= gap_at else 0)
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_timestamp_gaps_fall_back_to_counting(tmp_path: Path) -> None:
    path = write_with_timestamp_gap(tmp_path / "gap.mkv")
    ref = sequential(path)
    assert len(ref) == 60
    for indices in ([55], [5, 29, 30, 59], [40, 41]):
        assert np.array_equal(decode_frames(path, indices), ref[indices]), indices
    # The duration counts the gap (65 frames' worth): decoding corrects it to the 60 frames.
    assert probe(path).num_frames == 65
    got = read_sampled_frames(path, SamplerConfig(name="uniform", frames=8))
    assert got.meta.num_frames == 60
    assert np.array_equal(got.frames, ref[list(got.indices)])


def test_raw_stream_without_any_metadata(tmp_path: Path) -> None:
    spec, suffix, fmt = VIDEOS["raw-h264-no-pts"]
    path = remux(write_video(tmp_path / f"v{suffix}", spec), tmp_path / "v.h264", "h264")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.frames, stream.duration, container.duration) == (0, None, None)
    assert probe(path) == VideoMeta(60, 30.0, 2.0)  # frames counted by demuxing


def test_indices_past_the_end_raise_frames_out_of_range(tmp_path: Path) -> None:
    for suffix, codec in ((".avi", "mpeg4"), (".mp4", "h264")):
        path = write_video(tmp_path / f"v{suffix}", SyntheticVideo(codec=codec, num_frames=40, gop=12))
        with pytest.raises(FramesOutOfRange) as info:
            decode_frames(path, [3, 39, 40])
        assert info.value.available == 40
        assert isinstance(info.value, VideoDecodeError)
        with pytest.raises(FramesOutOfRange) as info:
            decode_frames(path, [500])
        assert info.value.available == 40


def test_metadata_that_over_counts_is_corrected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "v.mp4", SyntheticVideo(codec="h264", num_frames=60, gop=12))
    ref = sequential(path)
    monkeypatch.setattr(decode_mod, "probe", lambda p: VideoMeta(num_frames=400, fps=25.0, duration=16.0))
    config = SamplerConfig(name="center-clip", frames=8, window=3.0)
    got = read_sampled_frames(path, config)
    true_meta = VideoMeta.from_frames(60, 25.0)
    assert got.meta == true_meta
    assert list(got.indices) == sample_indices(true_meta, config)
    assert np.array_equal(got.frames, ref[list(got.indices)])


@pytest.mark.parametrize("suffix,codec", [(".avi", "mpeg4"), (".mkv", "h264"), (".mp4", "h264")])
@pytest.mark.parametrize("fraction", [0.5, 0.85])
def test_truncated_video_decodes_what_it_can_or_raises(
    tmp_path: Path, suffix: str, codec: str, fraction: float
) -> None:
    full = write_video(tmp_path / f"full{suffix}", SyntheticVideo(codec=codec, num_frames=80, gop=12))
    data = full.read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: int(len(data) * fraction)])
    # The reference: what a sequential decode yields before the data ends or breaks off.
    decoded = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                decoded.append(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        pass  # PyAV itself fails (a truncated mp4 may have no moov atom, hence no streams)
    ref = np.stack(decoded) if decoded else None
    try:
        got = read_sampled_frames(path, SamplerConfig(name="uniform", frames=6))
    except VideoDecodeError as exc:
        assert "\n" not in str(exc)
        return
    # The header still says 80 frames: the real count must replace it.
    assert ref is not None and got.meta.num_frames == len(ref) < 80
    assert np.array_equal(got.frames, ref[list(got.indices)])


def test_corrupted_bytes_never_raise_another_exception(tmp_path: Path) -> None:
    full = write_video(tmp_path / "full.avi", SyntheticVideo(codec="mpeg4", num_frames=50, gop=12))
    data = bytearray(full.read_bytes())
    rng = np.random.default_rng(0)
    for k in range(6):
        damaged = bytearray(data)
        start = int(rng.integers(0, len(data) - 200))
        damaged[start : start + 200] = rng.integers(0, 256, size=200, dtype=np.uint8).tobytes()
        path = tmp_path / f"bad{k}.avi"
        path.write_bytes(bytes(damaged))
        try:
            frames = read_sampled_frames(path, SamplerConfig(name="center-clip", frames=4, window=1.0)).frames
            assert frames.ndim == 4 and frames.dtype == np.uint8
        except VideoDecodeError:
            pass


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(4000) / 5) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda d: d / "missing.avi", "no such file"),
        (lambda d: d, "not a file"),
        (lambda d: (d / "empty.avi").write_bytes(b"") and d / "empty.avi" or d / "empty.avi", "file is empty"),
        (
            lambda d: (d / "noise.avi").write_bytes(np.random.default_rng(1).bytes(5000)) and d / "noise.avi",
            None,
        ),
        (lambda d: (d / "text.mp4").write_text("hello, this is not a video\n" * 20) and d / "text.mp4", None),
        (lambda d: write_audio_only(d / "sound.wav"), "no video stream"),
    ],
    ids=["missing", "directory", "empty", "random-bytes", "text", "audio-only"],
)
def test_bad_files_raise_video_decode_error(tmp_path: Path, make, reason: str | None) -> None:
    path = make(tmp_path)
    for call in (
        lambda: probe(path),
        lambda: decode_frames(path, [0]),
        lambda: read_sampled_frames(path, SamplerConfig(name="middle")),
    ):
        with pytest.raises(VideoDecodeError, match=reason) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and str(path) in message


def test_unreadable_container_message(tmp_path: Path) -> None:
    path = tmp_path / "noise.avi"
    path.write_bytes(np.random.default_rng(2).bytes(3000))
    with pytest.raises(VideoDecodeError, match="not a video|no video stream|cannot decode|no frames"):
        probe(path)


def test_empty_and_negative_indices(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", SyntheticVideo(num_frames=10))
    assert decode_frames(path, []).shape == (0, 48, 64, 3)
    with pytest.raises(ValueError, match=">= 0"):
        decode_frames(path, [-1])


def test_middle_sampler_end_to_end(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", SyntheticVideo(codec="h264", num_frames=75, gop=30))
    got = read_sampled_frames(path, SamplerConfig(name="middle"))
    assert got.indices == (37,)
    assert got.meta == VideoMeta(75, 25.0, 3.0)
    assert np.array_equal(got.frames, sequential(path)[[37]])
