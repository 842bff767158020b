"""Window hits -> moments (pure: no model, no table).

Windows overlap (a 2 s window every second), so one event is several neighbouring hits. Taken
best first, each hit not yet part of a moment starts one, and the moment grows over the
neighbouring hits of the same video (overlapping or touching) that score within `margin` of
its best: a long match becomes one moment spanning it, and a weaker stretch next to it stays
apart. A moment's score is its best window's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

#: Cosine below a moment's best at which a neighbouring window stops joining it.
MARGIN = 0.05
#: Seconds of gap still counted as touching (windows cut at the video's end, rounding).
_TOUCH = 1e-6


@dataclass(frozen=True)
class Hit:
    """One window: its video, content key, span (seconds) and cosine to the query."""

    video: str
    key: str
    start: float
    end: float
    score: float


@dataclass(frozen=True)
class Moment:
    """Merged windows of one video: span (seconds), score (the best cosine), the windows merged,
    and `probability` (sigmoid-scored families only, else None)."""

    video: str
    start: float
    end: float
    score: float
    windows: int = 1
    probability: float | None = None

    def with_probability(self, probability: float) -> Moment:
        return dataclasses.replace(self, probability=float(probability))

    def as_dict(self) -> dict[str, object]:
        """The JSON form: video, start, end, score (+ probability when the family has one)."""
        row: dict[str, object] = {
            "video": self.video,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": round(self.score, 6),
        }
        if self.probability is not None:
            row["probability"] = round(self.probability, 6)
        return row


def merge_hits(hits: Sequence[Hit], margin: float = MARGIN) -> list[Moment]:
    """Moments from `hits` (any order), best first (ties: by video, then start)."""
    by_video: dict[str, list[Hit]] = {}
    for hit in hits:
        by_video.setdefault(hit.video, []).append(hit)
    for rows in by_video.values():
        rows.sort(key=lambda h: h.start)
    position = {id(h): i for rows in by_video.values() for i, h in enumerate(rows)}
    taken: set[int] = set()
    moments = []
    for seed in sorted(hits, key=lambda h: (-h.score, h.video, h.start)):
        if id(seed) in taken:
            continue
        rows = by_video[seed.video]
        first = last = position[id(seed)]
        taken.add(id(seed))
        start, end = seed.start, seed.end
        floor = seed.score - margin
        while first > 0 and _joins(rows[first - 1], start, floor, taken):
            first -= 1
            taken.add(id(rows[first]))
            start = min(start, rows[first].start)
        while last + 1 < len(rows) and _joins_after(rows[last + 1], end, floor, taken):
            last += 1
            taken.add(id(rows[last]))
            end = max(end, rows[last].end)
        moments.append(Moment(seed.video, start, end, seed.score, last - first + 1))
    return moments


def _joins(hit: Hit, start: float, floor: float, taken: set[int]) -> bool:
    return id(hit) not in taken and hit.score >= floor and hit.end + _TOUCH >= start


def _joins_after(hit: Hit, end: float, floor: float, taken: set[int]) -> bool:
    return id(hit) not in taken and hit.score >= floor and hit.start <= end + _TOUCH
