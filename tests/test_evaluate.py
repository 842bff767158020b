"""Metrics on small hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipaction.evaluate import classification_report_text, compute_metrics, top_k_accuracy

CLASSES = ["a", "b", "c"]


def test_metrics_of_a_hand_worked_example():
    # true: a a b b c ; predicted (argmax): a b b b a
    scores = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.3, 0.6, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.7, 0.1],
            [0.5, 0.1, 0.4],
        ]
    )
    labels = np.array([0, 0, 1, 1, 2])
    metrics = compute_metrics(scores, labels, CLASSES)
    assert metrics["top1"] == pytest.approx(3 / 5)
    # top-2: row 1 has a (0.3) second -> in; row 4 has c (0.4) second -> in
    assert top_k_accuracy(scores, labels, 2) == pytest.approx(1.0)
    assert metrics["top5"] == pytest.approx(1.0)  # k beyond the class count
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    per_class = metrics["per_class"]
    assert per_class["a"]["accuracy"] == pytest.approx(0.5)
    assert per_class["b"]["accuracy"] == pytest.approx(1.0)
    assert per_class["c"]["accuracy"] == pytest.approx(0.0)
    assert per_class["b"]["precision"] == pytest.approx(2 / 3)
    assert per_class["a"]["support"] == 2
    assert metrics["mean_class_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_class_without_videos_has_nan_accuracy_and_is_left_out_of_the_mean():
    scores = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    labels = np.array([0, 0])
    metrics = compute_metrics(scores, labels, CLASSES)
    assert math.isnan(metrics["per_class"]["b"]["accuracy"])
    assert metrics["mean_class_accuracy"] == pytest.approx(0.5)


def test_ties_do_not_count_as_correct():
    scores = np.array([[1.0, 1.0]])
    assert top_k_accuracy(scores, np.array([1]), 1) == 1.0  # nothing strictly higher
    scores = np.array([[2.0, 1.0]])
    assert top_k_accuracy(scores, np.array([1]), 1) == 0.0


def test_two_classes_work():
    metrics = compute_metrics(np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([1, 1]), ["x", "y"])
    assert metrics["top1"] == pytest.approx(0.5)
    assert metrics["top5"] == pytest.approx(1.0)


def test_report_text_names_every_class():
    text = classification_report_text(np.eye(3), np.array([0, 1, 2]), CLASSES)
    for name in CLASSES:
        assert name in text
    assert "accuracy" in text
