"""Table rows and the numbers behind them, drawn from a results dict.

Every table is a `Table` of plain-text cells (nothing escaped): markdown.py and html.py both
render the same rows, each escaping for its own format. Fractions are shown as percentages with
one decimal; a missing number (None/NaN) as "n/a".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, TypeGuard

import numpy as np

NA = "n/a"


@dataclass(frozen=True)
class Table:
    """A header and rows of text cells; `align` holds "l" or "r" per column."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: tuple[str, ...]

    @classmethod
    def make(cls, header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> Table:
        """`align` is a string of "l"/"r", one per column (default: first left, rest right)."""
        align = align or "l" + "r" * (len(header) - 1)
        if len(align) != len(header) or any(len(row) != len(header) for row in rows):
            raise ValueError("every row and the alignment must have one entry per header column")
        return cls(tuple(header), tuple(tuple(str(cell) for cell in row) for row in rows), tuple(align))


# --- number formatting ------------------------------------------------------------------------


def is_number(value: Any) -> TypeGuard[float]:
    """A finite int or float (not a bool): what a table can print as a number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pct(value: Any) -> str:
    """0.6321 -> "63.2%"; None/NaN -> "n/a"."""
    return f"{100 * value:.1f}%" if is_number(value) else NA


def points(delta: Any) -> str:
    """A difference of fractions in percentage points, signed: 0.05 -> "+5.0"."""
    if not is_number(delta):
        return NA
    text = f"{100 * delta:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def number(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if is_number(value) else NA


def signed(value: int) -> str:
    return f"{value:+d}" if value else "0"


# --- numbers from metrics ---------------------------------------------------------------------


def matrix_of(metrics: Mapping[str, Any]) -> np.ndarray:
    """The (C, C) confusion matrix (rows = true) as an int array; (0, 0) when absent."""
    matrix = np.asarray(metrics.get("confusion_matrix") or [], dtype=np.int64)
    return matrix.reshape(0, 0) if matrix.size == 0 else matrix


def accuracy_of(metrics: Mapping[str, Any], name: str) -> float | None:
    value = (metrics.get("per_class") or {}).get(name, {}).get("accuracy")
    return float(value) if is_number(value) else None


def support_of(metrics: Mapping[str, Any], name: str) -> int:
    """Test videos of class `name`: per-class support, else its confusion-matrix row sum."""
    value = (metrics.get("per_class") or {}).get(name, {}).get("support")
    if is_number(value):
        return int(value)
    classes = list(metrics.get("classes") or [])
    matrix = matrix_of(metrics)
    if name in classes and matrix.shape[0] == len(classes):
        return int(matrix[classes.index(name)].sum())
    return 0


def confused_pairs(metrics: Mapping[str, Any], n: int = 5) -> list[dict[str, Any]]:
    """The `n` largest off-diagonal cells: [{"true", "predicted", "count", "fraction"}], where
    fraction is count over the true class's videos. Ties keep class order (row, then column)."""
    classes = list(metrics.get("classes") or [])
    matrix = matrix_of(metrics)
    if matrix.shape != (len(classes), len(classes)):
        return []
    cells = [
        (-int(matrix[i, j]), i, j)
        for i in range(len(classes))
        for j in range(len(classes))
        if i != j and matrix[i, j] > 0
    ]
    pairs = []
    for negative, i, j in sorted(cells)[:n]:
        row = int(matrix[i].sum())
        fraction = -negative / row if row else None
        pairs.append({"true": classes[i], "predicted": classes[j], "count": -negative, "fraction": fraction})
    return pairs


def stage_confusions(stage: Mapping[str, Any], n: int = 5) -> list[dict[str, Any]]:
    """The stage's stored `most_confused` list, else the pairs computed from its matrix."""
    stored = stage.get("most_confused")
    if stored:
        return [dict(pair) for pair in stored[:n]]
    return confused_pairs(stage.get("metrics") or {}, n)


def prediction_counts(metrics: Mapping[str, Any]) -> dict[str, int]:
    """How many test videos were predicted as each class (confusion-matrix column sums)."""
    classes = list(metrics.get("classes") or [])
    matrix = matrix_of(metrics)
    if matrix.shape != (len(classes), len(classes)):
        return {}
    return {name: int(count) for name, count in zip(classes, matrix.sum(axis=0))}


def float_array(values: Any) -> np.ndarray:
    """Nested lists of numbers to a float array, with None (NaN in results.json) as NaN."""

    def clean(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        return np.nan if value is None else value

    return np.asarray(clean(values), dtype=np.float64)


def similar_pairs(
    similarity: Sequence[Sequence[float | None]], classes: Sequence[str], n: int = 5
) -> list[tuple[str, str, float]]:
    """The `n` most similar distinct class pairs of a symmetric (C, C) cosine matrix; NaN cells
    are skipped."""
    matrix = float_array(similarity or [])
    if matrix.shape != (len(classes), len(classes)):
        return []
    rows, cols = np.triu_indices(len(classes), k=1)
    valid = [k for k in range(len(rows)) if np.isfinite(matrix[rows[k], cols[k]])]
    order = sorted(valid, key=lambda k: (-matrix[rows[k], cols[k]], rows[k], cols[k]))
    return [(classes[rows[k]], classes[cols[k]], float(matrix[rows[k], cols[k]])) for k in order[:n]]


def comparison_rows(stage: Mapping[str, Any], classes: Sequence[str]) -> list[dict[str, Any]]:
    """The stage's per-class zero-shot vs fine-tuned list; computed from the two metrics dicts
    when the stored `comparison` is absent."""
    if stage.get("comparison"):
        return [dict(row) for row in stage["comparison"]]
    before, after = stage.get("zeroshot_metrics") or {}, stage.get("finetuned_metrics") or {}
    rows = []
    for name in classes:
        zs, ft = accuracy_of(before, name), accuracy_of(after, name)
        delta = None if zs is None or ft is None else ft - zs
        rows.append({"class": name, "zeroshot": zs, "finetuned": ft, "delta": delta})
    return rows


# --- tables ----------------------------------------------------------------------------------


def ranked_classes(metrics: Mapping[str, Any]) -> list[str]:
    """Classes best to worst by accuracy; classes without a score last; ties keep class order."""
    classes = list(metrics.get("classes") or (metrics.get("per_class") or {}).keys())

    def key(name: str) -> tuple[bool, float]:
        value = accuracy_of(metrics, name)
        return value is None, -(value or 0.0)

    return sorted(classes, key=key)


def summary_table(metrics: Mapping[str, Any]) -> Table:
    matrix = matrix_of(metrics)
    rows = [
        ("Top-1 accuracy", pct(metrics.get("top1"))),
        ("Top-5 accuracy", pct(metrics.get("top5"))),
        ("Mean class accuracy", pct(metrics.get("mean_class_accuracy"))),
        ("Test videos scored", str(int(matrix.sum()))),
    ]
    return Table.make(("Metric", "Value"), rows)


def ranking_table(metrics: Mapping[str, Any]) -> Table:
    """Per-class accuracy/precision/recall/F1/support, best accuracy first."""
    per_class = metrics.get("per_class") or {}
    rows = []
    for rank, name in enumerate(ranked_classes(metrics), start=1):
        entry = per_class.get(name, {})
        rows.append(
            (
                rank,
                name,
                pct(entry.get("accuracy")),
                pct(entry.get("precision")),
                pct(entry.get("recall")),
                pct(entry.get("f1")),
                support_of(metrics, name),
            )
        )
    return Table.make(("Rank", "Class", "Accuracy", "Precision", "Recall", "F1", "Support"), rows, "rlrrrrr")


def confused_pairs_table(pairs: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any] | None = None) -> Table:
    rows = []
    for pair in pairs:
        total = support_of(metrics, pair["true"]) if metrics else None
        videos = f"{pair['count']} of {total}" if total else str(pair["count"])
        rows.append((pair["true"], pair["predicted"], videos, pct(pair.get("fraction"))))
    return Table.make(("True class", "Predicted as", "Videos", "Share of true class"), rows, "llrr")


def examples_table(examples: Sequence[Mapping[str, Any]], top: int = 3, limit: int = 10) -> Table:
    """A few example predictions: the video's file name, true and predicted class, and the
    `top` most probable classes."""
    rows = []
    for example in examples[:limit]:
        ranked = ", ".join(f"{label} ({pct(prob)})" for label, prob in list(example.get("top5") or [])[:top])
        truth, predicted = example.get("true", NA), example.get("predicted", NA)
        name = PurePath(str(example.get("video", NA))).name
        rows.append((name, truth, predicted, "yes" if truth == predicted else "no", ranked))
    header = ("Video", "True class", "Predicted", "Correct", f"Top {top} (probability)")
    return Table.make(header, rows, "lllll")


def class_prompts_table(classes: Sequence[str], prompts: Sequence[str], limit: int = 20) -> Table:
    rows = list(zip(classes, prompts))[:limit]
    return Table.make(("Class", "Example prompt"), rows, "ll")


def sampler_text(sampler: Mapping[str, Any] | None) -> str:
    """{"name": "center-clip", "frames": 8, "window": 3.0} -> "center-clip: 8 frames over 3.0 s"."""
    if not sampler:
        return NA
    name = sampler.get("name", NA)
    if name == "middle":
        return "middle: the single middle frame"
    if name == "uniform":
        return f"uniform: {sampler.get('frames', NA)} frames spread over the whole video"
    if name == "center-clip":
        window = number(sampler.get("window"), 1)
        return f"center-clip: {sampler.get('frames', NA)} frames over {window} s at the centre"
    if name == "multi-clip":
        window = number(sampler.get("window"), 1)
        clips = sampler.get("clips", NA)
        return f"multi-clip: {clips} clips of {sampler.get('frames', NA)} frames over {window} s, evenly spread"
    extras = ", ".join(f"{key} {value}" for key, value in sampler.items() if key != "name")
    return f"{name}: {extras}" if extras else str(name)


def temporal_summary_table(temporal: Mapping[str, Any]) -> Table:
    rows = []
    for variant in temporal.get("variants") or []:
        metrics = variant.get("metrics") or {}
        rows.append(
            (
                variant.get("name", NA),
                sampler_text(variant.get("sampler")),
                variant.get("frames_per_video", NA),
                pct(metrics.get("top1")),
                pct(metrics.get("top5")),
                pct(metrics.get("mean_class_accuracy")),
            )
        )
    header = ("Variant", "Frames taken", "Frames per video", "Top-1", "Top-5", "Mean class accuracy")
    return Table.make(header, rows, "llrrrr")


def temporal_table(temporal: Mapping[str, Any]) -> Table:
    """Per class: correct and mistakes of each variant, and the change in correct videos from the
    first variant to the last (computed from the counts, so its direction is the header's)."""
    variants = temporal.get("variants") or []
    names = [variant.get("name", f"variant {i + 1}") for i, variant in enumerate(variants)]
    header = ["Class"]
    for name in names:
        header += [f"{name} correct", f"{name} mistakes"]
    last, first = (names[-1], names[0]) if names else ("", "")
    header.append(f"Difference in correct ({last} - {first})")
    rows, totals = [], np.zeros(2 * len(names) + 1, dtype=np.int64)
    for entry in temporal.get("per_class") or []:
        correct, mistakes = entry.get("correct") or {}, entry.get("mistakes") or {}
        counts = []
        for name in names:
            counts += [int(correct.get(name, 0)), int(mistakes.get(name, 0))]
        difference = int(correct.get(last, 0)) - int(correct.get(first, 0))
        totals += np.array(counts + [difference], dtype=np.int64)
        rows.append([entry.get("class", NA), *map(str, counts), signed(difference)])
    if rows:
        rows.append(["All classes", *map(str, totals[:-1].tolist()), signed(int(totals[-1]))])
    return Table.make(header, rows)


def selection_table(stage: Mapping[str, Any]) -> Table:
    """Zero-shot accuracy of every class on the selection list, lowest first, chosen ones marked."""
    accuracy = stage.get("selection_accuracy") or {}
    chosen = set(stage.get("chosen_classes") or [])
    order = list(accuracy)

    def key(name: str) -> tuple[bool, float, int]:
        value = accuracy[name]
        return not is_number(value), value if is_number(value) else 0.0, order.index(name)

    ranked = sorted(order, key=key)
    rows = [(name, pct(accuracy[name]), "yes" if name in chosen else "") for name in ranked]
    select_on = stage.get("select_on", NA)
    return Table.make(("Class", f"Zero-shot accuracy ({select_on} list)", "Chosen"), rows, "lrl")


def shots_table(stage: Mapping[str, Any]) -> Table:
    shots = stage.get("shots", NA)
    short = set(stage.get("short_classes") or [])
    rows = [
        (name, count, "fewer than asked" if name in short else "")
        for name, count in (stage.get("shots_per_class") or {}).items()
    ]
    return Table.make(("Class", f"Training videos (asked: {shots})", "Note"), rows, "lrl")


def training_table(training: Mapping[str, Any]) -> Table:
    rows = [
        ("Learning rate", training.get("lr", NA)),
        ("Epochs", training.get("epochs", NA)),
        ("Weight decay", training.get("weight_decay", NA)),
        ("Batch size", training.get("batch_size", NA)),
        ("Seed", training.get("seed", NA)),
    ]
    curve = [value for value in training.get("loss_curve") or [] if is_number(value)]
    if curve:
        rows.append(("Training loss, first -> last epoch", f"{curve[0]:.4f} -> {curve[-1]:.4f}"))
    return Table.make(("Setting", "Value"), rows)


def comparison_table(stage: Mapping[str, Any], classes: Sequence[str]) -> Table:
    """Zero-shot vs fine-tuned accuracy per class, the change in points, and an overall row."""
    trained = set(stage.get("train_classes") or stage.get("chosen_classes") or [])
    rows = [
        (
            row["class"],
            "yes" if row["class"] in trained else "",
            pct(row.get("zeroshot")),
            pct(row.get("finetuned")),
            points(row.get("delta")),
        )
        for row in comparison_rows(stage, classes)
    ]
    before, after = stage.get("zeroshot_metrics") or {}, stage.get("finetuned_metrics") or {}
    overall = (("All classes (top-1)", "top1"), ("All classes (mean class accuracy)", "mean_class_accuracy"))
    for label, key in overall:
        zs, ft = before.get(key), after.get(key)
        if is_number(zs) or is_number(ft):
            delta = ft - zs if is_number(zs) and is_number(ft) else None
            rows.append((label, "", pct(zs), pct(ft), points(delta)))
    return Table.make(("Class", "Trained", "Zero-shot", "Fine-tuned", "Change (points)"), rows, "llrrr")


def similarity_table(pairs: Sequence[tuple[str, str, float]]) -> Table:
    rows = [(a, b, number(c)) for a, b, c in pairs]
    return Table.make(("Class", "Class", "Prompt cosine similarity"), rows, "llr")


def settings_table(rows: Sequence[tuple[str, Any]]) -> Table:
    cells = [(key, NA if value is None else value) for key, value in rows]
    return Table.make(("Setting", "Value"), cells, "ll")


def prompt_ablation_table(rows: Sequence[Mapping[str, Any]], identical: Sequence[Mapping[str, Any]] = ()) -> Table:
    """Zero-shot accuracy per class-name style and template set. `identical` holds groups of
    rows that are one result (caveats.identical_prompt_groups): their rows say so in a last
    column, with the reason."""
    notes = {}
    for group in identical:
        for index in group["rows"]:
            others = [label for i, label in zip(group["rows"], group["labels"]) if i != index]
            what = "identical to" if group.get("exact", True) else "same numbers as"
            notes[index] = f"{what} {', '.join(others)}: {group['reason']}"
    header = ["Class names", "Templates", "Prompts per class", "Top-1", "Top-5", "Mean class accuracy"]
    cells = [
        [
            r["name_style"],
            r["templates"],
            r["n_templates"],
            pct(r["top1"]),
            pct(r["top5"]),
            pct(r["mean_class_accuracy"]),
        ]
        for r in rows
    ]
    if not notes:
        return Table.make(header, cells, "llrrrr")
    return Table.make([*header, "Note"], [row + [notes.get(i, "")] for i, row in enumerate(cells)], "llrrrrl")


def temporal_ablation_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Zero-shot accuracy per temporal input, with the frames each video costs to encode."""
    return Table.make(
        ["Input", "Frames", "Frames encoded per video", "Top-1", "Top-5", "Mean class accuracy"],
        [
            [
                r["name"],
                sampler_text(r.get("sampler")),
                r["frames_per_video"],
                pct(r["top1"]),
                pct(r["top5"]),
                pct(r["mean_class_accuracy"]),
            ]
            for r in rows
        ],
        "llrrrr",
    )


def _chosen_values(info: Mapping[str, Any]) -> str:
    """The settings a method chose on held-out shots, e.g. "alpha 0.3" or "weight decay 0.1";
    "(tie-break: all 30 grid points tied)" when the held-out search could not separate them."""
    # a value was chosen when the method records the grid it was chosen from
    names = {"alpha": "alpha", "beta": "beta", "weight_decay": "weight decay"}
    parts = [
        f"{label} {info[key]:g}" for key, label in names.items() if is_number(info.get(key)) and f"{key}_grid" in info
    ]
    chosen = ", ".join(parts) or "-"
    from clipaction.report.caveats import grid_tie  # caveats reads this module's helpers

    tie = grid_tie(info)
    if tie and parts:
        tied = (
            f"all {tie['n_points']} grid points tied"
            if tie["all"]
            else f"{tie['n_tied']} of {tie['n_points']} grid points tied"
        )
        chosen += f" (tie-break: {tied})"
    return chosen


def methods_table(stage: Mapping[str, Any]) -> Table:
    """Per few-shot method: accuracy on the trained classes, the others and overall (before ->
    after), on the classes outside the study, and what it chose on held-out shots."""
    rows = []
    zeroshot = stage.get("zeroshot") or {}
    outside = (stage.get("outside") or {}).get("zeroshot_top1")
    rows.append(
        [
            "zero-shot",
            pct(zeroshot.get("trained")),
            pct(zeroshot.get("others")),
            pct(zeroshot.get("overall")),
            pct(outside),
            "-",
        ]
    )
    for name, result in (stage.get("methods") or {}).items():
        after, delta = result.get("after") or {}, result.get("delta") or {}
        cells = [f"{pct(after.get(k))} ({points(delta.get(k))})" for k in ("trained", "others", "overall")]
        outside_cell = pct(result.get("outside_top1"))
        if result.get("outside_unchanged") and outside_cell != NA:
            outside_cell += " (unchanged)"
        rows.append([name, *cells, outside_cell, _chosen_values(result.get("info") or {})])
    for name, reason in (stage.get("not_applicable") or {}).items():
        rows.append([name, NA, NA, NA, NA, f"not applicable: {reason}"])
    return Table.make(
        [
            "Method",
            "Trained classes",
            "Other study classes",
            "All study classes",
            "Classes outside the study",
            "Chosen on held-out shots",
        ],
        rows,
        "lrrrrl",
    )
