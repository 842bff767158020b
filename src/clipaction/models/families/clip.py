"""CLIP through transformers: `CLIPModel` and the model's own processor.

Frame-level, softmax over the labels of scale x cosine, with a linear visual projection and a
trainable image tower. Weights and processor load on first use (see `clipaction.models.base`).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clipaction.config import ModelConfig
from clipaction.models.base import (
    ArrayT,
    Capability,
    FrameBackendBase,
    FrameFeatures,
    ScoreKind,
    Scoring,
    scale_from_log,
)
from clipaction.models.catalog import Family, HubModel, Published, register_family
from clipaction.models.fast_preprocess import preprocess_frames
from clipaction.models.hf_common import (
    ModelSource,
    check_precision,
    load_pretrained,
    no_grad,
    quantize_int8,
    resolve_device_name,
    tower_pass,
)
from clipaction.models.pooling import pool_frame_array, pool_frames
from clipaction.models.processor_files import ProcessorSpec, check_processor_files
from clipaction.models.registry import BACKENDS

if TYPE_CHECKING:  # torch is imported where the model runs: a fully cached run needs none of it
    import torch

    from clipaction.models.families.towers import ImageTower

log = logging.getLogger(__name__)

TEXT_BATCH = 256


@BACKENDS.register("clip")
class HFClipBackend(FrameBackendBase):
    """CLIPModel + its processor, in eval mode. A `clipaction.models.base.FrameBackend`; its
    image tower runs on `runtime` (torch, or OpenVINO with `model.runtime = "openvino"`)."""

    family = "clip"
    capabilities = frozenset({Capability.PROJECTION, Capability.IMAGE_TOWER, Capability.EMBEDDINGS})
    model_class = "CLIPModel"
    #: the processors this family runs (checked against the model's files on construction)
    processor_spec = ProcessorSpec(processors=("CLIPProcessor",), image_processors=("CLIPImageProcessor",))
    score_kind: ScoreKind = "softmax"

    def __init__(self, config: ModelConfig, source: ModelSource | None = None) -> None:
        self.config: ModelConfig = config
        self.source = source or ModelSource(config.name_or_path, config.revision)
        self._device_name = resolve_device_name("cpu" if config.runtime == "openvino" else config.device)
        self._device: torch.device | None = None
        check_precision(config, self._device_name)
        self.fingerprint = {
            "backend": self.family,
            **self.source.fingerprint(),
            "precision": config.precision,
        }
        self._model: Any = None
        self._processor: Any = None
        self._tower: ImageTower | None = None
        self._scoring: Scoring | None = None
        self._loading = threading.RLock()
        self._input_dtype: torch.dtype | None = None  # None: the precision's (fp16 or float32)
        FrameBackendBase.__init__(self)  # the torch runtime
        if config.runtime == "openvino":  # the image tower runs compiled; text and training stay torch
            from clipaction.models.runtimes.openvino import openvino_runtime

            self.use_runtime(openvino_runtime(self))
        # after the runtime's own refusals: a setting that cannot work is named first
        self.processor_files = check_processor_files(
            self.family, self.processor_spec, self.source, None if self.naflex else self.input_size
        )

    # -- lazy loading ---------------------------------------------------------------------

    @property
    def device_name(self) -> str:
        return self._device_name

    @property
    def device(self) -> torch.device:
        """The torch device (created on first use: torch is imported where a model runs)."""
        if self._device is None:
            import torch

            self._device = torch.device(self._device_name)
        return self._device

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype pixels are given to the image tower in."""
        if self._input_dtype is None:
            import torch

            return torch.float16 if self.config.precision == "fp16" else torch.float32
        return self._input_dtype

    @property
    def model(self) -> Any:
        """The transformers model, loaded (and quantized for int8) on first use."""
        with self._loading:
            return self._load_model()

    def _load_model(self) -> Any:
        if self._model is None:
            import transformers

            model = load_pretrained(getattr(transformers, self.model_class), self.source, "model")
            model.eval().to(self.device)
            if self.config.precision == "int8" and self.config.runtime == "torch":
                model.vision_model = quantize_int8(model.vision_model)
            if self.config.precision == "fp16":
                model.vision_model.half()
            self._model = model
            log.debug("loaded %s from %s", self.model_class, self.source.location)
        return self._model

    @property
    def processor(self) -> Any:
        # Decoding threads preprocess: the first of them loads the processor, the others wait
        # (importing transformers from two threads at once fails half-way).
        with self._loading:
            if self._processor is None:
                from transformers import AutoProcessor

                self._processor = load_pretrained(AutoProcessor, self.source, "processor")
            return self._processor

    @property
    def tower(self) -> ImageTower:
        """The image tower in use (a fine-tuned one after `with_image_tower`)."""
        if self._tower is None:
            from clipaction.models.families.towers import ImageTower

            self._tower = ImageTower(self.model.vision_model, self.model.visual_projection)
        return self._tower

    # -- the required core ----------------------------------------------------------------

    @property
    def input_size(self) -> int:
        """S, the side of the square model input."""
        return int(self.source.config["vision_config"].get("image_size", 224))

    @property
    def embed_dim(self) -> int:
        return int(self.source.config.get("projection_dim", 512))

    @property
    def feature_dim(self) -> int:
        return int(self.source.config["vision_config"].get("hidden_size", 768))

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        # The image processor's steps, equal bit for bit and faster on a batch of frames; the
        # last two (rescale, normalize) left to a runtime that does them in its graph.
        return preprocess_frames(self.processor.image_processor, frames, as_bytes=self.runtime.takes_bytes)

    @no_grad  # not inference_mode: callers may train on these tensors
    def _encode_torch(self, pixels: torch.Tensor) -> FrameFeatures:
        """The torch runtime's encoder: (N, 3, S, S) -> FrameFeatures on the CPU."""
        tower = self.tower
        if self.device.type == "cuda" and not pixels.is_pinned():
            pixels = pixels.pin_memory()  # lets the copy below overlap with the GPU's work
        with tower_pass(self.config.precision, len(pixels)):  # bf16 autocast; CUDA OOM -> one line
            pixels = pixels.to(self.device, dtype=self.input_dtype, non_blocking=True)
            pooled = tower.pooled(pixels)
            embeds = tower.visual_projection(pooled.to(tower.visual_projection.weight.dtype))
        pooled, embeds = pooled.float(), embeds.float()  # bf16 or fp16 -> float32 before normalising
        embeds = embeds / embeds.norm(dim=-1, keepdim=True)
        return FrameFeatures(pooled=pooled.cpu(), embeds=embeds.cpu())

    def encode_frames(self, frames: np.ndarray | Sequence[np.ndarray]) -> FrameFeatures:
        return self.encode_pixels(self.preprocess(frames))

    @no_grad  # not inference_mode: callers may train on these tensors
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        import torch

        model, tokenizer = self.model, self.processor.tokenizer
        max_tokens = int(model.config.text_config.max_position_embeddings)
        outputs = []
        for start in range(0, len(texts), TEXT_BATCH):
            # padding=True pads to the longest text of the chunk: the features depend only on
            # the tokens up to end-of-text, so this equals the 77-token context and is faster.
            tokens = tokenizer(
                list(texts[start : start + TEXT_BATCH]),
                padding=True,
                truncation=True,
                max_length=max_tokens,
                return_tensors="pt",
            ).to(self.device)
            pooled = model.text_model(**tokens).pooler_output
            embeds = model.text_projection(pooled)
            outputs.append((embeds / embeds.norm(dim=-1, keepdim=True)).float().cpu())
        if not outputs:
            return torch.empty(0, self.embed_dim)
        return torch.cat(outputs)

    def video_embedding(self, rows: ArrayT) -> ArrayT:
        return pool_frame_array(rows) if isinstance(rows, np.ndarray) else pool_frames(rows)

    def scoring(self) -> Scoring:
        if self._scoring is None:
            # Read from the weight file when possible: a fully cached run never loads the model.
            stored = self.source.read_array("logit_scale") if self._model is None else None
            log_scale = stored if stored is not None else self.model.logit_scale.detach().cpu().float().numpy()
            self._scoring = Scoring(scale=scale_from_log(log_scale), kind=self.score_kind)
        return self._scoring

    def describe(self) -> dict[str, Any]:
        scoring = self.scoring()
        return {
            "family": self.family,
            "kind": self.kind,
            "score": scoring.kind,
            "logit_scale": scoring.scale,
            "logit_bias": scoring.bias,
            "feature_dim": self.feature_dim,
            "embed_dim": self.embed_dim,
            "input_size": self.input_size,
            "capabilities": sorted(c.value for c in self.capabilities),
            **({"runtime": runtime} if (runtime := self.runtime.describe()) is not None else {}),
        }

    # -- capabilities -----------------------------------------------------------------------

    def projection_weight(self) -> torch.Tensor:
        return self.tower.visual_projection.weight.detach().float().cpu().clone()

    def image_tower(self) -> torch.nn.Module:
        # Trained in fp32 whatever the inference precision: fp16 weights do not train stably,
        # and int8 layers have no gradients (callers refuse int8 before asking).
        return copy.deepcopy(self.tower).float()

    def pixel_values(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        return preprocess_frames(self.processor.image_processor, frames)

    def with_image_tower(self, tower: torch.nn.Module, tag: str) -> HFClipBackend:
        tuned = copy.copy(self)
        tuned._tower = tower.eval().to(self.device)
        tuned._input_dtype = next(tower.parameters()).dtype
        tuned.fingerprint = {**self.fingerprint, "vision": tag}
        tuned.use_runtime(None)  # a trained tower runs on torch (and the copy's own torch path)
        return tuned


# What `clipaction models` and the docs say about this family (clipaction.models.catalog):
# hub ids, inputs, scoring, and published figures with their sources.
_CLIP_PAPER = "CLIP paper (Radford et al. 2021), zero-shot results"
_CLIP_PROTOCOL = "single middle frame, all 101 classes; rounded"
CATALOG = register_family(
    Family(
        family="clip",
        title="CLIP",
        transformers_class="CLIPModel",
        kind="frame",
        scores="softmax(scale·cos) over the labels",
        models=(
            HubModel(
                "openai/clip-vit-base-patch32",
                224,
                published=Published(64.0, None, _CLIP_PAPER, _CLIP_PROTOCOL),
            ),
            HubModel(
                "openai/clip-vit-base-patch16",
                224,
                published=Published(
                    68.5,
                    None,
                    _CLIP_PAPER,
                    _CLIP_PROTOCOL,
                    k600=68.1,
                    k600_std=1.1,
                    k600_protocol="frozen CLIP B/16 as FROSTER evaluated it: 8 frames x 3 views, frame features averaged",
                    k600_source="FROSTER README, cross-dataset table (Huang et al., ICLR 2024; their implementation)",
                ),
            ),
            HubModel(
                "openai/clip-vit-large-patch14",
                224,
                published=Published(76.0, None, _CLIP_PAPER, _CLIP_PROTOCOL),
            ),
        ),
        pick="The reference point: the study this tool reproduces uses ViT-B/32. Projection "
        "fine-tuning, WiSE-FT and full fine-tuning all apply.",
    )
)
