"""What a run's numbers cannot carry on their own: ties and settings that had no effect.

Pure functions of a results dict's stages. Each finds one kind of caveat and returns the facts
(None or [] when there is none); markdown.py, summary.py and observations.py word them.

- a selection of the lowest-accuracy classes whose cut falls inside a tie (some tied classes
  chosen, others not): which classes tied at what value, and how the tie was broken;
- a hyper-parameter search on held-out shots whose best value is shared by several grid points
  (or by all of them): the value taken then came from the tie-break, not from the data;
- prompt-ablation rows that are identical because a setting was inert (a label map overrides
  the name style, or two styles write the same names): they are one result, not two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clipaction.report.tables import is_number, pct

#: How the study breaks a tie at the selection cut, when results.json does not say (it is what
#: adapt.selection.weakest_classes has always done).
DEFAULT_TIE_BREAK = "the tied classes that come first in the dataset's class order were taken"


def _same(a: float, b: float) -> bool:
    # accuracies are count / support computed the same way, so equal counts give equal floats;
    # the tolerance only guards against a round trip through text
    return abs(a - b) <= 1e-12


def join(items: Sequence[str]) -> str:
    items = [str(item) for item in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --- the selection of the weakest classes ---------------------------------------------------


def selection_tie(stage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """When the chosen classes' cut falls inside a tie: {"value", "tied", "taken", "left",
    "support" (class -> videos, may be empty), "select_on", "rule"}; else None."""
    if not stage:
        return None
    accuracy = stage.get("selection_accuracy") or {}
    chosen = [name for name in stage.get("chosen_classes") or [] if is_number(accuracy.get(name))]
    if not chosen:
        return None
    cut = max(float(accuracy[name]) for name in chosen)
    tied = [name for name, value in accuracy.items() if is_number(value) and _same(float(value), cut)]
    left = [name for name in tied if name not in chosen]
    if not left:
        return None
    support = stage.get("selection_support") or {}
    return {
        "value": cut,
        "tied": tied,
        "taken": [name for name in tied if name in chosen],
        "left": left,
        "support": {name: support[name] for name in tied if is_number(support.get(name))},
        "select_on": stage.get("select_on", "selection"),
        "rule": stage.get("selection_tie_break") or DEFAULT_TIE_BREAK,
    }


def selection_tie_sentence(tie: Mapping[str, Any]) -> str:
    """ "Archery, Biking and Billiards tied at 12.5% zero-shot accuracy on the train list (1 of 8
    videos each); Archery was taken, Biking and Billiards were not: ..." """
    value = tie["value"]
    support = tie["support"]
    counts = ""
    if support and len(support) == len(tie["tied"]):
        sizes = {int(n) for n in support.values()}
        if len(sizes) == 1:
            size = sizes.pop()
            counts = f" ({round(value * size)} of {size} videos each)"
        else:
            counts = (
                " (" + ", ".join(f"{name}: {round(value * int(n))} of {int(n)}" for name, n in support.items()) + ")"
            )
    was = "was" if len(tie["taken"]) == 1 else "were"
    return (
        f"The choice cut through a {len(tie['tied'])}-way tie: {join(tie['tied'])} all had {pct(value)} zero-shot "
        f"accuracy on the {tie['select_on']} list{counts}; {join(tie['taken'])} {was} taken and "
        f"{join(tie['left'])} {'was' if len(tie['left']) == 1 else 'were'} not. Tie broken by class order: "
        f"{tie['rule']}."
    )


# --- hyper-parameter searches on held-out shots ---------------------------------------------


