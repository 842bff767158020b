"""Frames -> one video embedding: the only place frame features are pooled.

Zero-shot scoring, the few-shot methods and the projection training all pool the same way, so
a logit computed anywhere equals the one computed here bit for bit. A numpy array in gives a
numpy array out, computed in numpy: a fully cached run scores without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from clipaction.models.base import ArrayT


def normalise(features: ArrayT) -> ArrayT:
    """L2-normalise the last dimension."""
    if isinstance(features, np.ndarray):
        return features / np.sqrt(np.sum(features * features, axis=-1, keepdims=True))
    return features / features.norm(dim=-1, keepdim=True)


def pool_frames(frame_embeds: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(..., F, E) frame embeddings (any norm) -> (..., E) torch tensor: each frame normalised,
    averaged over F, normalised again. (F, E) gives one video's (E,); (V, F, E) gives (V, E)."""
    import torch

    frames = normalise(
        torch.as_tensor(np.asarray(frame_embeds) if isinstance(frame_embeds, np.ndarray) else frame_embeds).float()
    )
    return normalise(frames.mean(dim=-2))


def pool_frame_array(frame_embeds: np.ndarray) -> np.ndarray:
    """`pool_frames` in numpy, float32: (..., F, E) -> (..., E)."""
    frames = normalise(np.asarray(frame_embeds, dtype=np.float32))
    return normalise(frames.mean(axis=-2, dtype=np.float32))
