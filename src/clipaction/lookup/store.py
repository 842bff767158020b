"""The index on disk: a LanceDB table of window embeddings and a JSON manifest beside it.

Layout of an index folder IDX::

    IDX/index.json            the manifest: model, sampling, every file's status
    IDX/windows.lance/        the table: video, key, start, end, vector (float32, normalised)
    IDX/shards/I-of-N/        what `--shard I/N` wrote: the same two, for its share

Every write is one LanceDB commit (a new table version), and a reader works on the version it
opened, so it sees a video's old rows or its new ones, never a mix: new videos are appended, and
a changed video's rows are replaced by one `merge_insert` that also deletes its stale rows. The
manifest is written after each commit (temp file + rename); a video is marked "writing" before
its commit, so a run stopped between the two replaces its rows instead of appending them twice.

Shards never write the main table: LanceDB commits are safe between processes on a local disk,
but not on every shared file system (object stores need an external commit lock), so each shard
writes its own table, `search` reads the main table and the shards' tables together, and the
next run without `--shard` merges the finished shards into the main table.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipaction.config import stable_hash
from clipaction.errors import ConfigError, DataError
from clipaction.outputs import now_iso, write_text_atomic

if TYPE_CHECKING:
    import pyarrow as pa

    from clipaction.models.base import Backend

log = logging.getLogger(__name__)

MANIFEST = "index.json"
TABLE = "windows"
FORMAT = "clipaction-index"
FORMAT_VERSION = 1
SHARDS = "shards"


class NotAnIndexError(DataError):
    """A folder that holds no clipaction index (or a damaged manifest)."""


class IndexModelError(ConfigError):
    """An index opened with another model than the one that built it."""


def import_lancedb() -> Any:
    """The lancedb module, or a one-line ConfigError naming the extra to install."""
    os.environ.setdefault("LANCEDB_LOG", "error")  # its Rust logger warns on every new table and query
    try:
        import lancedb
    except ImportError:
        raise ConfigError(
            'footage search needs LanceDB: pip install -e ".[search]" (or "clipaction[search]")', setting="index"
        ) from None
    return lancedb


def model_facts(backend: Backend, dim: int | None) -> dict[str, Any]:
    """What the manifest records about the model: enough to refuse another one and to reload
    this one (`config`, None for a stand-in not built from a ModelConfig)."""
    import dataclasses

    scoring = backend.scoring()
    config = backend.config
    return {
        "fingerprint": stable_hash(backend.fingerprint, 32),
        "name_or_path": config.name_or_path if config is not None else None,
        "config": dataclasses.asdict(config) if config is not None else None,
        "family": backend.family,
        "kind": backend.kind,
        "dim": int(dim) if dim is not None else None,
        "score": scoring.kind,
        "logit_scale": float(scoring.scale),
        "logit_bias": float(scoring.bias),
    }


def check_model(manifest: dict[str, Any], backend: Backend, where: Path) -> None:
    """An IndexModelError (one line) when `backend` is not the model that built the index."""
    facts = manifest["model"]
    if stable_hash(backend.fingerprint, 32) != facts["fingerprint"]:
        built = facts.get("name_or_path") or f"a {facts.get('family')} stand-in"
        given = backend.config.name_or_path if backend.config is not None else f"a {backend.family} stand-in"
        raise IndexModelError(
            f"the index {where} holds embeddings of {built} ({facts.get('family')}); {given} is another model: "
            "search it with its own model, or index into another folder",
            setting="model.name_or_path",
        )


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of the index in `folder`; NotAnIndexError when it holds none."""
    folder = Path(folder).expanduser()
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotAnIndexError(f"{folder} is not a clipaction index (no {MANIFEST})", setting="index") from None
    except (OSError, ValueError) as error:
        raise NotAnIndexError(f"{path} cannot be read as an index manifest: {error}", setting="index") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotAnIndexError(f"{folder} is not a clipaction index ({MANIFEST} is not one)", setting="index")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise NotAnIndexError(f"{folder} was written by a newer clipaction (format {manifest['format_version']})")
    return manifest


