"""`clipaction index`: videos -> one row per window in the index's table, incrementally.

Windows are sampled and encoded exactly as `timeline` does it (`timeline.features`), through
the same time-keyed cache, so a video the timeline saw at the same fps encodes nothing. A run
adds new files, replaces changed ones (their content key differs), drops files that no longer
exist, and leaves the rest alone; videos are committed a batch at a time (`commit_rows`), so a
stopped run loses at most one batch and resumes from the cache. Unreadable files are skipped and
listed with their reasons in the manifest; the run goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from clipaction.config import DEFAULT_MODEL, EngineConfig, ModelConfig
from clipaction.errors import ClipactionError, ConfigError
from clipaction.features.cache import FeatureCache, video_key
from clipaction.lookup import ann
from clipaction.lookup.config import IndexConfig
from clipaction.lookup.store import IndexStore, VideoRows, check_model, check_new_folder, model_facts
from clipaction.timeline.config import TimelineConfig
from clipaction.timeline.features import PassStats, window_features
from clipaction.video.decode import VideoDecodeError

if TYPE_CHECKING:
    from clipaction.features.shard import Shard
    from clipaction.models.base import Backend

log = logging.getLogger(__name__)

#: Rows gathered before a commit: small enough that a stop loses little, large enough that a
#: library of short clips is not thousands of table versions.
COMMIT_ROWS = 4096


@dataclass
class IndexReport:
    """What one `build_index` run did."""

    index: Path
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: int = 0
    dropped: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    merged: int = 0
    rows: int = 0
    vector_index: dict[str, Any] | None = None
    shard: str | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "index": str(self.index),
            "shard": self.shard,
            "added": len(self.added),
            "replaced": len(self.replaced),
            "unchanged": self.unchanged,
            "dropped": len(self.dropped),
            "skipped": dict(self.skipped),
            "merged_from_shards": self.merged,
            "rows": self.rows,
            "vector_index": self.vector_index,
            "seconds": round(self.seconds, 3),
        }


def video_rows(
    path: str, key: str, backend: Backend, config: TimelineConfig, cache: FeatureCache | None, *, progress: bool = False
) -> VideoRows:
    """One video's windows as rows: (W,) starts and ends clipped to where the stream really
    ends, (W, D) normalised float32 vectors; windows none of whose frames decoded are left out."""
    stats = PassStats()
    found: dict[int, torch.Tensor] = {}
    for index, feature in window_features(path, backend, config, cache, stats, progress=progress):
        if feature is not None:
            found[index] = feature.reshape(-1).float()
    grid, duration = stats.grid, stats.duration
    if grid is None:  # window_features sets it before its first window
        raise RuntimeError(f"no time grid for {path}")
    kept = [i for i in sorted(found) if i == 0 or grid.bounds(i)[0] < duration]
    bounds = np.array([grid.bounds(i) for i in kept], dtype=np.float64).reshape(-1, 2)
    if kept:
        vectors = torch.stack([found[i] for i in kept]).numpy().astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    else:
        vectors = np.zeros((0, 0), np.float32)
    facts = {"duration": round(float(duration), 3), "warnings": list(stats.warnings)}
    return VideoRows(path, key, bounds[:, 0], bounds[:, 1].clip(max=max(duration, 0.0)), vectors, facts)


def _backend(model: str | ModelConfig | Backend | None, known: dict[str, Any] | None) -> Backend:
    """The model to index with: the one given, else the index's own, else the default."""
    from clipaction.models import load_backend

    if model is None:
        if known is not None and known.get("config") is None:
            raise ConfigError(
                "this index was built with a model given in Python; pass the same one", setting="model.name_or_path"
            )
        config = ModelConfig(**known["config"]) if known is not None else ModelConfig(name_or_path=DEFAULT_MODEL)
        return load_backend(config)
    if isinstance(model, str):
        return load_backend(ModelConfig(name_or_path=model))
    if isinstance(model, ModelConfig):
        return load_backend(model)
    return model


def _known(index: Path) -> dict[str, Any] | None:
    from clipaction.lookup.store import MANIFEST, read_manifest

    return read_manifest(index) if (index / MANIFEST).is_file() else None


def _settings(known: dict[str, Any] | None, fps: float | None, window: float | None, stride: float | None) -> dict:
    base = known["sampling"] if known is not None else IndexConfig().sampling()
    given = {"fps": fps, "window": window, "stride": stride}
    return {**base, **{k: v for k, v in given.items() if v is not None}}


