"""Zero-shot evaluation of a dataset and labelling of arbitrary videos, wired from the pieces:
dataset -> extract (cache) -> video embeddings -> text classifier -> scores -> metrics."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipaction.classify.metrics import classification_report_text, compute_metrics
from clipaction.classify.scoring import (
    SEED_TEMPLATES,
    class_text_array,
    load_templates,
    multiview_scores,
    video_score_array,
)
from clipaction.config import CropPosition, SamplerConfig, ViewPool, ZeroShotConfig, crop_positions
from clipaction.data import VideoDataset, VideoRecord, load_dataset
from clipaction.data.names import load_label_map, prompt_names
from clipaction.errors import ConfigError
from clipaction.features.cache import FeatureCache
from clipaction.features.clips import sampler_for
from clipaction.features.engines import extract
from clipaction.features.extract import Extraction, Failure, cache_space, extract_features
from clipaction.models import Backend, load_backend
from clipaction.outputs import (
    environment,
    now_iso,
    output_folder,
    write_json,
    write_predictions_csv,
    write_text_atomic,
)

if TYPE_CHECKING:  # a run whose features are all cached computes in numpy and imports no torch
    import torch

log = logging.getLogger(__name__)


@dataclass
class ZeroShotRun:
    """A finished zero-shot evaluation.

    scores: (V, C) logits of the V videos that could be read (with `pool="probabilities"`: the
    probabilities averaged over views x crops); labels: (V,) int; videos: their paths;
    failures: missing and unreadable videos with reasons. With several crops, `extraction`
    counts every (video, crop) and holds no features: each crop's are in `crop_extractions`.
    """

    config: ZeroShotConfig
    dataset: VideoDataset
    class_prompts: list[str]
    templates: tuple[str, ...]
    videos: list[str]
    labels: np.ndarray
    scores: np.ndarray
    metrics: dict[str, Any]
    failures: list[Failure]
    extraction: Extraction
    device: str
    sampler: SamplerConfig  # the sampler used: a clip model's own frame count when it differs
    model: dict[str, Any]  # the backend's description: family, score kind, scale, sizes
    crop_extractions: dict[str, Extraction] = dataclasses.field(default_factory=dict)

    @property
    def score_kind(self) -> str:
        """What `scores` holds: "logits", or "probabilities" (averaged over views x crops)."""
        return "probabilities" if self.config.pool == "probabilities" else "logits"


def open_cache(cache_dir: str | None, backend: Backend, crop: CropPosition | None = None) -> FeatureCache:
    """The cache of `backend`'s frame features (every sampler shares it); a crop has its own."""
    return FeatureCache(cache_dir, cache_space(backend, crop))


def combined_extraction(extractions: Sequence[Extraction]) -> Extraction:
    """One account of several crops' extractions of the same videos: counts summed (per video
    and crop), failures and warnings once per video and reason, no features."""
    if len(extractions) == 1:
        return extractions[0]
    combined = Extraction()
    failed: set[str] = set()
    warned: set[tuple[str, str]] = set()
    for extraction in extractions:
        for failure in extraction.failures:
            if failure.path not in failed:
                failed.add(failure.path)
                combined.failures.append(failure)
        for warning in extraction.warnings:
            if (warning.path, warning.warning) not in warned:
                warned.add((warning.path, warning.warning))
                combined.warnings.append(warning)
        combined.n_cached += extraction.n_cached
        combined.n_encoded += extraction.n_encoded
        combined.n_frames_encoded += extraction.n_frames_encoded
    return combined


@dataclass
class Scored:
    """Scores of the readable videos of a record list: records, labels (V,), logits (V, C)."""

    records: list[VideoRecord]
    labels: np.ndarray
    scores: np.ndarray

    @property
    def videos(self) -> list[str]:
        return [str(r.path) for r in self.records]


def score_records(
    backend: Backend,
    records: Sequence[VideoRecord],
    extraction: Extraction,
    text_features: np.ndarray | torch.Tensor,
) -> Scored:
    """The records whose video was read, their labels and their logits against the classes."""
    by_path = {str(record.path): record for record in records}
    readable, logits = video_score_array(backend, extraction, list(by_path), np.asarray(text_features))
    kept = [by_path[path] for path in readable]
    labels = np.array([record.label for record in kept], dtype=np.int64)
    return Scored(kept, labels, logits)


def run_zeroshot(config: ZeroShotConfig, *, backend: Backend | None = None, progress: bool = True) -> ZeroShotRun:
    """Evaluate zero-shot CLIP on the dataset `config` describes. Reads/fills the cache.

    With `config.crops` 3 every video is extracted once per crop (each crop in its own cache
    space); `config.pool` says how the crops and a multi-clip sampler's clips are combined
    (`clipaction.classify.scoring.multiview_scores`)."""
    dataset = load_dataset(config.dataset)
    label_map = load_label_map(config.prompts.label_map) if config.prompts.label_map else None
    names = prompt_names(dataset.classes, config.prompts.name_style, label_map)
    templates = load_templates(config.prompts.templates)
    backend = backend or load_backend(config.model)
    sampler = sampler_for(backend, config.sampler)
    cache = open_cache(config.cache_dir, backend)
    paths = [str(record.path) for record in dataset.records]
    by_crop = {}
    for crop in crop_positions(config.crops):
        by_crop[crop or "none"] = extract(
            paths,
            backend,
            sampler,
            cache if crop is None else open_cache(config.cache_dir, backend, crop),
            batch_size=config.model.batch_size,
            workers=config.workers,
            progress=progress,
            engine=config.engine,
            crop=crop,
        )
    extraction = combined_extraction(list(by_crop.values()))
    text_features = class_text_array(backend, names, templates, cache)
    if config.crops == 1 and config.pool == "features":
        scored = score_records(backend, dataset.records, extraction, text_features)
    else:
        scored = score_views(backend, dataset.records, list(by_crop.values()), text_features, sampler, config.pool)
    failures = [Failure(missing.path, f"missing: {missing.error}") for missing in dataset.missing]
    failures += extraction.failures
    return ZeroShotRun(
        config=config,
        dataset=dataset,
        class_prompts=[templates[0].format(name) for name in names],
        templates=templates,
        videos=scored.videos,
        labels=scored.labels,
        scores=scored.scores,
        metrics=compute_metrics(scored.scores, scored.labels, dataset.classes),
        failures=failures,
        extraction=extraction,
        device=backend.device_name,
        sampler=sampler,
        model=backend.describe(),
        crop_extractions=by_crop if config.crops > 1 else {},
    )


