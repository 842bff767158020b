"""Which classes and videos the few-shot stages train on. Pure functions of their inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from clipaction.data.records import VideoRecord


def weakest_classes(accuracy: Mapping[str, float | None], n: int, order: Sequence[str]) -> list[str]:
    """The `n` classes with the lowest accuracy, returned in `order`'s order. Ties go to the
    class that comes first in `order`; classes without a score (NaN/None) are never chosen."""
    scored = [
        (score, position, name)
        for position, name in enumerate(order)
        if (score := accuracy.get(name)) is not None and not math.isnan(score)
    ]
    chosen = {name for _, _, name in sorted(scored)[:n]}
    return [name for name in order if name in chosen]


def sample_shots(
    records: Sequence[VideoRecord], classes: Sequence[str], shots: int | str, seed: int
) -> tuple[list[VideoRecord], dict[str, int]]:
    """Up to `shots` records per class in `classes` ("all" takes every one), drawn without
    replacement with a generator seeded by `seed`. Returns the records (in input order) and the
    number taken per class; a class with fewer videos than `shots` gives all it has."""
    rng = np.random.default_rng(seed)
    taken: list[int] = []
    counts: dict[str, int] = {}
    for name in classes:
        members = [i for i, record in enumerate(records) if record.class_name == name]
        if shots == "all" or len(members) <= int(shots):
            picked = members
        else:
            picked = sorted(rng.choice(members, size=int(shots), replace=False).tolist())
        counts[name] = len(picked)
        taken.extend(picked)
    return [records[i] for i in sorted(taken)], counts
