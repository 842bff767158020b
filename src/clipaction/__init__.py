"""clipaction: zero-shot human action recognition in videos with CLIP-like models.

The public API (see the README's "Use from Python"): `load_model`, `predict`, `zeroshot`,
`run_study`, `index` and `search` (footage search), and the config classes. Names load on first use, so `import clipaction` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_model": "clipaction.api",
    "predict": "clipaction.api",
    "zeroshot": "clipaction.api",
    "run_study": "clipaction.api",
    "index": "clipaction.api",
    "search": "clipaction.api",
    "DatasetConfig": "clipaction.config",
    "SamplerConfig": "clipaction.config",
    "ModelConfig": "clipaction.config",
    "PromptConfig": "clipaction.config",
    "ZeroShotConfig": "clipaction.config",
    "StudyConfig": "clipaction.config",
    "ClipactionError": "clipaction.errors",
    "list_models": "clipaction.models.registry",
    "list_samplers": "clipaction.video.sampling",
    "list_datasets": "clipaction.data.registry",
}
_RENAMED = {"list_models": "list_backends"}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'clipaction' has no attribute {name!r}")
    module = importlib.import_module(_API[name])
    if name == "list_models":
        importlib.import_module("clipaction.models")  # registers every family
    return getattr(module, _RENAMED.get(name, name))
