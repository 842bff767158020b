"""Zero-shot classification: prompts -> class text features; frame features -> video scores
(scored the backend's way: see `clipaction.models.base.Scoring`).

The arithmetic on cached features is numpy's (`*_array` functions, and the torch-returning
functions are those with `torch.from_numpy` around them): a run whose features are all cached
scores without importing torch, and gives the same bits as a run that encoded them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipaction.config import SamplerConfig, ViewPool
from clipaction.errors import ConfigError
from clipaction.features.cache import CachedVideo, FeatureCache
from clipaction.features.extract import Extraction, stored_meta
from clipaction.models.base import ArrayT, Backend
from clipaction.models.pooling import normalise, pool_frames

if TYPE_CHECKING:
    import torch

NAME_ONLY_TEMPLATES = ("{}",)
SEED_TEMPLATES = ("a photo of a person {}.",)

#: The CLIP authors' 48 UCF101 templates: a {noun} of {article} person {verb}{}.
CLIP_TEMPLATES = tuple(
    f"a {noun} of {article} person {verb}{{}}."
    for verb in ("", "using ", "doing ", "during ", "performing ", "practicing ")
    for article in ("a", "the")
    for noun in ("photo", "video", "example", "demonstration")
)

#: `name`: the class name alone; `seed`: the seed study's sentence; `clip`: CLIP's 48.
TEMPLATE_SETS = {"name": NAME_ONLY_TEMPLATES, "seed": SEED_TEMPLATES, "clip": CLIP_TEMPLATES}


class PromptError(ConfigError):
    """A template set that is neither a known name nor a readable file of templates."""

    def __init__(self, message: str) -> None:
        super().__init__(message, setting="prompts.templates")


def load_templates(spec: str) -> tuple[str, ...]:
    """`name`, `seed`, `clip`, or a text file with one template per line (each with one `{}`)."""
    if spec in TEMPLATE_SETS:
        return TEMPLATE_SETS[spec]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise PromptError(f"prompts must be {', '.join(TEMPLATE_SETS)} or a file of templates; {spec!r} is neither")
    templates = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not templates:
        raise PromptError(f"template file {path} has no templates")
    for number, template in enumerate(templates, 1):
        if template.count("{}") != 1:
            raise PromptError(f"{path}:{number}: a template needs exactly one {{}}; got {template!r}")
    return templates


def class_text_features(
    backend: Backend, names: Sequence[str], templates: Sequence[str], cache: FeatureCache | None = None
) -> torch.Tensor:
    """(C, E) L2-normalised class features: the normalised mean over templates of each class's
    normalised template features. With a `cache` (of this backend), texts are encoded once."""
    import torch

    return torch.from_numpy(class_text_array(backend, names, templates, cache))


def class_text_array(
    backend: Backend, names: Sequence[str], templates: Sequence[str], cache: FeatureCache | None = None
) -> np.ndarray:
    """`class_text_features` as a float32 numpy array; torch is imported only to encode texts
    the cache lacks."""
    texts = [template.format(name) for name in names for template in templates]
    stored = cache.load_texts(texts) if cache is not None else None
    if stored is None:
        stored = backend.encode_texts(texts).numpy()
        if cache is not None and len(texts):
            cache.store_texts(texts, stored)
    per_text = np.asarray(stored, dtype=np.float32).reshape(len(names), len(templates), -1)
    return normalise(per_text.mean(axis=1, dtype=np.float32))


def video_embedding(frame_embeds: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(F, E) frame features -> (E,) the video's normalised embedding (`pool_frames`)."""
    return pool_frames(frame_embeds)


def score(backend: Backend, video_embeds: ArrayT, text_features: ArrayT) -> ArrayT:
    """(V, E) x (C, E) normalised features -> (V, C) logits, the backend's way (numpy arrays
    in, numpy out)."""
    return backend.scoring().logits(video_embeds, text_features)


def video_embeddings(backend: Backend, extraction: Extraction, videos: Sequence[str]) -> torch.Tensor:
    """(V, E) video features of `videos` (each must be in `extraction.features`), made from
    their cached rows the backend's way (frame models: normalised mean of the frames)."""
    import torch

    return torch.from_numpy(video_embedding_array(backend, extraction, videos))


