"""SigLIP and SigLIP 2 through transformers: `SiglipModel` / `Siglip2Model` and their processors.

Frame-level. Scores are independent per label: sigmoid(scale x cosine + bias), scale =
exp(logit_scale) and bias = logit_bias read from the weight file. There is no linear visual
projection: the vision model's attention-pooling head output is the embedding, so
`FrameFeatures.pooled` is that unnormalised embedding and Capability.PROJECTION is absent. The
image tower (vision model with its head) is trainable: Capability.IMAGE_TOWER.

SigLIP 2 comes in two kinds on the hub. The fixed-resolution checkpoints
(google/siglip2-base-patch16-224, ...) are `SiglipModel`s (model_type "siglip") with a Gemma
tokenizer: the "siglip" backend serves them. The NaFlex checkpoints (model_type "siglip2") keep
each frame's aspect ratio: the image processor resizes a frame to at most `max_num_patches`
patches, and the model takes the patches with a `pixel_attention_mask` and `spatial_shapes`.
`Siglip2Processor.__call__` would use its own default of 256 patches, whatever the checkpoint
saved, so this backend calls the image processor with the saved `max_num_patches` explicitly.

Text is tokenized as the model was trained and as the model cards say: padded to the text
model's full length (`padding="max_length"`), since SigLIP's text model pools the last position.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clipaction.errors import CapabilityError
from clipaction.models.base import Capability, FrameFeatures, Scoring, missing, scale_from_log
from clipaction.models.catalog import Family, HubModel, register_family
from clipaction.models.families.clip import TEXT_BATCH, HFClipBackend
from clipaction.models.hf_common import load_pretrained, no_grad, quantize_int8, tower_pass
from clipaction.models.processor_files import ProcessorSpec
from clipaction.models.registry import BACKENDS

if TYPE_CHECKING:  # torch is imported where the model runs: a fully cached run needs none of it
    import torch

    from clipaction.models.families.towers import SiglipImageTower

log = logging.getLogger(__name__)


def pack_naflex(pixel_values: torch.Tensor, mask: torch.Tensor, shapes: torch.Tensor) -> torch.Tensor:
    """NaFlex inputs as one tensor, so that batches concatenate along dim 0 like square pixels:
    (N, P, C) patches, (N, P) mask and (N, 2) patch-grid shapes -> (N, P, C + 3), the mask in
    column C and the grid height and width in columns C+1, C+2 of every patch row."""
    import torch

    count, patches, _ = pixel_values.shape
    grid = shapes.to(pixel_values.dtype)[:, None, :].expand(count, patches, 2)
    return torch.cat([pixel_values, mask.to(pixel_values.dtype)[..., None], grid], dim=-1)


def unpack_naflex(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, P, C + 3) -> pixel_values (N, P, C), pixel_attention_mask (N, P) int, spatial_shapes
    (N, 2) long; the inverse of `pack_naflex`."""
    import torch

    pixel_values = packed[..., :-3]
    mask = packed[..., -3].round().to(torch.int32)
    shapes = packed[:, 0, -2:].float().round().to(torch.long)
    return pixel_values, mask, shapes


@BACKENDS.register("siglip")
class SiglipBackend(HFClipBackend):
    """SiglipModel + its processor (SigLIP, and SigLIP 2 at a fixed resolution), in eval mode.
    See `clipaction.models.base.Backend`."""

    family = "siglip"
    capabilities = frozenset({Capability.IMAGE_TOWER, Capability.EMBEDDINGS})
    model_class = "SiglipModel"
    processor_spec = ProcessorSpec(processors=("SiglipProcessor",), image_processors=("SiglipImageProcessor",))
    score_kind = "sigmoid"
    naflex = False

    def _load_model(self) -> Any:
        """HFClipBackend's loading (called under its lock), with SigLIP's int8 layers."""
        if self._model is None:
            import transformers

            model = load_pretrained(getattr(transformers, self.model_class), self.source, "model")
            model.eval().to(self.device)
            if self.config.precision == "int8":
                self._quantize_vision(model.vision_model)
            if self.config.precision == "fp16":
                model.vision_model.half()
            self._model = model
            log.debug("loaded %s from %s", self.model_class, self.source.location)
        return self._model

    def _quantize_vision(self, vision_model: torch.nn.Module) -> None:
        """int8 Linear layers in the encoder and the pooling head (SigLIP's patch embedding is
        a convolution, SigLIP 2's a Linear whose weight dtype the model reads: it stays fp32)."""
        vision_model.encoder = quantize_int8(vision_model.encoder)
        if getattr(vision_model, "head", None) is not None:
            vision_model.head = quantize_int8(vision_model.head)

    @property
    def tower(self) -> SiglipImageTower:  # type: ignore[override]
        if self._tower is None:
            from clipaction.models.families.towers import SiglipImageTower

            self._tower = SiglipImageTower(self.model.vision_model, self.naflex)
        return self._tower  # type: ignore[return-value]

    # -- sizes ------------------------------------------------------------------------------

    @property
    def embed_dim(self) -> int:
        return int(self.source.config["vision_config"].get("hidden_size", 768))

    @property
    def feature_dim(self) -> int:
        return self.embed_dim

    # -- the required core ----------------------------------------------------------------

    @no_grad  # not inference_mode: callers may train on these tensors
    def _encode_torch(self, pixels: torch.Tensor) -> FrameFeatures:
        if self.device.type == "cuda" and not pixels.is_pinned():
            pixels = pixels.pin_memory()
        with tower_pass(self.config.precision, len(pixels)):  # bf16 autocast; CUDA OOM -> one line
            pixels = pixels.to(self.device, dtype=self.input_dtype, non_blocking=True)
            embeds = self.tower(pixels)
        embeds = embeds.float()
        normalised = embeds / embeds.norm(dim=-1, keepdim=True)
        return FrameFeatures(pooled=embeds.cpu(), embeds=normalised.cpu())

    @no_grad  # not inference_mode: callers may train on these tensors
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        import torch

        model, tokenizer = self.model, self.processor.tokenizer
        length = int(model.config.text_config.max_position_embeddings)
        outputs = []
        for start in range(0, len(texts), TEXT_BATCH):
            # Full-length padding, as SigLIP was trained: its text model pools the last position.
            tokens = tokenizer(
                list(texts[start : start + TEXT_BATCH]),
                padding="max_length",
                truncation=True,
                max_length=length,
                return_tensors="pt",
            )
            inputs = {name: tokens[name].to(self.device) for name in ("input_ids", "attention_mask") if name in tokens}
            embeds = model.text_model(**inputs).pooler_output
            outputs.append((embeds / embeds.norm(dim=-1, keepdim=True)).float().cpu())
        if not outputs:
            return torch.empty(0, self.embed_dim)
        return torch.cat(outputs)

    def scoring(self) -> Scoring:
        if self._scoring is None:
            # Read from the weight file when possible: a fully cached run never loads the model.
            scale = self.source.read_array("logit_scale") if self._model is None else None
            bias = self.source.read_array("logit_bias") if self._model is None else None
            if scale is None or bias is None:
                model = self.model
                scale, bias = (
                    model.logit_scale.detach().cpu().float().numpy(),
                    model.logit_bias.detach().cpu().float().numpy(),
                )
            self._scoring = Scoring(
                scale=scale_from_log(np.reshape(scale, ())),
                bias=float(np.float32(np.reshape(bias, ()))),
                kind=self.score_kind,
            )
        return self._scoring

    # -- capabilities -----------------------------------------------------------------------

    def projection_weight(self) -> torch.Tensor:
        raise CapabilityError(str(missing(self, Capability.PROJECTION)), setting="model.name_or_path")


