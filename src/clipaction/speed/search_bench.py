"""`clipaction bench --search`: footage-search speed, recall and size at scale, on generated
clustered unit vectors of a model's dimension (no video, no model: the encoder's cost is
`clipaction bench`'s; this measures the table).

Per size: write time, bytes per window on disk (table and ANN index), exact-scan latency,
ANN index build time, then warm query latency p50/p99 and recall@10 against an exact numpy
search, for the settings `clipaction.lookup.ann` picks and a few others around them.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Windows per generated "video" (an hour at one window a second).
_PER_VIDEO = 3600


def clustered_vectors(rows: int, dim: int, clusters: int, seed: int, spread: float = 0.75) -> np.ndarray:
    """(rows, dim) float32 unit vectors around `clusters` random centres (cosine to the centre
    about 1 / sqrt(1 + spread^2)), like windows of many scenes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((rows, dim), np.float32)
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        noise = rng.standard_normal((n, dim)).astype(np.float32) * (spread / np.sqrt(dim))
        part = centres[rng.integers(clusters, size=n)] + noise
        out[start : start + n] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _write_table(db: Any, vectors: np.ndarray) -> Any:
    import pyarrow as pa

    from clipaction.lookup.store import TABLE, window_schema

    dim = vectors.shape[1]
    table = db.create_table(TABLE, schema=window_schema(dim))
    for start in range(0, len(vectors), 200_000):
        part = vectors[start : start + 200_000]
        ids = np.arange(start, start + len(part))
        table.add(
            pa.table(
                {
                    "video": pa.array([f"bench/{i:05d}.mp4" for i in ids // _PER_VIDEO]),
                    "key": pa.array([f"{i:05d}" for i in ids // _PER_VIDEO]),
                    "start": pa.array((ids % _PER_VIDEO).astype(np.float64)),
                    "end": pa.array((ids % _PER_VIDEO + 2).astype(np.float64)),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1), pa.float32()), dim),
                },
                schema=window_schema(dim),
            )
        )
    return table


def _row_id(video: str, start: float) -> int:
    return int(video[6:11]) * _PER_VIDEO + int(start)


def _exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    best = [np.empty(0, np.int64)] * len(queries)
    scores_best = [np.empty(0, np.float32)] * len(queries)
    for start in range(0, len(vectors), 200_000):
        scores = queries @ vectors[start : start + 200_000].T
        for q in range(len(queries)):
            top = np.argpartition(-scores[q], k)[:k]
            ids = np.concatenate([best[q], top + start])
            values = np.concatenate([scores_best[q], scores[q, top]])
            keep = np.argsort(-values)[:k]
            best[q], scores_best[q] = ids[keep], values[keep]
    return [set(ids.tolist()) for ids in best]


def _latencies(search: Any, queries: np.ndarray, warm: int = 10) -> tuple[list[float], list[list[Any]]]:
    for q in queries[:warm]:
        search(q)
    times, results = [], []
    for q in queries:
        start = time.perf_counter()
        results.append(search(q))
        times.append(time.perf_counter() - start)
    return times, results


def _summary(times: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def bench_size(rows: int, dim: int, queries: int, folder: Path, seed: int = 0) -> dict[str, Any]:
    """Every figure for one table size (see the module docstring)."""
    from clipaction.lookup import ann
    from clipaction.lookup.query import nearest
    from clipaction.lookup.store import import_lancedb

    clusters = max(10, rows // 500)
    vectors = clustered_vectors(rows, dim, clusters, seed)
    # queries: near the same centres but further out, as a sentence sits apart from the frames
    probes = clustered_vectors(queries, dim, clusters, seed, spread=1.5)
    db = import_lancedb().connect(str(folder))
    start = time.perf_counter()
    table = _write_table(db, vectors)
    result: dict[str, Any] = {"rows": rows, "dim": dim, "clusters": clusters, "queries": queries}
    result["write_seconds"] = round(time.perf_counter() - start, 2)
    table_bytes = _folder_bytes(folder)
    truth = _exact_top(vectors, probes, 10)
    del vectors

    def run(exact: bool, vector_index: dict | None, params: dict | None = None, n: int | None = None) -> dict:
        def search(q: np.ndarray) -> list:
            if params is None:
                return nearest(table, q, 10, vector_index=vector_index, exact=exact)
            query = table.search(q).distance_type(ann.METRIC).limit(10).select(["video", "start"])
            query = query.nprobes(params["nprobes"]).refine_factor(params["refine_factor"])
            found = query.to_arrow()
            return [(v, s) for v, s in zip(found["video"].to_pylist(), found["start"].to_pylist())]

        times, found = _latencies(search, probes[:n] if n else probes)
        recalls = []
        for hits, want in zip(found, truth):
            got = {_row_id(h.video, h.start) if hasattr(h, "video") else _row_id(*h) for h in hits}
            recalls.append(len(got & want) / 10)
        return {**_summary(times), "recall_at_10": round(float(np.mean(recalls)), 4)}

    result["exact"] = run(True, None, n=min(queries, 50 if rows > 200_000 else queries))
    built = ann.build_vector_index(table, rows, dim)
    result["index"] = built
    result["index_build_seconds"] = built["seconds"]
    total = _folder_bytes(folder)
    result["bytes_per_window"] = {
        "table": round(table_bytes / rows, 1),
        "with_index": round(total / rows, 1),
        "vector_float32": 4 * dim,
    }
    chosen = ann.query_params(built)
    result["ann"] = {**run(False, built), **chosen}
    sweep = []
    for nprobes in sorted({max(1, chosen["nprobes"] // 2), chosen["nprobes"], chosen["nprobes"] * 2}):
        for refine in sorted({10, chosen["refine_factor"], 30}):
            params = {"nprobes": nprobes, "refine_factor": refine}
            sweep.append({**params, **run(False, built, params, n=min(queries, 100))})
    result["sweep"] = sweep
    return result


def run_search_bench(sizes: Sequence[int] = (100_000, 1_000_000), *, dim: int = 512, queries: int = 200) -> dict:
    """`clipaction bench --search`: one entry per table size, and the targets."""
    from clipaction.lookup import ann
    from clipaction.outputs import now_iso
    from clipaction.speed.run import machine_facts

    results = []
    for rows in sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"clipaction-search-bench-{rows}-"))
        try:
            log.info("search bench: %d rows", rows)
            results.append(bench_size(int(rows), dim, queries, folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return {
        "task": "search-bench",
        "sizes": results,
        "targets": {"p50_ms": 50, "p99_ms": 200, "recall_at_10": 0.95},
        "exact_below_rows": ann.EXACT_BELOW,
        "machine": machine_facts(),
        "created_at": now_iso(),
    }


def parse_sizes(text: str) -> tuple[int, ...]:
    """`"100000,1e6"` -> (100000, 1000000); a ConfigError naming `search_sizes` otherwise."""
    from clipaction.errors import ConfigError

    try:
        sizes = tuple(int(float(part)) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(size < 1000 for size in sizes):
        raise ConfigError(f"must be comma-separated sizes of at least 1000; got {text!r}", setting="search_sizes")
    return sizes
