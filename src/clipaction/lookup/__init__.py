"""Footage search: index every window of a video library once, then find moments by text.

`clipaction index` (`build.build_index`) samples videos by time exactly as `timeline` does,
reuses its time-keyed feature cache, and stores one row per window in a LanceDB table under the
index folder (`store`); `clipaction search` (`query.search_index`) encodes a sentence (or takes
a moment's own embedding) and returns moments: neighbouring hits of one video merged.

Named `lookup`, not `search` or `index`: `clipaction.search` and `clipaction.index` are public
functions, and a subpackage of the same name would replace them as attributes of `clipaction`
once imported. Names load on first use, so the parser reads `IndexConfig` without lancedb.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["IndexConfig", "build_index", "search_index"]

_MODULES = {
    "IndexConfig": "clipaction.lookup.config",
    "build_index": "clipaction.lookup.build",
    "search_index": "clipaction.lookup.query",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'clipaction.lookup' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name]), name)
