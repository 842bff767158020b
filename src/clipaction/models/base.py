"""The backend interface: what the rest of clipaction needs from a CLIP-like model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class FrameFeatures:
    """Image features of N frames.

    pooled: (N, D) float32, the encoder's pooled output *before* the visual projection
        (D = 768 for ViT-B/32). Few-shot methods retrain the projection on these.
    embeds: (N, E) float32, projected and L2-normalised (E = 512 for ViT-B/32).
    """

    pooled: torch.Tensor
    embeds: torch.Tensor


class Backend(Protocol):
    """A CLIP-like model: an image encoder with a linear projection and a text encoder."""

    #: Identifies weights, preprocessing and numerics; part of every cache key.
    fingerprint: dict[str, Any]
    #: Multiplier of the cosine similarity (exp of CLIP's learned logit scale; 100 for OpenAI's).
    logit_scale: float
    #: D, the width of the pooled pre-projection features.
    feature_dim: int
    #: E, the width of the joint embedding space.
    embed_dim: int
    device: torch.device

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB frames (N, H, W, 3) -> model input (N, 3, S, S) float32 on the CPU."""

    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        """Preprocessed frames (N, 3, S, S) -> FrameFeatures on the CPU."""

    def encode_frames(self, frames: np.ndarray | Sequence[np.ndarray]) -> FrameFeatures:
        """uint8 RGB frames (N, H, W, 3) -> FrameFeatures (preprocess + encode_pixels)."""

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (T, E) float32 L2-normalised text features on the CPU."""

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, D) -> (N, E) with the model's own projection, *not* normalised."""

    def projection_weight(self) -> torch.Tensor:
        """A copy of the (E, D) visual projection matrix (embeds = pooled @ weight.T)."""
