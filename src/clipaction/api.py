"""The promised Python API, for notebooks and scripts (re-exported by `clipaction`).

    import clipaction
    backend = clipaction.load_model("openai/clip-vit-base-patch32")
    ranked = clipaction.predict(["clip.mp4"], ["riding a bike", "juggling"], model=backend)
    run = clipaction.classify.scoring(clipaction.ZeroShotConfig(dataset=clipaction.DatasetConfig(root=..., splits_dir=...)))
    results = clipaction.run_study(clipaction.StudyConfig(...))
    clipaction.index(["footage/"], "footage.idx")          # the search extra (LanceDB)
    moments = clipaction.search("someone falling off a bike", "footage.idx", top=5)

Everything else in the package stays importable but may change between versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipaction.config import DEFAULT_MODEL, ModelConfig, SamplerConfig, StudyConfig, ZeroShotConfig

if TYPE_CHECKING:
    from clipaction.classify.run import VideoPrediction, ZeroShotRun
    from clipaction.lookup.build import IndexReport
    from clipaction.lookup.moments import Moment
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


def index(
    videos: Sequence[str | Path],
    index: str | Path,
    *,
    model: str | Backend | None = None,
    fps: float | None = None,
    window: float | None = None,
    stride: float | None = None,
    cache_dir: str | None = None,
    workers: int = 2,
    progress: bool = False,
) -> IndexReport:
    """Index every window of `videos` (files or folders) into the footage index folder `index`
    (created when new; needs the `search` extra). Sampling is `timeline`'s: frames at `fps`,
    `window`-second windows every `stride` seconds (None: the index's own, a new one 1, 2, 1).
    A second run adds new or changed files and drops deleted ones; unreadable files are skipped
    and listed in the index's manifest. `model`: a hub id, folder or loaded backend (None: the
    index's own, a new one the default); another model than the index's is a ConfigError."""
    from clipaction.lookup.build import build_index

    return build_index(
        videos, index, model=model, fps=fps, window=window, stride=stride, cache_dir=cache_dir, workers=workers,
        progress=progress,
    )  # fmt: skip


def search(
    query: str | None,
    index: str | Path,
    *,
    top: int = 10,
    where: str | None = None,
    like: str | None = None,
    templates: str | Sequence[str] | None = None,
    model: str | Backend | None = None,
) -> list[Moment]:
    """The `top` moments of the index best matching the sentence `query`, best first: each has
    `video`, `start`, `end` (seconds), `score` (cosine) and, for sigmoid-scored families (SigLIP),
    `probability`; `.as_dict()` gives the JSON form. `like="VIDEO@SECONDS"` (query None) finds
    moments like that one instead; `where` keeps videos whose path matches a glob; `templates`:
    None (the query as typed), `seed`, `clip`, a template file or a list of templates with {}."""
    from clipaction.classify.scoring import load_templates
    from clipaction.lookup.query import search_index

    if templates is None:
        chosen: Sequence[str] = ("{}",)
    elif isinstance(templates, str):
        chosen = load_templates(templates)
    else:
        chosen = tuple(templates)
    return search_index(index, query, like=like, top=top, where=where, model=model, templates=chosen)
