"""The backend registry: model family (`model_type` in config.json) -> backend class.

Adding a family is one file under `models/` with `@BACKENDS.register("<model_type>")` on a
class taking `(ModelConfig, ModelSource)`, plus its import in `models/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from clipaction.config import ModelConfig
from clipaction.errors import ConfigError, ModelLoadError
from clipaction.models.base import Backend
from clipaction.registry import Registry

BACKENDS: Registry[Callable[..., Backend]] = Registry("model family")

#: Names earlier versions wrote for `model.backend`.
_ALIASES = {"hf-clip": "clip"}


def load_backend(config: ModelConfig) -> Backend:
    """The backend for the model `config` names. Reads only its config files: weights load
    when first needed. `config.backend` "auto" picks the family from config.json's
    `model_type`; a family name forces it."""
    from clipaction.models.hf_common import ModelSource

    source = ModelSource(config.name_or_path, config.revision)
    family = _ALIASES.get(config.backend, config.backend)
    if family == "auto":
        family = source.model_type
    if family not in BACKENDS.names():
        raise ModelLoadError(
            f"{config.name_or_path} is a {family or 'unknown'!r} model; supported families: "
            f"{', '.join(list_backends())}",
            setting="model.name_or_path",
        )
    backend_class = BACKENDS.get(family)
    if config.runtime != "torch" and backend_class.kind != "frame":  # type: ignore[attr-defined]
        raise ConfigError(
            f"the {family} family encodes clips; runtime {config.runtime} converts frame models only: use runtime torch",
            setting="model.runtime",
        )
    return backend_class(config, source)


def list_backends(pattern: str = "*") -> list[str]:
    """Supported model families (their `model_type`s) matching a glob `pattern`."""
    return BACKENDS.names(pattern)
