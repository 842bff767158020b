"""Decoding sampled frames with PyAV, exactly and without decoding whole videos.

Frame index i means the i-th frame (from 0) that a full sequential decode
(`for frame in container.decode(video=0)`) yields. `decode_frames` returns exactly those
frames without decoding everything:

1. A demux-only pass (no decoding, ~1 ms for a UCF101 clip) checks that the packets' pts form
   a gap-free grid of one frame step and notes where the keyframes are.
2. Decoding starts at frame 0 (its pts is `first_pts`); for each wanted frame, in sorted order,
   it seeks to the last keyframe at or before it only when that keyframe lies ahead of the
   current position, and otherwise decodes forward. A decoded frame's index is
   `round((pts - first_pts) / step)`, and every step is checked to be exactly +1.
3. When timestamps cannot be trusted (missing, off the grid, gaps, variable frame rate,
   B-frame pts that AVI cannot store), it decodes sequentially and counts frames instead.

Every failure caused by the file (missing, empty, not a video, no video stream, corrupt data)
is raised as `VideoDecodeError`, so callers catch one exception type.
"""

from __future__ import annotations

import bisect
import logging
import operator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import av.error
import numpy as np

from clipaction.config import SamplerConfig
from clipaction.video.sampling import VideoMeta, sample_indices

log = logging.getLogger(__name__)

# Frame/slice threads do not change decoded pixels. On 2 cores with tiny clips they cost ~1-5 ms
# per video (thread start-up); on large frames they pay off.
_THREAD_TYPE = "AUTO"


class VideoDecodeError(Exception):
    """A video cannot be read; `str()` is one line: `<path>: <reason>`."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")


class FramesOutOfRange(VideoDecodeError):
    """Requested frames lie past the real end of the video (its metadata over-counts).

    `available` is the real number of decodable frames when known, else None.
    """

    def __init__(self, path: str | Path, reason: str, available: int | None) -> None:
        super().__init__(path, reason)
        self.available = available


@dataclass(frozen=True)
class SampledFrames:
    """Frames a sampler picked: `frames[k]` is frame `indices[k]`, shape (len(indices), H, W, 3) uint8 RGB."""

    meta: VideoMeta
    indices: tuple[int, ...]
    frames: np.ndarray


# Exceptions PyAV/FFmpeg raise on bad data; av.error.FFmpegError subclasses some of these too.
_DATA_ERRORS = (av.error.FFmpegError, OSError, ValueError, IndexError, EOFError, ArithmeticError, RuntimeError)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn every decoding failure inside the block into a one-line VideoDecodeError."""
    try:
        yield
    except VideoDecodeError:
        raise
    except _DATA_ERRORS as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise VideoDecodeError(path, f"cannot decode ({type(exc).__name__}: {detail})") from exc


