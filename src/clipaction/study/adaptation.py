"""The study's adaptation stages: few-shot projection training, the full fine-tuning ablation,
and the few-shot methods compared, all on the same weakest classes and shots."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from clipaction.adapt.full_finetune import finetune_vision
from clipaction.adapt.projection import train_projection, video_logits
from clipaction.adapt.selection import sample_shots, weakest_classes
from clipaction.classify.metrics import compute_metrics
from clipaction.classify.run import score_records
from clipaction.classify.scoring import class_text_features
from clipaction.data import VideoRecord, load_dataset
from clipaction.data.names import load_label_map, prompt_names
from clipaction.errors import ConfigError
from clipaction.features.extract import Extraction
from clipaction.models.base import Capability, missing
from clipaction.study.context import Context, Scored, pooled_features, write_predictions, zero_shot_scores
from clipaction.video.decode import VideoDecodeError, read_sampled_frames

#: How adapt.selection.weakest_classes breaks a tie at the cut, recorded with the selection so
#: the report can say it (its wording: "Tie broken by class order: <this>.").
SELECTION_TIE_BREAK = "the tied classes that come first in the dataset's class order were taken"

#: Few-shot methods that train the visual projection: they need Capability.PROJECTION.
TRAINS_PROJECTION = frozenset({"projection", "wise-ft"})


@dataclass
class FewShotPlan:
    """The weakest classes, how they were found, and the training videos drawn for them."""

    select_on: str
    selection_accuracy: dict[str, float | None]
    chosen: list[str]
    train_classes: list[str]
    records: list[VideoRecord]  # the shots, labels still index the study's classes
    shots_per_class: dict[str, int]
    extraction: Extraction  # main-sampler features of (at least) the shots
    selection_support: dict[str, int] = dataclasses.field(default_factory=dict)  # videos per class behind the accuracy


def few_shot_plan(ctx: Context, zeroshot_metrics: dict[str, Any]) -> FewShotPlan:
    stage = ctx.config.fewshot
    if ctx.train is None:
        raise ConfigError("few-shot stages need the train list", setting="dataset.splits_dir")
    if stage.select_on == "train":
        # Only train videos and their labels are read here, so no test label leaks into training.
        train_extraction = ctx.extract(ctx.train.records, ctx.sampler)
        scored = zero_shot_scores(ctx, ctx.train.records, train_extraction)
        selection = compute_metrics(scored.scores, scored.labels, ctx.classes)
    else:
        train_extraction = None
        selection = zeroshot_metrics
    accuracy = {name: selection["per_class"][name]["accuracy"] for name in ctx.classes}
    chosen = weakest_classes(accuracy, stage.n_classes, ctx.classes)
    candidates = [r for r in ctx.train.records if train_extraction is None or str(r.path) in train_extraction.features]
    records, counts = sample_shots(candidates, chosen, stage.shots, stage.train.seed)
    if train_extraction is None:
        train_extraction = ctx.extract(records, ctx.sampler)
        records = [r for r in records if str(r.path) in train_extraction.features]
        counts = {name: sum(r.class_name == name for r in records) for name in chosen}
    train_classes = chosen if stage.train_classes == "chosen" else ctx.classes
    support = {name: int(selection["per_class"][name]["support"]) for name in ctx.classes}
    return FewShotPlan(stage.select_on, accuracy, chosen, train_classes, records, counts, train_extraction, support)


def train_labels(plan: FewShotPlan) -> torch.Tensor:
    return torch.tensor([plan.train_classes.index(r.class_name) for r in plan.records], dtype=torch.int64)


def train_text(ctx: Context, plan: FewShotPlan) -> torch.Tensor:
    return ctx.text_features[[ctx.classes.index(name) for name in plan.train_classes]]


def adaptation_result(
    ctx: Context, plan: FewShotPlan, name: str, before: Scored, after: Scored, training: dict[str, Any]
) -> dict[str, Any]:
    """The numbers both fine-tuning stages report, from test scores before and after."""
    zeroshot_metrics = compute_metrics(before.scores, before.labels, ctx.classes)
    finetuned_metrics = compute_metrics(after.scores, after.labels, ctx.classes)
    chosen_ids = [ctx.classes.index(c) for c in plan.chosen]
    keep = np.isin(after.labels, chosen_ids)
    remap = {old: new for new, old in enumerate(chosen_ids)}
    chosen_labels = np.array([remap[label] for label in after.labels[keep]], dtype=np.int64)
    chosen_metrics = compute_metrics(after.scores[keep][:, chosen_ids], chosen_labels, plan.chosen)
    comparison = []
    for cls in ctx.classes:
        before_acc = zeroshot_metrics["per_class"][cls]["accuracy"]
        after_acc = finetuned_metrics["per_class"][cls]["accuracy"]
        delta = None if np.isnan(before_acc) or np.isnan(after_acc) else after_acc - before_acc
        comparison.append({"class": cls, "zeroshot": before_acc, "finetuned": after_acc, "delta": delta})
    asked = ctx.config.fewshot.shots
    return {
        "chosen_classes": plan.chosen,
        "shots": asked,
        "shots_per_class": plan.shots_per_class,
        "short_classes": [c for c, n in plan.shots_per_class.items() if asked != "all" and n < int(asked)],
        "train_classes": plan.train_classes,
        "n_train_videos": len(plan.records),
        "training": training,
        "chosen_metrics": chosen_metrics,
        "zeroshot_metrics": zeroshot_metrics,
        "finetuned_metrics": finetuned_metrics,
        "comparison": comparison,
        "predictions_csv": write_predictions(ctx, name, after, ctx.classes),
    }


def fewshot_stage(ctx: Context, plan: FewShotPlan, main: Extraction, before: Scored) -> dict[str, Any]:
    settings = ctx.config.fewshot.train
    pooled = pooled_features(plan.extraction, [str(r.path) for r in plan.records])
    scoring = ctx.backend.scoring()
    weight, losses = train_projection(
        ctx.backend.projection_weight(),
        pooled,
        train_labels(plan),
        train_text(ctx, plan),
        scoring.scale,
        settings,
        progress=ctx.progress,
    )
    test_pooled = pooled_features(main, before.videos)
    with torch.no_grad():
        # + bias: the backend's logits (a constant shift per video: same ranking, same softmax)
        scores = (video_logits(test_pooled @ weight.T, ctx.text_features, scoring.scale) + scoring.bias).numpy()
    after = Scored(before.records, before.labels, scores)
    training = {**dataclasses.asdict(settings), "loss_curve": losses, "trained": "visual projection"}
    result = adaptation_result(ctx, plan, "fewshot", before, after, training)
    return {
        "select_on": plan.select_on,
        "selection_accuracy": plan.selection_accuracy,
        "selection_support": plan.selection_support,
        "selection_tie_break": SELECTION_TIE_BREAK,
        **result,
    }


def outside_classes(ctx: Context) -> dict[str, Any] | None:
    """Test videos and texts of the dataset's classes outside the study (capped per class), to
    measure forgetting beyond the study; None when the dataset has no other class."""
    stage = ctx.config.adapt
    dataset = load_dataset(dataclasses.replace(ctx.config.dataset, subset="test", classes=(), num_classes=None))
    outside = [name for name in dataset.classes if name not in ctx.classes]
    if not outside:
        return None
    cap = stage.outside_videos_per_class
    records, taken = [], {name: 0 for name in outside}
    for record in dataset.records:  # split-list order: deterministic
        name = record.class_name
        if name in taken and (cap == "all" or taken[name] < int(cap)):
            taken[name] += 1
            records.append(record)
    extraction = ctx.extract(records, ctx.sampler)
    readable = [r for r in records if str(r.path) in extraction.features]
    if not readable:
        return None
    label_map = load_label_map(ctx.config.prompts.label_map) if ctx.config.prompts.label_map else None
    names = prompt_names(tuple(outside), ctx.config.prompts.name_style, label_map)
    return {
        "classes": outside,
        "pooled": pooled_features(extraction, [str(r.path) for r in readable]),
        "labels": torch.tensor([outside.index(r.class_name) for r in readable]),
        "text": class_text_features(ctx.backend, names, ctx.templates, ctx.cache),
    }


def adapt_methods_stage(ctx: Context, plan: FewShotPlan, main: Extraction, before: Scored) -> dict[str, Any]:
    """Each few-shot method on the same shots: accuracy on the trained classes, the study's other
    classes and overall, before and after; for methods that change CLIP's projection, the
    zero-shot accuracy of classes outside the study."""
    from clipaction.adapt.methods import FewShotData, fit_method, group_accuracy, match_classes

    stage = ctx.config.adapt
    has_projection = Capability.PROJECTION in ctx.backend.capabilities
    # Without a linear projection the cached `pooled` features are the unnormalised
    # embeddings (see FrameFeatures), so the identity stands in for the projection and the
    # methods that would train it are not applicable.
    train = FewShotData(
        pooled=pooled_features(plan.extraction, [str(r.path) for r in plan.records]),
        labels=train_labels(plan),
        text_features=train_text(ctx, plan),
        projection=ctx.backend.projection_weight() if has_projection else torch.eye(ctx.text_features.shape[1]),
        logit_scale=ctx.backend.scoring().scale,
    )
    # the `projection` row is the few-shot stage itself: same shots, same training settings
    settings = dataclasses.replace(stage.settings, projection=ctx.config.fewshot.train)
    test_pooled = pooled_features(main, before.videos)
    labels = torch.from_numpy(before.labels)
    outside = outside_classes(ctx) if stage.outside_classes else None
    zeroshot_outside = None
    if outside is not None:
        zs = video_logits(outside["pooled"] @ train.projection.T, outside["text"], train.logit_scale)
        zeroshot_outside = float((zs.argmax(1) == outside["labels"]).float().mean())
    methods, trained_columns, not_applicable = {}, None, {}
    for name in stage.methods:
        if name in TRAINS_PROJECTION and not has_projection:
            not_applicable[name] = missing(ctx.backend, Capability.PROJECTION)
            continue
        classifier = fit_method(name, train, settings)
        trained_columns = classifier.trained_columns(ctx.text_features)
        with torch.no_grad():
            after_scores = classifier.scores(test_pooled, ctx.text_features)
        after = group_accuracy(after_scores, labels, trained_columns)
        previous = group_accuracy(torch.from_numpy(before.scores), labels, trained_columns)
        chosen = trained_columns.nonzero().flatten()
        keep = torch.isin(labels, chosen)
        chosen_top1 = (
            float((chosen[after_scores[keep][:, chosen].argmax(1)] == labels[keep]).float().mean())
            if keep.any()
            else None
        )
        result: dict[str, Any] = {
            "changes_projection": bool(classifier.changes_projection),
            "info": classifier.info,
            "before": previous,
            "after": after,
            "delta": {k: after[k] - previous[k] for k in after},
            "chosen_top1": chosen_top1,
            "outside_top1": zeroshot_outside,
            "outside_unchanged": not classifier.changes_projection,
        }
        if outside is not None and classifier.changes_projection:
            with torch.no_grad():
                scores = classifier.scores(outside["pooled"], outside["text"])
            result["outside_top1"] = float((scores.argmax(1) == outside["labels"]).float().mean())
        if name == "wise-ft":
            with torch.no_grad():
                result["curve"] = classifier.curve(test_pooled, labels, ctx.text_features)
        methods[name] = result
    if trained_columns is None:  # every method was not applicable
        trained_columns = match_classes(ctx.text_features, train.text_features) >= 0
    zeroshot = group_accuracy(torch.from_numpy(before.scores), labels, trained_columns)
    return {
        "not_applicable": not_applicable,
        "chosen_classes": plan.chosen,
        "train_classes": plan.train_classes,
        "shots_per_class": plan.shots_per_class,
        "n_train_videos": len(plan.records),
        "zeroshot": zeroshot,
        "outside": None
        if outside is None
        else {
            "classes": outside["classes"],
            "n_videos": len(outside["labels"]),
            "zeroshot_top1": zeroshot_outside,
        },
        "methods": methods,
    }


def training_pixels(ctx: Context, records: Sequence[VideoRecord]) -> tuple[list[VideoRecord], torch.Tensor]:
    """Decode the few training videos once, as pixel values: (V, F, 3, S, S)."""
    kept, pixels = [], []
    for record in tqdm(records, desc="decode training frames", unit="video", disable=not ctx.progress):
        try:
            frames = read_sampled_frames(record.path, ctx.sampler).frames
        except VideoDecodeError as error:
            ctx.failures.setdefault(str(record.path), str(error))
            continue
        kept.append(record)
        pixels.append(ctx.backend.pixel_values(frames))  # the torch tower's input, whatever the runtime's
    return kept, torch.stack(pixels)


def full_finetune_stage(ctx: Context, plan: FewShotPlan, before: Scored) -> dict[str, Any]:
    settings = ctx.config.full_finetune.train
    records, pixels = training_pixels(ctx, plan.records)
    plan = dataclasses.replace(plan, records=records)
    tower, losses = finetune_vision(
        ctx.backend.image_tower(),
        pixels,
        train_labels(plan),
        train_text(ctx, plan),
        ctx.backend.scoring().scale,
        settings,
        device=ctx.backend.device,
        progress=ctx.progress,
    )
    tuned = ctx.backend.with_image_tower(tower, tag="full-finetune")
    extraction = ctx.extract(before.records, ctx.sampler, backend=tuned, cached=False)
    after = score_records(tuned, before.records, extraction, ctx.text_features)
    training = {**dataclasses.asdict(settings), "loss_curve": losses, "trained": "whole image tower"}
    return adaptation_result(ctx, plan, "full_finetune", before, after, training)
