"""The backend protocol: what the rest of clipaction needs from a vision-language model.

A small required core — fingerprint, preprocess, encode frames, encode texts, and scoring
(video x text features -> logits, and how logits become probabilities) — plus optional
capabilities that stages ask for by name (`Capability`). A stage never asks which class a
backend is: it checks `backend.capabilities` and, when what it needs is missing, is reported
as not applicable with `backend.missing(capability)` as the reason.

Backends load weights lazily: constructing one reads only the model's config files, so a run
whose frame and text features are all cached never loads the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Protocol, Sequence

import numpy as np
import torch

#: softmax: probabilities over the given labels sum to 1 (CLIP); sigmoid: each label's
#: probability is independent (SigLIP).
ScoreKind = Literal["softmax", "sigmoid"]
#: frame: each frame is encoded on its own and frames are pooled; clip: the model encodes the
#: sampled frames of a video together.
EncodingKind = Literal["frame", "clip"]


class Capability(str, Enum):
    """What only some models can do."""

    #: Pre-projection features and a linear visual projection (embeds = pooled @ W.T):
    #: projection fine-tuning, WiSE-FT and the projection rows of the few-shot methods.
    PROJECTION = "projection"
    #: A differentiable image tower that can be trained and swapped in: full fine-tuning.
    IMAGE_TOWER = "image-tower"
    #: Video and text features in one space, scored by scale x cosine (+ bias) alone: the
    #: few-shot methods (linear probe, Tip-Adapter) build on these embeddings. X-CLIP lacks it
    #: (its text is conditioned on the video).
    EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class FrameFeatures:
    """Image features of N frames (or N clips, for clip-level models).

    pooled: (N, D) float32, the features a linear projection maps to `embeds` (the encoder's
        pooled output before the projection; D = 768 for ViT-B/32). For a family without such
        a projection, `pooled` is the unnormalised embedding (D = E).
    embeds: (N, E) float32, projected and L2-normalised (E = 512 for ViT-B/32).
    """

    pooled: torch.Tensor
    embeds: torch.Tensor


@dataclass(frozen=True)
class Scoring:
    """How a family turns cosine similarities into logits and logits into probabilities.

    logits = scale * cos(video, text) + bias; probabilities: softmax over the labels or an
    independent sigmoid per label (`kind`).
    """

    scale: float
    bias: float = 0.0
    kind: ScoreKind = "softmax"

    def logits(self, video_embeds: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """(V, E) x (C, E) L2-normalised features -> (V, C) logits."""
        logits = self.scale * video_embeds.float() @ text_features.float().T
        return logits + self.bias if self.bias else logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(V, C) logits -> (V, C) probabilities (rows sum to 1 only for softmax)."""
        return logits.softmax(dim=-1) if self.kind == "softmax" else logits.sigmoid()


class Backend(Protocol):
    """A CLIP-like model. Required core below; optional capabilities after it."""

    #: The model family (its `model_type`, e.g. "clip").
    family: str
    kind: EncodingKind
    #: Identifies weights, preprocessing and numerics without loading the weights; part of
    #: every cache key.
    fingerprint: dict[str, Any]
    device: torch.device
    #: The optional capabilities this backend has.
    capabilities: frozenset[Capability]

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB frames (N, H, W, 3) -> model input (N, 3, S, S) float32 on the CPU."""

    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        """Preprocessed frames (N, 3, S, S) -> FrameFeatures on the CPU."""

    def encode_frames(self, frames: np.ndarray | Sequence[np.ndarray]) -> FrameFeatures:
        """uint8 RGB frames (N, H, W, 3) -> FrameFeatures (preprocess + encode_pixels)."""

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (T, E) float32 L2-normalised text features on the CPU."""

    def video_embedding(self, rows: torch.Tensor) -> torch.Tensor:
        """A video's cached feature rows (F, E) -> its (E',) video feature, the input of
        `scoring().logits`: frame models pool the frames (`features.pooling.pool_frames`);
        clip models may pass their one clip row through or unpack what they stored."""

    def scoring(self) -> Scoring:
        """The family's scoring with this model's learned scale (and bias); cheap: it does not
        load the whole model when the scalars can be read from the weight file."""

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for results.json: family, kind, score kind, scale, bias, sizes."""

    # -- optional capabilities: call only when `capabilities` lists them --------------------

    def projection_weight(self) -> torch.Tensor:
        """Capability.PROJECTION: a copy of the (E, D) visual projection (embeds = pooled @ W.T)."""

    def image_tower(self) -> torch.nn.Module:
        """Capability.IMAGE_TOWER: a trainable fp32 copy of the image tower and projection,
        mapping pixels (N, 3, S, S) -> (N, E) unnormalised embeddings."""

    def with_image_tower(self, tower: torch.nn.Module, tag: str) -> "Backend":
        """Capability.IMAGE_TOWER: a backend sharing this one's text tower and preprocessing,
        with `tower` (from `image_tower`, e.g. fine-tuned) as its image encoder; `tag` goes
        into the fingerprint so caches never mix."""


def missing(backend: Backend, capability: Capability) -> str | None:
    """None when `backend` has `capability`; else the reason a stage needing it cannot run."""
    if capability in backend.capabilities:
        return None
    needs = {
        Capability.PROJECTION: "linear visual projection over pre-projection features",
        Capability.IMAGE_TOWER: "trainable image tower",
        Capability.EMBEDDINGS: "video and text embeddings scored by cosine alone (its text depends on the video)",
    }[capability]
    return f"the {backend.family} model family has no {needs}"


def logits(backend: Backend, video_embeds: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """(V, E) video embeddings x (C, E) text features -> (V, C) logits, the backend's way."""
    return backend.scoring().logits(video_embeds, text_features)
