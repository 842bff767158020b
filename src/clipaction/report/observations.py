"""Sentences read off a run's numbers: nothing here knows any class in advance.

Each stage contributes sentences only when it is in the results; a stage that was not run (or
lacks the numbers a sentence needs) contributes none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clipaction.report.caveats import identical_prompt_groups, identical_prompt_sentences
from clipaction.report.tables import (
    accuracy_of,
    comparison_rows,
    is_number,
    pct,
    points,
    prediction_counts,
    ranked_classes,
    similar_pairs,
    stage_confusions,
    support_of,
)

N_CONFUSIONS = 3
N_CHANGES = 5
# Collapse: the most predicted class, or the two most predicted, take this share of predictions
# (with 6 classes an even spread gives them 17% and 33%).
COLLAPSE_TOP1 = 0.5
COLLAPSE_TOP2 = 0.6
MIN_CLASSES_FOR_VERDICT = 6


def observations(results: Mapping[str, Any]) -> list[str]:
    """Plain sentences about this run's numbers, in report order."""
    stages = results.get("stages") or {}
    classes = list((results.get("dataset") or {}).get("classes") or [])
    sentences: list[str] = []
    if stages.get("zeroshot"):
        sentences += zeroshot_sentences(stages["zeroshot"])
    if stages.get("temporal"):
        sentences += temporal_sentences(stages["temporal"])
    if stages.get("fewshot"):
        sentences += finetune_sentences(stages["fewshot"], classes, "few-shot fine-tuning")
    if stages.get("full_finetune"):
        sentences += finetune_sentences(stages["full_finetune"], classes, "full fine-tuning")
        sentences += collapse_sentences(stages["full_finetune"], stages.get("fewshot"))
    if stages.get("embeddings"):
        sentences += embedding_sentences(stages["embeddings"], classes)
    if stages.get("adapt_methods"):
        sentences += method_sentences(stages["adapt_methods"])
    if stages.get("ablations"):
        label_map = ((results.get("config") or {}).get("prompts") or {}).get("label_map")
        sentences += ablation_sentences(stages["ablations"], label_map)
    return sentences


def method_sentences(stage: Mapping[str, Any]) -> list[str]:
    """Which few-shot method gained most on the trained classes, and which kept the others best."""
    rows = [
        (name, r["delta"].get("trained"), r["delta"].get("others"))
        for name, r in (stage.get("methods") or {}).items()
        if is_number((r.get("delta") or {}).get("trained")) and is_number((r.get("delta") or {}).get("others"))
    ]
    if len(rows) < 2:
        return []
    gain = max(rows, key=lambda row: row[1])
    keep = max(rows, key=lambda row: row[2])
    sentence = f"Of the few-shot methods, {gain[0]} gained most on the trained classes ({points(gain[1])} points)"
    if keep[0] != gain[0]:
        sentence += (
            f", while {keep[0]} changed the other classes least ({points(keep[2])} points against {points(gain[2])})"
        )
    else:
        sentence += f" and also changed the other classes least ({points(gain[2])} points)"
    return [sentence + "."]


