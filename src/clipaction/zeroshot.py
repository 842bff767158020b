"""Zero-shot classification: prompts -> class text features; frame features -> video scores
(scored the backend's way: see `clipaction.models.base.Scoring`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from clipaction.errors import ConfigError
from clipaction.features.cache import FeatureCache
from clipaction.features.extract import Extraction
from clipaction.features.pooling import pool_frames
from clipaction.models.base import Backend

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
        raise PromptError(
            f"prompts must be {', '.join(TEMPLATE_SETS)} or a file of templates; {spec!r} is neither"
        )
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
    texts = [template.format(name) for name in names for template in templates]
    stored = cache.load_texts(texts) if cache is not None else None
    if stored is not None:
        encoded = torch.from_numpy(stored)
    else:
        encoded = backend.encode_texts(texts)
        if cache is not None and len(texts):
            cache.store_texts(texts, encoded.numpy())
    per_text = encoded.reshape(len(names), len(templates), -1)
    mean = per_text.mean(dim=1)
    return mean / mean.norm(dim=-1, keepdim=True)


def video_embedding(frame_embeds: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(F, E) frame features -> (E,) the video's normalised embedding (`pool_frames`)."""
    return pool_frames(frame_embeds)


def score(backend: Backend, video_embeds: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """(V, E) x (C, E) normalised features -> (V, C) logits, the backend's way."""
    return backend.scoring().logits(video_embeds, text_features)


def video_embeddings(backend: Backend, extraction: Extraction, videos: Sequence[str]) -> torch.Tensor:
    """(V, E) video features of `videos` (each must be in `extraction.features`), made from
    their cached rows the backend's way (frame models: normalised mean of the frames)."""
    return torch.stack([backend.video_embedding(torch.from_numpy(extraction.features[v].embeds)) for v in videos])


def video_scores(
    backend: Backend, extraction: Extraction, videos: Sequence[str], text_features: torch.Tensor
) -> tuple[list[str], torch.Tensor]:
    """The videos of `videos` that were read (in order) and their (V, C) logits against the
    (C, E) class features: "readable videos -> scores", for every caller."""
    readable = [video for video in videos if video in extraction.features]
    if not readable:
        return [], torch.zeros(0, len(text_features))
    return readable, score(backend, video_embeddings(backend, extraction, readable), text_features)
