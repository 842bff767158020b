"""Metrics from (scores, labels): pure functions, no model, no files."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the k highest scores (k >= C gives 1.0).

    Written out because scikit-learn's top_k_accuracy_score rejects 2-class score matrices.
    Ties count against the true class (a class must beat all but k-1 others strictly).
    """
    if len(labels) == 0:
        return math.nan
    true_scores = scores[np.arange(len(labels)), labels]
    higher = (scores > true_scores[:, None]).sum(axis=1)
    return float(np.mean(higher < k))


def compute_metrics(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """(V, C) scores and (V,) integer labels -> top-1, top-5, mean class accuracy, per-class
    accuracy/precision/recall/f1/support, the confusion matrix (rows = true) and sklearn's
    classification report text. Per-class accuracy of a class with no video is NaN."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    class_ids = list(range(len(classes)))
    predicted = scores.argmax(axis=1) if len(labels) else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(labels, predicted, labels=class_ids) if len(labels) else np.zeros(
        (len(classes), len(classes)), dtype=np.int64
    )
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=class_ids, zero_division=0
    ) if len(labels) else [np.zeros(len(classes))] * 4
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
    """scikit-learn's classification report of the top-1 predictions."""
    predicted = np.asarray(scores).argmax(axis=1)
    return classification_report(
        labels, predicted, labels=list(range(len(classes))), target_names=list(classes), digits=4, zero_division=0
    )
