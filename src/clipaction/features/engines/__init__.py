"""Engines: where extraction runs. Both write the same cache entries, keyed by content.

- `local` (the default): `clipaction.features.extract.extract_features` in this process, with
  decoding threads.
- `ray`: the same steps on a Ray cluster (`ray_engine`, which imports Ray only when it runs): the
  driver lists the videos and drops those already cached, decoding runs as CPU tasks, the
  model in a pool of actors that write the shared cache. Then the local path reads the cache,
  so what callers get is computed by the same code whichever engine filled it.

`extract` is what callers use: `extract_features`'s arguments plus the engine.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from clipaction.config import CropPosition, EngineConfig, ModelConfig, SamplerConfig
from clipaction.errors import ConfigError
from clipaction.features.cache import FeatureCache
from clipaction.features.core import Lookup, complete, lookup  # the check every path makes
from clipaction.features.engines.ray_engine import fill_cache  # imports ray only when it runs
from clipaction.features.extract import Extraction, extract_features
from clipaction.models.base import Backend

__all__ = ["LOCAL", "Lookup", "complete", "extract", "lookup"]

LOCAL = EngineConfig()


def extract(
    paths: Sequence[str | Path],
    backend: Backend,
    sampler: SamplerConfig,
    cache: FeatureCache | None,
    *,
    engine: EngineConfig = LOCAL,
    model: ModelConfig | None = None,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
    keep: bool = True,
    crop: CropPosition | None = None,
) -> Extraction:
    """`extract_features` run by `engine` (`crop`: see there). The ray engine rebuilds the backend on its workers
    from `model` (default: the config `backend` was built from), fills `cache` (required, and
    shared by every node), then, with `keep`, the local path reads the features back; without
    `keep` (filling the cache only) the engine's own account is returned. Counts say what the
    engine encoded; failures and warnings are those of the videos as the local path finds them."""
    if engine.name == "local":
        return extract_features(
            paths, backend, sampler, cache, batch_size=batch_size, workers=workers, progress=progress, keep=keep,
            crop=crop,
        )  # fmt: skip
    if cache is None:
        raise ConfigError("the ray engine writes its features to the cache; give a cache folder", setting="engine.name")
    model = model or backend.config
    if not isinstance(model, ModelConfig):
        raise ConfigError(
            "the ray engine rebuilds the model on its workers and needs its ModelConfig", setting="engine.name"
        )
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            'the ray engine needs Ray: pip install -e ".[ray]" (or "clipaction[ray]")', setting="engine.name"
        )
    filled = fill_cache(
        [str(p) for p in paths], backend, model, sampler, cache,
        engine=engine, batch_size=batch_size, workers=workers, progress=progress, crop=crop,
    )  # fmt: skip
    if not keep:
        return filled
    failed = {failure.path for failure in filled.failures}
    read = extract_features(
        [p for p in paths if str(p) not in failed], backend, sampler, cache,
        batch_size=batch_size, workers=workers, progress=progress, keep=True, crop=crop,
    )  # fmt: skip
    order = {str(p): i for i, p in enumerate(paths)}
    read.failures = sorted(filled.failures + read.failures, key=lambda f: order.get(f.path, len(order)))
    # The read found in the cache what the engine had just written: count that as encoded.
    read.n_cached -= min(read.n_cached, filled.n_encoded)
    read.n_encoded += filled.n_encoded
    read.n_frames_encoded += filled.n_frames_encoded
    return read
