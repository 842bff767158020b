"""The report's figures, drawn only from numbers stored in a results dict.

Uses `matplotlib.figure.Figure` directly (never pyplot), so there is no global figure state and
no GUI backend; PNGs are written by the Agg canvas that `Figure.savefig` picks for ".png".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from clipaction.report.tables import (
    accuracy_of,
    comparison_rows,
    float_array,
    is_number,
    matrix_of,
    pct,
    ranked_classes,
)

log = logging.getLogger(__name__)

DPI = 110
ANNOTATE_MAX_CLASSES = 20
FIGURES_DIR = "figures"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")

Maker = Callable[[], "Figure | None"]


def _text(name: Any) -> str:
    """A class name as literal figure text: a `$` would otherwise start matplotlib mathtext."""
    return str(name).replace("$", r"\$")


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" tag: the same numbers give the same bytes whatever matplotlib wrote them.
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    fig.clear()


def _matrix_side(n_classes: int) -> float:
    """Inches per side of a (C, C) matrix: roomy up to 20 classes, denser beyond."""
    per_class = 0.5 if n_classes <= ANNOTATE_MAX_CLASSES else 0.25
    return max(4.5, per_class * n_classes + 2.0)


def _tick_size(n_classes: int) -> float:
    return 8 if n_classes <= 40 else 6


def _class_ticks(ax: Any, classes: Sequence[str]) -> None:
    labels = [_text(name) for name in classes]
    size = _tick_size(len(classes))
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=size)
    ax.set_yticks(range(len(labels)), labels, fontsize=size)


def draw_confusion(ax: Any, matrix: np.ndarray, classes: Sequence[str], title: str) -> Any:
    """Rows = true class, columns = predicted; counts written in the cells for C <= 20.
    Returns the image (for a colour bar)."""
    n = len(classes)
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, int(matrix.max(initial=0))))
    _class_ticks(ax, classes)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(_text(title), fontsize=10)
    if n <= ANNOTATE_MAX_CLASSES:
        threshold = matrix.max(initial=0) / 2
        size = 8 if n <= 15 else 6.5
        for i in range(n):
            for j in range(n):
                value = int(matrix[i, j])
                if value:
                    colour = "white" if value > threshold else "black"
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=size, color=colour)
    return image


def confusion_figure(metrics: Mapping[str, Any], title: str) -> Figure | None:
    classes = list(metrics.get("classes") or [])
    matrix = matrix_of(metrics)
    if not classes or matrix.shape != (len(classes), len(classes)):
        return None
    side = _matrix_side(len(classes))
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    image = draw_confusion(ax, matrix, classes, title)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Videos")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    return fig


def side_by_side_figure(variants: Sequence[Mapping[str, Any]]) -> Figure | None:
    """One confusion matrix per temporal variant in a single figure, top-1 in each title."""
    panels = [v for v in variants if matrix_of(v.get("metrics") or {}).size]
    if not panels:
        return None
    side = _matrix_side(len(panels[0]["metrics"].get("classes") or []))
    fig = Figure(figsize=(side * len(panels), side))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, variant in zip(axes, panels):
        metrics = variant["metrics"]
        frames = variant.get("frames_per_video")
        suffix = f", {frames} frame{'s' if frames != 1 else ''}" if frames is not None else ""
        title = f"{variant.get('name', '')}{suffix}: top-1 {pct(metrics.get('top1'))}"
        draw_confusion(ax, matrix_of(metrics), list(metrics.get("classes") or []), title)
    fig.tight_layout()
    return fig


def ranking_figure(metrics: Mapping[str, Any], title: str) -> Figure | None:
    """Horizontal bars of per-class accuracy, best at the top, the mean class accuracy dashed."""
    names = ranked_classes(metrics)
    if not names:
        return None
    values = [100 * (accuracy_of(metrics, name) or 0.0) for name in names]
    fig = Figure(figsize=(7.0, max(2.5, 0.32 * len(names) + 1.2)))
    ax = fig.add_subplot()
    positions = np.arange(len(names))
    ax.barh(positions, values, color="#4C72B0")
    ax.set_yticks(positions, [_text(name) for name in names], fontsize=_tick_size(len(names)))
    ax.invert_yaxis()
    ax.set_xlim(0, 112)
    ax.set_xlabel("Accuracy (%)")
    ax.set_title(_text(title), fontsize=10)
    for y, name, value in zip(positions, names, values):
        ax.text(value + 1, float(y), pct(accuracy_of(metrics, name)), va="center", fontsize=7)
    mean = metrics.get("mean_class_accuracy")
    if isinstance(mean, (int, float)) and math.isfinite(mean):
        ax.axvline(100 * mean, color="gray", linestyle="--", linewidth=1, label=f"mean {pct(mean)}")
        ax.legend(loc="lower right", fontsize=8)
    return fig


def comparison_figure(stage: Mapping[str, Any], classes: Sequence[str], title: str) -> Figure | None:
    """Grouped bars per class: zero-shot vs fine-tuned accuracy; trained classes marked '*'."""
    rows = comparison_rows(stage, classes)
    if not rows:
        return None
    trained = set(stage.get("train_classes") or stage.get("chosen_classes") or [])
    names = [_text(row["class"]) + (" *" if row["class"] in trained else "") for row in rows]
    before = [100 * (row.get("zeroshot") or 0.0) for row in rows]
    after = [100 * (row.get("finetuned") or 0.0) for row in rows]
    fig = Figure(figsize=(max(6.0, 0.55 * len(rows) + 2.0), 4.5))
    ax = fig.add_subplot()
    positions = np.arange(len(rows))
    ax.bar(positions - 0.2, before, width=0.4, label="zero-shot", color="#8C8C8C")
    ax.bar(positions + 0.2, after, width=0.4, label="fine-tuned", color="#DD8452")
    size = _tick_size(len(rows))
    ax.set_xticks(positions, names, rotation=45, ha="right", rotation_mode="anchor", fontsize=size)
    ax.set_ylim(0, 105)
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(_text(title) + " (* = trained class)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def tsne_figure(tsne: Mapping[str, Any], classes: Sequence[str]) -> Figure | None:
    """The stored 2-D t-SNE points coloured by class (tab20), legend outside the axes."""
    points = float_array(tsne.get("points") or [])
    labels = np.asarray(tsne.get("labels") or [], dtype=np.int64)
    if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] != 2 or len(labels) != len(points):
        return None
    colours = matplotlib.colormaps["tab20"]
    fig = Figure(figsize=(7.5, 6.0))
    ax = fig.add_subplot()
    present = sorted(set(labels.tolist()))
    for index in present:
        mask = labels == index
        name = classes[index] if 0 <= index < len(classes) else f"class {index}"
        marker = _MARKERS[(index // 20) % len(_MARKERS)]
        ax.scatter(
            points[mask, 0],
            points[mask, 1],
            s=16,
            color=colours(index % 20),
            marker=marker,
            label=_text(name),
            alpha=0.85,
            linewidths=0,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    details = [f"{len(points)} videos"]
    if tsne.get("perplexity") is not None:
        details.append(f"perplexity {tsne['perplexity']}")
    if tsne.get("seed") is not None:
        details.append(f"seed {tsne['seed']}")
    ax.set_title(f"t-SNE of the video embeddings ({', '.join(details)})", fontsize=10)
    ncol = math.ceil(len(present) / 30)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False, ncol=ncol, markerscale=1.5)
    return fig


def similarity_figure(similarity: Sequence[Sequence[float | None]], classes: Sequence[str]) -> Figure | None:
    """Heatmap of the cosine similarity between the classes' text features, 2-decimal labels."""
    matrix = float_array(similarity or [])
    n = len(classes)
    if n == 0 or matrix.shape != (n, n):
        return None
    side = _matrix_side(n)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    # Colours span the off-diagonal range: the diagonal's 1.0 would flatten the pairs' contrast.
    off = matrix[~np.eye(n, dtype=bool)]
    off = off[np.isfinite(off)]
    low, high = (float(off.min()), float(off.max())) if off.size else (0.0, 1.0)
    high = high if high > low else low + 1e-6
    image = ax.imshow(matrix, cmap="viridis", vmin=low, vmax=high)
    _class_ticks(ax, classes)
    ax.set_title("Cosine similarity of the class text prompts", fontsize=10)
    if n <= ANNOTATE_MAX_CLASSES:
        middle = (low + high) / 2
        size = 6.5 if n > 12 else 8
        for i in range(n):
            for j in range(n):
                value = matrix[i, j]
                label = f"{value:.2f}" if math.isfinite(value) else "n/a"
                colour = "black" if value > middle else "white"
                ax.text(j, i, label, ha="center", va="center", fontsize=size, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cosine (colours span the off-diagonal range)")
    return fig


def _finetune_figures(key: str, stage: Mapping[str, Any], classes: Sequence[str], label: str) -> dict[str, Maker]:
    chosen, after = stage.get("chosen_metrics") or {}, stage.get("finetuned_metrics") or {}
    titles = (
        f"{label}: confusion on the chosen classes",
        f"{label}: confusion on all classes after training",
        f"{label}: zero-shot vs fine-tuned accuracy",
    )
    return {
        f"{key}_confusion": lambda: confusion_figure(chosen, titles[0]),
        f"{key}_confusion_all": lambda: confusion_figure(after, titles[1]),
        f"{key}_comparison": lambda: comparison_figure(stage, classes, titles[2]),
    }


def tradeoff_figure(stage: Mapping[str, Any]) -> Figure | None:
    """Accuracy on the trained classes (x) vs on the study's other classes (y) after each few-shot
    method, zero-shot as the starting point, and wise-ft's interpolation curve as a line."""
    methods = stage.get("methods") or {}
    points = [
        (name, result["after"].get("trained"), result["after"].get("others"))
        for name, result in methods.items()
        if isinstance(result.get("after"), Mapping)
    ]
    zeroshot = stage.get("zeroshot") or {}
    points = [("zero-shot", zeroshot.get("trained"), zeroshot.get("others")), *points]
    points = [(n, 100 * x, 100 * y) for n, x, y in points if is_number(x) and is_number(y)]
    if len(points) < 2:
        return None
    fig = Figure(figsize=(6.5, 5.0))
    ax = fig.add_subplot()
    curve = (methods.get("wise-ft") or {}).get("curve") or []
    line = [
        (100 * p["trained"], 100 * p["others"], p["alpha"])
        for p in curve
        if is_number(p.get("trained")) and is_number(p.get("others"))
    ]
    if line:
        ax.plot(
            [x for x, _, _ in line],
            [y for _, y, _ in line],
            "-",
            color="#4C72B0",
            alpha=0.6,
            label="wise-ft, alpha 0 to 1",
        )
        for x, y, alpha in dict.fromkeys([line[0], line[-1]] if line[0][:2] != line[-1][:2] else [line[0]]):
            ax.annotate(
                f"α={alpha:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color="#4C72B0"
            )
    for index, (name, x, y) in enumerate(points):
        ax.scatter([x], [y], marker=_MARKERS[index % len(_MARKERS)], s=60, label=_text(name), zorder=3)
    ax.set_xlim(-5, 105)
    ax.set_ylim(-5, 105)
    ax.set_xlabel("Accuracy on the trained classes (%)")
    ax.set_ylabel("Accuracy on the study's other classes (%)")
    ax.set_title("Few-shot methods: gain on trained classes vs the others", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def figure_makers(results: Mapping[str, Any]) -> dict[str, Maker]:
    """{figure key: function drawing it} for every stage present in `results`, in report order."""
    stages = results.get("stages") or {}
    classes = list((results.get("dataset") or {}).get("classes") or [])
    makers: dict[str, Maker] = {}
    if zeroshot := stages.get("zeroshot"):
        metrics = zeroshot.get("metrics") or {}
        title = f"Zero-shot confusion matrix (top-1 {pct(metrics.get('top1'))})"
        makers["zeroshot_confusion"] = lambda: confusion_figure(metrics, title)
        makers["zeroshot_per_class"] = lambda: ranking_figure(metrics, "Zero-shot accuracy per class")
    if fewshot := stages.get("fewshot"):
        makers.update(_finetune_figures("fewshot", fewshot, classes, "Few-shot fine-tuning"))
    if full := stages.get("full_finetune"):
        makers.update(_finetune_figures("full_finetune", full, classes, "Full fine-tuning"))
    if embeddings := stages.get("embeddings"):
        if embeddings.get("tsne"):
            makers["tsne"] = lambda: tsne_figure(embeddings["tsne"], classes)
        if embeddings.get("text_similarity"):
            makers["text_similarity"] = lambda: similarity_figure(embeddings["text_similarity"], classes)
    if temporal := stages.get("temporal"):
        makers["temporal_confusion"] = lambda: side_by_side_figure(temporal.get("variants") or [])
    if methods := stages.get("adapt_methods"):
        makers["adapt_tradeoff"] = lambda: tradeoff_figure(methods)
    return makers


def write_figures(results: Mapping[str, Any], out_dir: Path) -> dict[str, str]:
    """Write a PNG per figure under `out_dir/figures/`; returns {key: path relative to out_dir}.
    Stages absent from `results` (or without the numbers a figure needs) give no figure."""
    out_dir = Path(out_dir)
    written: dict[str, str] = {}
    for key, make in figure_makers(results).items():
        fig = make()
        if fig is None:
            log.info("figure %s skipped: its numbers are not in the results", key)
            continue
        relative = f"{FIGURES_DIR}/{key}.png"
        _save(fig, out_dir / relative)
        written[key] = relative
    return written
