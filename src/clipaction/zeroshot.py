"""Zero-shot classification: prompts -> class text features; frame features -> video scores."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from clipaction.features.cache import FeatureCache
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


class PromptError(ValueError):
    """A template set that is neither a known name nor a readable file of templates."""


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
    """(F, E) normalised frame features -> (E,) their mean, normalised again."""
    frames = torch.as_tensor(np.asarray(frame_embeds), dtype=torch.float32)
    frames = frames / frames.norm(dim=-1, keepdim=True)
    mean = frames.mean(dim=0)
    return mean / mean.norm()


def score(video_embeds: torch.Tensor, text_features: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """(V, E) x (C, E) normalised features -> (V, C) logits: logit_scale x cosine."""
    return logit_scale * video_embeds @ text_features.T
