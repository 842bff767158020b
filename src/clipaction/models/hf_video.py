"""What the clip-level families (X-CLIP, VideoPrism) share: lazy loading, the fingerprint, the
frame counts a model takes, and `describe`.

A clip-level backend encodes the sampled frames of a clip together:

- `preprocess(frames)`: uint8 RGB frames (F, H, W, 3) of one clip -> (F, 3, S, S) float32;
- `encode_pixels(pixels)`: (B, F, 3, S, S) clips -> FrameFeatures with one row per clip
  (`pooled` (B, D), `embeds` (B, E'): whatever `video_embedding` and `scoring` need);
- `frame_counts`: the frames per clip the model takes; `clip_frames` the one its config
  names (the default when the user gives no `--frames`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from clipaction.config import ModelConfig
from clipaction.models.base import BackendBase, Capability, ScoreKind, Scoring
from clipaction.models.hf_common import ModelSource, check_precision, load_pretrained, resolve_device
from clipaction.models.processor_files import ProcessorSpec, check_processor_files

if TYPE_CHECKING:  # torch is imported where the model runs
    import torch

log = logging.getLogger(__name__)

#: Texts per text-encoder call.
TEXT_BATCH = 256


class ClipLevelBackend(BackendBase):
    """Base of the clip-level families (`clipaction.models.base.ClipBackend`); subclasses set
    `family`, `model_class` and implement the encoders and `scoring`. No optional capabilities
    (see `models.base.Capability`); the torch runtime only."""

    family = ""
    kind = "clip"
    capabilities: frozenset[Capability] = frozenset()
    model_class = ""
    #: the attribute of the transformers model holding the video tower (quantized for int8,
    #: halved for fp16)
    video_tower_attribute = ""
    #: the processors this family runs (checked against the model's files on construction)
    processor_spec = ProcessorSpec(processors=())
    score_kind: ScoreKind = "softmax"

    def __init__(self, config: ModelConfig, source: ModelSource | None = None) -> None:
        self.config: ModelConfig = config
        self.source = source or ModelSource(config.name_or_path, config.revision)
        self.device = resolve_device(config.device)
        check_precision(config, self.device)
        self.fingerprint = {"backend": self.family, **self.source.fingerprint(), "precision": config.precision}
        self.processor_files = check_processor_files(self.family, self.processor_spec, self.source, self.input_size)
        self._model: Any = None
        self._scoring: Scoring | None = None
        import torch

        self._input_dtype = torch.float16 if config.precision == "fp16" else torch.float32

    @property
    def model(self) -> Any:
        """The transformers model, loaded (and quantized for int8) on first use."""
        if self._model is None:
            import transformers

            from clipaction.models.hf_common import quantize_int8

            model = load_pretrained(getattr(transformers, self.model_class), self.source, "model")
            model.eval().to(self.device)
            tower = getattr(model, self.video_tower_attribute)
            if self.config.precision == "int8":
                setattr(model, self.video_tower_attribute, quantize_int8(tower))
            if self.config.precision == "fp16":
                tower.half()
            self._model = model
            log.debug("loaded %s from %s", self.model_class, self.source.location)
        return self._model

    # -- sizes from the config --------------------------------------------------------------

    @property
    def vision_config(self) -> dict[str, Any]:
        return dict(self.source.config.get("vision_config") or {})

    @property
    def clip_frames(self) -> int:
        """Frames per clip the model was trained with (config `vision_config.num_frames`)."""
        return int(self.vision_config.get("num_frames", 8))

    @property
    def frame_counts(self) -> tuple[int, ...]:
        """Frames per clip the model takes: its temporal position embeddings have exactly
        `clip_frames` rows (the reference forward pass does not interpolate them)."""
        return (self.clip_frames,)

    @property
    def input_size(self) -> int:
        size = self.vision_config.get("image_size", 224)
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    def encode_frames(self, frames: Any) -> Any:
        """One clip's uint8 frames (F, H, W, 3) -> FrameFeatures with one row."""
        return self.encode_pixels(self.preprocess(frames).unsqueeze(0))

    def _to_device(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and not pixels.is_pinned():
            pixels = pixels.pin_memory()
        return pixels.to(self.device, dtype=self._input_dtype, non_blocking=True)

    def describe(self) -> dict[str, Any]:
        scoring = self.scoring()
        return {
            "family": self.family,
            "kind": self.kind,
            "score": scoring.kind,
            "logit_scale": scoring.scale,
            "logit_bias": scoring.bias,
            "input_size": self.input_size,
            "clip_frames": self.clip_frames,
            "frame_counts": list(self.frame_counts),
            "capabilities": sorted(c.value for c in self.capabilities),
        }
