"""The promised Python API, for notebooks and scripts (re-exported by `clipaction`).

    import clipaction
    backend = clipaction.load_model("openai/clip-vit-base-patch32")
    ranked = clipaction.predict(["clip.mp4"], ["riding a bike", "juggling"], model=backend)
    run = clipaction.classify.scoring(clipaction.ZeroShotConfig(dataset=clipaction.DatasetConfig(root=..., splits_dir=...)))
    results = clipaction.run_study(clipaction.StudyConfig(...))

Everything else in the package stays importable but may change between versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipaction.config import DEFAULT_MODEL, ModelConfig, SamplerConfig, StudyConfig, ZeroShotConfig

if TYPE_CHECKING:
    from clipaction.classify.run import VideoPrediction, ZeroShotRun
    from clipaction.models.base import Backend


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    device: str = "auto",
    precision: str = "fp32",
    runtime: str = "torch",
    batch_size: int = 32,
) -> Backend:
    """A model of any supported family (hub id or a folder saved with `save_pretrained`); the
    family comes from its config.json. Weights load when first needed. `runtime` "openvino"
    (frame models, CPU) needs the `openvino` extra."""
    from clipaction.models import load_backend

    config = ModelConfig(
        name_or_path=name_or_path, device=device, precision=precision, runtime=runtime, batch_size=batch_size
    )
    return load_backend(config)


def predict(
    videos: Sequence[str | Path],
    labels: Sequence[str],
    *,
    model: str | Backend = DEFAULT_MODEL,
    sampler: SamplerConfig | None = None,
    templates: str = "seed",
    cache_dir: str | None = None,
    workers: int = 2,
    progress: bool = False,
) -> list[VideoPrediction]:
    """Rank `labels` for each readable video (files; unreadable ones are skipped with a logged
    warning). `model` is a hub id, a folder or a loaded backend; `templates` is `seed`, `clip`
    or a template file. Each prediction's `labels` are (label, probability) best first, and
    its `score` says "softmax" (over these labels) or "sigmoid" (independent)."""
    from clipaction.classify.run import open_cache, predict_videos
    from clipaction.classify.scoring import load_templates
    from clipaction.models import load_backend

    backend = load_backend(ModelConfig(name_or_path=model)) if isinstance(model, str) else model
    predictions, _failures = predict_videos(
        videos,
        labels,
        backend,
        sampler or SamplerConfig(),
        templates=load_templates(templates),
        cache=open_cache(cache_dir, backend),
        batch_size=backend.config.batch_size if backend.config is not None else 32,
        workers=workers,
        progress=progress,
    )
    return predictions


def zeroshot(config: ZeroShotConfig, *, progress: bool = False) -> ZeroShotRun:
    """Zero-shot evaluation of the dataset `config` describes: `.metrics`, `.scores` (V, C),
    `.labels`, `.videos`, `.failures`, and `.extraction.warnings` (partly decoded videos). Write the files with
    `clipaction.classify.run.write_zeroshot_outputs(run, out_dir)`."""
    from clipaction.classify.run import run_zeroshot

    return run_zeroshot(config, progress=progress)


def run_study(config: StudyConfig, *, progress: bool = False) -> dict[str, Any]:
    """The whole study (`clipaction run`): writes results.json and the report into
    `config.out` and returns the results."""
    from clipaction.study import run_study as run

    return run(config, progress=progress)
