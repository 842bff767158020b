"""What every few-shot adaptation method shares: the training data, the classifier interface,
the method registry and the held-out selection helpers.

The method modules (methods.py's `projection`, linear_probe.py, tip_adapter.py, wise_ft.py)
import from here only, and methods.py imports them, so the imports run one way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from clipaction.adapt.projection import video_logits
from clipaction.config import MethodSettings
from clipaction.models.pooling import pool_frames
from clipaction.registry import Registry

MATCH_TOLERANCE = 1e-6


@dataclass(frozen=True, eq=False)
class FewShotData:
    """The few training shots and everything needed to score them zero-shot.

    pooled: (V, F, D) float pre-projection frame features; labels: (V,) int64 indices into
    text_features: (C, E) L2-normalised class texts (the classes in training, some may have no
    shot); projection: (E, D) CLIP's visual projection; logit_scale: CLIP's (about 100).
    """

    pooled: torch.Tensor
    labels: torch.Tensor
    text_features: torch.Tensor
    projection: torch.Tensor
    logit_scale: float

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("pooled", self.pooled.detach().float())
        set_("labels", self.labels.detach().to(torch.int64))
        set_("text_features", self.text_features.detach().float())
        set_("projection", self.projection.detach().float())
        set_("logit_scale", float(self.logit_scale))
        if self.pooled.ndim != 3 or self.labels.shape != (len(self.pooled),):
            raise ValueError(
                f"need pooled (V, F, D) and labels (V,); got {tuple(self.pooled.shape)}, {tuple(self.labels.shape)}"
            )
        if len(self.labels) == 0:
            raise ValueError("need at least one training video")
        if self.projection.shape[1] != self.pooled.shape[2] or self.text_features.shape[1] != self.projection.shape[0]:
            raise ValueError(
                f"shapes disagree: pooled {tuple(self.pooled.shape)}, projection {tuple(self.projection.shape)}, "
                f"text_features {tuple(self.text_features.shape)}"
            )
        if int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.text_features):
            raise ValueError(f"labels must index the {len(self.text_features)} text features")

    @property
    def n_classes(self) -> int:
        return len(self.text_features)

    def subset(self, index: torch.Tensor) -> FewShotData:
        """The same classes, only the videos at `index`."""
        return dataclasses.replace(self, pooled=self.pooled[index], labels=self.labels[index])


def video_embeddings(pooled: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """(N, F, D) pre-projection features x (E, D) projection -> (N, E) normalised video
    embeddings: frames projected, then `pool_frames` (the pooling of `video_logits`, so
    logit_scale * embeddings @ text.T equals its logits bit for bit)."""
    return pool_frames(pooled.float() @ projection.T)


def match_classes(text_features: torch.Tensor, trained_text: torch.Tensor) -> torch.Tensor:
    """(K,) int64: for each of the (K, E) texts, the index of the equal row (max abs difference
    <= 1e-6) of the (C, E) trained texts, or -1 when it is not a trained class."""
    if len(text_features) == 0 or len(trained_text) == 0:
        return torch.full((len(text_features),), -1, dtype=torch.int64)
    gap = (text_features.float()[:, None, :] - trained_text.float()[None, :, :]).abs().amax(dim=-1)
    best, index = gap.min(dim=1)
    return torch.where(best <= MATCH_TOLERANCE, index, torch.full_like(index, -1))


class AdaptedClassifier:
    """What every method returns. `projection` (E, D) is the visual projection its video
    embeddings go through; `changes_projection` says whether it differs from CLIP's (only then
    can classes outside training be affected); `info` holds JSON-ready choices and curves."""

    name: str
    projection: torch.Tensor
    trained_text: torch.Tensor  # (C, E) the training classes' texts
    logit_scale: float
    changes_projection: bool
    info: dict[str, Any]

    def scores(self, pooled: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """(N, F, D) pre-projection features, (K, E) normalised texts -> (N, K) logits."""
        raise NotImplementedError

    def trained_columns(self, text_features: torch.Tensor) -> torch.Tensor:
        """(K,) bool: which of the texts are classes this classifier was trained on."""
        return match_classes(text_features, self.trained_text) >= 0


@dataclass(eq=False)
class ProjectionClassifier(AdaptedClassifier):
    """Zero-shot scoring through a (possibly fine-tuned) projection: every class is scored the
    same way, trained or not, so classes outside training feel any change of the projection."""

    name: str
    projection: torch.Tensor
    original_projection: torch.Tensor
    trained_text: torch.Tensor
    logit_scale: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def changes_projection(self) -> bool:  # type: ignore[override]
        return not torch.equal(self.projection, self.original_projection)

    def scores(self, pooled: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return video_logits(pooled.float() @ self.projection.T, text_features.float(), self.logit_scale)


FitFunction = Callable[[FewShotData, MethodSettings], AdaptedClassifier]
ADAPTATION_METHODS: Registry[FitFunction] = Registry("adaptation method")


def holdout_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Seeded stratified split of the shots into (fit, held-out) indices, both sorted.

    Each class with n >= 2 shots holds out round(fraction * n) of them, at least 1 and at most
    n - 1, so every class keeps a shot to fit on; single-shot classes are only fitted on.
    None when nothing can be held out."""
    rng = np.random.default_rng(seed)
    labels_np = labels.numpy()
    held: list[int] = []
    for cls in np.unique(labels_np):
        members = np.flatnonzero(labels_np == cls)
        if len(members) < 2:
            continue
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        held.extend(rng.permutation(members)[:count].tolist())
    if not held:
        return None
    held_set = set(held)
    fit = [i for i in range(len(labels_np)) if i not in held_set]
    return torch.tensor(fit, dtype=torch.int64), torch.tensor(sorted(held), dtype=torch.int64)


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of (N, K) scores against (N,) labels; NaN when N is 0."""
    if len(labels) == 0:
        return math.nan
    return float((scores.argmax(dim=1) == labels).float().mean())


def group_accuracy(scores: torch.Tensor, labels: torch.Tensor, trained: torch.Tensor) -> dict[str, float]:
    """Top-1 accuracy over all K classes of (N, K) scores, for all videos ("overall"), those whose
    class is a trained column ((K,) bool `trained`, "trained") and the rest ("others"); NaN for
    an empty group."""
    is_trained = trained[labels]
    return {
        "overall": accuracy(scores, labels),
        "trained": accuracy(scores[is_trained], labels[is_trained]),
        "others": accuracy(scores[~is_trained], labels[~is_trained]),
    }


def pick_best(candidates: Sequence[Any], heldout_accuracy: Sequence[float], prefer: Callable[[Any], Any]) -> Any:
    """The candidate with the highest held-out accuracy; ties go to the smallest `prefer(c)`."""
    best = max(heldout_accuracy)
    return min((c for c, a in zip(candidates, heldout_accuracy) if a == best), key=prefer)
