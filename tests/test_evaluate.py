"""Metrics on small hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clipaction.classify.metrics import classification_report_text, compute_metrics, predicted_classes, top_k_accuracy

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


def test_top_k_counts_a_tie_with_the_true_class_against_it():
    tied = np.array([[1.0, 1.0]])
    assert top_k_accuracy(tied, np.array([0]), 1) == 0.0
    assert top_k_accuracy(tied, np.array([1]), 1) == 0.0
    assert top_k_accuracy(tied, np.array([1]), 2) == 1.0
    # Three-way tie at the top: the true class needs k = 3 to be in.
    three = np.array([[0.5, 0.5, 0.5, 0.1]])
    assert [top_k_accuracy(three, np.array([1]), k) for k in (1, 2, 3)] == [0.0, 0.0, 1.0]
    # A tie below the true class costs nothing.
    assert top_k_accuracy(np.array([[0.9, 0.2, 0.2]]), np.array([0]), 1) == 1.0
    assert top_k_accuracy(np.array([[2.0, 1.0]]), np.array([1]), 1) == 0.0


def test_top1_prediction_of_a_tie_is_the_lowest_other_tied_class():
    scores = np.array(
        [
            [1.0, 1.0, 0.0],  # true 0 ties with 1 -> 1
            [1.0, 1.0, 1.0],  # true 1 ties with 0 and 2 -> 0
            [1.0, 0.0, 1.0],  # true 2 ties with 0 -> 0
            [0.0, 1.0, 1.0],  # true 0 is not at the top -> plain argmax 1
            [3.0, 1.0, 1.0],  # tie below the true class -> 0
        ]
    )
    labels = np.array([0, 1, 2, 0, 0])
    assert predicted_classes(scores, labels).tolist() == [1, 0, 0, 1, 0]
    metrics = compute_metrics(scores, labels, CLASSES)
    assert metrics["top1"] == pytest.approx(1 / 5)
    assert metrics["confusion_matrix"] == [[1, 2, 0], [1, 0, 0], [1, 0, 0]]
    assert metrics["per_class"]["a"]["accuracy"] == pytest.approx(1 / 3)
    assert metrics["per_class"]["b"]["recall"] == pytest.approx(0.0)


def test_all_equal_scores_give_zero_accuracy_everywhere():
    # A model that cannot tell the classes apart must not be credited with anything.
    scores = np.zeros((6, 3))
    labels = np.array([0, 1, 2, 0, 1, 2])
    metrics = compute_metrics(scores, labels, CLASSES)
    assert metrics["top1"] == 0.0
    assert metrics["mean_class_accuracy"] == 0.0
    assert np.trace(np.array(metrics["confusion_matrix"])) == 0
    report = classification_report_text(scores, labels, CLASSES)
    accuracy_line = next(line for line in report.splitlines() if line.strip().startswith("accuracy"))
    assert float(accuracy_line.split()[1]) == 0.0


# Scores drawn from a handful of values so that ties are common.
tie_prone_scores = st.tuples(st.integers(1, 30), st.integers(2, 6)).flatmap(
    lambda shape: st.tuples(
        arrays(np.float64, shape, elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])),
        arrays(np.int64, shape[0], elements=st.integers(0, shape[1] - 1)),
    )
)


@settings(max_examples=200, deadline=None)
@given(case=tie_prone_scores)
def test_top1_equals_top_k_accuracy_at_k_1(case):
    scores, labels = case
    predicted = predicted_classes(scores, labels)
    top1 = compute_metrics(scores, labels, [str(i) for i in range(scores.shape[1])])["top1"]
    assert top1 == pytest.approx(top_k_accuracy(scores, labels, 1))
    assert top1 == pytest.approx(float(np.mean(predicted == labels)))
    # The prediction is always a class with the maximum score, and only a sole maximum is correct.
    rows = np.arange(len(labels))
    assert np.all(scores[rows, predicted] == scores.max(axis=1))
    sole_max = (scores == scores.max(axis=1, keepdims=True)).sum(axis=1) == 1
    assert np.array_equal(predicted == labels, sole_max & (scores.argmax(axis=1) == labels))


@settings(max_examples=100, deadline=None)
@given(case=tie_prone_scores)
def test_top_k_accuracy_grows_with_k_and_reaches_one(case):
    scores, labels = case
    values = [top_k_accuracy(scores, labels, k) for k in range(1, scores.shape[1] + 1)]
    assert values == sorted(values)
    assert values[-1] == 1.0


def test_two_classes_work():
    metrics = compute_metrics(np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([1, 1]), ["x", "y"])
    assert metrics["top1"] == pytest.approx(0.5)
    assert metrics["top5"] == pytest.approx(1.0)


def test_report_text_names_every_class():
    text = classification_report_text(np.eye(3), np.array([0, 1, 2]), CLASSES)
    for name in CLASSES:
        assert name in text
    assert "accuracy" in text


# Labels and predictions over a few classes (some with no video, or never predicted), and
# class names of any length (the report's column width follows the longest).
label_cases = st.tuples(st.integers(1, 40), st.integers(2, 7)).flatmap(
    lambda shape: st.tuples(
        arrays(np.int64, shape[0], elements=st.integers(0, shape[1] - 1)),
        arrays(np.int64, shape[0], elements=st.integers(0, shape[1] - 1)),
        st.lists(st.text("abcXYZ _", min_size=1, max_size=20), min_size=shape[1], max_size=shape[1], unique=True),
    )
)


@pytest.mark.slow  # imports scikit-learn (seconds)
@settings(max_examples=100, deadline=None)
@given(case=label_cases)
def test_metrics_and_report_are_scikit_learns_to_the_bit(case):
    """compute_metrics and the report are written without scikit-learn (its import costs a
    warm run seconds); they must give its numbers and its text exactly."""
    from sklearn import metrics as sk

    labels, predicted, classes = case
    scores = np.eye(len(classes))[predicted]  # one-hot: the prediction is the argmax, no ties
    ids = list(range(len(classes)))
    metrics = compute_metrics(scores, labels, classes)
    assert metrics["confusion_matrix"] == sk.confusion_matrix(labels, predicted, labels=ids).tolist()
    precision, recall, f1, support = sk.precision_recall_fscore_support(labels, predicted, labels=ids, zero_division=0)
    for i, name in enumerate(classes):
        got = metrics["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"]) == (precision[i], recall[i], f1[i])
        assert got["support"] == support[i]
    expected = sk.classification_report(labels, predicted, labels=ids, target_names=classes, digits=4, zero_division=0)
    assert classification_report_text(scores, labels, classes) == expected
