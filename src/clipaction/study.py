"""`clipaction run`: the study, stage by stage, wired from the library's pieces.

Every stage reads frame features through the cache, so a second run re-encodes nothing; only
the full fine-tuning ablation runs the image tower again (its weights changed). The run ends
with results.json (every number of the report), one predictions CSV per evaluated variant, and
report.md / report.html with figures.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from clipaction.adapt.full_finetune import finetune_vision
from clipaction.adapt.projection import train_projection, video_logits
from clipaction.adapt.selection import sample_shots, weakest_classes
from clipaction.config import SamplerConfig, StudyConfig
from clipaction.config_io import to_dict
from clipaction.data import VideoDataset, VideoRecord, load_dataset
from clipaction.data.names import load_label_map, prompt_names
from clipaction.evaluate import classification_report_text, compute_metrics
from clipaction.features.cache import FeatureCache
from clipaction.features.extract import Extraction, extract_features
from clipaction.models import Backend, load_backend
from clipaction.pipeline import open_cache, video_embeddings
from clipaction.results import environment, to_jsonable, now_iso, write_json, write_predictions_csv, write_text_atomic
from clipaction.video.decode import VideoDecodeError, read_sampled_frames
from clipaction.zeroshot import class_text_features, load_templates, score

log = logging.getLogger(__name__)


@dataclass
class _Context:
    """What every stage shares: the config, model, datasets, class texts and failures so far."""

    config: StudyConfig
    backend: Backend
    test: VideoDataset
    train: VideoDataset | None
    templates: tuple[str, ...]
    prompt_names: list[str]
    text_features: torch.Tensor  # (C, E) normalised
    out: Path
    progress: bool
    cache: FeatureCache  # frame and text features of `backend`
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.test.classes)

    def extract(self, records: Sequence[VideoRecord], sampler: SamplerConfig, backend: Backend | None = None,
                cached: bool = True) -> Extraction:
        backend = backend or self.backend
        extraction = extract_features(
            [str(r.path) for r in records],
            backend,
            sampler,
            (self.cache if backend is self.backend else open_cache(self.config.cache_dir, backend)) if cached else None,
            batch_size=self.config.model.batch_size,
            workers=self.config.workers,
            progress=self.progress,
        )
        for failure in extraction.failures:
            self.failures.setdefault(failure.path, failure.error)
        return extraction


@dataclass
class _Scored:
    """Scores of the readable videos of a record list: videos (paths), labels (V,), scores (V, C)."""

    records: list[VideoRecord]
    labels: np.ndarray
    scores: np.ndarray

    @property
    def videos(self) -> list[str]:
        return [str(r.path) for r in self.records]


def _zero_shot_scores(ctx: _Context, records: Sequence[VideoRecord], extraction: Extraction) -> _Scored:
    readable = [r for r in records if str(r.path) in extraction.features]
    labels = np.array([r.label for r in readable], dtype=np.int64)
    if not readable:
        return _Scored([], labels, np.zeros((0, len(ctx.classes)), dtype=np.float32))
    embeds = video_embeddings(extraction, [str(r.path) for r in readable])
    return _Scored(readable, labels, score(embeds, ctx.text_features, ctx.backend.logit_scale).numpy())


def most_confused(metrics: dict[str, Any], top: int = 5) -> list[dict[str, Any]]:
    """The largest off-diagonal cells of the confusion matrix, as fractions of the true class."""
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


def _examples(scored: _Scored, classes: list[str], per_class: int = 1, limit: int = 6) -> list[dict[str, Any]]:
    """The first video of the first few classes, with its top-5 probabilities."""
    examples, seen = [], set()
    for record, row in zip(scored.records, scored.scores):
        if record.label in seen:
            continue
        seen.add(record.label)
        probabilities = torch.as_tensor(row).softmax(-1).numpy()
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


def _write_predictions(ctx: _Context, name: str, scored: _Scored, classes: list[str]) -> str:
    filename = f"predictions_{name}.csv"
    write_predictions_csv(
        ctx.out / filename, scored.videos, [classes[i] for i in scored.labels], scored.scores, classes
    )
    return filename


def _zeroshot_stage(ctx: _Context, scored: _Scored) -> dict[str, Any]:
    metrics = compute_metrics(scored.scores, scored.labels, ctx.classes)
    report = classification_report_text(scored.scores, scored.labels, ctx.classes) if len(scored.labels) else ""
    write_text_atomic(ctx.out / "classification_report.txt", report)
    return {
        "sampler": dataclasses.asdict(ctx.config.sampler),
        "n_videos": len(scored.records),
        "metrics": metrics,
        "classification_report": report,
        "most_confused": most_confused(metrics),
        "examples": _examples(scored, ctx.classes),
        "predictions_csv": _write_predictions(ctx, "zeroshot", scored, ctx.classes),
    }


def _variant_name(sampler: SamplerConfig) -> str:
    if sampler.name == "middle":
        return "middle"
    if sampler.name == "uniform":
        return f"uniform-{sampler.frames}"
    if sampler.name == "multi-clip":
        return f"multi-clip-{sampler.clips}x{sampler.frames}x{sampler.window:g}s"
    return f"center-clip-{sampler.frames}x{sampler.window:g}s"


def _temporal_stage(ctx: _Context, main: tuple[SamplerConfig, Extraction]) -> dict[str, Any]:
    variants, outcomes = [], {}
    for sampler in ctx.config.temporal.variants:
        same = sampler.cache_fields() == main[0].cache_fields()
        extraction = main[1] if same else ctx.extract(ctx.test.records, sampler)
        scored = _zero_shot_scores(ctx, ctx.test.records, extraction)
        name = _variant_name(sampler)
        metrics = compute_metrics(scored.scores, scored.labels, ctx.classes)
        outcomes[name] = metrics
        variants.append(
            {
                "name": name,
                "sampler": dataclasses.asdict(sampler),
                "frames_per_video": sampler.frames_per_video,
                "n_videos": len(scored.records),
                "metrics": metrics,
                "predictions_csv": _write_predictions(ctx, f"temporal_{name}", scored, ctx.classes),
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
    return {"variants": variants, "per_class": per_class}


@dataclass
class _FewShotPlan:
    """The weakest classes, how they were found, and the training videos drawn for them."""

    select_on: str
    selection_accuracy: dict[str, float | None]
    chosen: list[str]
    train_classes: list[str]
    records: list[VideoRecord]  # the shots, labels still index the study's classes
    shots_per_class: dict[str, int]
    extraction: Extraction  # main-sampler features of (at least) the shots


def _few_shot_plan(ctx: _Context, zeroshot_metrics: dict[str, Any]) -> _FewShotPlan:
    stage = ctx.config.fewshot
    if ctx.train is None:
        raise ValueError("few-shot stages need the train list")
    if stage.select_on == "train":
        # Only train videos and their labels are read here, so no test label leaks into training.
        train_extraction = ctx.extract(ctx.train.records, ctx.config.sampler)
        scored = _zero_shot_scores(ctx, ctx.train.records, train_extraction)
        selection = compute_metrics(scored.scores, scored.labels, ctx.classes)
    else:
        train_extraction = None
        selection = zeroshot_metrics
    accuracy = {name: selection["per_class"][name]["accuracy"] for name in ctx.classes}
    chosen = weakest_classes(accuracy, stage.n_classes, ctx.classes)
    candidates = [r for r in ctx.train.records if train_extraction is None or str(r.path) in train_extraction.features]
    records, counts = sample_shots(candidates, chosen, stage.shots, stage.train.seed)
    if train_extraction is None:
        train_extraction = ctx.extract(records, ctx.config.sampler)
        records = [r for r in records if str(r.path) in train_extraction.features]
        counts = {name: sum(r.class_name == name for r in records) for name in chosen}
    train_classes = chosen if stage.train_classes == "chosen" else ctx.classes
    return _FewShotPlan(stage.select_on, accuracy, chosen, train_classes, records, counts, train_extraction)


def _train_labels(plan: _FewShotPlan) -> torch.Tensor:
    return torch.tensor([plan.train_classes.index(r.class_name) for r in plan.records], dtype=torch.int64)


def _train_text(ctx: _Context, plan: _FewShotPlan) -> torch.Tensor:
    return ctx.text_features[[ctx.classes.index(name) for name in plan.train_classes]]


def _adaptation_result(
    ctx: _Context, plan: _FewShotPlan, name: str, before: _Scored, after: _Scored, training: dict[str, Any]
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
        "predictions_csv": _write_predictions(ctx, name, after, ctx.classes),
    }


def _fewshot_stage(ctx: _Context, plan: _FewShotPlan, main: Extraction, before: _Scored) -> dict[str, Any]:
    settings = ctx.config.fewshot.train
    pooled = _pooled(plan.extraction, [str(r.path) for r in plan.records])
    weight, losses = train_projection(
        ctx.backend.projection_weight(),
        pooled,
        _train_labels(plan),
        _train_text(ctx, plan),
        ctx.backend.logit_scale,
        settings,
        progress=ctx.progress,
    )
    test_pooled = _pooled(main, before.videos)
    with torch.no_grad():
        scores = video_logits(test_pooled @ weight.T, ctx.text_features, ctx.backend.logit_scale).numpy()
    after = _Scored(before.records, before.labels, scores)
    training = {**dataclasses.asdict(settings), "loss_curve": losses, "trained": "visual projection"}
    result = _adaptation_result(ctx, plan, "fewshot", before, after, training)
    return {"select_on": plan.select_on, "selection_accuracy": plan.selection_accuracy, **result}


def _pooled(extraction: Extraction, videos: Sequence[str]) -> torch.Tensor:
    """(V, F, D) pre-projection frame features of `videos` (each has the sampler's F frames)."""
    return torch.stack([torch.from_numpy(extraction.features[v].pooled) for v in videos])


def _outside_classes(ctx: _Context) -> dict[str, Any] | None:
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
    extraction = ctx.extract(records, ctx.config.sampler)
    readable = [r for r in records if str(r.path) in extraction.features]
    if not readable:
        return None
    label_map = load_label_map(ctx.config.prompts.label_map) if ctx.config.prompts.label_map else None
    names = prompt_names(tuple(outside), ctx.config.prompts.name_style, label_map)
    return {
        "classes": outside,
        "pooled": _pooled(extraction, [str(r.path) for r in readable]),
        "labels": torch.tensor([outside.index(r.class_name) for r in readable]),
        "text": class_text_features(ctx.backend, names, ctx.templates, ctx.cache),
    }


def _adapt_methods_stage(ctx: _Context, plan: _FewShotPlan, main: Extraction, before: _Scored) -> dict[str, Any]:
    """Each few-shot method on the same shots: accuracy on the trained classes, the study's other
    classes and overall, before and after; for methods that change CLIP's projection, the
    zero-shot accuracy of classes outside the study."""
    from clipaction.adapt.methods import FewShotData, fit_method, group_accuracy

    stage = ctx.config.adapt
    train = FewShotData(
        pooled=_pooled(plan.extraction, [str(r.path) for r in plan.records]),
        labels=_train_labels(plan),
        text_features=_train_text(ctx, plan),
        projection=ctx.backend.projection_weight(),
        logit_scale=ctx.backend.logit_scale,
    )
    # the `projection` row is the few-shot stage itself: same shots, same training settings
    settings = dataclasses.replace(stage.settings, projection=ctx.config.fewshot.train)
    test_pooled = _pooled(main, before.videos)
    labels = torch.from_numpy(before.labels)
    outside = _outside_classes(ctx) if stage.outside_classes else None
    zeroshot_outside = None
    if outside is not None:
        zs = video_logits(outside["pooled"] @ train.projection.T, outside["text"], train.logit_scale)
        zeroshot_outside = float((zs.argmax(1) == outside["labels"]).float().mean())
    methods, trained_columns = {}, None
    for name in stage.methods:
        classifier = fit_method(name, train, settings)
        trained_columns = classifier.trained_columns(ctx.text_features)
        with torch.no_grad():
            after_scores = classifier.scores(test_pooled, ctx.text_features)
        after = group_accuracy(after_scores, labels, trained_columns)
        previous = group_accuracy(torch.from_numpy(before.scores), labels, trained_columns)
        chosen = trained_columns.nonzero().flatten()
        keep = torch.isin(labels, chosen)
        chosen_top1 = float((chosen[after_scores[keep][:, chosen].argmax(1)] == labels[keep]).float().mean()) if keep.any() else None
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
    zeroshot = group_accuracy(torch.from_numpy(before.scores), labels, trained_columns)
    return {
        "chosen_classes": plan.chosen,
        "train_classes": plan.train_classes,
        "shots_per_class": plan.shots_per_class,
        "n_train_videos": len(plan.records),
        "zeroshot": zeroshot,
        "outside": None if outside is None else {
            "classes": outside["classes"], "n_videos": len(outside["labels"]), "zeroshot_top1": zeroshot_outside,
        },
        "methods": methods,
    }


def _training_pixels(ctx: _Context, records: Sequence[VideoRecord]) -> tuple[list[VideoRecord], torch.Tensor]:
    """Decode and preprocess the few training videos once: (V, F, 3, S, S)."""
    kept, pixels = [], []
    for record in tqdm(records, desc="decode training frames", unit="video", disable=not ctx.progress):
        try:
            frames = read_sampled_frames(record.path, ctx.config.sampler).frames
        except VideoDecodeError as error:
            ctx.failures.setdefault(str(record.path), str(error))
            continue
        kept.append(record)
        pixels.append(ctx.backend.preprocess(frames))
    return kept, torch.stack(pixels)


def _full_finetune_stage(ctx: _Context, plan: _FewShotPlan, before: _Scored) -> dict[str, Any]:
    settings = ctx.config.full_finetune.train
    records, pixels = _training_pixels(ctx, plan.records)
    plan = dataclasses.replace(plan, records=records)
    vision, projection, losses = finetune_vision(
        ctx.backend.vision_model,
        ctx.backend.visual_projection,
        pixels,
        _train_labels(plan),
        _train_text(ctx, plan),
        ctx.backend.logit_scale,
        settings,
        device=ctx.backend.device,
        progress=ctx.progress,
    )
    tuned = ctx.backend.with_vision(vision, projection, tag="full-finetune")
    extraction = ctx.extract(before.records, ctx.config.sampler, backend=tuned, cached=False)
    readable = [r for r in before.records if str(r.path) in extraction.features]
    embeds = video_embeddings(extraction, [str(r.path) for r in readable])
    after = _Scored(
        readable,
        np.array([r.label for r in readable], dtype=np.int64),
        score(embeds, ctx.text_features, ctx.backend.logit_scale).numpy(),
    )
    training = {**dataclasses.asdict(settings), "loss_curve": losses, "trained": "whole image tower"}
    return _adaptation_result(ctx, plan, "full_finetune", before, after, training)


def _embedding_stage(ctx: _Context, main: Extraction, scored: _Scored) -> dict[str, Any]:
    from sklearn.manifold import TSNE

    stage = ctx.config.embeddings
    similarity = (ctx.text_features @ ctx.text_features.T).numpy()
    result: dict[str, Any] = {"text_similarity": similarity.tolist()}
    count = len(scored.records)
    if count >= 4:
        embeds = video_embeddings(main, scored.videos).numpy()
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


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics[key] for key in ("top1", "top5", "mean_class_accuracy")}


