"""The video record: one video, its label, where it came from."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipaction.errors import DataError

log = logging.getLogger(__name__)


class DatasetError(DataError):
    """A dataset cannot be read: a missing root or split file, a bad manifest, an unknown class.

    The message is one line a user can act on (it names the path or the valid values).
    """


@dataclass(frozen=True)
class VideoRecord:
    """One video. `label` indexes `VideoDataset.classes`; `path` is absolute."""

    path: Path
    label: int
    class_name: str


@dataclass(frozen=True)
class MissingVideo:
    """A video a split list or manifest names that could not be found or was refused."""

    path: str
    error: str


@dataclass(frozen=True)
class VideoDataset:
    """Videos of one split/subset, restricted to `classes` (labels index this tuple)."""

    name: str
    classes: tuple[str, ...]
    records: tuple[VideoRecord, ...]
    missing: tuple[MissingVideo, ...] = ()
    split: int | None = None
    subset: str | None = None

    def __len__(self) -> int:
        return len(self.records)


def finished_dataset(
    config,
    classes: Sequence[str],
    records: Sequence[VideoRecord],
    missing: Sequence[MissingVideo],
    duplicates: Sequence[str] = (),
) -> VideoDataset:
    """The VideoDataset of a split-list loader, after logging what it skipped (`config` is the
    DatasetConfig it was loaded with)."""
    if duplicates:
        log.warning("%d duplicated list entries kept once, e.g. %s", len(duplicates), duplicates[0])
    if missing:
        first = missing[0]
        log.warning("%d listed videos missing or refused, e.g. %s (%s)", len(missing), first.path, first.error)
    return VideoDataset(
        name=config.name,
        classes=tuple(classes),
        records=tuple(records),
        missing=tuple(missing),
        split=config.split,
        subset=config.subset,
    )
