"""The backend protocol: what the rest of clipaction needs from a vision-language model.

A small required core (`Backend`) — fingerprint, config, preprocess, encode frames, encode
texts, scoring (video x text features -> logits, and how logits become probabilities), and
`prepare_extraction` — plus optional capabilities that stages ask for by name (`Capability`).
A stage never asks which class a backend is: it checks `backend.capabilities` and, when what it
needs is missing, is reported as not applicable with `missing(backend, capability)` as the
reason.

Two kinds, told apart by `backend.kind`: a `FrameBackend` ("frame") encodes frames one by one
on a `Runtime` it holds (`TorchRuntime` by default; OpenVINO through `use_runtime`), a
`ClipBackend` ("clip") encodes clips of `clip_frames` frames (`frame_counts`: the counts it
takes). `as_frame` / `as_clip` give the kind's protocol after checking `kind`. Callers use these
declared members only, never `getattr` to discover optional ones; `BackendBase` and
`FrameBackendBase` are the defaults the backend classes share.

Backends load weights lazily: constructing one reads only the model's config files, so a run
whose frame and text features are all cached never loads the weights. Nor does it import torch
(seconds of a warm run's time): this module and the families import it where a model runs, and
`Scoring` and `video_embedding` compute on numpy arrays in numpy (same kind out as in).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast, runtime_checkable

import numpy as np

from clipaction.config import ModelConfig, SamplerConfig

if TYPE_CHECKING:
    import torch

#: numpy in, numpy out; torch in, torch out.
ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")

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

    def logits(self, video_embeds: ArrayT, text_features: ArrayT) -> ArrayT:
        """(V, E) x (C, E) L2-normalised features -> (V, C) logits: float32 (numpy arrays in,
        numpy out: a fully cached run computes without torch)."""
        if isinstance(video_embeds, np.ndarray):
            cosine = video_embeds.astype(np.float32) @ np.asarray(text_features, dtype=np.float32).T
            logits = np.float32(self.scale) * cosine
            return logits + np.float32(self.bias) if self.bias else logits
        logits = self.scale * video_embeds.float() @ text_features.float().T
        return logits + self.bias if self.bias else logits

    def probabilities(self, logits: ArrayT) -> ArrayT:
        """(V, C) logits -> (V, C) probabilities (rows sum to 1 only for softmax), in the
        logits' dtype."""
        if isinstance(logits, np.ndarray):
            if self.kind == "softmax":
                exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
                return exp / exp.sum(axis=-1, keepdims=True)
            return 1 / (1 + np.exp(-logits))
        return logits.softmax(dim=-1) if self.kind == "softmax" else logits.sigmoid()


def scale_from_log(log_scale: float | np.ndarray) -> float:
    """A stored log scale (CLIP's `logit_scale`, float32) -> the scale, exp rounded to float32:
    one function whether the value came from the weight file (numpy) or the loaded model, so a
    warm run and a cold one record the same scale to the bit."""
    return float(np.float32(math.exp(float(np.asarray(log_scale, dtype=np.float32).reshape(())))))


@runtime_checkable
class Runtime(Protocol):
    """What runs a frame backend's image tower: preprocessed pixels -> features. The backend
    holds one (`FrameBackend.runtime`): `TorchRuntime` by default, another (OpenVINO) set with
    `FrameBackend.use_runtime`. Text encoding, scoring and training stay on torch."""

    #: "torch", "openvino"
    name: str
    #: What this runtime adds to the backend's fingerprint under "runtime" (None: nothing, so
    #: torch's cache keys stay as they were).
    fingerprint: dict[str, Any] | None
    #: Whether `encode_pixels` also takes the frames resized and cropped as uint8 (N, 3, S, S),
    #: rescaling and normalising them itself bit for bit as the image processor does: the
    #: backend's `preprocess` then gives it those (a quarter of the bytes, no lookup on the
    #: decoding threads).
    takes_bytes: bool

    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        """Preprocessed frames (N, 3, S, S) (float32 pixel values, or uint8 where `takes_bytes`)
        -> FrameFeatures on the CPU (embeds L2-normalised)."""
        ...

    def prepare_extraction(self, paths: Sequence[str], sampler: SamplerConfig) -> None:
        """Before `paths` are extracted with `sampler` (e.g. OpenVINO int8 calibrates on them)."""
        ...

    def describe(self) -> dict[str, Any] | None:
        """JSON-ready facts for results.json's `model.runtime` (None: nothing to record)."""
        ...


