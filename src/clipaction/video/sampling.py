"""Frame samplers: pure functions from video metadata to frame indices (no I/O, no randomness).

Indices are 0-based positions in the decoded frame sequence, always sorted, inside
[0, num_frames - 1], and exactly as many as the sampler promises; a video with fewer frames
than requested repeats indices. Adding a sampler is a new function with `@register_sampler`,
naming the `SamplerConfig` fields it reads: `--sampler`, its help, validation, cache keys and
variant names all follow from the registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from clipaction.errors import ConfigError
from clipaction.registry import Registry

if TYPE_CHECKING:
    from clipaction.config import SamplerConfig

Sampler = Callable[..., list[int]]
"""`(meta: VideoMeta, *, frames: int, window: float, clips: int) -> list[int]`."""


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler: its function and the `SamplerConfig` fields that change its
    indices (in the order they appear in its short name)."""

    pick: Sampler
    uses: tuple[str, ...]
    summary: str


SAMPLERS: Registry[SamplerSpec] = Registry("sampler")


def register_sampler(name: str, uses: tuple[str, ...]) -> Callable[[Sampler], Sampler]:
    """Decorator: register `function` as sampler `name`; its docstring's first line is its help."""

    def decorator(function: Sampler) -> Sampler:
        summary = (function.__doc__ or name).strip().splitlines()[0]
        SAMPLERS.register(name)(SamplerSpec(function, uses, summary))
        return function

    return decorator


def sampler_spec(name: str) -> SamplerSpec:
    return SAMPLERS.get(name)


@dataclass(frozen=True)
class VideoMeta:
    """What samplers need to know about a video: frame count, frame rate, length in seconds."""

    num_frames: int
    fps: float
    duration: float

    def __post_init__(self) -> None:
        if isinstance(self.num_frames, bool) or int(self.num_frames) != self.num_frames or self.num_frames < 1:
            raise ValueError(f"num_frames must be an integer >= 1; got {self.num_frames!r}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a finite number > 0; got {self.fps!r}")
        if not (math.isfinite(self.duration) and self.duration >= 0):
            raise ValueError(f"duration must be a finite number >= 0 seconds; got {self.duration!r}")
        object.__setattr__(self, "num_frames", int(self.num_frames))
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "duration", float(self.duration))

    @classmethod
    def from_frames(cls, num_frames: int, fps: float) -> VideoMeta:
        """Metadata of a constant-rate video of `num_frames` frames (duration = num_frames / fps)."""
        return cls(num_frames=num_frames, fps=fps, duration=num_frames / fps)


def _check_frames(frames: int) -> None:
    if isinstance(frames, bool) or int(frames) != frames or frames < 1:
        raise ConfigError(f"must be an integer >= 1; got {frames!r}", setting="sampler.frames")


@register_sampler("middle", uses=())
def middle(meta: VideoMeta, *, frames: int = 1, window: float = 0.0, clips: int = 1) -> list[int]:
    """The single middle frame, `[num_frames // 2]`; `frames` and `window` are ignored."""
    return [meta.num_frames // 2]


@register_sampler("uniform", uses=("frames",))
def uniform(meta: VideoMeta, *, frames: int, window: float = 0.0, clips: int = 1) -> list[int]:
    """`frames` indices at the centres of equal segments: floor((k + 0.5) * num_frames / frames)."""
    _check_frames(frames)
    n = meta.num_frames
    # Integer arithmetic: floor((2k + 1) * n / (2 * frames)) is exact where floats may round.
    return [((2 * k + 1) * n) // (2 * frames) for k in range(frames)]


def window_length(meta: VideoMeta, window: float) -> int:
    """Frames in a `window`-second clip, at least 1 and at most the whole video."""
    if not (math.isfinite(window) and window > 0):
        raise ConfigError(f"must be > 0 seconds; got {window!r}", setting="sampler.window")
    return min(meta.num_frames, max(1, round(window * meta.fps)))


@register_sampler("center-clip", uses=("frames", "window"))
def center_clip(meta: VideoMeta, *, frames: int, window: float, clips: int = 1) -> list[int]:
    """`frames` indices spread over a `window`-second clip centred on the middle of the video.

    With L = window_length(meta, window) and start = (num_frames - L) / 2, index k is
    floor(start + (k + 0.5) * L / frames). A video shorter than the window uses all of it.
    """
    _check_frames(frames)
    n = meta.num_frames
    length = window_length(meta, window)
    # start + (k + 0.5) * L / N == ((n - L) * N + (2k + 1) * L) / (2N), floored exactly.
    last = n - 1
    return [min(last, max(0, ((n - length) * frames + (2 * k + 1) * length) // (2 * frames))) for k in range(frames)]


@register_sampler("multi-clip", uses=("clips", "frames", "window"))
def multi_clip(meta: VideoMeta, *, frames: int, window: float, clips: int = 3) -> list[int]:
    """`clips` clips of `frames` frames, each spread over a `window`-second window, centred at
    (j + 1) / (clips + 1) of the video (j = 0..clips-1: with 3 clips at 1/4, 1/2 and 3/4, the
    middle one at the centre) and kept inside the video. All clips' indices, sorted.

    Clip j's index k is floor(start_j + (k + 0.5) * L / frames), start_j = clamp(c_j - L/2).
    """
    return sorted(
        index for clip in multi_clip_groups(meta, frames=frames, window=window, clips=clips) for index in clip
    )


def multi_clip_groups(meta: VideoMeta, *, frames: int, window: float, clips: int = 3) -> list[list[int]]:
    """`multi_clip`'s indices clip by clip: `clips` lists of `frames` sorted indices, in clip
    order. Windows may overlap (a short video), so the sorted union alone cannot say which
    frame belongs to which clip; multi-view scoring asks here."""
    _check_frames(frames)
    if isinstance(clips, bool) or int(clips) != clips or clips < 1:
        raise ConfigError(f"must be an integer >= 1; got {clips!r}", setting="sampler.clips")
    n = meta.num_frames
    length = window_length(meta, window)
    groups = []
    for j in range(clips):
        # c_j - L/2 = (2n(j+1) - L(clips+1)) / (2(clips+1)), in exact fractions
        start = Fraction(2 * n * (j + 1) - length * (clips + 1), 2 * (clips + 1))
        start = min(max(start, Fraction(0)), Fraction(n - length))
        groups.append(
            [min(n - 1, math.floor(start + Fraction((2 * k + 1) * length, 2 * frames))) for k in range(frames)]
        )
    return groups


def list_samplers(pattern: str = "*") -> list[str]:
    """Registered sampler names matching a glob `pattern`."""
    return SAMPLERS.names(pattern)


def sample_indices(meta: VideoMeta, config: SamplerConfig) -> list[int]:
    """The frame indices `config` picks from a video described by `meta` (sorted, in range)."""
    return SAMPLERS.get(config.name).pick(meta, frames=config.frames, window=config.window, clips=config.clips)


def indices_to_timestamps(indices: Sequence[int], fps: float) -> list[float]:
    """Presentation times in seconds of frame indices at a constant `fps` (index / fps)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0; got {fps!r}")
    return [i / fps for i in indices]
