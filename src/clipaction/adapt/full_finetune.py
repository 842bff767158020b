"""The full fine-tuning ablation: the whole image tower trained on a few videos' frames.

Same data and objective as projection-only training, but every vision parameter is trainable.
On a few videos this forgets what CLIP knew (the study shows it collapsing). The frames are
decoded and preprocessed once and kept as tensors for all epochs.
"""

from __future__ import annotations

import copy
import logging

import torch

from clipaction.adapt.projection import video_logits
from clipaction.adapt.training import minimise
from clipaction.config import TrainSettings

log = logging.getLogger(__name__)


def finetune_vision(
    tower: torch.nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: float,
    config: TrainSettings,
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[torch.nn.Module, list[float]]:
    """Train a copy of `tower` (pixels (N, 3, S, S) -> (N, E) embeddings, from the backend's
    `image_tower()`); the input is untouched.

    pixels: (V, F, 3, S, S) preprocessed frames of the training videos; labels: (V,) indices into
    the (C, E) normalised `text_features`. Returns the trained copy (eval mode) and the mean
    loss per epoch.
    """
    device = torch.device(device)
    # Trained in fp32 whatever the inference precision: fp16 weights do not train stably.
    tower = copy.deepcopy(tower).float().to(device).train()
    parameters = list(tower.parameters())
    for parameter in parameters:
        parameter.requires_grad_(True)
    text_features = text_features.float().to(device)
    labels = labels.to(device)
    videos, frames = pixels.shape[:2]

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        embeds = tower(pixels[batch].flatten(0, 1).to(device)).reshape(len(batch), frames, -1)
        return torch.nn.functional.cross_entropy(
            video_logits(embeds, text_features, logit_scale), labels[batch.to(device)]
        )

    losses = minimise(parameters, batch_loss, videos, config, desc="full fine-tune", progress=progress)
    log.info("full fine-tuning: loss %.4f -> %.4f", losses[0], losses[-1])
    return tower.eval(), losses
