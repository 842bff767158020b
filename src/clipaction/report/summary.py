"""The report's opening: what the run found, one line per stage, each linking to its section.

Every number here is read from the results dict (or counted from a confusion matrix in it);
a stage that did not run or does not apply says so in one phrase. The ties and inert settings
that the numbers cannot carry (caveats.py) follow as a short list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clipaction.report.caveats import (
    grid_tie_sentence,
    identical_prompt_sentences,
    join,
    method_grid_ties,
    selection_tie,
    selection_tie_sentence,
)
from clipaction.report.tables import is_number, matrix_of, pct, points, prediction_counts, stage_confusions, support_of

N_PAIRS = 3

# Section keys the summary links to; markdown.py gives the headings these keys.
ZEROSHOT, CONFUSED, TEMPORAL, FEWSHOT, FULL, METHODS, PROMPTS = (
    "zeroshot",
    "confused",
    "temporal",
    "fewshot",
    "full_finetune",
    "adapt_methods",
    "prompt_ablation",
)


def group_accuracy(metrics: Mapping[str, Any], names: Sequence[str]) -> tuple[float | None, int, int]:
    """(correct / videos, correct, videos) over the test videos whose true class is in `names`,
    counted from the stage's confusion matrix (rows = true class)."""
    classes = list(metrics.get("classes") or [])
    matrix = matrix_of(metrics)
    rows = [classes.index(name) for name in names if name in classes]
    if matrix.shape != (len(classes), len(classes)) or not rows:
        return None, 0, 0
    correct = int(sum(matrix[i, i] for i in rows))
    total = int(matrix[rows].sum())
    return (correct / total if total else None), correct, total


# Each item: (link text, section key, the rest of the line). Link text is the subject.
Item = tuple[str, str, str]


def summary_items(results: Mapping[str, Any]) -> list[Item]:
    stages = results.get("stages") or {}
    not_applicable = results.get("not_applicable") or {}
    items: list[Item] = []
    zeroshot = stages.get("zeroshot")
    items.append(("Zero-shot", ZEROSHOT, zeroshot_line(zeroshot) if zeroshot else "not run."))
    items.append(("Single frame vs clip", TEMPORAL, temporal_line(stages.get("temporal"))))
    for key, subject, line in (
        ("fewshot", "Few-shot fine-tuning", fewshot_line),
        ("full_finetune", "Full fine-tuning", full_finetune_line),
    ):
        items.append((subject, key, _stage_line(stages.get(key), not_applicable.get(key), line)))
    if "adapt" in not_applicable:
        items.append(("Few-shot methods compared", METHODS, "not applicable to this model's features."))
    elif stages.get("adapt_methods"):
        items.append(("Few-shot methods compared", METHODS, methods_line(stages["adapt_methods"])))
    if zeroshot:
        items.append(("Most confused pairs", CONFUSED, confused_line(zeroshot)))
    return items


def _stage_line(stage: Any, reason: Any, line: Callable[[Mapping[str, Any]], str]) -> str:
    if reason:
        return "not applicable to this model."
    return line(stage) if stage else "not run."


def zeroshot_line(stage: Mapping[str, Any]) -> str:
    metrics = stage.get("metrics") or {}
    n_classes = len(metrics.get("classes") or [])
    videos = int(matrix_of(metrics).sum())
    if not n_classes:
        return "no numbers."
    chance5 = min(5, n_classes) / n_classes
    return (
        f"top-1 {pct(metrics.get('top1'))}, top-5 {pct(metrics.get('top5'))} on {videos} test videos of "
        f"{n_classes} classes (chance: {pct(1 / n_classes)} top-1, {pct(chance5)} top-5)."
    )


def temporal_line(stage: Mapping[str, Any] | None) -> str:
    if not stage:
        return "not run."
    variants = [v for v in stage.get("variants") or [] if is_number((v.get("metrics") or {}).get("top1"))]
    refused = list((stage.get("not_applicable") or {}).keys())
    extra = f"; {join(refused)} not applicable to this model" if refused else ""
    if not variants:
        return f"no variant gave numbers{extra}."
    parts = [f"{v.get('name')} ({_frames(v.get('frames_per_video'))}) {pct(v['metrics']['top1'])}" for v in variants]
    line = "top-1 " + ", ".join(parts)
    if len(variants) >= 2:
        first, last = variants[0], variants[-1]
        line += f": {points(last['metrics']['top1'] - first['metrics']['top1'])} points from {first.get('name')} to {last.get('name')}"
    return line + extra + "."


def _frames(count: Any) -> str:
    if not is_number(count):
        return "frames n/a"
    return "1 frame" if int(count) == 1 else f"{int(count)} frames"


