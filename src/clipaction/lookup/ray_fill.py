"""`clipaction index --engine ray`: encode the videos' windows on a Ray cluster into the shared
feature cache, one task per video; the driver then builds the rows from the cache (encoding
nothing) and is the table's only writer. The cache folder must be on storage every node sees."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from clipaction.config import EngineConfig, ModelConfig
from clipaction.errors import ConfigError
from clipaction.lookup.config import IndexConfig

if TYPE_CHECKING:
    from clipaction.models.base import Backend

log = logging.getLogger(__name__)


def _fill_one(path: str, model: ModelConfig, config: IndexConfig) -> str | None:
    """On a worker: run the timeline's window pass over `path` into the cache; the error line
    when the video cannot be read (the driver records it when it reaches the video)."""
    from clipaction.classify.run import open_cache
    from clipaction.models import load_backend
    from clipaction.timeline.features import PassStats, window_features

    backend = load_backend(model)
    cache = open_cache(config.cache_dir, backend)
    try:
        for _ in window_features(path, backend, config.timeline(), cache, PassStats()):
            pass
    except Exception as error:  # reported, never raised: one bad file must not fail the job
        return f"{type(error).__name__}: {error}"
    return None


def fill_cache_ray(paths: Sequence[str], backend: Backend, config: IndexConfig, engine: EngineConfig) -> list[str]:
    """Fill the cache for `paths` with one Ray task per video; returns the error lines."""
    if backend.config is None:
        raise ConfigError(
            "the ray engine rebuilds the model on its workers and needs its ModelConfig", setting="engine.name"
        )
    if importlib.util.find_spec("ray") is None:
        raise ConfigError('the ray engine needs Ray: pip install -e ".[ray]"', setting="engine.name")
    import ray

    from clipaction.features.engines.ray_engine import connect

    connect(engine)
    task = ray.remote(num_cpus=engine.cpus_per_worker or 1, num_gpus=engine.gpus_per_worker or 0)(_fill_one)
    errors = ray.get([task.remote(path, backend.config, config) for path in paths])
    return [e for e in errors if e]
