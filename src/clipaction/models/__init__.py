"""CLIP backends."""

from clipaction.models.base import Backend, FrameFeatures
from clipaction.models.registry import BACKENDS, list_backends, load_backend
from clipaction.models import hf_clip  # noqa: F401  (registers "hf-clip")

__all__ = ["BACKENDS", "Backend", "FrameFeatures", "list_backends", "load_backend"]