def _ablation_stage(ctx: _Context, main: Extraction) -> dict[str, Any]:
    """Top-1 for each prompt choice on the main sampler's features, and for each temporal input
    with the study's prompts."""
    stage = ctx.config.ablations
    label_map = load_label_map(ctx.config.prompts.label_map) if ctx.config.prompts.label_map else None
    videos = [r for r in ctx.test.records if str(r.path) in main.features]
    labels = np.array([r.label for r in videos], dtype=np.int64)
    embeds = video_embeddings(main, [str(r.path) for r in videos]) if videos else None
    prompts = []
    for style in stage.name_styles:
        names = prompt_names(ctx.test.classes, style, label_map)
        for template_set in stage.template_sets:
            templates = load_templates(template_set)
            if embeds is None:
                scores = np.zeros((0, len(ctx.classes)), dtype=np.float32)
            else:
                text = class_text_features(ctx.backend, names, templates, ctx.cache)
                scores = score(embeds, text, ctx.backend.logit_scale).numpy()
            metrics = compute_metrics(scores, labels, ctx.classes)
            prompts.append(
                {"name_style": style, "templates": template_set, "n_templates": len(templates), **_summary(metrics)}
            )
    temporal = []
    for sampler in stage.samplers:
        extraction = ctx.extract(ctx.test.records, sampler)
        scored = _zero_shot_scores(ctx, ctx.test.records, extraction)
        temporal.append(
            {
                "name": _variant_name(sampler),
                "sampler": dataclasses.asdict(sampler),
                "frames_per_video": sampler.frames_per_video,
                "n_videos": len(scored.records),
                **_summary(compute_metrics(scored.scores, scored.labels, ctx.classes)),
            }
        )
    return {"prompts": prompts, "temporal": temporal}


