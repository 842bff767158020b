"""Window scores -> segments (pure: no model, no I/O).

A window's top label counts when its probability reaches `threshold` and it is not the
background label; neighbouring counted windows with the same top label merge into one segment
spanning their slots (see `timeline.grid.TimeGrid.slot`), scored by the mean probability of
that label over its windows; segments shorter than `min_segment` seconds are dropped. A window
without a score (none of its frames decoded) breaks a segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Windows:
    """Scores of a video's windows.

    starts, ends: (W,) window bounds in seconds; slots: (W, 2) the time each stands for;
    scores: (W, C) probabilities (NaN rows: the window has no decoded frame); labels: C names.
    """

    starts: np.ndarray
    ends: np.ndarray
    slots: np.ndarray
    scores: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        count = len(self.starts)
        if not (len(self.ends) == len(self.slots) == len(self.scores) == count):
            raise ValueError("starts, ends, slots and scores must have one row per window")
        if self.scores.ndim != 2 or self.scores.shape[1] != len(self.labels):
            raise ValueError(f"scores must be (windows, {len(self.labels)}); got {self.scores.shape}")


@dataclass(frozen=True)
class Segment:
    """`label` from `start` to `end` seconds, with `score` (mean probability of the label)."""

    start: float
    end: float
    label: str
    score: float

    @property
    def length(self) -> float:
        return self.end - self.start


def top_labels(windows: Windows, threshold: float, background: str | None = None) -> list[int | None]:
    """Per window: the index of its counted top label, or None (no score, below threshold,
    or the background label). Ties go to the first label."""
    out: list[int | None] = []
    for row in windows.scores:
        if not np.all(np.isfinite(row)):
            out.append(None)
            continue
        best = int(np.argmax(row))
        counted = row[best] >= threshold and windows.labels[best] != background
        out.append(best if counted else None)
    return out


def find_segments(
    windows: Windows, *, threshold: float = 0.0, min_segment: float = 0.0, background: str | None = None
) -> list[Segment]:
    """Segments in time order (see the module docstring)."""
    tops = top_labels(windows, threshold, background)
    segments: list[Segment] = []
    i = 0
    while i < len(tops):
        label = tops[i]
        if label is None:
            i += 1
            continue
        j = i
        while j + 1 < len(tops) and tops[j + 1] == label:
            j += 1
        start, end = float(windows.slots[i][0]), float(windows.slots[j][1])
        score = float(np.mean(windows.scores[i : j + 1, label]))
        if end - start >= min_segment - 1e-9:
            segments.append(Segment(start, end, windows.labels[label], score))
        i = j + 1
    return segments


def time_per_label(segments: Sequence[Segment]) -> dict[str, float]:
    """Seconds covered by each label's segments (labels without any left out)."""
    totals: dict[str, float] = {}
    for segment in segments:
        totals[segment.label] = totals.get(segment.label, 0.0) + segment.length
    return totals
