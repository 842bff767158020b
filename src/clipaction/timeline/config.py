"""The settings of `clipaction timeline`: one frozen dataclass whose defaults the flags take."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from clipaction.config import ModelConfig
from clipaction.errors import ConfigError
from clipaction.timeline.tiou import check_tiou


@dataclass(frozen=True)
class TimelineConfig:
    """How long footage is labelled over time.

    fps: frames sampled per second; window: seconds scored together (frame models: the mean of
    the window's frames; clip models: one clip); stride: seconds between window starts;
    threshold: a window's top label counts only with at least this probability; min_segment:
    shorter segments (seconds) are dropped; background: a label meaning "none of these", scored
    like the others but never a segment (added to the labels when missing); ground_truth:
    ActivityNet JSON or THUMOS14 annotation text files to evaluate against; tiou_thresholds:
    the tIoU thresholds of its mAP (None: the benchmark's own, ActivityNet 0.5:0.05:0.95,
    THUMOS14 0.3:0.1:0.7); chunk_seconds: the span of sampled frames per cache entry.
    """

    labels: tuple[str, ...] = ()
    fps: float = 2.0
    window: float = 2.0
    stride: float = 1.0
    threshold: float = 0.0
    min_segment: float = 0.0
    background: str | None = None
    ground_truth: str | None = None
    tiou_thresholds: tuple[float, ...] | None = None
    templates: str = "seed"
    model: ModelConfig = field(default_factory=ModelConfig)
    cache_dir: str | None = None
    workers: int = 2
    chunk_seconds: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.tiou_thresholds is not None:
            object.__setattr__(self, "tiou_thresholds", check_tiou(self.tiou_thresholds))
        for name in ("fps", "window", "stride", "chunk_seconds"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                raise ConfigError(f"must be a number > 0; got {value!r}", setting=f"timeline.{name}")
        if self.fps * self.window < 1:
            raise ConfigError(
                f"a {self.window:g} s window holds no frame at {self.fps:g} frames/s: "
                f"give a window of at least {1 / self.fps:g} s or a higher fps",
                setting="timeline.window",
            )
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"must be a probability in [0, 1]; got {self.threshold!r}", setting="timeline.threshold")
        if not (math.isfinite(self.min_segment) and self.min_segment >= 0):
            raise ConfigError(f"must be >= 0 seconds; got {self.min_segment!r}", setting="timeline.min_segment")
        if self.background is not None and not self.background.strip():
            raise ConfigError("must be a label, not empty", setting="timeline.background")

    @property
    def all_labels(self) -> tuple[str, ...]:
        """The labels scored: the given ones, plus the background label when not among them."""
        if self.background is not None and self.background not in self.labels:
            return (*self.labels, self.background)
        return self.labels