class TorchRuntime:
    """The default runtime: the backend's own torch tower (`encode` is the backend's torch
    path, pixels (N, 3, S, S) -> FrameFeatures)."""

    name = "torch"
    fingerprint: dict[str, Any] | None = None
    takes_bytes = False

    def __init__(self, encode: Callable[[torch.Tensor], FrameFeatures]) -> None:
        self._encode = encode

    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        return self._encode(pixels)

    def prepare_extraction(self, paths: Sequence[str], sampler: SamplerConfig) -> None:
        return None

    def describe(self) -> dict[str, Any] | None:
        return None


@runtime_checkable
class Backend(Protocol):
    """A CLIP-like model: what every kind has. Required core below; optional capabilities after
    it. `kind` says which of the two protocols below the backend also satisfies:
    "frame" -> `FrameBackend`, "clip" -> `ClipBackend` (see `as_clip`)."""

    #: The model family (its `model_type`, e.g. "clip").
    family: str
    kind: EncodingKind
    #: Identifies weights, preprocessing and numerics without loading the weights; part of
    #: every cache key.
    fingerprint: dict[str, Any]
    device: torch.device

    @property
    def device_name(self) -> str:
        """`device` as text ("cpu", "cuda"): what results record, known without importing torch."""
        ...

    #: The optional capabilities this backend has.
    capabilities: frozenset[Capability]
    #: The settings the backend was built from (the ray engine rebuilds it on its workers from
    #: them; `batch_size` is the default batch); None for stand-ins not built from a ModelConfig.
    config: ModelConfig | None

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB frames (N, H, W, 3) -> the input `encode_pixels` takes, on the CPU: pixel
        values (N, 3, S, S) float32, or uint8 before rescaling where the runtime normalises in
        its own graph (`Runtime.takes_bytes`)."""
        ...

    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        """Preprocessed frames (N, 3, S, S) (clip models: clips (B, F, 3, S, S)) ->
        FrameFeatures on the CPU, one row per frame (clip)."""
        ...

    def encode_frames(self, frames: np.ndarray | Sequence[np.ndarray]) -> FrameFeatures:
        """uint8 RGB frames (N, H, W, 3) -> FrameFeatures (preprocess + encode_pixels)."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (T, E) float32 L2-normalised text features on the CPU."""
        ...

    def video_embedding(self, rows: ArrayT) -> ArrayT:
        """A video's cached feature rows (F, E) -> its (E',) video feature, the input of
        `scoring().logits`: frame models pool the frames (`models.pooling.pool_frames`);
        clip models may pass their one clip row through or unpack what they stored. A numpy
        array in gives one out."""
        ...

    def scoring(self) -> Scoring:
        """The family's scoring with this model's learned scale (and bias); cheap: it does not
        load the whole model when the scalars can be read from the weight file."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for results.json: family, kind, score kind, scale, bias, sizes."""
        ...

    def prepare_extraction(self, paths: Sequence[str], sampler: SamplerConfig) -> None:
        """Called by extraction before it decodes `paths` with `sampler` (a no-op unless the
        runtime needs the videos, e.g. OpenVINO int8 calibration)."""
        ...

    # -- optional capabilities: call only when `capabilities` lists them --------------------
    # (`BackendBase` raises CapabilityError for the ones a backend lacks)

    def projection_weight(self) -> torch.Tensor:
        """Capability.PROJECTION: a copy of the (E, D) visual projection (embeds = pooled @ W.T)."""
        ...

    def image_tower(self) -> torch.nn.Module:
        """Capability.IMAGE_TOWER: a trainable fp32 copy of the image tower and projection,
        mapping pixel values (N, 3, S, S) (`pixel_values`) -> (N, E) unnormalised embeddings."""
        ...

    def pixel_values(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """Capability.IMAGE_TOWER: uint8 RGB frames (N, H, W, 3) -> pixel values (N, 3, S, S)
        float32, what `image_tower` takes whatever the runtime takes."""
        ...

    def with_image_tower(self, tower: torch.nn.Module, tag: str) -> Backend:
        """Capability.IMAGE_TOWER: a backend sharing this one's text tower and preprocessing,
        with `tower` (from `image_tower`, e.g. fine-tuned) as its image encoder; `tag` goes
        into the fingerprint so caches never mix. It runs on torch."""
        ...


@runtime_checkable
class FrameBackend(Backend, Protocol):
    """kind "frame": each frame is encoded on its own and frames are pooled. Its image tower
    runs on a `Runtime` the backend holds."""

    kind: Literal["frame"]
    #: True when `preprocess` returns packed variable-resolution patches (SigLIP 2 NaFlex)
    #: instead of square pixels (N, 3, S, S): such a tower cannot be converted to OpenVINO.
    naflex: bool
    #: What runs the image tower (`encode_pixels` goes through it).
    runtime: Runtime

    def use_runtime(self, runtime: Runtime | None) -> None:
        """Run the image tower on `runtime` (None: torch) from now on; the fingerprint's
        "runtime" entry follows it, so features are cached apart."""
        ...


@runtime_checkable
class ClipBackend(Backend, Protocol):
    """kind "clip": the model encodes the sampled frames of a clip together; `preprocess` takes
    one clip's frames (F, H, W, 3), `encode_pixels` clips (B, F, 3, S, S) -> one row per clip."""

    kind: Literal["clip"]
    #: Frames per clip the model was trained with (the default when the user gives no count).
    clip_frames: int
    #: Frames per clip the model takes.
    frame_counts: tuple[int, ...]


def as_clip(backend: Backend) -> ClipBackend:
    """`backend` as the `ClipBackend` its kind "clip" says it is (TypeError for a frame one)."""
    if backend.kind != "clip":
        raise TypeError(f"the {backend.family} backend encodes frames, not clips")
    return cast(ClipBackend, backend)


def as_frame(backend: Backend) -> FrameBackend:
    """`backend` as the `FrameBackend` its kind "frame" says it is (TypeError for a clip one)."""
    if backend.kind != "frame":
        raise TypeError(f"the {backend.family} backend encodes clips, not frames")
    return cast(FrameBackend, backend)


class BackendBase:
    """What the backend classes share: defaults for the members of `Backend` that most of them
    do not need to write (no runtime preparation, capabilities they lack raise)."""

    family = ""
    capabilities: frozenset[Capability] = frozenset()
    config: ModelConfig | None = None
    device: torch.device

    @property
    def device_name(self) -> str:
        """`str(device)` (backends that know their device without torch say it without it)."""
        return str(self.device)

    def prepare_extraction(self, paths: Sequence[str], sampler: SamplerConfig) -> None:
        """Nothing to prepare."""
        return None

    def projection_weight(self) -> torch.Tensor:
        raise self._lacks(Capability.PROJECTION)

    def image_tower(self) -> torch.nn.Module:
        raise self._lacks(Capability.IMAGE_TOWER)

    def pixel_values(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        raise self._lacks(Capability.IMAGE_TOWER)

    def with_image_tower(self, tower: torch.nn.Module, tag: str) -> Backend:
        raise self._lacks(Capability.IMAGE_TOWER)

    def _lacks(self, capability: Capability) -> Exception:
        from clipaction.errors import CapabilityError

        return CapabilityError(str(missing(self, capability)), setting="model.name_or_path")  # type: ignore[arg-type]


class FrameBackendBase(BackendBase):
    """What the frame backend classes share: the runtime they hold. `encode_pixels` and
    `prepare_extraction` go through `runtime`; subclasses implement `_encode_torch`, the torch
    runtime's encoder, and call `FrameBackendBase.__init__` (or set `runtime` themselves)."""

    kind: Literal["frame"] = "frame"
    naflex = False
    fingerprint: dict[str, Any]

    def __init__(self) -> None:
        self.runtime: Runtime = TorchRuntime(self._encode_torch)

    def _encode_torch(self, pixels: torch.Tensor) -> FrameFeatures:
        raise NotImplementedError

    def use_runtime(self, runtime: Runtime | None) -> None:
        """Run the image tower on `runtime` (None: torch's own, `_encode_torch`) from now on.
        The fingerprint's "runtime" entry is the runtime's fingerprint (none for torch), so
        features are cached apart and torch's keys stay as they were. Nothing is patched onto
        the instance: only `runtime` and `fingerprint` change."""
        self.runtime = runtime if runtime is not None else TorchRuntime(self._encode_torch)
        fingerprint = {k: v for k, v in self.fingerprint.items() if k != "runtime"}
        if self.runtime.fingerprint is not None:
            fingerprint["runtime"] = self.runtime.fingerprint
        self.fingerprint = fingerprint

    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        return self.runtime.encode_pixels(pixels)

    def prepare_extraction(self, paths: Sequence[str], sampler: SamplerConfig) -> None:
        self.runtime.prepare_extraction(paths, sampler)


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
