"""`clipaction run`: the study, stage by stage, wired from the library's pieces.

Every stage reads frame features through the cache, so a second run re-encodes nothing; only
the full fine-tuning ablation runs the image tower again (its weights changed). The run ends
with results.json (every number of the report), one predictions CSV per evaluated variant, and
report.md / report.html with figures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from clipaction.classify.run import open_cache
from clipaction.classify.scoring import class_text_features, load_templates
from clipaction.config import StudyConfig
from clipaction.config.toml import to_dict
from clipaction.data import load_dataset
from clipaction.data.names import load_label_map, prompt_names
from clipaction.errors import ConfigError, DataError
from clipaction.features.clips import sampler_for
from clipaction.models import Backend, Capability, load_backend, missing
from clipaction.outputs import environment, now_iso, output_folder, to_jsonable, write_json
from clipaction.study.adaptation import adapt_methods_stage, few_shot_plan, fewshot_stage, full_finetune_stage
from clipaction.study.context import Context, zero_shot_scores
from clipaction.study.evaluation import ablation_stage, embedding_stage, temporal_stage, zeroshot_stage

log = logging.getLogger(__name__)

__all__ = ["rebuild_report", "run_study", "write_study_outputs"]


def prepare(config: StudyConfig, backend: Backend | None, progress: bool) -> Context:
    if config.full_finetune.enabled and config.model.precision == "int8":
        raise ConfigError(
            "full fine-tuning trains the image tower, which int8 cannot: use precision fp32, "
            "or switch the stage off (full_finetune.enabled = false)",
            setting="model.precision",
        )
    dataset = config.dataset
    test = load_dataset(dataclasses.replace(dataset, subset="test"))
    needs_train = config.fewshot.enabled or config.full_finetune.enabled or config.adapt.enabled
    train = load_dataset(dataclasses.replace(dataset, subset="train")) if needs_train else None
    if train is not None and train.classes != test.classes:
        raise DataError("the train and test lists have different classes", setting="dataset.splits_dir")
    if train is not None and {r.path for r in train.records} & {r.path for r in test.records}:
        log.warning("some videos are in both the train and the test list: few-shot numbers are optimistic")
    label_map = load_label_map(config.prompts.label_map) if config.prompts.label_map else None
    names = prompt_names(test.classes, config.prompts.name_style, label_map)
    templates = load_templates(config.prompts.templates)
    out = output_folder(config.out)
    backend = backend or load_backend(config.model)
    cache = open_cache(config.cache_dir, backend)
    ctx = Context(
        config=config,
        backend=backend,
        test=test,
        train=train,
        templates=templates,
        prompt_names=names,
        text_features=class_text_features(backend, names, templates, cache),
        out=out,
        progress=progress,
        cache=cache,
        sampler=sampler_for(backend, config.sampler),
    )
    for absent in [*test.missing, *(train.missing if train else ())]:
        ctx.failures.setdefault(absent.path, f"missing: {absent.error}")
    return ctx


def run_study(config: StudyConfig, *, backend: Backend | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every enabled stage, write results.json, the predictions CSVs and the report into
    `config.out`, and return the results dict."""
    ctx = prepare(config, backend, progress)
    main_extraction = ctx.extract(ctx.test.records, ctx.sampler)
    before = zero_shot_scores(ctx, ctx.test.records, main_extraction)
    stages: dict[str, Any] = {"zeroshot": zeroshot_stage(ctx, before)}
    not_applicable = stages_not_applicable(ctx)
    if config.temporal.enabled:
        stages["temporal"] = temporal_stage(ctx, (ctx.sampler, main_extraction))
    if config.fewshot.enabled or config.full_finetune.enabled or config.adapt.enabled:
        plan = few_shot_plan(ctx, stages["zeroshot"]["metrics"])
        if config.fewshot.enabled and "fewshot" not in not_applicable:
            stages["fewshot"] = fewshot_stage(ctx, plan, main_extraction, before)
        if config.full_finetune.enabled and "full_finetune" not in not_applicable:
            stages["full_finetune"] = full_finetune_stage(ctx, plan, before)
        if config.adapt.enabled and config.adapt.methods and "adapt" not in not_applicable:
            stages["adapt_methods"] = adapt_methods_stage(ctx, plan, main_extraction, before)
    if config.embeddings.enabled:
        stages["embeddings"] = embedding_stage(ctx, main_extraction, before)
    if config.ablations.enabled:
        stages["ablations"] = ablation_stage(ctx, main_extraction)
    results = study_results(ctx, stages)
    results["not_applicable"] = {
        **not_applicable,
        **{f"adapt_methods.{m}": why for m, why in stages.get("adapt_methods", {}).get("not_applicable", {}).items()},
    }
    write_study_outputs(results, ctx.out)
    return results


#: The stages that need a capability the model family may lack.
STAGE_NEEDS = {
    "fewshot": Capability.PROJECTION,
    "full_finetune": Capability.IMAGE_TOWER,
    "adapt": Capability.EMBEDDINGS,
}


def stages_not_applicable(ctx: Context) -> dict[str, str]:
    """Enabled stages the backend cannot run, with the reason (reported, never a crash)."""
    reasons = {}
    for stage, capability in STAGE_NEEDS.items():
        reason = missing(ctx.backend, capability)
        if getattr(ctx.config, stage).enabled and reason:
            log.warning("%s stage not applicable: %s", stage, reason)
            reasons[stage] = reason
    return reasons


def study_results(ctx: Context, stages: dict[str, Any]) -> dict[str, Any]:
    backend, config = ctx.backend, ctx.config
    return {
        "task": "study",
        "synthetic": config.synthetic,
        "created_at": now_iso(),
        "env": environment(str(backend.device)),
        "config": to_dict(config),
        "model": {
            "name_or_path": config.model.name_or_path,
            "revision": config.model.revision,
            "device": str(backend.device),
            "precision": config.model.precision,
            **backend.describe(),
        },
        "dataset": {
            "name": ctx.test.name,
            "split": ctx.test.split,
            "classes": ctx.classes,
            "n_test": len(ctx.test.records),
            "n_train": len(ctx.train.records) if ctx.train else None,
            "root": config.dataset.root,
        },
        "failures": [{"path": path, "error": error} for path, error in ctx.failures.items()],
        "warnings": [{"path": path, "warning": warning} for path, warning in ctx.warnings.items()],
        "prompts": {
            "templates": list(ctx.templates),
            "name_style": config.prompts.name_style,
            "class_prompts": [ctx.templates[0].format(name) for name in ctx.prompt_names],
        },
        "stages": stages,
    }


def write_study_outputs(results: dict[str, Any], out: Path) -> dict[str, Path]:
    """Add the observations, write results.json and the report (md, html, figures)."""
    from clipaction.report import observations, write_report

    results = to_jsonable(results)  # the report sees exactly what results.json holds (NaN -> None)
    results["observations"] = observations(results)
    write_json(out / "results.json", results)
    return {"results": out / "results.json", **write_report(results, out)}


def rebuild_report(run_dir: Path) -> dict[str, Path]:
    """Write report.md/report.html and the figures again from `run_dir/results.json` alone."""
    from clipaction.report import write_report

    path = Path(run_dir).expanduser() / "results.json"
    if not path.is_file():
        raise DataError(
            f"no results.json in {path.parent} (expected the out folder of `clipaction run`)", setting="run_dir"
        )
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON: {error}", setting="run_dir") from None
    if results.get("task") != "study":
        raise DataError(
            f"{path} is not the results of `clipaction run` (task: {results.get('task')!r})", setting="run_dir"
        )
    return write_report(results, path.parent)
