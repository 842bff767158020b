"""Model families behind one protocol (`base.Backend`, with `base.FrameBackend` and
`base.ClipBackend` for the two kinds), one file each, registered by `model_type`."""

from clipaction.models.base import (
    Backend,
    Capability,
    ClipBackend,
    FrameBackend,
    FrameFeatures,
    Runtime,
    Scoring,
    TorchRuntime,
    as_clip,
    as_frame,
    missing,
)
from clipaction.models.families import (
    clip,  # noqa: F401  (registers "clip")
    metaclip2,  # noqa: F401  (registers "metaclip_2")
    siglip,  # noqa: F401  (registers "siglip", "siglip2")
    videoprism,  # noqa: F401  (registers "videoprism")
    xclip,  # noqa: F401  (registers "xclip")
)
from clipaction.models.registry import BACKENDS, list_backends, load_backend

__all__ = [
    "BACKENDS",
    "Backend",
    "Capability",
    "ClipBackend",
    "FrameBackend",
    "FrameFeatures",
    "Runtime",
    "Scoring",
    "TorchRuntime",
    "as_clip",
    "as_frame",
    "list_backends",
    "load_backend",
    "missing",
]
