"""Where clipaction keeps what it computes between runs (features, converted models, trained
demo models): one root, `$CLIPACTION_CACHE` or `~/.cache/clipaction`. A module of its own so
that every layer (models for converted runtimes, features for the feature cache) can ask."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE_DIR = "~/.cache/clipaction"


def default_cache_dir() -> Path:
    """The cache root: $CLIPACTION_CACHE if set, else ~/.cache/clipaction (user expanded)."""
    return Path(os.environ.get("CLIPACTION_CACHE", DEFAULT_CACHE_DIR)).expanduser()