def prompt_sentences(stage: Mapping[str, Any], label_map: Any = None) -> list[str]:
    """The best and worst prompt choice. Rows that are one result (the same prompts, e.g. name
    styles a label map overrides) are said to be identical and ranked once, as one choice; a
    tie at the top or bottom is called a tie."""
    rows = list(stage.get("prompts") or [])
    groups = identical_prompt_groups(stage, label_map)
    sentences = identical_prompt_sentences(stage, label_map)
    styles = {i: str(row.get("name_style")) for i, row in enumerate(rows)}
    dropped: set[int] = set()
    for group in groups:
        first, *rest = group["rows"]
        styles[first] = " = ".join(str(rows[i].get("name_style")) for i in group["rows"])
        dropped.update(rest)
    choices = [(styles[i], row) for i, row in enumerate(rows) if i not in dropped and is_number(row.get("top1"))]
    if len(choices) < 2:
        return sentences
    high = max(row["top1"] for _, row in choices)
    low = min(row["top1"] for _, row in choices)
    if high == low:
        return sentences + [f"All {len(choices)} distinct prompt choices tied at {pct(high)} top-1."]

    def named(value: float) -> tuple[str, bool]:
        same = [f"{style} names with {row['templates']}" for style, row in choices if row["top1"] == value]
        return _join(same), len(same) > 1

    (best, best_tied), (worst, worst_tied) = named(high), named(low)
    if not best_tied and not worst_tied:
        best_style, best_row = next(choice for choice in choices if choice[1]["top1"] == high)
        worst_style, worst_row = next(choice for choice in choices if choice[1]["top1"] == low)
        sentences.append(
            f"Of the prompt choices, {best_style} class names with the {best_row['templates']} templates "
            f"scored best ({pct(high)} top-1) and {worst_style} names with "
            f"{worst_row['templates']} worst ({pct(low)}): {points(high - low)} points apart."
        )
        return sentences
    sentences.append(
        f"Of the prompt choices, {best} {'tied for' if best_tied else 'scored'} best ({pct(high)} top-1) and "
        f"{worst} {'tied for' if worst_tied else 'scored'} worst ({pct(low)}): {points(high - low)} points apart."
    )
    return sentences


def ablation_sentences(stage: Mapping[str, Any], label_map: Any = None) -> list[str]:
    """The best and worst prompt choice, and the best temporal input with its frame cost."""
    sentences = prompt_sentences(stage, label_map)
    temporal = [row for row in stage.get("temporal") or [] if is_number(row.get("top1"))]
    if len(temporal) >= 2:
        best = max(temporal, key=lambda row: (row["top1"], -row["frames_per_video"]))
        cheapest = min(temporal, key=lambda row: (row["frames_per_video"], -row["top1"]))
        sentence = f"Of the temporal inputs, {best['name']} ({_frames(best)} per video) scored best ({pct(best['top1'])} top-1)"
        if best is not cheapest:
            sentence += (
                f", {points(best['top1'] - cheapest['top1'])} points over {cheapest['name']} ({_frames(cheapest)})"
            )
        sentences.append(sentence + ".")
    return sentences


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _frames(variant: Mapping[str, Any]) -> str:
    count = variant.get("frames_per_video")
    return _plural(int(count), "frame") if is_number(count) else "unknown frames"


def zeroshot_sentences(stage: Mapping[str, Any]) -> list[str]:
    metrics = stage.get("metrics") or {}
    sentences = []
    for pair in stage_confusions(stage, N_CONFUSIONS):
        total = support_of(metrics, pair["true"])
        fraction = pair.get("fraction")
        if not is_number(fraction) and total:
            fraction = pair["count"] / total
        of = f" of {total}" if total else ""
        sentences.append(
            f"Zero-shot, {pair['true']} was predicted as {pair['predicted']} for {pair['count']}{of} "
            f"test videos ({pct(fraction)})."
        )
    ranked = [name for name in ranked_classes(metrics) if accuracy_of(metrics, name) is not None]
    if len(ranked) >= 2 and accuracy_of(metrics, ranked[0]) != accuracy_of(metrics, ranked[-1]):
        best = _tied(metrics, ranked, accuracy_of(metrics, ranked[0]), "best recognised")
        worst = _tied(metrics, ranked, accuracy_of(metrics, ranked[-1]), "worst")
        sentences.append(f"Zero-shot, {best} and {worst}; top-1 over all classes is {pct(metrics.get('top1'))}.")
    return sentences


def _tied(metrics: Mapping[str, Any], ranked: Sequence[str], value: float | None, what: str) -> str:
    """ "the worst is A (0.0%)", "the worst are A and B (0.0%)" or "5 classes share the worst (0.0%)"."""
    names = [name for name in ranked if accuracy_of(metrics, name) == value]
    if len(names) == 1:
        return f"the {what} class is {names[0]} ({pct(value)})"
    if len(names) <= N_CONFUSIONS:
        return f"the {what} classes are {_join(names)} ({pct(value)} each)"
    return f"{len(names)} classes share the {what} accuracy ({pct(value)})"