def build_index(
    inputs: Sequence[str | Path],
    index: str | Path,
    *,
    model: str | ModelConfig | Backend | None = None,
    fps: float | None = None,
    window: float | None = None,
    stride: float | None = None,
    cache_dir: str | None = None,
    workers: int = 2,
    shard: Shard | None = None,
    engine: EngineConfig | None = None,
    commit_rows: int = COMMIT_ROWS,
    progress: bool = False,
) -> IndexReport:
    """Index the videos of `inputs` (files or folders) into the index folder `index` (created
    when new). Settings left None are the index's own (a new one: `IndexConfig`'s); a model or
    sampling other than the index's is a ConfigError. `shard` (I of N) indexes that share into
    the index's shard folder; `engine` ray fills the feature cache on a Ray cluster first."""
    from clipaction.classify.run import open_cache
    from clipaction.data.folder import video_files

    started = time.perf_counter()
    folder = Path(index).expanduser()
    check_new_folder(folder)  # before the model loads
    known = _known(folder)
    sampling = _settings(known, fps, window, stride)
    backend = _backend(model, known["model"] if known else None)
    config = IndexConfig(
        fps=sampling["fps"],
        window=sampling["window"],
        stride=sampling["stride"],
        chunk_seconds=sampling["chunk_seconds"],
        model=backend.config or ModelConfig(),
        cache_dir=cache_dir,
        workers=workers,
    )
    facts = model_facts(backend, known["model"]["dim"] if known else None)
    main = IndexStore.open_or_create(folder, facts, config.sampling())
    check_model(main.manifest, backend, folder)
    report = IndexReport(folder, shard=str(shard) if shard else None)
    paths = [str(Path(p).expanduser().absolute()) for p in video_files(inputs)]
    if shard is not None and shard.count > 1:
        from clipaction.features.shard import select_shard

        paths = select_shard(paths, shard.index, shard.count)
        target = IndexStore.open_or_create(
            main.shard_folder(f"{shard.index}-of-{shard.count}"), main.manifest["model"], config.sampling(),
            shard=str(shard),
        )  # fmt: skip
        target.manifest["complete"] = False  # until this run ends: the merging run leaves it alone
        target.save()
    else:
        target = main
        report.merged = _merge_shards(main)
        gone = [v for v in main.files if not Path(v).exists()]
        main.drop(gone)
        report.dropped = gone
    todo = _todo(paths, main, target, report)
    cache = open_cache(cache_dir, backend)
    if engine is not None and engine.name == "ray" and todo:
        from clipaction.lookup.ray_fill import fill_cache_ray

        fill_cache_ray([p for p, _ in todo], backend, config, engine)
    _encode_all(todo, backend, config, cache, target, report, commit_rows=commit_rows, progress=progress)
    target.manifest["complete"] = True
    if target is main:
        _maintain_vector_index(main, report)
    target.save()
    report.rows = target.count()
    report.vector_index = main.manifest.get("vector_index")
    report.seconds = time.perf_counter() - started
    return report


def _todo(paths: Sequence[str], main: IndexStore, target: IndexStore, report: IndexReport) -> list[tuple[str, str]]:
    """(path, content key) of the videos to encode; unreadable files are recorded as skipped."""
    todo = []
    for path in dict.fromkeys(paths):
        try:
            key = video_key(path)
        except OSError as error:
            reason = error.strerror or str(error)
            target.skip(path, None, reason)
            report.skipped[path] = reason
            continue
        entry = target.files.get(path) or main.files.get(path)
        if entry is not None and entry.get("key") == key and entry.get("status") in ("indexed", "skipped"):
            report.unchanged += 1
            if entry.get("status") == "skipped":
                report.skipped[path] = entry.get("reason", "")
            continue
        (report.replaced if entry is not None and entry.get("status") != "skipped" else report.added).append(path)
        todo.append((path, key))
    return todo


def _encode_all(
    todo: Sequence[tuple[str, str]],
    backend: Backend,
    config: IndexConfig,
    cache: FeatureCache,
    target: IndexStore,
    report: IndexReport,
    *,
    commit_rows: int,
    progress: bool,
) -> None:
    import av

    timeline = config.timeline()
    pending: list[VideoRows] = []
    bar = tqdm(todo, desc="index", unit="video", disable=not progress, dynamic_ncols=True)
    for path, key in bar:
        try:
            rows = video_rows(path, key, backend, timeline, cache)
        except (ClipactionError, OSError, av.error.FFmpegError) as error:
            reason = error.reason if isinstance(error, VideoDecodeError) else str(error)
            log.warning("skipped %s: %s", path, reason)
            target.skip(path, key, reason)
            report.skipped[path] = reason
            continue
        pending.append(rows)
        if sum(len(r.starts) for r in pending) >= commit_rows:
            target.write(pending)
            pending = []
    target.write(pending)


def _merge_shards(main: IndexStore) -> int:
    merged = 0
    for shard in main.shards():
        if shard.manifest.get("complete"):
            merged += main.merge_shard(shard)
        else:
            log.warning("shard %s is not finished: left for a later run (search reads it meanwhile)", shard.folder)
    return merged


def _maintain_vector_index(main: IndexStore, report: IndexReport) -> None:
    rows = main.count()
    if ann.wants_rebuild(main.manifest.get("vector_index"), rows):
        main.manifest["vector_index"] = ann.build_vector_index(main.table(), rows, main.dim)
    elif rows < ann.EXACT_BELOW and main.manifest.get("vector_index") is not None:
        main.manifest["vector_index"] = None  # searched exactly again; the stale index is ignored
