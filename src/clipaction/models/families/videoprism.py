"""VideoPrism (video-text) through transformers: `VideoPrismClipModel` (model_type "videoprism")
and its tokenizer; the video preprocessing is implemented here.

Clip-level: the frames of a clip go through the factorised (spatial, then temporal) video
encoder and an attention-pooling head; video and text embeddings are L2-normalised by the
model.

Scoring. `VideoPrismClipModel.forward` computes exp(cos / temperature) and normalises it over
the *videos* of the batch (`logits_per_video`), so for one video every label gets 1; its
`logits_per_text` is the same exponential normalised over the *texts*, i.e. for each video a
softmax over the labels of cos / temperature. clipaction scores one video against the labels
that way. The temperature: the model has no learned logit scale, and `forward` divides by a
temperature only when one is passed (default None: no scaling), so the scale here is 1
(`TEMPERATURE` = 1.0). The argmax and every accuracy are the same for any temperature; only
the spread of the probabilities depends on it.

Preprocessing. transformers' VideoPrism video processor (a `LlavaOnevisionVideoProcessor` with
VideoPrismProcessor's video defaults: size 288 x 288, no normalisation) needs torchvision, which
cannot be installed beside torch here. `preprocess` does what its torchvision path does, in the
same order, read from the model's `video_preprocessor_config.json`: resize each uint8 frame to
(height, width) with antialiased bicubic interpolation (torchvision resizes uint8 CPU tensors
natively with `torch.nn.functional.interpolate`), optional centre crop, then rescale to [0, 1]
(x * 1/255) and, if the config asks, normalise by mean/std.

Capabilities: embeddings only (no linear visual projection over pooled features, no frame tower).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clipaction.errors import ModelLoadError
from clipaction.models.base import ArrayT, Capability, FrameFeatures, Scoring
from clipaction.models.catalog import Family, HubModel, register_family
from clipaction.models.hf_common import load_pretrained, no_grad, tower_pass
from clipaction.models.hf_video import TEXT_BATCH, ClipLevelBackend
from clipaction.models.pooling import pool_frame_array, pool_frames
from clipaction.models.processor_files import ProcessorSpec
from clipaction.models.registry import BACKENDS

if TYPE_CHECKING:  # torch is imported where the model runs: a fully cached run needs none of it
    import torch

#: Divides the video-text cosine before the softmax over the labels: 1.0, since
#: VideoPrismClipModel.forward applies no temperature unless one is passed.
TEMPERATURE = 1.0

#: VideoPrismProcessor's video defaults (used for keys the saved config does not have).
PROCESSOR_DEFAULTS: dict[str, Any] = {
    "do_resize": True,
    "resample": 3,  # PIL bicubic
    "do_center_crop": False,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": False,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}
#: PIL resample codes -> torch interpolation modes (the ones torchvision maps them to).
_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def resize_rescale(
    frames: np.ndarray | Sequence[np.ndarray], settings: dict[str, Any], size: tuple[int, int]
) -> torch.Tensor:
    """uint8 RGB frames (F, H, W, 3) -> (F, 3, h, w) float32, the video processor's steps in its
    order: resize (antialiased, uint8 in and out), centre crop, rescale, normalise."""
    import torch

    video = (
        torch.from_numpy(np.ascontiguousarray(np.stack([np.asarray(f) for f in frames])))
        .permute(0, 3, 1, 2)
        .contiguous()
    )
    if settings["do_resize"] and tuple(video.shape[-2:]) != size:
        mode = _MODES[int(settings["resample"])]
        video = torch.nn.functional.interpolate(
            video, size=size, mode=mode, antialias=mode != "nearest", align_corners=None if mode == "nearest" else False
        )
    if settings["do_center_crop"]:
        crop = settings["crop_size"]
        top, left = (video.shape[-2] - crop["height"]) // 2, (video.shape[-1] - crop["width"]) // 2
        video = video[..., top : top + crop["height"], left : left + crop["width"]]
    if settings["do_normalize"]:
        scale = 1.0 / float(settings["rescale_factor"]) if settings["do_rescale"] else 1.0
        mean = torch.tensor(settings["image_mean"]).view(1, 3, 1, 1) * scale
        std = torch.tensor(settings["image_std"]).view(1, 3, 1, 1) * scale
        return (video.float() - mean) / std
    if settings["do_rescale"]:
        return video * float(settings["rescale_factor"])
    return video.float()


@BACKENDS.register("videoprism")
class VideoPrismBackend(ClipLevelBackend):
    """VideoPrismClipModel + its tokenizer, in eval mode. See `clipaction.models.hf_video`."""

    family = "videoprism"
    model_class = "VideoPrismClipModel"
    capabilities = frozenset({Capability.EMBEDDINGS})
    video_tower_attribute = "video_model"
    #: a missing video_preprocessor_config.json falls back to VideoPrismProcessor's defaults
    processor_spec = ProcessorSpec(
        processors=("VideoPrismProcessor",), video_processors=("LlavaOnevisionVideoProcessor",), video_optional=True
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokenizer: Any = None
        self._settings: dict[str, Any] | None = None

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = load_pretrained(AutoTokenizer, self.source, "tokenizer")
        return self._tokenizer

    @property
    def settings(self) -> dict[str, Any]:
        """The video processor's settings: its saved config over VideoPrismProcessor's defaults."""
        if self._settings is None:
            # video_preprocessor_config.json, or the video processor in processor_config.json
            saved = self.processor_files.video
            settings = {**PROCESSOR_DEFAULTS, **{k: v for k, v in saved.items() if v is not None}}
            size = settings.get("size") or {"height": self.input_size, "width": self.input_size}
            if not ("height" in size and "width" in size) or int(settings["resample"]) not in _MODES:
                raise ModelLoadError(
                    f"{self.source.name_or_path}: video preprocessing with size {size} and resample "
                    f"{settings['resample']} is not supported (expected height/width and one of {sorted(_MODES)})",
                    setting="model.name_or_path",
                )
            self._settings = {**settings, "size": {"height": int(size["height"]), "width": int(size["width"])}}
        return self._settings

    @property
    def embed_dim(self) -> int:
        return int(self.vision_config.get("hidden_size", 768))

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """One clip's uint8 frames (F, H, W, 3) -> (F, 3, S, S) in [0, 1] (see the module docstring)."""
        size = self.settings["size"]
        return resize_rescale(frames, self.settings, (size["height"], size["width"]))

    @no_grad
    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        """(B, F, 3, S, S) clips -> (B, E) video embeddings, L2-normalised by the model (as
        both `pooled` and `embeds`: there is no projection)."""
        with tower_pass(self.config.precision, len(pixels), "clips"):  # bf16 autocast; CUDA OOM -> one line
            pooled = self.model.video_model(pixel_values_videos=self._to_device(pixels)).pooler_output
        # (B, 1, E): the attention-pooling head keeps its one query; forward flattens it away
        embeds = pooled.reshape(len(pixels), -1).float()
        # normalised again in float32: under bf16 (fp16) the model's own norm is off by ~1e-3
        embeds = (embeds / embeds.norm(dim=-1, keepdim=True)).cpu()
        return FrameFeatures(pooled=embeds, embeds=embeds)

    @no_grad
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (T, E) text embeddings, L2-normalised by the model; tokenized as
        VideoPrismProcessor does (padded to max_length, 64 for the released models)."""
        import torch

        model, tokenizer = self.model, self.tokenizer
        max_tokens = int(model.config.text_config.max_position_embeddings)
        outputs = []
        for start in range(0, len(texts), TEXT_BATCH):
            tokens = tokenizer(
                list(texts[start : start + TEXT_BATCH]),
                padding="max_length",
                truncation=True,
                max_length=max_tokens,
                return_tensors="pt",
            ).to(self.device)
            outputs.append(model.text_model(**tokens).pooler_output.float().cpu())
        if not outputs:
            return torch.empty(0, self.embed_dim)
        return torch.cat(outputs)

    def video_embedding(self, rows: ArrayT) -> ArrayT:
        """A video's (R, E) clip rows -> (E,): one clip passes through (already normalised by
        the model); several clips are averaged and normalised (`pool_frames`)."""
        if isinstance(rows, np.ndarray):
            rows = rows.astype(np.float32)
            return rows[0] if len(rows) == 1 else pool_frame_array(rows)
        rows = rows.float()
        return rows[0] if len(rows) == 1 else pool_frames(rows)

    def scoring(self) -> Scoring:
        """softmax over the labels of cos / TEMPERATURE (see the module docstring)."""
        if self._scoring is None:
            self._scoring = Scoring(scale=1.0 / TEMPERATURE, kind=self.score_kind)
        return self._scoring


# What `clipaction models` and the docs say about this family (clipaction.models.catalog):
# hub ids, inputs, scoring, and published figures with their sources.
CATALOG = register_family(
    Family(
        family="videoprism",
        title="VideoPrism (video-text)",
        transformers_class="VideoPrismClipModel",
        kind="clip",
        scores="softmax(cos) over the labels (no learned scale; the model's forward applies no temperature)",
        models=(HubModel("google/videoprism-lvt-base-f16r288", 288, frames="16"),),
        pick="A video foundation encoder (factorised space-time transformer) with a text tower: "
        "clips of 16 frames at 288 px. No published UCF101/HMDB51 zero-shot figure here. Its "
        "probabilities are flat (cosines without a temperature) but the ranking, and so the "
        "accuracy, is the model's. No visual projection, no frame tower.",
    )
)
