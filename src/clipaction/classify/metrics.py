"""Metrics from (scores, labels): pure functions, no model, no files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# No scikit-learn here: importing it (with SciPy) takes seconds, far more than a warm run's
# work. The confusion matrix, precision/recall/F1 and the classification report's text are
# written out below as scikit-learn computes them (the same float operations, so the same
# bits and characters; tests/test_evaluate.py compares them with scikit-learn's).


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
    matrix = confusion_matrix(labels, predicted, len(class_ids))
    precision, recall, f1, support = precision_recall_f1(matrix)
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


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted (scikit-learn's layout)."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    cells = np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes)
    return cells.reshape(n_classes, n_classes).astype(np.int64)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator in float64, 0 where the denominator is 0 (`zero_division=0`)."""
    denominator = np.asarray(denominator, dtype=np.float64)
    zero = denominator == 0
    result = np.asarray(numerator, dtype=np.float64) / np.where(zero, 1.0, denominator)
    result[zero] = 0.0
    return result


def precision_recall_f1(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per class, from a (C, C) confusion matrix: precision, recall, F1 (float64, 0 where
    undefined) and support (int64), as scikit-learn's `precision_recall_fscore_support`
    with `zero_division=0` (F1 as 2 tp / (true + predicted))."""
    matrix = np.asarray(matrix, dtype=np.int64)
    tp, predicted, support = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    f1 = _divide(2.0 * tp.astype(np.float64), 1.0 * support.astype(np.float64) + predicted.astype(np.float64))
    return _divide(tp, predicted), _divide(tp, support), f1, support


def classification_report_text(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> str:
    """scikit-learn's classification report of the top-1 predictions (ties count against the
    truth), 4 digits, `zero_division=0`: the same text, written here (see the imports)."""
    labels = np.asarray(labels, dtype=np.int64)
    matrix = confusion_matrix(labels, predicted_classes(scores, labels), len(classes))
    precision, recall, f1, support = precision_recall_f1(matrix)
    if not np.trace(matrix):  # scikit-learn counts in floats when nothing is right: "6.0", not "6"
        support = support.astype(np.float64)
    digits, headers = 4, ["precision", "recall", "f1-score", "support"]
    width = max(max(len(name) for name in classes), len("weighted avg"), digits)
    text = ("{:>{width}s} " + " {:>9}" * len(headers)).format("", *headers, width=width) + "\n\n"
    row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    for values in zip(classes, precision, recall, f1, support):
        text += row.format(*values, width=width, digits=digits)
    total = np.sum(support)
    # The micro average is the accuracy: every prediction is one of the classes.
    micro_f1 = 2.0 * float(np.trace(matrix)) / (float(total) + float(total)) if total else 0.0
    text += "\n" + ("{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
        "accuracy", "", "", micro_f1, total, width=width, digits=digits
    )
    for name, weights in (("macro avg", None), ("weighted avg", support)):
        averages = [float(np.average(values, weights=weights)) for values in (precision, recall, f1)]
        text += row.format(name, *averages, total, width=width, digits=digits)
    return text
