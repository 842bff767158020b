"""`linear-probe`: a linear head over CLIP's projected, normalised video embeddings, initialised
from the zero-shot text classifier.

The head H (C, E) scores a video embedding f (E,) as logit_scale * f @ H.T, with H starting at the
class texts, i.e. the weights logit_scale * text of a plain linear layer, written so that the
untrained head reproduces zero-shot's logits bit for bit. Training is AdamW + cross-entropy with
no bias (so a head row stays a class vector in text space, comparable with zero-shot rows). The
weight decay (decoupled, pulling H towards 0, i.e. towards softer logits) is chosen on held-out
shots, then the head is refitted on every shot.

Scoring other classes: a text equal to a trained class's uses that class's head row; any other
text is its own zero-shot row. The projection is CLIP's, untouched, so classes outside training
score exactly as zero-shot, though a trained class's row may now outscore them more or less often.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from clipaction.adapt.base import (
    ADAPTATION_METHODS,
    AdaptedClassifier,
    FewShotData,
    accuracy,
    holdout_split,
    match_classes,
    pick_best,
    video_embeddings,
)
from clipaction.adapt.training import minimise
from clipaction.config import MethodSettings, TrainSettings


@dataclass(eq=False)
class LinearProbeClassifier(AdaptedClassifier):
    """head: (C, E) rows for the trained classes (trained_text's order); projection: CLIP's."""

    head: torch.Tensor
    trained_text: torch.Tensor
    projection: torch.Tensor
    logit_scale: float
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "linear-probe"
    changes_projection: bool = False

    @classmethod
    def zero_shot(cls, train: FewShotData) -> LinearProbeClassifier:
        """The untrained head (H = the class texts): its scores are zero-shot's."""
        return cls(train.text_features.clone(), train.text_features, train.projection, train.logit_scale)

    def scores(self, pooled: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """(N, F, D), (K, E) normalised texts -> (N, K): head rows for trained texts, the text
        itself for the others."""
        match = match_classes(text_features, self.trained_text)
        rows = torch.where((match >= 0)[:, None], self.head[match.clamp(min=0)], text_features.float())
        with torch.no_grad():
            return self.logit_scale * video_embeddings(pooled, self.projection) @ rows.T


def train_head(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    init: torch.Tensor,
    logit_scale: float,
    settings: TrainSettings,
    weight_decay: float,
) -> tuple[torch.Tensor, list[float]]:
    """Train a (C, E) head from `init` on (V, E) normalised embeddings and (V,) labels with
    AdamW (settings' lr, epochs, batch size, seed; the given weight decay). Returns the head and
    the mean loss per epoch; shuffling uses its own seeded generator."""
    head = torch.nn.Parameter(init.detach().clone().float())

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logit_scale * embeddings[batch] @ head.T, labels[batch])

    losses = minimise([head], batch_loss, len(labels), settings, weight_decay=weight_decay)
    return head.detach(), losses


@ADAPTATION_METHODS.register("linear-probe")
def fit_linear_probe(train: FewShotData, settings: MethodSettings) -> LinearProbeClassifier:
    """Choose the weight decay among `settings.probe_weight_decays` by held-out accuracy over
    the trained classes (ties to the larger decay), then train on every shot."""
    embeddings = video_embeddings(train.pooled, train.projection)
    split = holdout_split(train.labels, settings.holdout_fraction, settings.seed)
    selection: list[dict[str, float]] = []
    if split is None:
        chosen = settings.probe.weight_decay
        selected_on = "fallback: no class has two shots to hold one out"
    else:
        fit, held = split
        for decay in settings.probe_weight_decays:
            head, _ = train_head(
                embeddings[fit], train.labels[fit], train.text_features, train.logit_scale, settings.probe, decay
            )
            held_acc = accuracy(train.logit_scale * embeddings[held] @ head.T, train.labels[held])
            selection.append({"weight_decay": decay, "heldout_accuracy": held_acc})
        chosen = pick_best(
            settings.probe_weight_decays, [s["heldout_accuracy"] for s in selection], prefer=lambda d: -d
        )
        selected_on = f"held-out shots ({len(held)} of {len(train.labels)})"
    head, losses = train_head(embeddings, train.labels, train.text_features, train.logit_scale, settings.probe, chosen)
    info = {
        **{k: v for k, v in dataclasses.asdict(settings.probe).items() if k != "weight_decay"},
        "weight_decay": chosen,
        "weight_decay_grid": list(settings.probe_weight_decays),
        "selected_on": selected_on,
        "selection": selection,
        "loss_curve": losses,
        "trained": "linear head over the projected video embeddings (initialised from the class texts)",
    }
    return LinearProbeClassifier(head, train.text_features, train.projection, train.logit_scale, info)
