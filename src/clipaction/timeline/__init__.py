"""Long footage: label untrimmed videos over time (`clipaction timeline`).

grid (pure: times and windows) -> decode (frames at times, streaming) -> features (backend and
cache, chunk by chunk) -> run (window scores) -> segments (pure) -> formats / evaluate / figure.
Names load on first use, so the command line's parser reads `TimelineConfig` without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TimelineConfig", "label_videos", "score_windows", "timeline_realtime_factor"]

_MODULES = {
    "TimelineConfig": "clipaction.timeline.config",
    "label_videos": "clipaction.timeline.run",
    "score_windows": "clipaction.timeline.run",
    "timeline_realtime_factor": "clipaction.timeline.run",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'clipaction.timeline' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name]), name)
