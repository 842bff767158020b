"""Frames -> one video embedding: the only place frame features are pooled.

Zero-shot scoring, the few-shot methods and the projection training all pool the same way, so
a logit computed anywhere equals the one computed here bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch


def normalise(features: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last dimension."""
    return features / features.norm(dim=-1, keepdim=True)


def pool_frames(frame_embeds: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(..., F, E) frame embeddings (any norm) -> (..., E): each frame normalised, averaged over
    F, normalised again. (F, E) gives one video's (E,); (V, F, E) gives (V, E)."""
    frames = normalise(
        torch.as_tensor(np.asarray(frame_embeds) if isinstance(frame_embeds, np.ndarray) else frame_embeds).float()
    )
    return normalise(frames.mean(dim=-2))