def _prepare(config: StudyConfig, backend: Backend | None, progress: bool) -> _Context:
    if config.full_finetune.enabled and config.model.precision == "int8":
        raise ValueError(
            "full fine-tuning trains the image tower, which int8 cannot: use precision fp32, "
            "or switch the stage off (--skip full-finetune)"
        )
    dataset = config.dataset
    test = load_dataset(dataclasses.replace(dataset, subset="test"))
    needs_train = config.fewshot.enabled or config.full_finetune.enabled or config.adapt.enabled
    train = load_dataset(dataclasses.replace(dataset, subset="train")) if needs_train else None
    if train is not None and train.classes != test.classes:
        raise ValueError("the train and test lists have different classes")
    if train is not None and {r.path for r in train.records} & {r.path for r in test.records}:
        log.warning("some videos are in both the train and the test list: few-shot numbers are optimistic")
    label_map = load_label_map(config.prompts.label_map) if config.prompts.label_map else None
    names = prompt_names(test.classes, config.prompts.name_style, label_map)
    templates = load_templates(config.prompts.templates)
    backend = backend or load_backend(config.model)
    out = Path(config.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    cache = open_cache(config.cache_dir, backend)
    ctx = _Context(
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
    )
    for missing in [*test.missing, *(train.missing if train else ())]:
        ctx.failures.setdefault(missing.path, f"missing: {missing.error}")
    return ctx


def run_study(config: StudyConfig, *, backend: Backend | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every enabled stage, write results.json, the predictions CSVs and the report into
    `config.out`, and return the results dict."""
    ctx = _prepare(config, backend, progress)
    main_extraction = ctx.extract(ctx.test.records, config.sampler)
    before = _zero_shot_scores(ctx, ctx.test.records, main_extraction)
    stages: dict[str, Any] = {"zeroshot": _zeroshot_stage(ctx, before)}
    if config.temporal.enabled:
        stages["temporal"] = _temporal_stage(ctx, (config.sampler, main_extraction))
    if config.fewshot.enabled or config.full_finetune.enabled or config.adapt.enabled:
        plan = _few_shot_plan(ctx, stages["zeroshot"]["metrics"])
        if config.fewshot.enabled:
            stages["fewshot"] = _fewshot_stage(ctx, plan, main_extraction, before)
        if config.full_finetune.enabled:
            stages["full_finetune"] = _full_finetune_stage(ctx, plan, before)
        if config.adapt.enabled and config.adapt.methods:
            stages["adapt_methods"] = _adapt_methods_stage(ctx, plan, main_extraction, before)
    if config.embeddings.enabled:
        stages["embeddings"] = _embedding_stage(ctx, main_extraction, before)
    if config.ablations.enabled:
        stages["ablations"] = _ablation_stage(ctx, main_extraction)
    results = _results(ctx, stages)
    write_study_outputs(results, ctx.out)
    return results


def _results(ctx: _Context, stages: dict[str, Any]) -> dict[str, Any]:
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
            "logit_scale": backend.logit_scale,
            "feature_dim": backend.feature_dim,
            "embed_dim": backend.embed_dim,
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
    import json

    from clipaction.report import write_report

    path = Path(run_dir).expanduser() / "results.json"
    if not path.is_file():
        raise ValueError(f"no results.json in {path.parent} (expected the --out folder of `clipaction run`)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    if results.get("task") != "study":
        raise ValueError(f"{path} is not the results of `clipaction run` (task: {results.get('task')!r})")
    return write_report(results, path.parent)