def check_new_folder(folder: Path) -> None:
    """A NotAnIndexError unless `folder` is an index, absent, or an empty folder."""
    if (folder / MANIFEST).is_file():
        return
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise NotAnIndexError(
            f"{folder} is not a clipaction index and not empty: give a new or empty folder", setting="index"
        )


def window_schema(dim: int) -> pa.Schema:
    """The table's columns: one row per window, its embedding a fixed-size list of `dim` float32."""
    import pyarrow as pa

    return pa.schema(
        [
            ("video", pa.string()),
            ("key", pa.string()),
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


@dataclass
class VideoRows:
    """One video's rows: `starts`/`ends` (W,) seconds and `vectors` (W, D) float32, normalised."""

    video: str
    key: str
    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    facts: dict[str, Any] = field(default_factory=dict)  # the manifest entry's other fields

    def arrow(self, dim: int) -> pa.Table:
        import pyarrow as pa

        n = len(self.starts)
        flat = pa.array(np.ascontiguousarray(self.vectors, dtype=np.float32).reshape(-1), pa.float32())
        return pa.table(
            {
                "video": pa.array([self.video] * n, pa.string()),
                "key": pa.array([self.key] * n, pa.string()),
                "start": pa.array(self.starts, pa.float64()),
                "end": pa.array(self.ends, pa.float64()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
            },
            schema=window_schema(dim),
        )


def sql_text(value: str) -> str:
    """`value` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _in(videos: Sequence[str]) -> str:
    return f"video IN ({', '.join(sql_text(v) for v in videos)})"


class IndexStore:
    """One index folder (or one shard's folder): its manifest and its table. `manifest["files"]`
    maps each video path to {status: indexed | skipped | writing, key, windows, reason...}."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self._db = import_lancedb().connect(str(folder))
        self._table: Any = None

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: str | Path) -> IndexStore:
        """An existing index (NotAnIndexError when `folder` holds none)."""
        folder = Path(folder).expanduser()
        return cls(folder, read_manifest(folder))

    @classmethod
    def open_or_create(
        cls, folder: str | Path, model: dict[str, Any], sampling: dict[str, float], *, shard: str | None = None
    ) -> IndexStore:
        """The index in `folder`, created when the folder is absent or empty; a ConfigError when
        it holds something else, or an index of other sampling settings."""
        folder = Path(folder).expanduser()
        if (folder / MANIFEST).is_file():
            store = cls.open(folder)
            if store.manifest["sampling"] != sampling:
                built = ", ".join(f"{k} {v:g}" for k, v in store.manifest["sampling"].items())
                raise ConfigError(
                    f"the index {folder} samples windows at {built}; give the same settings or another index folder",
                    setting="index",
                )
            return store
        check_new_folder(folder)
        folder.mkdir(parents=True, exist_ok=True)
        now = now_iso()
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": model,
            "sampling": sampling,
            "shard": shard,
            "complete": False,
            "created_at": now,
            "updated_at": now,
            "vector_index": None,
            "files": {},
        }
        store = cls(folder, manifest)
        store.save()
        return store

    @property
    def dim(self) -> int:
        dim = self.manifest["model"].get("dim")
        if dim is None:
            raise RuntimeError("the index has no rows yet, so no dimension")
        return int(dim)

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.manifest["files"]

    def table(self) -> Any:
        """The LanceDB table at its latest version (created empty when missing)."""
        if self._table is None:
            if TABLE in self._db.table_names():
                self._table = self._db.open_table(TABLE)
            else:
                self._table = self._db.create_table(TABLE, schema=window_schema(self.dim), exist_ok=True)
        return self._table

    def has_table(self) -> bool:
        return TABLE in self._db.table_names()

    def save(self) -> None:
        self.manifest["updated_at"] = now_iso()
        text = json.dumps(self.manifest, indent=1, allow_nan=False)
        write_text_atomic(self.folder / MANIFEST, text + "\n")

    # -- writing ----------------------------------------------------------------------------

    def write(self, videos: Sequence[VideoRows]) -> None:
        """Store these videos' rows in one commit each for the new and the replaced ones, then
        the manifest. A video the table may hold rows of (indexed before, or "writing" when a run
        stopped) is replaced; the others are appended."""
        if not videos:
            return
        import pyarrow as pa

        if self.manifest["model"].get("dim") is None:  # a new index learns its dimension from its first rows
            width = next((v.vectors.shape[1] for v in videos if len(v.starts)), None)
            if width is None:
                self._note(videos)
                return
            self.manifest["model"]["dim"] = int(width)
        known = {v.video for v in videos if v.video in self.files and self.files[v.video].get("status") != "skipped"}
        replaced = [v for v in videos if v.video in known]
        for rows in replaced:
            self.files[rows.video]["status"] = "writing"
        added = [v for v in videos if v.video not in known]
        for rows in added:
            self.files[rows.video] = {"status": "writing", "key": rows.key}
        self.save()
        table = self.table()
        if added:
            table.add(pa.concat_tables([v.arrow(self.dim) for v in added]))
        if replaced:
            (
                table.merge_insert(["video", "start"])
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(_in([v.video for v in replaced]))
                .execute(pa.concat_tables([v.arrow(self.dim) for v in replaced]))
            )
        self._note(videos)

    def _note(self, videos: Sequence[VideoRows]) -> None:
        for rows in videos:
            self.files[rows.video] = {
                "status": "indexed",
                "key": rows.key,
                "windows": len(rows.starts),
                **rows.facts,
                "indexed_at": now_iso(),
            }
        self.save()

    def skip(self, video: str, key: str | None, reason: str) -> None:
        """Record `video` as skipped (its rows, if any, are dropped first)."""
        if video in self.files and self.files[video].get("status") != "skipped":
            self.drop([video], save=False)
        self.files[video] = {"status": "skipped", "key": key, "reason": reason, "checked_at": now_iso()}
        self.save()

    def drop(self, videos: Sequence[str], *, save: bool = True) -> None:
        """Delete these videos' rows (one commit) and their manifest entries."""
        if not videos:
            return
        if self.has_table():
            for start in range(0, len(videos), 500):
                self.table().delete(_in(videos[start : start + 500]))
        for video in videos:
            self.files.pop(video, None)
        if save:
            self.save()

    def rows_of(self, videos: Sequence[str]) -> pa.Table:
        """Every row of these videos (vector included)."""
        return self.table().search().where(_in(videos)).limit(None).to_arrow()

    def count(self) -> int:
        return int(self.table().count_rows()) if self.has_table() else 0

    # -- shards -----------------------------------------------------------------------------

    def shard_folder(self, name: str) -> Path:
        return self.folder / SHARDS / name

    def shards(self) -> Iterator[IndexStore]:
        """The shard indexes written into this one's folder, in name order."""
        root = self.folder / SHARDS
        if not root.is_dir():
            return
        for folder in sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()):
            yield IndexStore.open(folder)

    def merge_shard(self, shard: IndexStore, batch: int = 64) -> int:
        """Copy a finished shard's videos into this table (replacing any this holds), then
        delete the shard's folder; returns the videos merged. Safe to repeat if stopped."""
        done = [v for v, entry in shard.files.items() if entry.get("status") == "indexed"]
        for start in range(0, len(done), batch):
            names = done[start : start + batch]
            table = shard.rows_of(names)
            videos = []
            for name in names:
                mask = np.asarray(table["video"].to_numpy(zero_copy_only=False) == name)
                part = table.filter(mask)
                order = np.argsort(part["start"].to_numpy())
                vectors = np.stack(part["vector"].to_numpy(zero_copy_only=False)) if part.num_rows else None
                entry = {k: v for k, v in shard.files[name].items() if k not in ("status", "key", "windows")}
                videos.append(
                    VideoRows(
                        name,
                        shard.files[name]["key"],
                        part["start"].to_numpy()[order],
                        part["end"].to_numpy()[order],
                        vectors[order] if vectors is not None else np.zeros((0, self.dim), np.float32),
                        entry,
                    )
                )
            self.write(videos)
        for name, entry in shard.files.items():
            if entry.get("status") == "skipped":
                self.files[name] = entry
        self.save()
        shutil.rmtree(shard.folder)
        return len(done)
