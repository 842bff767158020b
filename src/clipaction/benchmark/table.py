"""benchmark.md from the content of a benchmark's results.json (pure: no model, no files), and
the published figures it sets beside the measured ones (from `clipaction.models.catalog`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

METRICS = ("top1", "top5", "mean_class_accuracy")
TABLE_HEADER = ("Dataset", "Split", "Top-1 (%)", "Top-5 (%)", "Mean class acc. (%)", "Videos", "Failed")
PUBLISHED_HEADER = "Published top-1 (%)"

#: benchmark protocol -> the catalog's `Published` fields: (top-1, its std over the splits, the
#: field saying under which protocol it was measured, "" for the entry's own `protocol`).
_PUBLISHED_FIELDS = {
    "ucf101": ("ucf101", "ucf101_std", ""),
    "hmdb51": ("hmdb51", "hmdb51_std", ""),
    "k600-zs": ("k600", "k600_std", "k600_protocol"),
}


def published_figure(hub_id: str, protocol: str) -> dict[str, Any] | None:
    """The catalog's published zero-shot top-1 (percent) of the checkpoint `hub_id` on
    `protocol`, with its std over the splits (None where not given), the protocol it was
    measured under and its source; None where the catalog has none."""
    from clipaction.models.catalog import families

    fields = _PUBLISHED_FIELDS.get(protocol)
    if fields is None:
        return None
    value_field, std_field, protocol_field = fields
    for family in families():
        for model in family.models:
            published = model.published
            if model.hub_id != hub_id or published is None:
                continue
            value = getattr(published, value_field, None)
            if value is None:
                return None
            how = (getattr(published, protocol_field, "") if protocol_field else "") or published.protocol
            return {
                "top1": value,
                "std": getattr(published, std_field, None),
                "protocol": how,
                "source": getattr(published, f"{value_field}_source", "") or published.source,
            }
    return None


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.2f}"


def _pm(summary: dict[str, float | None]) -> str:
    mean, std = summary["mean"], summary["std"]
    if mean is None or std is None or mean != mean:
        return "n/a"
    return f"{_pct(mean)} ± {_pct(std)}"


class _Notes:
    """Numbered footnotes for published figures: the same figure gets the same number."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def cite(self, model: str, dataset: str, figure: dict[str, Any]) -> str:
        value = f"{figure['top1']:g}" + (f" ± {figure['std']:g}" if figure.get("std") is not None else "")
        protocol = f"{figure['protocol']}; " if figure.get("protocol") else ""
        line = f"`{model}` on {dataset}: {value}, {protocol}{figure['source']}"
        if line not in self.lines:
            self.lines.append(line)
        return f"{value} [{self.lines.index(line) + 1}]"

    def render(self) -> list[str]:
        if not self.lines:
            return []
        return [
            "",
            "Published figures (as their source measured them, which may differ from the settings above):",
            "",
        ] + [f"[{i}] {line}" for i, line in enumerate(self.lines, start=1)]


def _settings_line(dataset: dict[str, Any]) -> str:
    settings, name = dataset["settings"], dataset["name"]
    style = f"`{settings['name_style']}` class names"
    if "annotations" not in settings:
        classes = "all classes" if settings["num_classes"] is None else f"first {settings['num_classes']} classes"
        return f"- {name}: {classes}, {style}, test lists of splits {', '.join(map(str, settings['splits']))}"
    line = f"- {name}: every row of `{settings['annotations']}` (videos under `{settings['root']}`), {style}"
    if name != "k600-zs":
        return line + ", every class of the file"
    files = [s.get("class_split", {}) for s in dataset["splits"]]
    where = "packaged with clipaction" if all(f.get("packaged") for f in files) else f"from `{settings['split_dir']}`"
    counts = sorted({f.get("n_classes") for f in files if f})
    return (
        line + f"; per class split ({', '.join(map(str, settings['splits']))}, files {where}) its "
        f"{'/'.join(map(str, counts))} names are the labels and its classes' videos the test set"
    )


def _views_line(results: dict[str, Any]) -> str | None:
    views = results.get("views")
    if not views:
        return None
    how = "probabilities averaged over views × crops" if views["pool"] == "probabilities" else "one video feature"
    crops = "left, centre and right squares" if views["crops"] == 3 else "the model's own crop"
    return f"- Views × crops: {views['views']} × {views['crops']} ({crops}); scores: {how}"