def video_embedding_array(backend: Backend, extraction: Extraction, videos: Sequence[str]) -> np.ndarray:
    """`video_embeddings` as a numpy array."""
    return np.stack([backend.video_embedding(extraction.features[v].embeds) for v in videos])


def video_scores(
    backend: Backend, extraction: Extraction, videos: Sequence[str], text_features: torch.Tensor | np.ndarray
) -> tuple[list[str], torch.Tensor]:
    """The videos of `videos` that were read (in order) and their (V, C) logits against the
    (C, E) class features: "readable videos -> scores", for every caller."""
    import torch

    readable, logits = video_score_array(backend, extraction, videos, np.asarray(text_features))
    return readable, torch.from_numpy(logits)


def video_score_array(
    backend: Backend, extraction: Extraction, videos: Sequence[str], text_features: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """`video_scores` in numpy: (C, E) class features -> the readable videos, (V, C) logits."""
    readable = [video for video in videos if video in extraction.features]
    if not readable:
        return [], np.zeros((0, len(text_features)), dtype=np.float32)
    return readable, score(backend, video_embedding_array(backend, extraction, readable), text_features)


def view_rows(backend: Backend, video: CachedVideo, sampler: SamplerConfig) -> list[torch.Tensor]:
    """A video's cached rows cut into its temporal views, each (R, E) as `backend.video_embedding`
    takes them. Clip models: each clip row is a view. Frame models with the multi-clip sampler:
    each clip's frames (found by frame index from the sampler's clips of the video's stored
    metadata, since overlapping windows share frames); any other sampler: one view of all rows."""
    import torch

    return [torch.from_numpy(view) for view in view_arrays(backend, video, sampler)]


def view_arrays(backend: Backend, video: CachedVideo, sampler: SamplerConfig) -> list[np.ndarray]:
    """`view_rows` as numpy arrays."""
    rows = np.asarray(video.embeds)
    if backend.kind == "clip":
        return [rows[i : i + 1] for i in range(len(rows))]
    if sampler.name != "multi-clip" or sampler.clips == 1:
        return [rows]
    from clipaction.video.sampling import multi_clip_groups

    meta = stored_meta(video)
    if meta is None:
        raise RuntimeError("a cached video without its metadata cannot be cut into clips")
    row_of = {int(index): row for row, index in enumerate(video.indices)}
    groups = multi_clip_groups(meta, frames=sampler.frames, window=sampler.window, clips=sampler.clips)
    return [rows[[row_of[index] for index in group]] for group in groups]


def multiview_scores(
    backend: Backend,
    extractions: Sequence[Extraction],
    videos: Sequence[str],
    text_features: np.ndarray,
    sampler: SamplerConfig,
    pool: ViewPool,
) -> tuple[list[str], np.ndarray]:
    """Scores over views x crops: `extractions` holds one extraction per crop of the same
    videos with the same `sampler`. Returns the videos read in every crop (in order) and
    (V, C) scores against the (C, E) class features:

    - `pool="features"`: every row of every crop is pooled into one video feature
      (`backend.video_embedding`) and scored: logits, as `video_scores` gives for one crop;
    - `pool="probabilities"`: each (crop, view) of a video (`view_rows`) is pooled and scored
      on its own, and the (V, C) probabilities (the family's softmax or sigmoids, in float64)
      are averaged over the crops x views: what the papers' multi-view testing reports.
    """
    text_features = np.asarray(text_features)
    readable = [video for video in videos if all(video in e.features for e in extractions)]
    if not readable:
        return [], np.zeros((0, len(text_features)), dtype=np.float32)
    if pool == "features":
        rows = [np.concatenate([e.features[v].embeds for e in extractions]) for v in readable]
        embeds = np.stack([backend.video_embedding(r) for r in rows])
        return readable, score(backend, embeds, text_features)
    views = [[view for e in extractions for view in view_arrays(backend, e.features[v], sampler)] for v in readable]
    count = len(views[0])
    if any(len(v) != count for v in views):
        raise RuntimeError("videos were cut into different numbers of views")
    scoring = backend.scoring()
    total = np.zeros((len(readable), len(text_features)), dtype=np.float64)
    for j in range(count):
        embeds = np.stack([backend.video_embedding(v[j]) for v in views])
        total += scoring.probabilities(scoring.logits(embeds, text_features).astype(np.float64))
    return readable, total / count
