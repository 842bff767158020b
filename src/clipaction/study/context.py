"""What the study's stages share: the run's context and scoring helpers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clipaction.classify.run import Scored, open_cache, score_records
from clipaction.config import SamplerConfig, StudyConfig
from clipaction.data import VideoDataset, VideoRecord
from clipaction.features.cache import FeatureCache
from clipaction.features.engines import LOCAL, extract
from clipaction.features.extract import Extraction
from clipaction.models import Backend
from clipaction.outputs import write_predictions_csv


@dataclass
class Context:
    """What every stage shares: the config, model, datasets, class texts, and the failures and
    partly decoded videos (path -> first reason) found so far."""

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
    sampler: SamplerConfig  # the main sampler as the backend takes it (`features.clips.sampler_for`)
    failures: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.test.classes)

    def extract(
        self,
        records: Sequence[VideoRecord],
        sampler: SamplerConfig,
        backend: Backend | None = None,
        cached: bool = True,
    ) -> Extraction:
        backend = backend or self.backend
        extraction = extract(
            [str(r.path) for r in records],
            backend,
            sampler,
            (self.cache if backend is self.backend else open_cache(self.config.cache_dir, backend)) if cached else None,
            batch_size=self.config.model.batch_size,
            workers=self.config.workers,
            progress=self.progress,
            # the ray engine rebuilds the study's model on its workers, not a fine-tuned one
            engine=self.config.engine if backend is self.backend and cached else LOCAL,
        )
        for failure in extraction.failures:
            self.failures.setdefault(failure.path, failure.error)
        for item in extraction.warnings:
            self.warnings.setdefault(item.path, item.warning)
        return extraction


def zero_shot_scores(ctx: Context, records: Sequence[VideoRecord], extraction: Extraction) -> Scored:
    """The study's class texts scored against the readable videos of `records`."""
    return score_records(ctx.backend, records, extraction, ctx.text_features)


def write_predictions(ctx: Context, name: str, scored: Scored, classes: list[str]) -> str:
    filename = f"predictions_{name}.csv"
    write_predictions_csv(
        ctx.out / filename, scored.videos, [classes[i] for i in scored.labels], scored.scores, classes
    )
    return filename


def variant_name(sampler: SamplerConfig) -> str:
    return sampler.label


def samplers_for_backend(ctx: Context, samplers: Sequence[SamplerConfig]) -> tuple[list[SamplerConfig], dict[str, str]]:
    """The samplers as the backend takes them (a clip model's own frame count), without
    duplicates, and those it cannot take at all (name -> reason), e.g. `middle` for a model
    that encodes clips."""
    from clipaction.errors import ConfigError
    from clipaction.features.clips import sampler_for

    usable, seen, refused = [], set(), {}
    for sampler in samplers:
        try:
            resolved = sampler_for(ctx.backend, sampler)
        except ConfigError as error:
            refused[variant_name(sampler)] = error.message
            continue
        key = json.dumps(resolved.cache_fields(), sort_keys=True)
        if key not in seen:
            seen.add(key)
            usable.append(resolved)
    return usable, refused


def pooled_features(extraction: Extraction, videos: Sequence[str]) -> torch.Tensor:
    """(V, F, D) pre-projection frame features of `videos` (each has the sampler's F frames)."""
    return torch.stack([torch.from_numpy(extraction.features[v].pooled) for v in videos])


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics[key] for key in ("top1", "top5", "mean_class_accuracy")}