def _video_feature(results: dict[str, Any]) -> str:
    """How a video becomes one feature, for the kinds of model in the run."""
    runs = results.get("models") or [{"model": results["model"]}]
    kinds = {run["model"].get("kind", "frame") for run in runs}
    said = {
        "frame": "frame models average their normalised frame features",
        "clip": "clip models encode each clip's frames together (their own frame count)",
    }
    return "video feature: " + "; ".join(said[kind] for kind in ("frame", "clip") if kind in kinds)


def benchmark_markdown(results: dict[str, Any]) -> str:
    """benchmark.md: the settings, then one row per dataset and split and a mean ± std row per
    dataset (percentages with two decimals); where the catalog has a published figure for the
    model and protocol, a column with it on the mean ± std row and a note on how it was measured."""
    model, sampler = results["model"], results["sampler"]
    runs = results.get("models") or []
    if len(runs) == 1 and runs[0].get("sampler"):
        sampler = runs[0]["sampler"]  # as the model took it (a clip model's own frame count)
    frames = "" if sampler["name"] == "middle" else f", {sampler['frames']} frames"
    window = f" over {sampler['window']:g} s" if sampler["name"] in ("center-clip", "multi-clip") else ""
    clips = f" × {sampler['clips']} clips" if sampler["name"] == "multi-clip" else ""
    pooled = (results.get("views") or {}).get("pool", "features") == "features"
    lines = [
        "# Zero-shot benchmark",
        "",
        f"- Model: `{model['name_or_path']}` ({model['precision']}, {model['device']})"
        + (f"; {len(results['models'])} models compared below" if len(results.get("models") or []) > 1 else ""),
        f"- Frames: {sampler['name']}{frames}{window}{clips}" + (f"; {_video_feature(results)}" if pooled else ""),
    ]
    views = _views_line(results)
    if views:
        lines.append(views)
    lines.append(f"- Prompts: `{results['prompts']['templates']}` templates")
    lines += [_settings_line(dataset) for dataset in results["datasets"]]
    notes = _Notes()
    published = any(d.get("published") for d in results["datasets"])
    header = TABLE_HEADER + ((PUBLISHED_HEADER,) if published else ())
    lines += [
        "- Mean ± standard deviation over the splits (numpy, ddof=0).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    for dataset in results["datasets"]:
        for split in dataset["splits"]:
            metrics = split["metrics"]
            cells = [dataset["name"], str(split["split"])]
            cells += [_pct(metrics[m]) for m in METRICS]
            cells += [str(split["n_videos"]), str(split["n_failures"])] + ([""] if published else [])
            lines.append("| " + " | ".join(cells) + " |")
        summary = dataset["summary"]
        cells = [dataset["name"], "mean ± std"] + [_pm(summary[m]) for m in METRICS] + ["", ""]
        if published:
            figure = dataset.get("published")
            cells.append(notes.cite(model["name_or_path"], dataset["name"], figure) if figure else "")
        lines.append("| " + " | ".join(cells) + " |")
    if len(runs) > 1:
        lines += ["", "## Models compared", "", *models_table(runs, notes)]
    lines += notes.render()
    failed = sum(s["n_failures"] for d in results["datasets"] for s in d["splits"])
    if failed:
        lines += ["", f"{failed} listed video(s) were missing or unreadable; see results.json."]
    return "\n".join(lines) + "\n"


def models_table(runs: Sequence[dict[str, Any]], notes: _Notes | None = None) -> list[str]:
    """Markdown lines: one row per model, top-1 mean ± std over the splits per dataset, and the
    published figure beside it where the catalog has one (cited in `notes`)."""
    notes = notes if notes is not None else _Notes()
    names = [d["name"] for d in runs[0]["datasets"]]
    header = ["Model", "Family", "Scores", "Frames", *(f"{name} top-1 (%)" for name in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (1 + len(names))) + "|"]
    for run in runs:
        model, sampler = run["model"], run.get("sampler") or {}
        frames = "1" if sampler.get("name") == "middle" else str(sampler.get("frames", ""))
        cells = [f"`{model['name_or_path']}`", str(model.get("family", "")), str(model.get("score", "")), frames]
        for dataset in run["datasets"]:
            figure = dataset.get("published")
            cited = f" (published {notes.cite(model['name_or_path'], dataset['name'], figure)})" if figure else ""
            cells.append(_pm(dataset["summary"]["top1"]) + cited)
        lines.append("| " + " | ".join(cells) + " |")
    return lines
