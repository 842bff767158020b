"""Time sampling for long footage (pure: no I/O, no model).

Times are seconds from the start of the video (its first frame is shown at 0). Sample k is
taken at `(k + 0.5) / fps`, the middle of the k-th sampling interval, so no sample sits on a
frame boundary of a constant-rate video with an fps that divides its own. Window i covers
`[i * stride, i * stride + window)` and scores the samples inside it; its *slot* (the time it
stands for in segments and subtitles) is the `stride` around its centre, with the first slot
stretched back to 0 and the last one forward to the end, so slots tile the video.

Arithmetic is exact (fractions): a sample on a window's edge belongs to one window side only,
whatever the floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


def exact(value: float | Fraction) -> Fraction:
    """A float setting as the fraction it was meant to be (0.1 -> 1/10)."""
    return Fraction(value).limit_denominator(1_000_000)


@dataclass(frozen=True)
class TimeGrid:
    """Sample times and windows of a video `duration` seconds long.

    fps: samples per second; window, stride: seconds.
    """

    duration: float
    fps: float
    window: float
    stride: float

    def __post_init__(self) -> None:
        for name in ("fps", "window", "stride"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0; got {value!r}")
        if not (math.isfinite(self.duration) and self.duration >= 0):
            raise ValueError(f"duration must be >= 0; got {self.duration!r}")

    # -- samples -------------------------------------------------------------------------------

    @property
    def n_samples(self) -> int:
        """Samples k with (k + 0.5) / fps < duration."""
        return max(0, math.ceil(exact(self.duration) * exact(self.fps) - Fraction(1, 2)))

    def sample_time(self, k: int) -> float:
        return float((k + Fraction(1, 2)) / exact(self.fps))

    def samples_between(self, start: float | Fraction, end: float | Fraction) -> range:
        """The samples k with start <= time(k) < end (clipped to the video)."""
        fps = exact(self.fps)
        first = max(0, math.ceil(exact(start) * fps - Fraction(1, 2)))
        stop = min(self.n_samples, max(0, math.ceil(exact(end) * fps - Fraction(1, 2))))
        return range(first, max(first, stop))

    # -- windows -------------------------------------------------------------------------------

    @property
    def n_windows(self) -> int:
        """Windows of `window` seconds every `stride` that fit in the video; one shorter window
        when the whole video is shorter than a window; none for an empty video."""
        if self.n_samples == 0:
            return 0
        duration, window, stride = exact(self.duration), exact(self.window), exact(self.stride)
        if duration < window:
            return 1
        return math.floor((duration - window) / stride) + 1

    def bounds(self, i: int) -> tuple[float, float]:
        """Window i's [start, end) in seconds."""
        start, end = self._window(i)
        return float(start), float(end)

    def _window(self, i: int) -> tuple[Fraction, Fraction]:
        start = i * exact(self.stride)
        return start, min(start + exact(self.window), exact(self.duration))

    def window_samples(self, i: int) -> range:
        """The samples window i covers."""
        return self.samples_between(*self._window(i))

    def slot(self, i: int) -> tuple[float, float]:
        """The time window i stands for: `stride` around its centre; the first slot starts at 0
        and the last ends at the end of the video, so the slots tile [0, duration]."""
        start, end = self._window(i)
        centre, half = (start + end) / 2, exact(self.stride) / 2
        low = Fraction(0) if i == 0 else max(Fraction(0), centre - half)
        high = exact(self.duration) if i == self.n_windows - 1 else min(exact(self.duration), centre + half)
        return float(low), float(high)

    def windows_done_by(self, resolved: int) -> int:
        """How many windows (from 0) have all their samples at or before sample `resolved`
        (every sample up to `resolved` is known: decoded, or skipped for good)."""
        count = self.n_windows
        # the last sample of window i grows with i; binary search over i
        low, high = 0, count
        while low < high:
            mid = (low + high) // 2
            samples = self.window_samples(mid)
            last = samples.stop - 1 if len(samples) else samples.start - 1
            if last <= resolved:
                low = mid + 1
            else:
                high = mid
        return low


def chunk_samples(fps: float, chunk_seconds: float) -> int:
    """Samples per cache chunk (at least 1)."""
    return max(1, round(exact(fps) * exact(chunk_seconds)))
