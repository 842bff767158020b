"""A deterministic 1/N share of a dataset's videos, by content (`--shard I/N`).

A video's shard follows from its bytes alone, never its path, so the same video lands in the
same shard on every machine and wherever it is mounted; N shards run anywhere into one shared
cache directory write exactly the entries one unsharded run writes.

The shard key is the file's size and a SHA-256 of its first and last 64 KiB (`shard_key`), not
the cache's full-content key (`features.cache.video_key`): every shard must key every video to
pick its share, and reading 128 KiB instead of the whole file keeps N shards from reading the
dataset N times over; each shard then hashes in full only its own videos. A file that cannot be
read goes to the shard of its path as given, so exactly one shard reports it as a failure.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from clipaction.errors import ConfigError

P = TypeVar("P", str, Path)


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (1-based, as `--shard I/N` writes it)."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ConfigError(f"must be I/N with 1 <= I <= N; got {self}", setting="shard")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """`"2/8"` -> Shard(2, 8); a ConfigError naming `shard` for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise ConfigError(f"must be I/N, e.g. 1/4; got {text!r}", setting="shard")
    return Shard(int(match[1]), int(match[2]))


def _bucket(text: str, count: int) -> int:
    return int(hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16], 16) % count + 1


#: Bytes read from each end of a file for its shard key.
EDGE = 64 * 1024


def shard_key(path: str | Path) -> str:
    """SHA-256 (hex) of the file's size and its first and last `EDGE` bytes: a key of its
    content that costs two short reads. OSError when the file cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(str(size).encode() + b"\0" + handle.read(EDGE))
        if size > EDGE:
            handle.seek(max(EDGE, size - EDGE))
            digest.update(handle.read(EDGE))
    return digest.hexdigest()


def shard_of(key: str, count: int) -> int:
    """The shard (1..count) of the video whose shard key (`shard_key`) is `key`."""
    if count < 1:
        raise ConfigError(f"the shard count must be >= 1; got {count}", setting="shard")
    return _bucket("key:" + key, count)


def select_shard(paths: Sequence[P], index: int, count: int) -> list[P]:
    """The videos of `paths` in shard `index` of `count` (1-based), in their order, by their
    `shard_key`; an unreadable file goes to the shard of its path."""
    shard = Shard(index, count)
    if shard.count == 1:
        return list(paths)
    chosen = []
    for path in paths:
        try:
            bucket = shard_of(shard_key(path), shard.count)
        except OSError:
            bucket = _bucket("path:" + str(path), shard.count)
        if bucket == shard.index:
            chosen.append(path)
    return chosen
