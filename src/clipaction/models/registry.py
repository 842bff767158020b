"""The backend registry: name -> loader(ModelConfig) -> Backend."""

from __future__ import annotations

from typing import Callable

from clipaction.config import ModelConfig
from clipaction.models.base import Backend
from clipaction.registry import Registry

BACKENDS: Registry[Callable[[ModelConfig], Backend]] = Registry("backend")


def load_backend(config: ModelConfig) -> Backend:
    """Load the model `config` names with the registered backend `config.backend`."""
    return BACKENDS.get(config.backend)(config)


def list_backends(pattern: str = "*") -> list[str]:
    return BACKENDS.names(pattern)