def temporal_sentences(stage: Mapping[str, Any]) -> list[str]:
    variants = [v for v in stage.get("variants") or [] if is_number((v.get("metrics") or {}).get("top1"))]
    if len(variants) < 2:
        return []
    first = variants[0]
    base = first["metrics"]["top1"]
    sentences = []
    for variant in variants[1:]:
        top1 = variant["metrics"]["top1"]
        size = points(top1 - base).lstrip("+-")
        change = "no change"
        if top1 != base:
            change = f"a {'gain' if top1 > base else 'loss'} of {size} points"
        sentences.append(
            f"{variant.get('name')} ({_frames(variant)} per video) reached top-1 {pct(top1)} against "
            f"{pct(base)} for {first.get('name')} ({_frames(first)}): {change}."
        )
    last = variants[-1].get("name")
    differences = []
    for entry in stage.get("per_class") or []:
        correct = entry.get("correct") or {}
        if last in correct and first.get("name") in correct:
            differences.append((int(correct[last]) - int(correct[first.get("name")]), entry.get("class")))
    gains = sorted((x for x in differences if x[0] > 0), key=lambda x: (-x[0], x[1]))[:N_CHANGES]
    losses = sorted((x for x in differences if x[0] < 0), key=lambda x: (x[0], x[1]))[:N_CHANGES]
    if gains:
        listed = _join([f"{name} (+{d})" for d, name in gains])
        sentences.append(f"With {last}, the most additional correct videos came in {listed}.")
    if losses:
        listed = _join([f"{name} ({d})" for d, name in losses])
        sentences.append(f"With {last}, correct videos were lost in {listed}.")
    return sentences


def finetune_sentences(stage: Mapping[str, Any], classes: Sequence[str], label: str) -> list[str]:
    before, after = stage.get("zeroshot_metrics") or {}, stage.get("finetuned_metrics") or {}
    sentences = []
    if is_number(before.get("top1")) and is_number(after.get("top1")):
        delta = after["top1"] - before["top1"]
        sentences.append(
            f"After {label}, top-1 over all {len(after.get('classes') or classes)} classes went from "
            f"{pct(before['top1'])} to {pct(after['top1'])} ({points(delta)} points)."
        )
    trained = set(stage.get("train_classes") or stage.get("chosen_classes") or [])
    rows = [row for row in comparison_rows(stage, classes) if is_number(row.get("delta"))]
    groups = (
        ("trained", [row for row in rows if row["class"] in trained]),
        ("untouched", [row for row in rows if row["class"] not in trained]),
    )
    if rows and all(row["delta"] == 0 for row in rows):
        return sentences + [f"After {label}, no class changed accuracy."]
    for kind, members in groups:
        gained = sorted((row for row in members if row["delta"] > 0), key=lambda row: -row["delta"])
        lost = sorted((row for row in members if row["delta"] < 0), key=lambda row: row["delta"])
        if gained:
            sentences.append(f"After {label}, {kind} classes that gained accuracy: {_changes(gained)}.")
        if lost:
            sentences.append(f"After {label}, {kind} classes that lost accuracy: {_changes(lost)}.")
        if members and not gained and not lost:
            sentences.append(f"After {label}, no {kind} class changed accuracy.")
    return sentences


def _changes(rows: Sequence[Mapping[str, Any]]) -> str:
    """The first N_CHANGES rows as "A (40.0% -> 100.0%, +60.0 points)", with a count of the rest."""
    listed = [
        f"{row['class']} ({pct(row.get('zeroshot'))} -> {pct(row.get('finetuned'))}, {points(row['delta'])} points)"
        for row in rows[:N_CHANGES]
    ]
    if len(rows) > N_CHANGES:
        listed.append(f"{len(rows) - N_CHANGES} more")
    return _join(listed)


def _trained(stage: Mapping[str, Any], default: str) -> str:
    """What the stage trained, as the study recorded it (training.trained)."""
    return str((stage.get("training") or {}).get("trained") or default)