@contextmanager
def _open(path: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open `path` and its first video stream, with errors a user can act on."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise VideoDecodeError(path, "no such file") from None
    except OSError as exc:
        raise VideoDecodeError(path, f"cannot read ({exc.strerror or exc})") from exc
    if not path.is_file():
        raise VideoDecodeError(path, "not a file")
    if size == 0:
        raise VideoDecodeError(path, "file is empty")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except _DATA_ERRORS as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise VideoDecodeError(path, f"not a video or unreadable container ({detail})") from exc
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            hint = "" if {"audio", "subtitle"} & set(kinds) else "; truncated or not a video?"
            raise VideoDecodeError(path, f"no video stream (streams: {', '.join(kinds) or 'none'}{hint})")
        stream = container.streams.video[0]
        stream.thread_type = _THREAD_TYPE
        with _reading(path):
            yield container, stream
    finally:
        container.close()


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    # FFmpeg's own guess first: for raw streams average_rate is a 25 fps placeholder.
    for rate in (stream.guessed_rate, stream.average_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def probe(path: str | Path) -> VideoMeta:
    """Frame count, frame rate and duration from the container's metadata.

    A missing frame count or duration is estimated from the other; with neither, video
    packets are counted (demuxing only). The numbers may still be wrong for files whose
    container lies: `read_sampled_frames` corrects them from what decoding finds.
    """
    path = Path(path)
    with _open(path) as (container, stream):
        rate = _frame_rate(stream)
        frames = int(stream.frames or 0)
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        if rate is None:
            if not (frames and duration):
                raise VideoDecodeError(path, "no frame rate in the metadata")
            rate = Fraction(frames / duration).limit_denominator(1001 * 1000)
        if frames <= 0 and duration > 0:
            frames = max(1, round(duration * rate))
        if frames <= 0:
            frames = _count_packets(container, stream)
        if frames <= 0:
            raise VideoDecodeError(path, "no frames in the video stream")
        if duration <= 0:
            duration = frames / rate
    meta = VideoMeta(num_frames=frames, fps=float(rate), duration=duration)
    log.debug("probe %s: %s", path, meta)
    return meta


def _count_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    return sum(1 for packet in container.demux(stream) if packet.size > 0)


def _iter_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.VideoFrame]:
    """Decoded frames from the container's current position (the one place frames are decoded)."""
    yield from container.decode(stream)


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


class _Unreliable(Exception):
    """Timestamps cannot identify frames here; decode sequentially instead."""


def _frame_step(stream: av.video.stream.VideoStream) -> Fraction:
    """One frame's duration in the stream's pts units."""
    rate = _frame_rate(stream)
    if rate is None or not stream.time_base:
        raise _Unreliable("no frame rate or time base")
    return 1 / (rate * Fraction(stream.time_base))


def _grid_index(offset: int, step: Fraction) -> int:
    """The frame number of a pts `offset` from the first frame; off-grid stamps are unreliable."""
    position = offset / step
    index = round(position)
    if abs(position - index) > 0.25:
        raise _Unreliable(f"pts offset {offset} is off the frame grid (step {float(step):.4g})")
    return index


@dataclass(frozen=True)
class _PacketIndex:
    """Where the frames are, from demuxing alone (no decoding).

    The packets' pts form a gap-free grid `first_pts + k * step`, k = 0..count-1;
    `keyframes` are the grid numbers of keyframe packets (ascending, starting at 0) and
    `keyframe_pts` their exact pts.
    """

    first_pts: int
    count: int
    keyframes: tuple[int, ...]
    keyframe_pts: tuple[int, ...]


def _index_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, step: Fraction
) -> _PacketIndex:
    stamps: list[int] = []
    keys: list[bool] = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        if packet.pts is None:
            raise _Unreliable("a packet has no pts")
        stamps.append(packet.pts)
        keys.append(packet.is_keyframe)
    if not stamps:
        raise _Unreliable("no video packets")
    first = min(stamps)
    grid = [_grid_index(pts - first, step) for pts in stamps]
    # A gap (dropped or variable-rate frame) would shift every later index: refuse it.
    if sorted(grid) != list(range(len(grid))):
        raise _Unreliable("packet timestamps have gaps or repeats (variable frame rate?)")
    keyframes = sorted((g, pts) for g, pts, key in zip(grid, stamps, keys) if key)
    if not keyframes or keyframes[0][0] != 0:
        raise _Unreliable("the video does not start with a keyframe")
    return _PacketIndex(
        first_pts=first,
        count=len(grid),
        keyframes=tuple(g for g, _ in keyframes),
        keyframe_pts=tuple(pts for _, pts in keyframes),
    )


class _SeekingReader:
    """Collects wanted frames by seeking to keyframes and reading indices from pts.

    It seeks only when a keyframe lies between the current position and the next wanted
    frame (otherwise decoding forward is cheaper), and checks every decoded frame's index.
    """

    def __init__(
        self,
        path: Path,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        step: Fraction,
        index: _PacketIndex,
    ) -> None:
        self.path, self.container, self.stream = path, container, stream
        self.step, self.index = step, index

    def index_of(self, frame: av.VideoFrame) -> int:
        if frame.pts is None:
            raise _Unreliable("frame without pts")
        return _grid_index(frame.pts - self.index.first_pts, self.step)

    def read(self, wanted: list[int]) -> dict[int, np.ndarray]:
        """Frames at the sorted, distinct indices `wanted`, keyed by index."""
        wanted_set, out = set(wanted), {}

        def keep(index: int, frame: av.VideoFrame) -> None:
            if index in wanted_set and index not in out:
                out[index] = _rgb(frame)

        frames = _iter_frames(self.container, self.stream)
        first = next(frames, None)
        if first is None:
            raise FramesOutOfRange(self.path, "no frames decodable", available=0)
        if first.pts != self.index.first_pts:
            raise _Unreliable(f"first frame pts {first.pts} is not the first packet's {self.index.first_pts}")
        pos = 0
        keep(0, first)
        for target in wanted:
            if target <= pos:
                continue
            slot = bisect.bisect_right(self.index.keyframes, target) - 1
            if self.index.keyframes[slot] > pos + 1:
                frames, frame, pos = self._seek(slot, target)
                keep(pos, frame)
            while pos < target:
                frame = next(frames, None)
                if frame is None:
                    reason = f"frame {target} requested but the video ends at {pos + 1} frames"
                    raise FramesOutOfRange(self.path, reason, available=pos + 1)
                index = self.index_of(frame)
                if index != pos + 1:
                    raise _Unreliable(f"frame {index} follows frame {pos}")
                pos = index
                keep(pos, frame)
        return out

    def _seek(self, slot: int, target: int) -> tuple[Iterator[av.VideoFrame], av.VideoFrame, int]:
        """Seek to keyframe number `slot` (at or before `target`); return the frames, the first
        keyframe decoded and its index.

        Some demuxers seek by dts (B-frames put dts before pts) or search timestamps without an
        index (MPEG-TS), and land on a later keyframe than asked: then aim at earlier ones.
        """
        keyframes = self.index.keyframes
        for attempt in range(6):
            try:
                self.container.seek(
                    self.index.keyframe_pts[slot], stream=self.stream, backward=True, any_frame=False
                )
            except (av.error.FFmpegError, OSError) as exc:
                raise _Unreliable(f"seek failed ({exc})") from exc
            frames = _iter_frames(self.container, self.stream)
            # Frames output before the first keyframe may reference data we skipped.
            for frame in frames:
                if frame.key_frame:
                    break
            else:
                raise _Unreliable(f"no keyframe after seeking to frame {keyframes[slot]}")
            index = self.index_of(frame)
            if index <= target:
                return frames, frame, index
            log.debug("seek for frame %d landed on keyframe %d; aiming earlier", target, index)
            if slot == 0:
                break
            slot = max(0, bisect.bisect_left(keyframes, min(keyframes[slot], index)) - 1 - attempt)
        raise _Unreliable(f"cannot seek to a keyframe before frame {target}")