def score_views(
    backend: Backend,
    records: Sequence[VideoRecord],
    extractions: Sequence[Extraction],
    text_features: np.ndarray | torch.Tensor,
    sampler: SamplerConfig,
    pool: ViewPool,
) -> Scored:
    """`score_records` over views x crops (`clipaction.classify.scoring.multiview_scores`)."""
    by_path = {str(record.path): record for record in records}
    readable, scores = multiview_scores(backend, extractions, list(by_path), np.asarray(text_features), sampler, pool)
    kept = [by_path[path] for path in readable]
    labels = np.array([record.label for record in kept], dtype=np.int64)
    return Scored(kept, labels, scores)


def zeroshot_results(run: ZeroShotRun) -> dict[str, Any]:
    """The content of results.json for a zero-shot run."""
    config = run.config
    return {
        "task": "zeroshot",
        "dataset": {
            "name": run.dataset.name,
            "split": run.dataset.split,
            "subset": run.dataset.subset,
            "classes": list(run.dataset.classes),
            "n_videos": len(run.dataset.records),
            "n_evaluated": len(run.videos),
            "n_missing": len(run.dataset.missing),
            "root": config.dataset.root,
        },
        "model": {**dataclasses.asdict(config.model), **run.model, "device": run.device},
        "sampler": dataclasses.asdict(run.sampler),
        "views": {"crops": config.crops, "pool": config.pool, "scores": run.score_kind},
        "prompts": {
            **dataclasses.asdict(config.prompts),
            "n_templates": len(run.templates),
            "templates": list(run.templates),
            "class_prompts": run.class_prompts,
        },
        "metrics": run.metrics,
        "failures": [dataclasses.asdict(failure) for failure in run.failures],
        "warnings": [{"path": path, "warning": warning} for path, warning in partial_videos(run.extraction).items()],
        "cache": {"cached": run.extraction.n_cached, "encoded": run.extraction.n_encoded},
        "env": environment(run.device),
        "created_at": now_iso(),
    }


def partial_videos(extraction: Extraction) -> dict[str, str]:
    """The videos used although they decoded only partly: path -> its first warning."""
    found: dict[str, str] = {}
    for item in extraction.warnings:
        found.setdefault(item.path, item.warning)
    return found


def write_zeroshot_outputs(run: ZeroShotRun, out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, predictions.csv and classification_report.txt into `out_dir`."""
    out = output_folder(out_dir)
    paths = {
        "results": out / "results.json",
        "predictions": out / "predictions.csv",
        "report": out / "classification_report.txt",
    }
    classes = list(run.dataset.classes)
    write_json(paths["results"], zeroshot_results(run))
    write_predictions_csv(paths["predictions"], run.videos, [classes[i] for i in run.labels], run.scores, classes)
    report = classification_report_text(run.scores, run.labels, classes) if run.videos else "no videos\n"
    write_text_atomic(paths["report"], report)
    return paths


@dataclass(frozen=True)
class VideoPrediction:
    """Labels of one video ranked best first with their probabilities; `score` says whether
    they are a softmax over the labels or independent sigmoids (the model family's way)."""

    video: str
    labels: list[tuple[str, float]]
    score: str = "softmax"


def check_labels(labels: Sequence[str]) -> list[str]:
    """The labels, refused when empty or when one is given twice (it would split its
    probability between its copies)."""
    labels = [label.strip() for label in labels if label.strip()]
    if not labels:
        raise ConfigError("give at least one label, e.g. 'riding a bike'", setting="labels")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"{', '.join(map(repr, repeated))} given more than once", setting="labels")
    return labels


def predict_videos(
    videos: Sequence[str | Path],
    labels: Sequence[str],
    backend: Backend,
    sampler: SamplerConfig,
    *,
    templates: Sequence[str] = SEED_TEMPLATES,
    cache: FeatureCache | None = None,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = False,
) -> tuple[list[VideoPrediction], list[Failure]]:
    """Rank `labels` for each video by the model's probabilities of them."""
    labels = check_labels(labels)
    sampler = sampler_for(backend, sampler)
    paths = [str(video) for video in videos]
    extraction = extract_features(
        paths, backend, sampler, cache, batch_size=batch_size, workers=workers, progress=progress
    )
    if not extraction.features:
        return [], extraction.failures
    text_features = class_text_array(backend, labels, templates, cache)
    readable, logits = video_score_array(backend, extraction, paths, text_features)
    scoring = backend.scoring()
    predictions = []
    for path, row in zip(readable, scoring.probabilities(logits).tolist()):
        ranked = sorted(zip(labels, row), key=lambda pair: -pair[1])
        predictions.append(VideoPrediction(path, [(label, float(p)) for label, p in ranked], scoring.kind))
    return predictions, extraction.failures
