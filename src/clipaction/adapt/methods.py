"""Few-shot adaptation methods behind one signature, on cached pre-projection features.

Every method is a function registered in `ADAPTATION_METHODS` under its name:

    fit(train: FewShotData, settings: MethodSettings) -> AdaptedClassifier

and every result can score any videos against any class texts, trained or not:

    classifier.scores(pooled (N, F, D), text_features (K, E)) -> (N, K) logits

A class text is recognised as one of the trained classes when it equals (to 1e-6) one of
`train.text_features`' rows; methods that learn per-class parameters (a head row, cache
values) use them for those columns and fall back to plain zero-shot scoring through
`classifier.projection` for every other column. So a caller scores the study's trained classes,
its other classes and classes outside the study in one call, by passing the texts it wants.

Methods here: `projection` (below), and `linear-probe`, `wise-ft`, `tip-adapter`,
`tip-adapter-f` in their own modules, registered when this module is imported. The shared
types and helpers live in base.py (re-exported here, where callers import them from); the
method modules import base only, so no import runs in a circle.
"""

from __future__ import annotations

import dataclasses

# The method modules register themselves in ADAPTATION_METHODS on import.
from clipaction.adapt import linear_probe, tip_adapter, wise_ft  # noqa: F401
from clipaction.adapt.base import (
    ADAPTATION_METHODS,
    MATCH_TOLERANCE,
    AdaptedClassifier,
    FewShotData,
    FitFunction,
    ProjectionClassifier,
    accuracy,
    group_accuracy,
    holdout_split,
    match_classes,
    pick_best,
    video_embeddings,
)
from clipaction.adapt.projection import train_projection
from clipaction.config import MethodSettings

__all__ = [
    "ADAPTATION_METHODS",
    "MATCH_TOLERANCE",
    "AdaptedClassifier",
    "FewShotData",
    "FitFunction",
    "MethodSettings",
    "ProjectionClassifier",
    "accuracy",
    "fit_method",
    "fit_projection",
    "group_accuracy",
    "holdout_split",
    "list_methods",
    "match_classes",
    "pick_best",
    "video_embeddings",
]


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching the glob `pattern`, sorted."""
    return ADAPTATION_METHODS.names(pattern)


def fit_method(name: str, train: FewShotData, settings: MethodSettings | None = None) -> AdaptedClassifier:
    """Fit the method registered as `name` (ValueError listing the valid names otherwise)."""
    return ADAPTATION_METHODS.get(name)(train, settings or MethodSettings())


@ADAPTATION_METHODS.register("projection")
def fit_projection(train: FewShotData, settings: MethodSettings) -> ProjectionClassifier:
    """The study's projection-only fine-tuning (`train_projection` with `settings.projection`):
    changes the shared projection, so every class, trained or not, is scored through it."""
    weight, losses = train_projection(
        train.projection, train.pooled, train.labels, train.text_features, train.logit_scale, settings.projection
    )
    info = {**dataclasses.asdict(settings.projection), "loss_curve": losses, "trained": "visual projection"}
    return ProjectionClassifier("projection", weight, train.projection, train.text_features, train.logit_scale, info)
