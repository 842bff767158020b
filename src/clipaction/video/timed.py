"""Streaming decode by time: the frame shown at each sampled time, in order, without holding
the video (PyAV).

The frame at time t is the one whose presentation interval contains t: the last frame with
pts <= t (the last frame of the stream is shown for its own duration). Times are seconds from
the stream's start time, so a stream that starts at 5 s (an MPEG-TS capture, an edited MKV)
and a variable frame rate both give the frames a player shows; frames are identified by their
timestamps, never by counting.

Reaching the times (cheapest access): frames are decoded forward and only the ones that are
shown at a sampled time are converted to RGB. When the next sampled time lies further ahead
than `SEEK_KEYFRAME_INTERVALS` keyframe intervals (and at least `MIN_SEEK_SECONDS`), the reader
seeks to the keyframe before it instead of decoding everything in between (see
`should_seek`; the measurement is noted at the constant).

Damage: a packet the decoder rejects, a demuxer error, or an error FFmpeg logs while
demuxing (a Matroska demuxer resyncing past damaged clusters raises nothing) marks the frames after it as
untrusted until the next keyframe decodes, as do frames FFmpeg flags corrupt; sampled times
that fall in such a stretch are skipped and reported (`Skipped`, naming the time range), and
the rest of the video is decoded as usual. A stream that ends before its declared length ends
the samples there (`Skipped` with the reason).

Frames no sampled time can show are not decoded at all when nothing refers to them: a packet
of a non-reference frame (most B-frames) whose display interval provably ends before the next
sampled time goes to the decoder with `skip_frame = NONREF` (`_Reader._skip_unshown`). Its
interval ends at the next frame in display order, at the latest at the earliest later pts among
the packets demuxed so far (a B-frame's following reference frame is demuxed before it), so the
frames shown are those of a full decode. x264's default footage: half the frames, ~half the
decoding time.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error
import av.logging
import numpy as np

from clipaction.video.decode import VideoDecodeError, open_video
from clipaction.video.frames import MAX_SHORT_SIDE, Orientation, to_rgb

log = logging.getLogger(__name__)

#: Seek when the next sampled time is more than this many keyframe intervals ahead (see
#: `should_seek`). Measured on generated H.264 with a keyframe every 10 s (x264's default at
#: 25 fps), best of two: samples every 5 s (half an interval) decode forward faster (320x240
#: 0.71 s vs 0.76 s seeking for 2 minutes, 720p 1.98 s vs 2.63 s for 1); every 10 s seeking wins 2x
#: (0.32 s vs 0.70 s; 1.21 s vs 2.23 s), every 15-30 s 2-10x.
SEEK_KEYFRAME_INTERVALS = 1.0
#: ... and at least this many seconds ahead (a seek costs a demuxer search and a decoder flush).
MIN_SEEK_SECONDS = 2.0
#: The keyframe interval assumed before two keyframes have been seen (x264's default, 250
#: frames, at 25 fps).
DEFAULT_KEYFRAME_INTERVAL = 10.0
#: Consecutive demuxer errors after which the rest of the file counts as unreadable.
_MAX_DEMUX_ERRORS = 64
#: Packet times remembered to bound a frame's display interval (`_Reader._skip_unshown`): more
#: than any B-frame run or decoder reordering.
_LOOKBACK_PACKETS = 32

_DATA_ERRORS = (av.error.FFmpegError, OSError, ValueError, IndexError, EOFError, ArithmeticError, RuntimeError)


@dataclass(frozen=True)
class StreamInfo:
    """What the container says: `start_time` (seconds, the pts of time 0), `duration`
    (seconds of video after it, as declared), `rate` (frames per second, average)."""

    start_time: float
    duration: float
    rate: float | None


@dataclass(frozen=True)
class Sample:
    """Sample `index`, taken at `time` seconds: (H, W, 3) uint8 RGB `frame`."""

    index: int
    time: float
    frame: np.ndarray


@dataclass(frozen=True)
class Skipped:
    """Samples `first`..`last` (inclusive) have no frame: `reason` says why, naming the time
    range [`start`, `end`) that could not be decoded."""

    first: int
    last: int
    start: float
    end: float
    reason: str

    @property
    def warning(self) -> str:
        return (
            f"{self.reason} from {self.start:.2f} s to {self.end:.2f} s: {self.last - self.first + 1} sample(s) skipped"
        )


def should_seek(gap: float, keyframe_interval: float | None) -> bool:
    """Whether reaching a time `gap` seconds ahead is cheaper by seeking than by decoding on.

    Seeking pays off only when a keyframe lies between here and there (it skips everything
    before that keyframe), i.e. beyond one keyframe interval (measured: half an interval is
    cheaper decoded forward, one interval is 2x cheaper sought).
    """
    interval = keyframe_interval or DEFAULT_KEYFRAME_INTERVAL
    return gap > max(MIN_SEEK_SECONDS, SEEK_KEYFRAME_INTERVALS * interval)


def probe_stream(path: str | Path) -> StreamInfo:
    """Start time, declared duration and average rate of the first video stream."""
    path = Path(path)
    with open_video(path) as (container, stream):
        base = stream.time_base
        if stream.start_time is not None and base:
            start = float(stream.start_time * base)
        elif container.start_time is not None:
            start = container.start_time / av.time_base
        else:
            start = 0.0
        if stream.duration and base:
            duration = float(stream.duration * base)
        elif container.duration:
            container_start = (container.start_time or 0) / av.time_base
            duration = container.duration / av.time_base - (start - container_start)
            if "matroska" in container.format.name:
                duration = container.duration / av.time_base - start  # a segment counts from 0
        else:
            duration = 0.0
        rate = None
        for candidate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
            if candidate:
                rate = float(candidate)
                break
    if duration <= 0:
        raise VideoDecodeError(path, "the container declares no duration for the video stream")
    return StreamInfo(start_time=start, duration=duration, rate=rate)


@dataclass
class _PassState:
    """Where one pass stands (times in seconds from the stream's start)."""

    demux: Iterator  # the demuxer's packets, restarted after an error or a seek
    prev: Any = None  # the last trusted frame, shown from prev_t to prev_end
    prev_t: float = 0.0
    prev_end: float = 0.0
    prev_rgb: np.ndarray | None = None  # prev as (H, W, 3) uint8 RGB, once converted
    damage: float | None = None  # frames from this time are untrusted until a keyframe
    seek_target: float | None = None  # a seek waits for its keyframe
    seek_attempt: int = 0
    fresh: bool = True  # decoding from the start of the stream (no seek yet)
    sought: float | None = None  # a time is sought once; then decoding goes on
    demux_errors: int = 0  # in a row
    last_packet: float | None = None  # the latest end of a packet demuxed so far
    ended: bool = False  # no more packets
    #: the times (seconds) of the last packets demuxed since the last seek, for `_skip_unshown`
    recent: deque = field(default_factory=lambda: deque(maxlen=_LOOKBACK_PACKETS))


class _Reader:
    """One pass over the wanted times (see the module docstring)."""

    def __init__(self, path: Path, container, stream, info: StreamInfo, max_short_side: int | None) -> None:
        self.path, self.container, self.stream, self.info = path, container, stream, info
        self.max_short_side = max_short_side
        self.base = Fraction(stream.time_base) if stream.time_base else None
        self.nominal = 1.0 / info.rate if info.rate else 0.04
        self.decoded = 0  # frames out of the decoder
        self.seeks = 0
        self._last_key: float | None = None
        self.keyframe_interval: float | None = None
        self.logs: list = []  # FFmpeg's error messages from this thread (see `frames_at`)
        self._seen_logs = 0
        self.skipping = False  # whether the decoder is told to skip non-reference frames

    def time_of(self, frame) -> float | None:
        if frame.pts is None or frame.time_base is None:
            return None
        return float(frame.pts * frame.time_base) - self.info.start_time

    def duration_of(self, frame) -> float:
        if frame.duration and frame.time_base:
            return float(frame.duration * frame.time_base)
        return self.nominal

    def _note_keyframe(self, t: float) -> None:
        if self._last_key is not None and t > self._last_key:
            self.keyframe_interval = t - self._last_key
        self._last_key = t

    def seek(self, target: float, attempt: int) -> None:
        """Seek to a keyframe at or before `target`: attempt 0 aims at it, 1 two keyframe
        intervals earlier (some demuxers land past the aim), 2 at the start."""
        aim = (target, target - 2 * (self.keyframe_interval or 1.0), 0.0)[min(attempt, 2)]
        pts = int((max(0.0, aim) + self.info.start_time) / self.base) if self.base else 0
        self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        self.seeks += 1
        self._last_key = None  # keyframe spacing is measured only while decoding on

    def read(self, wanted: Sequence[tuple[int, float]]) -> Iterator[Sample | Skipped]:
        """For each (index, time in seconds) of `wanted`, in order, a `Sample` with the (H, W, 3)
        uint8 RGB frame shown then or a `Skipped` covering it: seek when cheaper, demux a
        packet, note damage, decode it, and show its trusted frames."""
        out = _Emitter(wanted)
        state = _PassState(demux=self.container.demux(self.stream))
        while not out.done:
            self._seek_if_cheaper(state, out.next_time)
            packet = self._next_packet(state)
            if state.ended:
                break
            if packet is None:
                continue
            self._note_logged_damage(state)
            self._note_packet_end(state, packet)
            self._skip_unshown(state, packet, out)
            frames = self._decode(state, packet)
            if frames is not None:
                yield from self._show_frames(state, out, frames)
        yield from self._finish(state, out)

    def _seek_if_cheaper(self, state: _PassState, next_time: float) -> None:
        """Seek to the keyframe before `next_time` (seconds) when decoding on would cost more
        (`should_seek`); a time is sought once, then decoding goes on."""
        here = state.prev_t if state.prev is not None else 0.0
        if state.seek_target is not None or next_time == state.sought:
            return
        if not should_seek(next_time - here, self.keyframe_interval):
            return
        state.seek_target = state.sought = next_time
        state.seek_attempt, state.fresh = 0, False
        self._seek_or_fail(next_time, 0)
        state.demux = self.container.demux(self.stream)
        state.prev, state.prev_rgb, state.damage, state.last_packet = None, None, None, None
        state.recent.clear()

    def _skip_unshown(self, state: _PassState, packet, out: _Emitter) -> None:
        """Let the decoder skip `packet`'s frame if it is a non-reference one (FFmpeg knows) that
        no wanted time still to hand out can show: its display interval ends at the next frame
        in display order, which comes no later than any packet demuxed so far with a later pts.
        Reference frames are always decoded, so every later frame is exact."""
        if packet.pts is None or packet.time_base is None or not packet.size:
            skip = False
        else:
            at = float(packet.pts * packet.time_base) - self.info.start_time
            later = [t for t in state.recent if t > at]
            skip = bool(later) and not out.any_between(at, min(later))
            state.recent.append(at)
        if skip != self.skipping:
            self.stream.codec_context.skip_frame = "NONREF" if skip else "DEFAULT"
            self.skipping = skip

    def _next_packet(self, state: _PassState):
        """The next packet, or None after a demuxer error (the data after the last frame is
        then damaged; the demuxer restarts); sets `state.ended` at the end of the stream or after
        `_MAX_DEMUX_ERRORS` errors in a row."""
        try:
            packet = next(state.demux)
        except StopIteration:
            state.ended = True
            return None
        except _DATA_ERRORS as error:
            state.demux_errors += 1
            if state.demux_errors == 1:
                log.debug("%s: demuxer error after %.2f s: %s", self.path, state.prev_t, error)
                state.damage = state.prev_end if state.damage is None else state.damage
            if state.demux_errors >= _MAX_DEMUX_ERRORS:
                log.warning("%s: cannot read past %.2f s (%s)", self.path, state.prev_t, error)
                state.ended = True
                return None
            state.demux = self.container.demux(self.stream)
            return None
        state.demux_errors = 0
        return packet

    def _note_logged_damage(self, state: _PassState) -> None:
        """Mark damage from the end of the last packet read (seconds) when FFmpeg logged an
        error since the last look."""
        if len(self.logs) <= self._seen_logs:
            return
        errors = [entry for entry in self.logs[self._seen_logs :] if entry[0] <= av.logging.ERROR]
        self._seen_logs = len(self.logs)
        if errors:
            # the demuxer skipped damaged data (a resync logs an error, raises
            # nothing): frames are missing after the last packet read before it
            log.debug("%s: FFmpeg reported %s", self.path, str(errors[-1][-1]).strip())
            hole = state.last_packet if state.last_packet is not None else state.prev_end
            state.damage = hole if state.damage is None else min(state.damage, hole)

    def _note_packet_end(self, state: _PassState, packet) -> None:
        """Track the latest end (seconds from the stream's start) of a packet demuxed so far."""
        if packet.pts is not None and packet.time_base is not None and packet.size:
            at = float(packet.pts * packet.time_base) - self.info.start_time
            at += float(packet.duration * packet.time_base) if packet.duration else self.nominal
            state.last_packet = at if state.last_packet is None else max(state.last_packet, at)

    def _decode(self, state: _PassState, packet) -> list | None:
        """The packet's decoded frames, or None when the decoder rejects it (damage from its
        time, or from the end of the last trusted frame when earlier)."""
        try:
            return packet.decode()
        except _DATA_ERRORS as error:
            at = state.prev_end
            if packet.pts is not None and packet.time_base is not None:
                at = float(packet.pts * packet.time_base) - self.info.start_time
            log.debug("%s: undecodable packet at %.3f s: %s", self.path, at, error)
            # Threaded decoders report an error a few packets late, and the frames still
            # queued may lean on the bad data: distrust everything after the last frame.
            if state.prev is not None:
                at = min(at, state.prev_end)
            state.damage = at if state.damage is None else min(state.damage, at)
            return None

    def _show_frames(self, state: _PassState, out: _Emitter, frames: list) -> Iterator[Sample | Skipped]:
        """Emit the wanted times the trusted frames of one packet cover; stops early after a
        new seek (the packet's other frames are stale) or when every time is handed out."""
        for frame in frames:
            self.decoded += 1
            t = self.time_of(frame)
            if t is None:
                continue
            verdict = self._judge(state, frame, t)
            if verdict == "reseek":
                return
            if verdict == "drop":
                continue
            yield from self._show(state, out, frame, t)
            if out.done:
                return

    def _judge(self, state: _PassState, frame, t: float) -> Literal["show", "drop", "reseek"]:
        """Whether the frame at `t` seconds is shown, dropped (before the keyframe a seek lands
        on, corrupt, in a damaged stretch, or out of order), or a seek landed past its target
        and was redone earlier."""
        if state.seek_target is not None:
            if not frame.key_frame:
                return "drop"  # frames before the first keyframe may lean on skipped data
            if t > state.seek_target and state.seek_attempt < 2:
                state.seek_attempt += 1  # landed past the target: aim earlier
                self._seek_or_fail(state.seek_target, state.seek_attempt)
                state.demux = self.container.demux(self.stream)
                return "reseek"
            state.seek_target = None
        if frame.key_frame:
            self._note_keyframe(t)
        if frame.is_corrupt:
            state.damage = t if state.damage is None else min(state.damage, t)
            return "drop"
        if state.damage is not None and not frame.key_frame and t >= state.damage:
            return "drop"
        if state.prev is not None and t <= state.prev_t:
            return "drop"  # out of order after damage: its time has passed
        return "show"

    def _show(self, state: _PassState, out: _Emitter, frame, t: float) -> Iterator[Sample | Skipped]:
        """A trusted frame at `t` seconds: emit the previous frame for the wanted times before
        `t` (or skip them after damage or a seek), then make this frame the previous one."""
        if state.prev is None:
            if state.fresh:  # the first frame also stands for times just before it
                state.prev_rgb = yield from out.emit_until(t, frame, None, self.max_short_side)
            else:
                out.skip_before(t, "no keyframe reached", (0.0, t))
        elif state.damage is not None and t >= state.damage:  # a keyframe after a damaged stretch
            yield from out.emit_until(min(state.prev_end, t), state.prev, state.prev_rgb, self.max_short_side)
            out.skip_before(t, "corrupt data", (min(state.prev_end, t), t))
            state.damage, state.prev_rgb = None, None
        else:
            yield from out.emit_until(t, state.prev, state.prev_rgb, self.max_short_side)
            state.prev_rgb = None
        yield from out.drain()
        state.prev, state.prev_t, state.prev_end = frame, t, t + self.duration_of(frame)

    def _finish(self, state: _PassState, out: _Emitter) -> Iterator[Sample | Skipped]:
        """After the last packet: the last frame covers times up to its end, and the times left
        are skipped (corrupt data, or the stream ends early)."""
        if state.prev is not None:
            # tolerance: containers round the declared duration
            yield from out.emit_until(state.prev_end + self.nominal, state.prev, state.prev_rgb, self.max_short_side)
        end = state.prev_end if state.prev is not None else 0.0
        if state.damage is not None:
            out.skip_before(float("inf"), "corrupt data", (max(end, min(state.damage, end)), self.info.duration))
        else:
            out.skip_before(float("inf"), "the stream ends early", (end, self.info.duration))
        yield from out.drain()

    def _seek_or_fail(self, target: float, attempt: int) -> None:
        try:
            self.seek(target, attempt)
        except _DATA_ERRORS as error:
            raise VideoDecodeError(self.path, f"cannot seek to {target:.2f} s ({error})") from error


class _Emitter:
    """The wanted (index, time) pairs, handed out in order as frames or skips."""

    def __init__(self, wanted: Sequence[tuple[int, float]]) -> None:
        self.wanted = list(wanted)
        self.times = [time for _, time in self.wanted]
        self.position = 0
        self.pending: list[Skipped] = []
        self.orientation = Orientation()

    @property
    def done(self) -> bool:
        return self.position >= len(self.wanted)

    @property
    def next_time(self) -> float:
        return self.wanted[self.position][1]

    def any_between(self, start: float, end: float) -> bool:
        """Whether a wanted time not yet handed out lies in [start, end) (seconds)."""
        first = bisect.bisect_left(self.times, start, lo=self.position)
        return first < len(self.times) and self.times[first] < end

    def emit_until(self, until: float, frame, rgb: np.ndarray | None, max_short_side: int | None):
        """Yield `frame` for every wanted time before `until`; returns its RGB (converted once)."""
        while not self.done and self.next_time < until:
            if rgb is None:
                rgb = to_rgb(frame, max_short_side, self.orientation)
            index, time = self.wanted[self.position]
            yield Sample(index, time, rgb)
            self.position += 1
        return rgb

    def skip_before(self, until: float, reason: str, span: tuple[float, float]) -> None:
        first = self.position
        while not self.done and self.next_time < until:
            self.position += 1
        if self.position > first:
            self.pending.append(
                Skipped(self.wanted[first][0], self.wanted[self.position - 1][0], span[0], span[1], reason)
            )

    def drain(self) -> Iterator[Skipped]:
        while self.pending:
            yield self.pending.pop(0)


def _quiesce(stream) -> None:
    """Let the decoder's frame threads finish their work with the GIL released, before the
    decoder is freed.

    PyAV frees a codec context holding the GIL, and FFmpeg's free waits for the frame threads'
    current work; a frame thread that logs meanwhile calls PyAV's log callback (on while
    `frames_at` captures errors), which waits for the GIL: a deadlock. It happened after early
    stops (one frame taken, as a thumbnail does) with frames still in flight (gdb: the main
    thread in avcodec_free_context, a decoder thread in av_log -> PyGILState_Ensure); rarely
    with PyAV's slow per-frame RGB conversion, within a few hundred stops with a fast one.
    `flush_buffers` waits for the same work without the GIL, so nothing is in flight when the
    decoder is freed.
    """
    try:
        stream.codec_context.flush_buffers()
    except _DATA_ERRORS as error:
        log.debug("flushing the decoder: %s", error)


def frames_at(
    path: str | Path,
    wanted: Sequence[tuple[int, float]],
    *,
    info: StreamInfo | None = None,
    max_short_side: int | None = MAX_SHORT_SIDE,
    stats: dict | None = None,
) -> Iterator[Sample | Skipped]:
    """For each (index, time) of `wanted` (sorted by time; seconds from the stream's start),
    in order: a `Sample` with the frame shown at that time, or a `Skipped` covering it (with
    the reason and time range). Holds one decoded frame at a time. `stats` (if given) receives
    the counts of decoded frames and seeks. Raises VideoDecodeError for an unreadable file."""
    path = Path(path)
    info = info or probe_stream(path)
    if not wanted:
        return
    level = av.logging.get_level()
    if level is None or level < av.logging.ERROR:
        # FFmpeg's errors must reach Python for this thread's Capture: a demuxer that skips
        # damaged data says so only in its log
        av.logging.set_level(av.logging.ERROR)
    try:
        with open_video(path) as (container, stream), av.logging.Capture(local=True) as logs:
            reader = _Reader(path, container, stream, info, max_short_side)
            reader.logs = logs
            try:
                yield from reader.read(wanted)
            finally:
                _quiesce(stream)
                if stats is not None:
                    stats.update(decoded=reader.decoded, seeks=reader.seeks)
    finally:
        if level is None or level < av.logging.ERROR:
            av.logging.set_level(level)
