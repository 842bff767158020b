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

What callers get back is what a player shows, with memory bounded (`clipaction.video.frames`):

- Size: a frame whose short side exceeds `max_short_side` (default `MAX_SHORT_SIDE` = 720) is
  downscaled by FFmpeg (area averaging, aspect ratio kept) while still a PyAV frame, before it
  becomes an RGB array, so a 4K video never holds 4K RGB frames (8 frames: ~22 MB, not ~200 MB).
  Smaller frames (UCF101's 320x240) are converted untouched, bit-exact. `None` turns it off.
- Orientation: a display matrix (the `rotate` tag phones write; side data in MP4/MOV/MKV) is
  applied the way FFmpeg's own tools auto-rotate: 90/180/270 degrees and mirroring. Odd angles
  are left as stored (logged).
- Frame count: the demux pass counts the video packets; `read_sampled_frames` trusts that count
  over header metadata that under- or over-counts, and a decoder error past the first frame
  (a truncated download) ends the video there instead of failing it.
- Partial videos are not silent: `read_sampled_frames` says in `warnings` when the stream ends
  before its declared length or frames had to be repeated (`partial_warnings`). It only
  reports; refusing such videos is the caller's choice.
"""

from __future__ import annotations

import bisect
import logging
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from clipaction.config import SamplerConfig
from clipaction.errors import DataError
from clipaction.video.frames import MAX_SHORT_SIDE, Orientation, check_max_short_side, to_rgb
from clipaction.video.sampling import VideoMeta, sample_indices

log = logging.getLogger(__name__)

# Frame/slice threads do not change decoded pixels. On 2 cores with tiny clips they cost ~1-5 ms
# per video (thread start-up); on large frames they pay off.
_THREAD_TYPE = "AUTO"
#: Decoder threads when reading a sampler's frames (`decode_frames`, `read_sampled_frames`):
#: one. These calls decode a few frames of a clip, and extraction runs them in several
#: threads at once (`features.core.decoded_ahead`) beside the model: codec threads only add
#: start-up and contention there (measured on 2 busy cores, UCF101-like 320x240 MPEG-4: 2.8 ->
#: 1.9 ms of CPU per sampled frame, decoding and RGB conversion).
SAMPLED_DECODER_THREADS = 1


def decode_settings(max_short_side: int | None = MAX_SHORT_SIDE) -> dict:
    """Everything in decoding that changes returned pixels (for cache keys): bump `version` when
    the decoding rules change."""
    return {"version": 2, "max_short_side": max_short_side, "autorotate": True}


class VideoDecodeError(DataError):
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
    """Frames a sampler picked: `frames[k]` is frame `indices[k]`, shape (len(indices), H, W, 3) uint8 RGB.

    `meta` is what decoding established; `declared_duration` the seconds the container's
    metadata claimed (None: not known); `warnings` one line each when the frames cover less of
    the video than the sampler asked for (see `partial_warnings`), else ().
    """

    meta: VideoMeta
    indices: tuple[int, ...]
    frames: np.ndarray
    declared_duration: float | None = None
    warnings: tuple[str, ...] = ()


# A stream counts as ending early when it is this much shorter than declared (and by more than
# two frames): containers round durations and may count a trailing audio tail, so whole videos
# miss their declared length by a frame or a few percent.
_SHORTFALL = 0.05


def declared_duration(meta: VideoMeta) -> float:
    """Seconds the metadata of `probe` claims: the longer of its duration and frame count (a
    truncated AVI keeps the whole file's frame count while its duration shrinks with the file)."""
    return max(meta.duration, meta.num_frames / meta.fps)


def _seconds(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") + " s"


def partial_warnings(
    meta: VideoMeta, sampler: SamplerConfig, indices: Sequence[int], declared: float | None = None
) -> tuple[str, ...]:
    """Why the frames `indices` that `sampler` took from a video of `meta` cover less than asked,
    as one line (or () when they do not). Pure: decoding and the feature cache both call it.

    Causes, first match wins: the stream ends before the `declared` seconds (a truncated file,
    or a header that over-states: the two look alike); the video has fewer frames than one clip
    of `sampler.frames`, so frames repeat (worded by the window when it is shorter than that).
    A whole video that is merely shorter than the window is not warned about, even when
    multi-clip's clips then coincide: every frame of it is there.
    """
    requested, distinct = len(indices), len(set(indices))
    if declared is not None and declared - meta.duration > max(2 / meta.fps, _SHORTFALL * declared):
        ends = f"stream ends at {_seconds(meta.duration)} of {_seconds(declared)} declared"
        if distinct < requested:
            return (f"decoded {distinct} of {requested} requested frames: {ends}",)
        return (f"{ends}: frames sampled from the part that decodes",)
    if distinct >= requested or meta.num_frames >= sampler.frames:
        return ()
    if "window" in sampler.cache_fields() and meta.duration < sampler.window:
        short = f"video is {_seconds(meta.duration)}, shorter than the {_seconds(sampler.window)} window"
        return (f"{short}: frames repeated to fill {requested}",)
    few = f"video has {meta.num_frames} frames, fewer than the {requested} requested"
    return (f"{few}: frames repeated to fill {requested}",)


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
def open_video(
    path: Path, threads: int | None = None
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open `path` and its first video stream, with errors a user can act on; `threads`:
    decoder threads (None: FFmpeg's choice, one per core and one more)."""
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
        if threads is not None:
            stream.codec_context.thread_count = threads
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
    with open_video(path) as (container, stream):
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


def _next_frame(frames: Iterator[av.VideoFrame], decoded: int) -> av.VideoFrame | None:
    """The next decoded frame, or None at the end of the decodable data.

    A decoder error after `decoded` >= 1 good frames is where a truncated file's data stops:
    treated as the end (the caller reports how many frames there were). Before any frame it
    means the file is not decodable, and propagates.
    """
    try:
        return next(frames, None)
    except _DATA_ERRORS as exc:
        if decoded < 1:
            raise
        log.debug("decoder error after %d frames, taken as the end of the data: %s", decoded, exc)
        return None


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
    # offset / step in integers (called for every packet and every decoded frame: Fraction
    # arithmetic cost ~15 us a call, under the GIL the model's thread also needs)
    num, den = offset * step.denominator, step.numerator
    index = (2 * num + den) // (2 * den)  # the nearest integer; an exact half is off-grid anyway
    if 4 * abs(num - index * den) > den:
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
    step: Fraction
    count: int
    keyframes: tuple[int, ...]
    keyframe_pts: tuple[int, ...]


@dataclass(frozen=True)
class _Survey:
    """What one demux pass (no decoding) found: `packets` video packets holding data (one per
    frame for every common codec), and the index to seek with, or None and why not."""

    packets: int
    index: _PacketIndex | None
    why: str = ""
    mean_rate: float | None = None  # frames per second over the packets' pts span, when known


def _index_packets(stamps: list[int | None], keys: list[bool], step: Fraction) -> _PacketIndex:
    if not stamps:
        raise _Unreliable("no video packets")
    if any(pts is None for pts in stamps):
        raise _Unreliable("a packet has no pts")
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
        step=step,
        count=len(grid),
        keyframes=tuple(g for g, _ in keyframes),
        keyframe_pts=tuple(pts for _, pts in keyframes),
    )


def _survey(path: Path) -> _Survey:
    """Demux the whole video stream once: count its packets and index their timestamps.

    A demuxer error after some packets (a truncated file) ends the pass; the count is then what
    was read and timestamps are not trusted.
    """
    stamps: list[int | None] = []
    keys: list[bool] = []
    with open_video(path) as (container, stream):
        cut = ""
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                stamps.append(packet.pts)
                keys.append(packet.is_keyframe)
        except _DATA_ERRORS as exc:
            if not stamps:
                raise
            cut = f"demuxing stopped after {len(stamps)} packets ({type(exc).__name__})"
        rate = _mean_rate(stamps, stream.time_base)
        try:
            if cut:
                raise _Unreliable(cut)
            index = _index_packets(stamps, keys, _frame_step(stream))
        except _Unreliable as why:
            return _Survey(packets=len(stamps), index=None, why=str(why), mean_rate=rate)
    return _Survey(packets=len(stamps), index=index, mean_rate=rate)


def _mean_rate(stamps: list[int | None], time_base: Fraction | None) -> float | None:
    """Frames per second from the spread of the packets' pts (None without two distinct pts)."""
    known = [pts for pts in stamps if pts is not None]
    if len(known) < 2 or len(known) != len(stamps) or not time_base:
        return None
    span = (max(known) - min(known)) * Fraction(time_base)
    return float((len(known) - 1) / span) if span > 0 else None


def _measured_meta(path: Path, meta: VideoMeta, survey: _Survey) -> VideoMeta:
    """`meta` with the frame count the packets show when the container's metadata disagrees.

    The metadata's frame rate is kept unless the timestamps are irregular (variable rate, gaps)
    and their mean rate is far from it: an MKV holding a variable-rate stream may report its time
    base (e.g. 1000 fps) as the rate.
    """
    if not survey.packets or survey.packets == meta.num_frames:
        return meta
    fps = meta.fps
    if survey.index is None and survey.mean_rate and not 2 / 3 <= survey.mean_rate / fps <= 3 / 2:
        fps = survey.mean_rate
    log.warning(
        "%s: metadata says %d frames at %.4g fps; the stream has %d packets at %.4g fps",
        path,
        meta.num_frames,
        meta.fps,
        survey.packets,
        fps,
    )
    return VideoMeta.from_frames(survey.packets, fps)


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
        index: _PacketIndex,
        max_short_side: int | None,
    ) -> None:
        self.path, self.container, self.stream = path, container, stream
        self.index, self.max_short_side = index, max_short_side
        self.orientation = Orientation()

    def index_of(self, frame: av.VideoFrame) -> int:
        if frame.pts is None:
            raise _Unreliable("frame without pts")
        return _grid_index(frame.pts - self.index.first_pts, self.index.step)

    def read(self, wanted: list[int]) -> dict[int, np.ndarray]:
        """Frames at the sorted, distinct indices `wanted`, keyed by index."""
        wanted_set, out = set(wanted), {}

        def keep(index: int, frame: av.VideoFrame) -> None:
            if index in wanted_set and index not in out:
                out[index] = to_rgb(frame, self.max_short_side, self.orientation)

        frames = _iter_frames(self.container, self.stream)
        first = _next_frame(frames, 0)
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
                frame = _next_frame(frames, pos + 1)
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
                self.container.seek(self.index.keyframe_pts[slot], stream=self.stream, backward=True, any_frame=False)
            except (av.error.FFmpegError, OSError) as exc:
                raise _Unreliable(f"seek failed ({exc})") from exc
            frames = _iter_frames(self.container, self.stream)
            # Frames output before the first keyframe may reference data we skipped.
            try:
                frame = next((f for f in frames if f.key_frame), None)
            except _DATA_ERRORS as exc:
                raise _Unreliable(f"decoding after seeking to frame {keyframes[slot]} failed ({exc})") from exc
            if frame is None:
                raise _Unreliable(f"no keyframe after seeking to frame {keyframes[slot]}")
            index = self.index_of(frame)
            if index <= target:
                return frames, frame, index
            log.debug("seek for frame %d landed on keyframe %d; aiming earlier", target, index)
            if slot == 0:
                break
            slot = max(0, bisect.bisect_left(keyframes, min(keyframes[slot], index)) - 1 - attempt)
        raise _Unreliable(f"cannot seek to a keyframe before frame {target}")


def _read_sequential(path: Path, wanted: list[int], max_short_side: int | None) -> dict[int, np.ndarray]:
    """Frames at `wanted` (sorted, distinct) by decoding from the start and counting."""
    wanted_set, out, last = set(wanted), {}, wanted[-1]
    count, orientation = 0, Orientation()
    with open_video(path, SAMPLED_DECODER_THREADS) as (container, stream):
        frames = _iter_frames(container, stream)
        while (frame := _next_frame(frames, count)) is not None:
            index, count = count, count + 1
            if index in wanted_set:
                out[index] = to_rgb(frame, max_short_side, orientation)
            if index >= last:
                return out
    reason = f"frame {last} requested but the video has {count} frames" if count else "no frames decodable"
    raise FramesOutOfRange(path, reason, available=count)


def _read(path: Path, wanted: list[int], survey: _Survey, max_short_side: int | None) -> dict[int, np.ndarray]:
    """Frames at `wanted` (sorted, distinct): by seeking where the survey indexed the
    timestamps, else (or when they turn out wrong while decoding) by counting."""
    why = survey.why
    if survey.index is not None:
        try:
            # A fresh open: seeking back to the very start is not exact in every format.
            with open_video(path, SAMPLED_DECODER_THREADS) as (container, stream):
                return _SeekingReader(path, container, stream, survey.index, max_short_side).read(wanted)
        except _Unreliable as exc:
            why = str(exc)
    log.info("%s: timestamps unreliable (%s); decoding sequentially", path, why)
    return _read_sequential(path, wanted, max_short_side)


def _stack(path: Path, found: dict[int, np.ndarray], indices: list[int]) -> np.ndarray:
    shapes = sorted({found[i].shape for i in indices})
    if len(shapes) > 1:
        sizes = ", ".join(f"{w}x{h}" for h, w, _ in shapes)
        raise VideoDecodeError(path, f"frame size changes within the video ({sizes})")
    return np.stack([found[i] for i in indices])


def decode_frames(
    path: str | Path, indices: Sequence[int], *, max_short_side: int | None = MAX_SHORT_SIDE
) -> np.ndarray:
    """The frames at `indices` (any order, repeats allowed) as (len(indices), H, W, 3) uint8 RGB.

    Frame i is the i-th frame of a full sequential decode, upright (display matrix applied) and
    downscaled so min(H, W) <= `max_short_side` (None: full size). Raises FramesOutOfRange (with
    `available`) when an index lies past the real end, VideoDecodeError for unreadable files.
    """
    path = Path(path)
    check_max_short_side(max_short_side)
    indices = [operator.index(i) for i in indices]
    if any(i < 0 for i in indices):
        raise ValueError(f"frame indices must be >= 0; got {min(indices)}")
    wanted = sorted(set(indices))
    if not wanted:
        # The shape of frame 0 (size bound and rotation applied), without its pixels.
        first = _read_sequential(path, [0], max_short_side)[0]
        return np.empty((0, *first.shape), dtype=np.uint8)
    found = _read(path, wanted, _survey(path), max_short_side)
    return _stack(path, found, indices)


def read_sampled_frames(
    path: str | Path, sampler: SamplerConfig, *, max_short_side: int | None = MAX_SHORT_SIDE
) -> SampledFrames:
    """Probe, sample and decode: the frames `sampler` picks from the video at `path`.

    The frame count is the number of video packets when the container's metadata disagrees
    (an AVI header or an MKV duration that lies); when decoding still finds fewer frames than
    that, the real count replaces it (duration = count / fps) and the frames are sampled again.
    Frames are upright and bounded as in `decode_frames`. A video that yields fewer distinct
    frames than asked for, or ends before its declared length, is returned with `warnings`.
    """
    path = Path(path)
    check_max_short_side(max_short_side)
    declared = probe(path)
    survey = _survey(path)
    meta = _measured_meta(path, declared, survey)
    indices = sample_indices(meta, sampler)
    try:
        found = _read(path, sorted(set(indices)), survey, max_short_side)
    except FramesOutOfRange as exc:
        if not exc.available:
            raise VideoDecodeError(path, "no frames decodable") from exc
        log.warning("%s: metadata says %d frames, decoding finds %d", path, meta.num_frames, exc.available)
        meta = VideoMeta.from_frames(exc.available, meta.fps)
        indices = sample_indices(meta, sampler)
        found = _read(
            path, sorted(set(indices)), _Survey(exc.available, None, "fewer frames than packets"), max_short_side
        )
    claimed = declared_duration(declared)
    warnings = partial_warnings(meta, sampler, indices, claimed)
    frames = _stack(path, found, indices)
    return SampledFrames(meta, tuple(indices), frames, declared_duration=claimed, warnings=warnings)