def grid_tie(info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """When several points of a method's held-out search share the best accuracy:
    {"params", "n_points", "n_tied", "all", "best", "chosen" (param -> value), "how", "on"}."""
    if not info:
        return None
    points = [s for s in info.get("selection") or [] if is_number(s.get("heldout_accuracy"))]
    if len(points) < 2:
        return None
    best = max(float(s["heldout_accuracy"]) for s in points)
    tied = [s for s in points if _same(float(s["heldout_accuracy"]), best)]
    if len(tied) < 2:
        return None
    params = [key for key in points[0] if key != "heldout_accuracy"]
    chosen = {key: info.get(key) for key in params}
    return {
        "params": params,
        "n_points": len(points),
        "n_tied": len(tied),
        "all": len(tied) == len(points),
        "best": best,
        "chosen": chosen,
        "how": _tie_break(tied, params, chosen),
        "on": info.get("selected_on"),
    }


def _tie_break(tied: Sequence[Mapping[str, Any]], params: Sequence[str], chosen: Mapping[str, Any]) -> str:
    """The rule the choice among tied points follows, read off the points: "the smallest alpha,
    then the smallest beta" (param by param, among the points that match the earlier ones)."""
    parts, pool = [], list(tied)
    for key in params:
        values = sorted({s[key] for s in pool if is_number(s.get(key))})
        value = chosen.get(key)
        if len(values) < 2 or not is_number(value):
            pool = [s for s in pool if s.get(key) == value]
            continue
        word = "smallest" if value == values[0] else "largest" if value == values[-1] else "a middle"
        parts.append(f"the {word} {key.replace('_', ' ')}")
        pool = [s for s in pool if s.get(key) == value]
    return ", then ".join(parts) or "the first grid point"


def _values(chosen: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{key.replace('_', ' ')} {value:g}" if is_number(value) else f"{key} {value}" for key, value in chosen.items()
    )


def grid_tie_sentence(method: str, tie: Mapping[str, Any]) -> str:
    grid = " x ".join(key.replace("_", " ") for key in tie["params"])
    on = f" on {tie['on']}" if tie.get("on") else ""
    if tie["all"]:
        head = (
            f"{method}: all {tie['n_points']} grid points ({grid}) tied at {pct(tie['best'])} held-out accuracy{on}, "
            "so the search could not tell them apart"
        )
    else:
        head = (
            f"{method}: {tie['n_tied']} of {tie['n_points']} grid points ({grid}) shared the best held-out accuracy, "
            f"{pct(tie['best'])}{on}"
        )
    return f"{head}; {_values(tie['chosen'])} came from the tie-break ({tie['how']}), not from the held-out data."


def method_grid_ties(stage: Mapping[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """[(method, grid_tie)] for each compared few-shot method whose search ended in a tie."""
    ties = []
    for name, result in ((stage or {}).get("methods") or {}).items():
        tie = grid_tie((result or {}).get("info"))
        if tie:
            ties.append((name, tie))
    return ties


# --- prompt ablation rows -------------------------------------------------------------------


def _label(row: Mapping[str, Any]) -> str:
    return f"{row.get('name_style')} / {row.get('templates')}"


def identical_prompt_groups(stage: Mapping[str, Any] | None, label_map: Any = None) -> list[dict[str, Any]]:
    """Groups of prompt-ablation rows (indices, in order) that are one result, with the reason:
    [{"rows": [i, j, ...], "labels": [...], "reason": "..."}].

    Rows are identical when they wrote the very same class texts with the same templates (the
    study records `class_names` per row). Results without those texts fall back to rows with
    the same templates and the same numbers, which the report then calls identical numbers."""
    stage = stage or {}
    rows = list(stage.get("prompts") or [])
    label_map = stage.get("label_map", label_map)
    groups: dict[Any, list[int]] = {}
    exact = all(row.get("class_names") is not None for row in rows)
    for index, row in enumerate(rows):
        if exact:
            key = (row.get("templates"), tuple(row["class_names"]))
        else:
            numbers = tuple(row.get(k) for k in ("top1", "top5", "mean_class_accuracy"))
            if not all(is_number(n) for n in numbers):
                continue
            key = (row.get("templates"), numbers)
        groups.setdefault(key, []).append(index)
    found = []
    for members in groups.values():
        if len(members) < 2:
            continue
        styles = [rows[i] for i in members]
        if not exact:
            reason = "results.json does not record their texts to tell whether they are one result"
            if label_map:
                reason = "the run's label map may override the name style (" + reason + ")"
        elif label_map and any(
            s.get("style_names") is not None and s.get("style_names") != styles[0].get("style_names") for s in styles
        ):
            reason = "the label map overrides the name style"
        elif label_map and all(s.get("style_names") is None for s in styles):
            reason = "the label map overrides the name style"
        else:
            reason = "these name styles write the class names the same way"
        found.append({"rows": members, "labels": [_label(rows[i]) for i in members], "reason": reason, "exact": exact})
    return found


def identical_prompt_sentence(group: Mapping[str, Any]) -> str:
    if group["exact"]:
        return (
            f"The prompt-ablation rows {join(group['labels'])} are identical: {group['reason']}; "
            f"they are one result, not {len(group['rows'])}."
        )
    return (
        f"The prompt-ablation rows {join(group['labels'])} have identical numbers with the same templates: "
        f"{group['reason']}."
    )


def identical_prompt_sentences(stage: Mapping[str, Any] | None, label_map: Any = None) -> list[str]:
    """One sentence per kind of identity: groups that differ only in the same name styles, for
    the same reason, are said once for all their template sets."""
    rows = list((stage or {}).get("prompts") or [])
    merged: dict[Any, list[dict[str, Any]]] = {}
    for group in identical_prompt_groups(stage, label_map):
        styles = tuple(str(rows[i].get("name_style")) for i in group["rows"])
        merged.setdefault((styles, group["reason"], group["exact"]), []).append(group)
    sentences = []
    for (styles, reason, exact), groups in merged.items():
        if len(groups) == 1:
            sentences.append(identical_prompt_sentence(groups[0]))
            continue
        templates = join([str(rows[g["rows"][0]].get("templates")) for g in groups])
        if exact:
            sentences.append(
                f"The prompt-ablation rows with {join(styles)} class names are identical for each template set "
                f"({templates}): {reason}; each set has one result, not {len(styles)}."
            )
        else:
            sentences.append(
                f"The prompt-ablation rows with {join(styles)} class names have identical numbers for each template "
                f"set ({templates}): {reason}."
            )
    return sentences