def _trained_part(stage: Mapping[str, Any], default: str) -> str:
    return str((stage.get("training") or {}).get("trained") or default)


def fewshot_line(stage: Mapping[str, Any]) -> str:
    chosen = list(stage.get("chosen_classes") or [])
    before, after = stage.get("zeroshot_metrics") or {}, stage.get("finetuned_metrics") or {}
    classes = list(after.get("classes") or before.get("classes") or [])
    others = [name for name in classes if name not in chosen]
    line = f"training the {_trained_part(stage, 'visual projection')} on the {len(chosen)} weakest classes"
    zs, _, n = group_accuracy(before, chosen)
    ft, _, _ = group_accuracy(after, chosen)
    if zs is not None and ft is not None:
        line += f" took their {n} test videos from {pct(zs)} to {pct(ft)} correct ({points(ft - zs)} points)"
    zs_o, _, n_o = group_accuracy(before, others)
    ft_o, _, _ = group_accuracy(after, others)
    if zs_o is not None and ft_o is not None:
        lost = [
            row
            for row in stage.get("comparison") or []
            if row.get("class") in others and is_number(row.get("delta")) and row["delta"] < 0
        ]
        line += (
            f"; the other {len(others)} classes went from {pct(zs_o)} to {pct(ft_o)} ({points(ft_o - zs_o)} points), "
            f"{len(lost)} of them lost accuracy"
        )
    if is_number(before.get("top1")) and is_number(after.get("top1")):
        line += f"; all classes {pct(before['top1'])} -> {pct(after['top1'])}"
    tie = selection_tie(stage)
    if tie:
        line += f" (the choice cut through a {len(tie['tied'])}-way tie at {pct(tie['value'])}: see below)"
    return line + "."


def full_finetune_line(stage: Mapping[str, Any]) -> str:
    before, after = stage.get("zeroshot_metrics") or {}, stage.get("finetuned_metrics") or {}
    line = f"training the {_trained_part(stage, 'whole image tower')} on the same videos"
    if is_number(before.get("top1")) and is_number(after.get("top1")):
        line += f" took top-1 from {pct(before['top1'])} to {pct(after['top1'])} ({points(after['top1'] - before['top1'])} points)"
    counts = prediction_counts(after)
    total = sum(counts.values())
    if total and counts:
        n = len(counts)
        top = max(counts, key=lambda name: counts[name])
        line += f"; chance is {pct(1 / n)}, and {pct(counts[top] / total)} of the test predictions went to {top}"
    return line + "."


def methods_line(stage: Mapping[str, Any]) -> str:
    rows = [
        (name, trained, others)
        for name, r in (stage.get("methods") or {}).items()
        if is_number(trained := (r.get("delta") or {}).get("trained"))
        and is_number(others := (r.get("delta") or {}).get("others"))
    ]
    if not rows:
        return "no method gave numbers."
    gain = max(rows, key=lambda row: row[1])
    keep = max(rows, key=lambda row: row[2])
    line = f"{len(rows)} methods; {gain[0]} gained most on the trained classes ({points(gain[1])} points)"
    if keep[0] != gain[0]:
        line += f", {keep[0]} changed the others least ({points(keep[2])} points)"
    return line + "."


def confused_line(stage: Mapping[str, Any]) -> str:
    metrics = stage.get("metrics") or {}
    pairs = stage_confusions(stage, N_PAIRS)
    if not pairs:
        return "no test video was misclassified."
    parts = []
    for pair in pairs:
        total = support_of(metrics, pair["true"])
        of = f" of {total}" if total else ""
        parts.append(
            f"{pair['true']} predicted as {pair['predicted']} ({pair['count']}{of}, {pct(pair.get('fraction'))})"
        )
    return "; ".join(parts) + "."


def caveat_items(results: Mapping[str, Any]) -> list[Item]:
    """(subject, section key, sentence) for each tie or inert setting the report must name."""
    stages = results.get("stages") or {}
    items: list[Item] = []
    tie = selection_tie(stages.get("fewshot"))
    if tie:
        items.append(("Few-shot class choice", FEWSHOT, selection_tie_sentence(tie)))
    for method, grid in method_grid_ties(stages.get("adapt_methods")):
        items.append(("Held-out search", METHODS, grid_tie_sentence(method, grid)))
    label_map = ((results.get("config") or {}).get("prompts") or {}).get("label_map")
    for sentence in identical_prompt_sentences(stages.get("ablations"), label_map):
        items.append(("Prompt ablation", PROMPTS, sentence))
    return items
