"""`wise-ft` (Wortsman et al. 2022): weight-space interpolation between CLIP's projection W0
(alpha = 0, zero-shot) and the projection-only fine-tuned W1 (alpha = 1):

    W(alpha) = (1 - alpha) * W0 + alpha * W1

alpha is chosen on held-out shots: W1 is trained on the rest, each alpha of the grid scored on
the held-out shots over the trained classes, the most accurate kept (ties to the smaller alpha,
the one closer to CLIP); then W1 is retrained on every shot. `curve` scores the whole grid on
any evaluation data (the report's line from zero-shot to fine-tuned).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from clipaction.adapt.base import (
    ADAPTATION_METHODS,
    FewShotData,
    ProjectionClassifier,
    accuracy,
    group_accuracy,
    holdout_split,
    pick_best,
)
from clipaction.adapt.projection import train_projection, video_logits
from clipaction.config import MethodSettings


def interpolate(original: torch.Tensor, finetuned: torch.Tensor, alpha: float) -> torch.Tensor:
    """(E, D) (1 - alpha) * original + alpha * finetuned; the ends are the inputs exactly."""
    if alpha == 0:
        return original.clone()
    if alpha == 1:
        return finetuned.clone()
    return (1 - alpha) * original + alpha * finetuned


@dataclass(eq=False)
class WiseFTClassifier(ProjectionClassifier):
    """A ProjectionClassifier at the chosen alpha that also keeps both ends of the line."""

    finetuned_projection: torch.Tensor = field(default=None)  # type: ignore[assignment]
    alpha: float = 0.0
    alphas: tuple[float, ...] = ()

    def at(self, alpha: float) -> ProjectionClassifier:
        """The same line at another alpha, as a plain projection classifier."""
        weight = interpolate(self.original_projection, self.finetuned_projection, alpha)
        info = {**self.info, "alpha": alpha}
        return ProjectionClassifier(
            self.name, weight, self.original_projection, self.trained_text, self.logit_scale, info
        )

    def curve(self, pooled: torch.Tensor, labels: torch.Tensor, text_features: torch.Tensor) -> list[dict[str, float]]:
        """Accuracy along the line for each alpha of the grid: (N, F, D) videos with (N,) labels
        indexing the (K, E) texts, scored over all K. Per alpha: "alpha", "overall", and over
        videos of trained classes ("trained") and of the others ("others"); NaN if none."""
        trained = self.trained_columns(text_features)
        points = []
        for alpha in self.alphas:
            scores = self.at(alpha).scores(pooled, text_features)
            points.append({"alpha": alpha, **group_accuracy(scores, labels.to(torch.int64), trained)})
        return points


@ADAPTATION_METHODS.register("wise-ft")
def fit_wise_ft(train: FewShotData, settings: MethodSettings) -> WiseFTClassifier:
    """Fine-tune the projection (settings.projection), choose alpha on held-out shots."""
    split = holdout_split(train.labels, settings.holdout_fraction, settings.seed)
    selection: list[dict[str, float]] = []
    if split is None:
        alpha = settings.wise_alpha
        selected_on = "fallback: no class has two shots to hold one out"
    else:
        fit, held = split
        part = train.subset(fit)
        weight, _ = train_projection(
            part.projection, part.pooled, part.labels, part.text_features, part.logit_scale, settings.projection
        )
        for candidate in settings.wise_alphas:
            mixed = interpolate(train.projection, weight, candidate)
            with torch.no_grad():
                scores = video_logits(train.pooled[held] @ mixed.T, train.text_features, train.logit_scale)
            selection.append({"alpha": candidate, "heldout_accuracy": accuracy(scores, train.labels[held])})
        alpha = pick_best(settings.wise_alphas, [s["heldout_accuracy"] for s in selection], prefer=lambda a: a)
        selected_on = f"held-out shots ({len(held)} of {len(train.labels)})"
    finetuned, losses = train_projection(
        train.projection, train.pooled, train.labels, train.text_features, train.logit_scale, settings.projection
    )
    info: dict[str, Any] = {
        **dataclasses.asdict(settings.projection),
        "alpha": alpha,
        "alpha_grid": list(settings.wise_alphas),
        "selected_on": selected_on,
        "selection": selection,
        "loss_curve": losses,
        "trained": "visual projection, interpolated with CLIP's",
    }
    return WiseFTClassifier(
        "wise-ft",
        interpolate(train.projection, finetuned, alpha),
        train.projection,
        train.text_features,
        train.logit_scale,
        info,
        finetuned_projection=finetuned,
        alpha=alpha,
        alphas=settings.wise_alphas,
    )