def collapse_sentences(stage: Mapping[str, Any], fewshot: Mapping[str, Any] | None) -> list[str]:
    """Where the predictions went after full fine-tuning. With at least MIN_CLASSES_FOR_VERDICT
    classes it says "collapsed" when the most predicted class took COLLAPSE_TOP1 of all test
    predictions or the two most predicted took COLLAPSE_TOP2."""
    metrics = stage.get("finetuned_metrics") or {}
    counts = prediction_counts(metrics)
    total = sum(counts.values())
    n_classes = len(counts)
    if not total or n_classes < 2:
        return []
    order = list(counts)
    top = sorted(order, key=lambda name: (-counts[name], order.index(name)))[:2]
    share1 = counts[top[0]] / total
    share2 = (counts[top[0]] + counts[top[1]]) / total
    chance = 1 / n_classes
    top1 = metrics.get("top1")
    accuracy = f"top-1 is {pct(top1)} against a chance level of {pct(chance)} (1/{n_classes})"
    if is_number(top1) and top1 <= 2 * chance:
        accuracy += ", near chance"
    where = f"{pct(share1)} of the {total} test predictions went to {top[0]}"
    if counts[top[1]]:
        where += f" and {pct(share2)} to {top[0]} and {top[1]}"
    if n_classes < MIN_CLASSES_FOR_VERDICT:
        sentence = f"After full fine-tuning, {where}; {accuracy}."
    elif share1 >= COLLAPSE_TOP1 or share2 >= COLLAPSE_TOP2:
        sentence = f"Full fine-tuning collapsed: {where}; {accuracy}."
    else:
        sentence = f"Full fine-tuning did not collapse onto one or two classes: {where}; {accuracy}."
    sentences = [sentence]
    few_top1 = ((fewshot or {}).get("finetuned_metrics") or {}).get("top1")
    if is_number(few_top1) and is_number(top1):
        sentences.append(
            f"Full fine-tuning reached top-1 {pct(top1)} against {pct(few_top1)} for few-shot fine-tuning "
            f"of the {_trained(fewshot or {}, 'projection')} alone ({points(top1 - few_top1)} points)."
        )
    return sentences


def embedding_sentences(stage: Mapping[str, Any], classes: Sequence[str]) -> list[str]:
    pairs = similar_pairs(stage.get("text_similarity") or [], classes, N_CONFUSIONS)
    if not pairs:
        return []
    sentences = [
        "The most similar class prompts are " + _join([f"{a} / {b} (cosine {c:.2f})" for a, b, c in pairs]) + "."
    ]
    nearest = _nearest_centroids(stage.get("tsne") or {}, classes)
    if nearest:
        linked = [f"{a} / {b}" for a, b, _ in pairs if nearest.get(a) == b or nearest.get(b) == a]
        if linked:
            verb = "is also a pair" if len(linked) == 1 else "are also pairs"
            sentences.append(
                f"In the t-SNE map, {_join(linked)} {verb} of nearest-neighbour classes "
                f"(by the distance between class centroids)."
            )
        else:
            sentences.append(
                "In the t-SNE map, none of these pairs are nearest-neighbour classes (by centroid distance)."
            )
    return sentences


def _nearest_centroids(tsne: Mapping[str, Any], classes: Sequence[str]) -> dict[str, str]:
    """{class: the class whose t-SNE centroid is closest to its own}."""
    points = np.asarray(tsne.get("points") or [], dtype=np.float64)
    labels = np.asarray(tsne.get("labels") or [], dtype=np.int64)
    if points.ndim != 2 or len(points) != len(labels) or len(points) == 0:
        return {}
    present = [i for i in sorted(set(labels.tolist())) if 0 <= i < len(classes)]
    if len(present) < 2:
        return {}
    centroids = np.stack([points[labels == i].mean(axis=0) for i in present])
    distances = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return {classes[present[i]]: classes[present[int(np.argmin(distances[i]))]] for i in range(len(present))}