@BACKENDS.register("siglip2")
class Siglip2Backend(SiglipBackend):
    """Siglip2Model (NaFlex) + its processor, in eval mode. `preprocess` returns packed patches
    (N, P, C + 3) (see `pack_naflex`), P = the checkpoint's saved `max_num_patches`."""

    family = "siglip2"
    model_class = "Siglip2Model"
    processor_spec = ProcessorSpec(processors=("Siglip2Processor",), image_processors=("Siglip2ImageProcessor",))
    naflex = True

    def _saved_image_settings(self) -> dict[str, Any]:
        """The image processor settings saved with the checkpoint, read without loading it."""
        for name in ("processor_config.json", "preprocessor_config.json"):
            path = self.source.file(name)
            if path is not None:
                saved = json.loads(path.read_text(encoding="utf-8"))
                return dict(saved.get("image_processor", saved))
        return {}

    @property
    def patch_size(self) -> int:
        return int(self.source.config["vision_config"].get("patch_size", 16))

    @property
    def max_num_patches(self) -> int:
        """The saved patch budget (the image processor's class default, 256, when none is saved)."""
        return int(self._saved_image_settings().get("max_num_patches", 256))

    @property
    def input_size(self) -> int:
        """The side of a square frame at the full patch budget (frames keep their aspect ratio)."""
        return int(math.isqrt(self.max_num_patches)) * self.patch_size

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        images = [np.asarray(frame) for frame in frames]
        inputs = self.processor.image_processor(
            images=images, max_num_patches=self.max_num_patches, patch_size=self.patch_size, return_tensors="pt"
        )
        return pack_naflex(inputs["pixel_values"], inputs["pixel_attention_mask"], inputs["spatial_shapes"])

    def pixel_values(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        return self.preprocess(frames)  # the packed patches the NaFlex tower takes (it runs on torch only)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "max_num_patches": self.max_num_patches, "patch_size": self.patch_size}


# What `clipaction models` and the docs say about this family (clipaction.models.catalog):
# hub ids, inputs, scoring, and published figures with their sources.
CATALOG_SIGLIP = register_family(
    Family(
        family="siglip",
        title="SigLIP, and SigLIP 2 at a fixed resolution",
        transformers_class="SiglipModel",
        kind="frame",
        scores="sigmoid(scale·cos + bias), independent per label",
        models=(
            HubModel("google/siglip-base-patch16-224", 224),
            HubModel(
                "google/siglip2-base-patch16-224",
                224,
                note="SigLIP 2 at a fixed resolution: the hub ships it as a SiglipModel (model_type "
                "'siglip') with a Gemma tokenizer, so it loads as this family",
            ),
        ),
        pick="Independent per-label probabilities: a video may match none or several labels "
        "(sorting your own footage with labels that need not cover everything). SigLIP 2 is "
        "about ten points above CLIP ViT-B/16 on ImageNet zero-shot at the same size (SigLIP 2 "
        "paper, Tschannen et al. 2025): the first to try. No visual projection, so projection "
        "fine-tuning and WiSE-FT do not apply.",
    )
)
CATALOG_SIGLIP2 = register_family(
    Family(
        family="siglip2",
        title="SigLIP 2 NaFlex",
        transformers_class="Siglip2Model",
        kind="frame",
        scores="sigmoid(scale·cos + bias), independent per label",
        models=(
            HubModel(
                "google/siglip2-base-patch16-naflex",
                "native aspect ratio, up to max_num_patches (saved with the model) patches of 16 px",
            ),
        ),
        pick="SigLIP 2 that keeps each frame's aspect ratio instead of squashing it to a square "
        "(320x240 UCF101 frames, wide footage). The checkpoint's saved max_num_patches is used, "
        "not the processor's default. No visual projection.",
    )
)