def _read_seeking(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """Frames at `wanted` by seeking; raises _Unreliable where pts cannot be trusted."""
    with _open(path) as (container, stream):
        step = _frame_step(stream)
        index = _index_packets(container, stream, step)
    # Decode from a fresh open: seeking back to the very start is not exact in every format.
    with _open(path) as (container, stream):
        return _SeekingReader(path, container, stream, step, index).read(wanted)


def _read_sequential(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """Frames at `wanted` (sorted, distinct) by decoding from the start and counting."""
    wanted_set, out, last = set(wanted), {}, wanted[-1]
    count = 0
    with _open(path) as (container, stream):
        for index, frame in enumerate(_iter_frames(container, stream)):
            count = index + 1
            if index in wanted_set:
                out[index] = _rgb(frame)
            if index >= last:
                return out
    reason = f"frame {last} requested but the video has {count} frames" if count else "no frames decodable"
    raise FramesOutOfRange(path, reason, available=count)


def decode_frames(path: str | Path, indices: Sequence[int]) -> np.ndarray:
    """The frames at `indices` (any order, repeats allowed) as (len(indices), H, W, 3) uint8 RGB.

    Frame i is the i-th frame of a full sequential decode. Raises FramesOutOfRange (with
    `available`) when an index lies past the real end, VideoDecodeError for unreadable files.
    """
    path = Path(path)
    indices = [operator.index(i) for i in indices]
    if any(i < 0 for i in indices):
        raise ValueError(f"frame indices must be >= 0; got {min(indices)}")
    wanted = sorted(set(indices))
    if not wanted:
        with _open(path) as (container, stream):
            return np.empty((0, stream.height, stream.width, 3), dtype=np.uint8)
    try:
        found = _read_seeking(path, wanted)
    except _Unreliable as why:
        log.info("%s: timestamps unreliable (%s); decoding sequentially", path, why)
        found = _read_sequential(path, wanted)
    with _reading(path):
        return np.stack([found[i] for i in indices])


def read_sampled_frames(path: str | Path, sampler: SamplerConfig) -> SampledFrames:
    """Probe, sample and decode: the frames `sampler` picks from the video at `path`.

    When the metadata over-counts frames, the real count found while decoding replaces it
    (duration = count / fps) and the frames are sampled again.
    """
    path = Path(path)
    meta = probe(path)
    indices = sample_indices(meta, sampler)
    try:
        frames = decode_frames(path, indices)
    except FramesOutOfRange as exc:
        if not exc.available:
            raise VideoDecodeError(path, "no frames decodable") from exc
        log.warning("%s: metadata says %d frames, decoding finds %d", path, meta.num_frames, exc.available)
        meta = VideoMeta.from_frames(exc.available, meta.fps)
        indices = sample_indices(meta, sampler)
        frames = decode_frames(path, indices)
    return SampledFrames(meta=meta, indices=tuple(indices), frames=frames)
