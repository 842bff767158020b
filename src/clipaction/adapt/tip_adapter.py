"""`tip-adapter` and `tip-adapter-f` (Zhang et al., ECCV 2022) on video embeddings.

A key-value cache of the few shots: keys (V, E) their normalised video embeddings through CLIP's
projection, values (V, C) their one-hot labels. A video f (E,) is scored

    logits = logit_scale * f @ text.T + alpha * exp(-beta * (1 - f @ keys.T)) @ values

(the paper's affinity A = exp(-beta (1 - f K^T)), logits = 100 f W_c^T + alpha A L). alpha = 0
is zero-shot exactly; a large beta lets only (near-)identical keys contribute. alpha and beta are
chosen from small grids on held-out shots (cache built from the other shots; ties to the smaller
alpha, then the smaller beta), and the final cache holds every shot. `tip-adapter-f` makes the
keys trainable (AdamW on cross-entropy over the trained classes, with the fallback alpha and beta
as in the paper's training), then searches alpha and beta the same way.

Classes outside training have no values column: their logits are zero-shot's, through CLIP's
projection, which no variant changes.
"""

from __future__ import annotations

import dataclasses
import itertools
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
from clipaction.adapt.projection import video_logits
from clipaction.adapt.training import minimise
from clipaction.config import MethodSettings, TrainSettings


def cache_logits(embeddings: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, beta: float) -> torch.Tensor:
    """(N, E) normalised embeddings, (V, E) keys, (V, C) values -> (N, C) exp(-beta (1 - f K^T)) L."""
    return torch.exp(-beta * (1 - embeddings @ keys.T)) @ values


@dataclass(eq=False)
class TipAdapterClassifier(AdaptedClassifier):
    """keys (V, E), values (V, C) one-hot over trained_text (C, E); projection: CLIP's."""

    name: str
    keys: torch.Tensor
    values: torch.Tensor
    trained_text: torch.Tensor
    projection: torch.Tensor
    logit_scale: float
    alpha: float
    beta: float
    info: dict[str, Any] = field(default_factory=dict)
    changes_projection: bool = False

    def with_params(self, *, alpha: float | None = None, beta: float | None = None) -> TipAdapterClassifier:
        """The same cache with another alpha and/or beta."""
        return dataclasses.replace(
            self, alpha=self.alpha if alpha is None else alpha, beta=self.beta if beta is None else beta
        )

    def scores(self, pooled: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """(N, F, D), (K, E) normalised texts -> (N, K): zero-shot plus alpha x the cache's
        column of the matching trained class (nothing for texts of other classes)."""
        with torch.no_grad():
            zero_shot = video_logits(pooled.float() @ self.projection.T, text_features.float(), self.logit_scale)
            if self.alpha == 0:
                return zero_shot
            match = match_classes(text_features, self.trained_text)
            cached = cache_logits(video_embeddings(pooled, self.projection), self.keys, self.values, self.beta)
            columns = torch.where((match >= 0)[None, :], cached[:, match.clamp(min=0)], torch.zeros(()))
            return zero_shot + self.alpha * columns


def _one_hot(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n_classes).float()


def train_keys(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: float,
    alpha: float,
    beta: float,
    settings: TrainSettings,
) -> tuple[torch.Tensor, list[float]]:
    """Tip-Adapter-F: (V, E) keys initialised from the (V, E) normalised shot embeddings, trained
    with AdamW on the shots' cross-entropy over the (C, E) texts, the values fixed one-hot.
    Returns the keys and the mean loss per epoch; shuffling uses its own seeded generator."""
    keys = torch.nn.Parameter(embeddings.detach().clone())
    values = _one_hot(labels, len(text_features))
    zero_shot = logit_scale * embeddings @ text_features.T

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        logits = zero_shot[batch] + alpha * cache_logits(embeddings[batch], keys, values, beta)
        return torch.nn.functional.cross_entropy(logits, labels[batch])

    losses = minimise([keys], batch_loss, len(labels), settings)
    return keys.detach(), losses


def _search(
    train: FewShotData, embeddings: torch.Tensor, settings: MethodSettings, fine_tune: bool
) -> tuple[float, float, str, list[dict[str, float]]]:
    """(alpha, beta, how they were chosen, the held-out accuracy of each pair)."""
    split = holdout_split(train.labels, settings.holdout_fraction, settings.seed)
    if split is None:
        return settings.tip_alpha, settings.tip_beta, "fallback: no class has two shots to hold one out", []
    fit, held = split
    keys = embeddings[fit]
    if fine_tune:
        keys, _ = train_keys(
            keys,
            train.labels[fit],
            train.text_features,
            train.logit_scale,
            settings.tip_alpha,
            settings.tip_beta,
            settings.tip_f,
        )
    values = _one_hot(train.labels[fit], train.n_classes)
    zero_shot = train.logit_scale * embeddings[held] @ train.text_features.T
    pairs = list(itertools.product(settings.tip_alphas, settings.tip_betas))
    selection = []
    for alpha, beta in pairs:
        logits = zero_shot + alpha * cache_logits(embeddings[held], keys, values, beta)
        selection.append({"alpha": alpha, "beta": beta, "heldout_accuracy": accuracy(logits, train.labels[held])})
    alpha, beta = pick_best(pairs, [s["heldout_accuracy"] for s in selection], prefer=lambda pair: pair)
    return alpha, beta, f"held-out shots ({len(held)} of {len(train.labels)})", selection


def _fit(train: FewShotData, settings: MethodSettings, fine_tune: bool) -> TipAdapterClassifier:
    embeddings = video_embeddings(train.pooled, train.projection)
    alpha, beta, selected_on, selection = _search(train, embeddings, settings, fine_tune)
    info: dict[str, Any] = {
        "alpha": alpha,
        "beta": beta,
        "alpha_grid": list(settings.tip_alphas),
        "beta_grid": list(settings.tip_betas),
        "selected_on": selected_on,
        "selection": selection,
        "cache_size": len(train.labels),
    }
    keys = embeddings
    if fine_tune:
        keys, losses = train_keys(
            embeddings,
            train.labels,
            train.text_features,
            train.logit_scale,
            settings.tip_alpha,
            settings.tip_beta,
            settings.tip_f,
        )
        info.update(
            dataclasses.asdict(settings.tip_f),
            loss_curve=losses,
            train_alpha=settings.tip_alpha,
            train_beta=settings.tip_beta,
            trained="cache keys",
        )
    else:
        info["trained"] = "nothing (training-free cache)"
    return TipAdapterClassifier(
        "tip-adapter-f" if fine_tune else "tip-adapter",
        keys,
        _one_hot(train.labels, train.n_classes),
        train.text_features,
        train.projection,
        train.logit_scale,
        alpha,
        beta,
        info,
    )


@ADAPTATION_METHODS.register("tip-adapter")
def fit_tip_adapter(train: FewShotData, settings: MethodSettings) -> TipAdapterClassifier:
    """Training-free cache of every shot; alpha and beta chosen on held-out shots."""
    return _fit(train, settings, fine_tune=False)


@ADAPTATION_METHODS.register("tip-adapter-f")
def fit_tip_adapter_f(train: FewShotData, settings: MethodSettings) -> TipAdapterClassifier:
    """The cache keys fine-tuned (settings.tip_f); alpha and beta chosen on held-out shots."""
    return _fit(train, settings, fine_tune=True)
