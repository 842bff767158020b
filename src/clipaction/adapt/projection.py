"""Few-shot fine-tuning of CLIP's visual projection only, on cached pre-projection features.

The backbone is never run: each training video is its (F, D) pooled frame features from the
cache, and the only trainable tensor is the (E, D) projection, initialised from CLIP's own.
The objective is zero-shot's: cross-entropy over logit_scale x cosine(video, class text).
"""

from __future__ import annotations

import logging

import torch

from clipaction.adapt.training import minimise
from clipaction.config import TrainSettings
from clipaction.models.pooling import pool_frames

log = logging.getLogger(__name__)


def video_logits(frame_embeds: torch.Tensor, text_features: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """(V, F, E) projected frame features (any norm) -> (V, C) logits: `pool_frames` (each frame
    normalised, averaged over F, normalised again), then logit_scale x cosine with the (C, E)
    normalised texts."""
    return logit_scale * pool_frames(frame_embeds) @ text_features.T


def train_projection(
    weight: torch.Tensor,
    pooled: torch.Tensor,
    labels: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: float,
    config: TrainSettings,
    *,
    progress: bool = False,
) -> tuple[torch.Tensor, list[float]]:
    """Train the (E, D) projection `weight` (a copy; the input is untouched).

    pooled: (V, F, D) pre-projection frame features of the training videos; labels: (V,) indices
    into the (C, E) normalised `text_features`. Returns the new weight and the mean loss per epoch.
    Deterministic for a given seed on the CPU (shuffling uses its own generator).
    """
    projection = torch.nn.Parameter(weight.detach().clone().float())
    pooled = pooled.float()
    text_features = text_features.float()

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        logits = video_logits(pooled[batch] @ projection.T, text_features, logit_scale)
        return torch.nn.functional.cross_entropy(logits, labels[batch])

    losses = minimise([projection], batch_loss, len(labels), config, desc="train projection", progress=progress)
    log.info("projection training: loss %.4f -> %.4f", losses[0], losses[-1])
    return projection.detach(), losses
