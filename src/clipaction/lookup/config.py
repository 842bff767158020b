"""The settings of a footage index: how windows are sampled (as `timeline` samples them) and
which model encodes them. An index keeps the ones it was built with (its manifest)."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipaction.config import ModelConfig
from clipaction.timeline.config import TimelineConfig


@dataclass(frozen=True)
class IndexConfig:
    """fps: frames sampled per second; window: seconds per row (frame models: the normalised
    mean of its frames; clip models: one clip); stride: seconds between window starts;
    chunk_seconds: the span of samples per cache entry (the timeline's, so caches are shared)."""

    fps: float = 1.0
    window: float = 2.0
    stride: float = 1.0
    model: ModelConfig = field(default_factory=ModelConfig)
    cache_dir: str | None = None
    workers: int = 2
    chunk_seconds: float = 60.0

    def __post_init__(self) -> None:
        self.timeline()  # the timeline's checks (numbers > 0, a window holds a frame)

    def timeline(self) -> TimelineConfig:
        """The `TimelineConfig` that samples the same windows through the same cache."""
        return TimelineConfig(
            fps=self.fps,
            window=self.window,
            stride=self.stride,
            model=self.model,
            cache_dir=self.cache_dir,
            workers=self.workers,
            chunk_seconds=self.chunk_seconds,
        )

    def sampling(self) -> dict[str, float]:
        """What an index records and checks: the settings that decide its rows."""
        return {"fps": self.fps, "window": self.window, "stride": self.stride, "chunk_seconds": self.chunk_seconds}
