"""Metrics from (scores, labels): pure functions, no model, no files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support


def predicted_classes(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(V, C) scores and (V,) true labels -> (V,) top-1 predictions, ties counted against the truth.

    Argmax, except where the true class shares the maximum with another class: then the
    prediction is the lowest-index other tied class, so a tie is never scored as correct
    (a model that gives every class the same score must not get full marks). This keeps
    top-1 equal to top_k_accuracy(k=1).
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return np.zeros(0, dtype=np.int64)
    predicted = scores.argmax(axis=1)
    rows = np.arange(len(labels))
    at_max = scores == scores[rows, predicted][:, None]
    others_at_max = at_max.copy()
    others_at_max[rows, labels] = False
    tied = at_max[rows, labels] & others_at_max.any(axis=1)
    predicted[tied] = others_at_max[tied].argmax(axis=1)  # argmax of bools: first True
    return predicted


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows of (V, C) scores whose true class is among the k highest (k >= C gives 1.0).

    Written out because scikit-learn's top_k_accuracy_score rejects 2-class score matrices.
    Ties count against the true class: every other class scoring >= the true score ranks
    above it, so the true class must have at most k-1 such rivals.
    """
    if len(labels) == 0:
        return math.nan
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    true_scores = scores[rows, labels]
    at_least = scores >= true_scores[:, None]
    at_least[rows, labels] = False  # the true class does not rival itself
    return float(np.mean(at_least.sum(axis=1) < k))


def compute_metrics(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """(V, C) scores and (V,) integer labels -> top-1, top-5, mean class accuracy, per-class
    accuracy/precision/recall/f1/support, the confusion matrix (rows = true) and sklearn's
    classification report text. Per-class accuracy of a class with no video is NaN."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    class_ids = list(range(len(classes)))
    predicted = predicted_classes(scores, labels)
    matrix = (
        confusion_matrix(labels, predicted, labels=class_ids)
        if len(labels)
        else np.zeros((len(classes), len(classes)), dtype=np.int64)
    )
    precision, recall, f1, support = (
        precision_recall_fscore_support(labels, predicted, labels=class_ids, zero_division=0)
        if len(labels)
        else [np.zeros(len(classes))] * 4
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)
    per_class = {
        name: {
            "accuracy": float(accuracy[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    present = accuracy[~np.isnan(accuracy)]
    return {
        "top1": float(np.mean(predicted == labels)) if len(labels) else math.nan,
        "top5": top_k_accuracy(scores, labels, 5),
        "mean_class_accuracy": float(present.mean()) if len(present) else math.nan,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "classes": list(classes),
    }


def classification_report_text(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> str:
    """scikit-learn's classification report of the top-1 predictions (ties count against the truth)."""
    predicted = predicted_classes(scores, labels)
    return classification_report(
        labels, predicted, labels=list(range(len(classes))), target_names=list(classes), digits=4, zero_division=0
    )
