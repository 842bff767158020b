"""The study's evaluation stages: zero-shot, temporal input, embeddings, ablations."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from clipaction.classify.metrics import classification_report_text, compute_metrics
from clipaction.classify.scoring import class_text_array, load_templates, video_embedding_array, video_score_array
from clipaction.config import SamplerConfig
from clipaction.data.names import load_label_map, prompt_names
from clipaction.features.extract import Extraction
from clipaction.outputs import write_text_atomic
from clipaction.study.context import (
    Context,
    Scored,
    samplers_for_backend,
    summary,
    variant_name,
    write_predictions,
    zero_shot_scores,
)


def most_confused(metrics: dict[str, Any], top: int | None = None) -> list[dict[str, Any]]:
    """The `top` largest off-diagonal cells of the confusion matrix, as fractions of the true
    class; by default as many as the report lists (report.markdown.MOST_CONFUSED_PAIRS)."""
    if top is None:
        # Imported here: the report package pulls in matplotlib, which only the report needs.
        from clipaction.report.markdown import MOST_CONFUSED_PAIRS

        top = MOST_CONFUSED_PAIRS
    matrix = np.asarray(metrics["confusion_matrix"])
    classes = metrics["classes"]
    pairs = []
    for i, j in zip(*np.nonzero(matrix)):
        if i != j:
            pairs.append((-int(matrix[i, j]), int(i), int(j)))
    rows = matrix.sum(axis=1)
    return [
        {"true": classes[i], "predicted": classes[j], "count": -negative, "fraction": float(-negative / rows[i])}
        for negative, i, j in sorted(pairs)[:top]
    ]


def examples(ctx: Context, scored: Scored, limit: int = 6) -> list[dict[str, Any]]:
    """The first video of the first few classes, with its top-5 probabilities (the model
    family's: softmax over the classes or independent sigmoids)."""
    classes = ctx.classes
    examples, seen = [], set()
    for record, row in zip(scored.records, scored.scores):
        if record.label in seen:
            continue
        seen.add(record.label)
        probabilities = ctx.backend.scoring().probabilities(torch.as_tensor(row)).numpy()
        order = np.argsort(-probabilities, kind="stable")[:5]
        examples.append(
            {
                "video": record.path.name,
                "true": classes[record.label],
                "predicted": classes[order[0]],
                "top5": [[classes[k], float(probabilities[k])] for k in order],
            }
        )
        if len(examples) >= limit:
            break
    return examples


def zeroshot_stage(ctx: Context, scored: Scored) -> dict[str, Any]:
    metrics = compute_metrics(scored.scores, scored.labels, ctx.classes)
    report = classification_report_text(scored.scores, scored.labels, ctx.classes) if len(scored.labels) else ""
    write_text_atomic(ctx.out / "classification_report.txt", report)
    return {
        "sampler": dataclasses.asdict(ctx.sampler),
        "n_videos": len(scored.records),
        "metrics": metrics,
        "classification_report": report,
        "most_confused": most_confused(metrics),
        "examples": examples(ctx, scored),
        "predictions_csv": write_predictions(ctx, "zeroshot", scored, ctx.classes),
    }


def temporal_stage(ctx: Context, main: tuple[SamplerConfig, Extraction]) -> dict[str, Any]:
    variants, outcomes = [], {}
    samplers, refused = samplers_for_backend(ctx, ctx.config.temporal.variants)
    for sampler in samplers:
        same = sampler.cache_fields() == main[0].cache_fields()
        extraction = main[1] if same else ctx.extract(ctx.test.records, sampler)
        scored = zero_shot_scores(ctx, ctx.test.records, extraction)
        name = variant_name(sampler)
        metrics = compute_metrics(scored.scores, scored.labels, ctx.classes)
        outcomes[name] = metrics
        variants.append(
            {
                "name": name,
                "sampler": dataclasses.asdict(sampler),
                "frames_per_video": sampler.frames_per_video,
                "n_videos": len(scored.records),
                "metrics": metrics,
                "predictions_csv": write_predictions(ctx, f"temporal_{name}", scored, ctx.classes),
            }
        )
    per_class = []
    names = list(outcomes)
    for i, cls in enumerate(ctx.classes):
        correct = {n: int(np.asarray(outcomes[n]["confusion_matrix"])[i, i]) for n in names}
        support = {n: outcomes[n]["per_class"][cls]["support"] for n in names}
        per_class.append(
            {
                "class": cls,
                "correct": correct,
                "mistakes": {n: support[n] - correct[n] for n in names},
                "difference": correct[names[-1]] - correct[names[0]],
            }
        )
    return {"variants": variants, "per_class": per_class, "not_applicable": refused}


def embedding_stage(ctx: Context, main: Extraction, scored: Scored) -> dict[str, Any]:
    from sklearn.manifold import TSNE

    stage = ctx.config.embeddings
    similarity = (ctx.text_features @ ctx.text_features.T).numpy()
    result: dict[str, Any] = {"text_similarity": similarity.tolist()}
    count = len(scored.records)
    if count >= 4:
        embeds = video_embedding_array(ctx.backend, main, scored.videos)
        perplexity = float(min(stage.perplexity, (count - 1) / 3))  # t-SNE needs perplexity < n
        points = TSNE(
            n_components=2, perplexity=perplexity, random_state=stage.seed, init="pca", metric="cosine"
        ).fit_transform(embeds)
        result["tsne"] = {
            "points": points.tolist(),
            "labels": scored.labels.tolist(),
            "perplexity": perplexity,
            "seed": stage.seed,
        }
    return result


def ablation_stage(ctx: Context, main: Extraction) -> dict[str, Any]:
    """Top-1 for each prompt choice on the main sampler's features, and for each temporal input
    with the study's prompts."""
    stage = ctx.config.ablations
    label_map = load_label_map(ctx.config.prompts.label_map) if ctx.config.prompts.label_map else None
    scored = zero_shot_scores(ctx, ctx.test.records, main)
    prompts = []
    for style in stage.name_styles:
        names = prompt_names(ctx.test.classes, style, label_map)
        for template_set in stage.template_sets:
            templates = load_templates(template_set)
            text = class_text_array(ctx.backend, names, templates, ctx.cache) if scored.videos else None
            scores = video_score_array(ctx.backend, main, scored.videos, text)[1] if text is not None else scored.scores
            metrics = compute_metrics(scores, scored.labels, ctx.classes)
            row = {"name_style": style, "templates": template_set, "n_templates": len(templates), **summary(metrics)}
            # the texts themselves, so the report can tell rows that are one result (a label map
            # overriding the name style) from rows that merely score the same
            row["class_names"] = list(names)
            if label_map:
                row["style_names"] = prompt_names(ctx.test.classes, style)
            prompts.append(row)
    temporal = []
    samplers, refused = samplers_for_backend(ctx, stage.samplers)
    for sampler in samplers:
        extraction = ctx.extract(ctx.test.records, sampler)
        scored = zero_shot_scores(ctx, ctx.test.records, extraction)
        temporal.append(
            {
                "name": variant_name(sampler),
                "sampler": dataclasses.asdict(sampler),
                "frames_per_video": sampler.frames_per_video,
                "n_videos": len(scored.records),
                **summary(compute_metrics(scored.scores, scored.labels, ctx.classes)),
            }
        )
    return {
        "prompts": prompts,
        "label_map": ctx.config.prompts.label_map,
        "temporal": temporal,
        "temporal_not_applicable": refused,
    }
