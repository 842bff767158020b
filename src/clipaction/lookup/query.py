"""Searching an index: a sentence (or a moment's own embedding) -> the best moments.

A query vector (the normalised mean of its prompt templates' text features, encoded by the
index's own model) is matched against every window (exact below `ann.EXACT_BELOW` rows, else
the IVF_SQ index with re-ranking); the best `candidates` windows are merged into moments
(`moments.merge_hits`) and the top K returned, best first. Score: the cosine; SigLIP-family
models also give the sigmoid probability of their own logit scale and bias.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipaction.errors import CapabilityError, ConfigError, DataError
from clipaction.lookup import ann
from clipaction.lookup.moments import Hit, Moment, merge_hits
from clipaction.lookup.store import IndexStore, check_model, sql_text

if TYPE_CHECKING:
    from clipaction.models.base import Backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Like:
    """A query by example: the window of `video` that holds `seconds`."""

    video: str
    seconds: float


def parse_like(text: str) -> Like:
    """`"clips/a.mp4@12.5"` -> Like("clips/a.mp4", 12.5); a ConfigError naming `like` otherwise."""
    video, _, seconds = text.rpartition("@")
    try:
        value = float(seconds)
    except ValueError:
        value = float("nan")
    if not video or not np.isfinite(value) or value < 0:
        raise ConfigError(f"must be VIDEO@SECONDS, e.g. match.mp4@73.5; got {text!r}", setting="like")
    return Like(video, value)


def glob_sql(pattern: str) -> str:
    """A path glob as an SQL LIKE filter on `video` (`*` any run, `?` one character, a `[...]`
    set widened to one character: the glob itself is applied to the results); a glob without
    "/" matches the file name in any folder."""
    if "/" not in pattern and not pattern.startswith("*"):
        pattern = "*/" + pattern
    pattern = re.sub(r"\[[^\]]*\]", "?", pattern)
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = escaped.replace("*", "%").replace("?", "_")
    return f"video LIKE {sql_text(like)} ESCAPE '\\'"


def nearest(
    table: Any,
    vector: np.ndarray,
    k: int,
    *,
    where: str | None = None,
    vector_index: dict[str, Any] | None = None,
    exact: bool | None = None,
    columns: Sequence[str] = ("video", "key", "start", "end"),
) -> list[Hit]:
    """The `k` windows of `table` nearest to `vector` (D,) float32 (normalised), best first.
    Exact (every row scanned) when `exact`, or when None and the table has no ANN index or
    fewer than `ann.EXACT_BELOW` rows; else the index, probed as `ann.query_params` says."""
    rows = table.count_rows()
    if exact is None:
        exact = vector_index is None or rows < ann.EXACT_BELOW
    query = table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
    query = query.distance_type(ann.METRIC).limit(k).select(list(columns))
    if where:
        query = query.where(where, prefilter=True)
    if exact:
        query = query.bypass_vector_index()
    else:
        params = ann.query_params(vector_index or ann.index_params(rows, len(vector)))
        query = query.nprobes(params["nprobes"]).refine_factor(params["refine_factor"])
    found = query.to_arrow()
    scores = 1.0 - found["_distance"].to_numpy()
    return [
        Hit(str(video), str(key), float(start), float(end), float(score))
        for video, key, start, end, score in zip(
            found["video"].to_pylist(),
            found["key"].to_pylist(),
            found["start"].to_pylist(),
            found["end"].to_pylist(),
            scores,
        )
    ]


def _stores(index: str | Path) -> list[IndexStore]:
    main = IndexStore.open(index)
    return [main, *main.shards()]


def _resolve_model(main: IndexStore, model: str | Backend | None) -> Backend:
    from clipaction.config import ModelConfig
    from clipaction.models import load_backend

    facts = main.manifest["model"]
    if model is None:
        if facts.get("config") is None:
            raise ConfigError(
                f"the index {main.folder} was built with a model given in Python ({facts.get('family')}); pass it as model=",
                setting="model.name_or_path",
            )
        backend = load_backend(ModelConfig(**{**facts["config"], "device": "auto"}))
    elif isinstance(model, str):
        backend = load_backend(ModelConfig(name_or_path=model))
    else:
        backend = model
    check_model(main.manifest, backend, main.folder)
    return backend


def query_vector(backend: Backend, text: str, templates: Sequence[str], dim: int) -> np.ndarray:
    """(D,) float32 normalised: the mean of `text` in each template, as class texts are built."""
    from clipaction.classify.scoring import class_text_array

    features = class_text_array(backend, [text], templates)[0]
    if features.shape[0] != dim:
        raise CapabilityError(
            f"the {backend.family} model's text features ({features.shape[0]}) do not live in its window "
            f"features' space ({dim}): it cannot search an index",
            setting="model.name_or_path",
        )
    return features / max(float(np.linalg.norm(features)), 1e-12)


def like_vector(stores: Sequence[IndexStore], like: Like) -> tuple[np.ndarray, Hit]:
    """The embedding (D,) of the window of `like.video` whose middle is nearest `like.seconds`,
    and that window; a DataError when the index holds no such video."""
    wanted = str(Path(like.video).expanduser().resolve())
    for store in stores:
        if not store.has_table():
            continue
        names = [v for v in store.files if v == wanted or v == like.video]
        if not names:
            continue
        rows = store.rows_of(names)
        if rows.num_rows == 0:
            continue
        middles = (rows["start"].to_numpy() + rows["end"].to_numpy()) / 2
        best = int(np.argmin(np.abs(middles - like.seconds)))
        vector = np.asarray(rows["vector"][best].as_py(), dtype=np.float32)
        hit = Hit(names[0], str(rows["key"][best]), float(rows["start"][best]), float(rows["end"][best]), 1.0)
        return vector, hit
    raise DataError(f"{like.video} is not in the index (or has no windows)", setting="like")


def search_index(
    index: str | Path,
    query: str | None = None,
    *,
    like: str | Like | None = None,
    top: int = 10,
    where: str | None = None,
    model: str | Backend | None = None,
    templates: Sequence[str] = ("{}",),
    candidates: int | None = None,
    exact: bool | None = None,
) -> list[Moment]:
    """The `top` moments of the index best matching `query` (text) or `like` (VIDEO@SECONDS),
    best first. `where`: a path glob; `model`: the index's own (default: reloaded from its
    manifest; another one is an IndexModelError); `candidates`: windows merged into moments
    (default 20 x top, at least 200); `exact`: force (True) or forbid (False) a full scan."""
    if (query is None) == (like is None):
        raise ConfigError("give a text query or like=VIDEO@SECONDS (one of the two)", setting="query")
    if top < 1:
        raise ConfigError(f"must be >= 1; got {top}", setting="top")
    stores = _stores(index)
    main = stores[0]
    facts = main.manifest["model"]
    dims = [s.manifest["model"].get("dim") for s in stores if s.has_table()]
    dim = next((d for d in dims if d is not None), None)
    if dim is None:  # nothing indexed yet
        return []
    filters = [glob_sql(where)] if where else []
    backend = None
    if like is not None:
        like = parse_like(like) if isinstance(like, str) else like
        vector, source = like_vector(stores, like)
        # the moment itself is not an answer: leave out the windows overlapping it
        filters.append(
            f'NOT (video = {sql_text(source.video)} AND start < {source.end!r} AND "end" > {source.start!r})'
        )
    else:
        backend = _resolve_model(main, model)
        vector = query_vector(backend, str(query), templates, int(dim))
    k = candidates or max(200, 20 * top)
    hits: dict[tuple[str, float], Hit] = {}
    for store in stores:
        if not store.has_table():
            continue
        found = nearest(
            store.table(),
            vector,
            k,
            where=" AND ".join(f"({f})" for f in filters) or None,
            vector_index=store.manifest.get("vector_index"),
            exact=exact,
        )
        for hit in found:  # a video both in a shard and the main table: the shard's rows are newer
            hits[(hit.video, hit.start)] = hit
    if where:  # LIKE has no notion of path separators: confirm with the glob itself
        pattern = where if "/" in where or where.startswith("*") else "*/" + where
        hits = {k: h for k, h in hits.items() if fnmatch.fnmatchcase(h.video, pattern)}
    moments = merge_hits(sorted(hits.values(), key=lambda h: -h.score))[:top]
    if facts.get("score") == "sigmoid":
        scale, bias = float(facts["logit_scale"]), float(facts["logit_bias"])
        moments = [m.with_probability(1.0 / (1.0 + np.exp(-(scale * m.score + bias)))) for m in moments]
    return moments
