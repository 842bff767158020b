"""CLIP through Hugging Face transformers: `CLIPModel` and the model's own processor.

`name_or_path` is a hub id (downloaded and cached by transformers on first use) or a local
directory written by `save_pretrained`; both go through the same `from_pretrained` calls.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from clipaction.config import ModelConfig
from clipaction.models.base import FrameFeatures
from clipaction.models.registry import BACKENDS

log = logging.getLogger(__name__)

TEXT_BATCH = 256


class ModelLoadError(Exception):
    """The model or its processor could not be loaded; the message says what to do."""


def resolve_device(device: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(device)


def _weights_fingerprint(name_or_path: str, revision: str | None) -> dict[str, Any]:
    """What identifies the weights without reading them: for a local directory the weight
    files' sizes and mtimes plus config.json's hash; for a hub id the resolved commit."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".json", ".txt"}
        )
        listing = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
        return {"path": str(path.resolve()), "files": listing}
    commit = revision or "main"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name_or_path, "config.json", revision=revision)
        if isinstance(cached, str) and "snapshots" in Path(cached).parts:
            parts = Path(cached).parts
            commit = parts[parts.index("snapshots") + 1]
    except Exception as error:  # the fingerprint is best effort; the revision name stays
        log.debug("could not resolve the hub commit of %s: %s", name_or_path, error)
    return {"hub_id": name_or_path, "commit": commit}


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations quantized on
    the fly): about twice the fp32 speed of ViT-B/32 on a CPU, cosine > 0.99 to fp32 features.

    torch.ao's dynamic quantization is marked deprecated in favour of torchao, but it ships with
    torch, needs no other package, and is what this CPU path needs; its warnings are silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


@BACKENDS.register("hf-clip")
class HFClipBackend:
    """CLIPModel + its processor, in eval mode, fp32. See `clipaction.models.base.Backend`."""

    def __init__(self, config: ModelConfig) -> None:
        from transformers import AutoProcessor, CLIPModel

        self.config = config
        self.device = resolve_device(config.device)
        local = Path(config.name_or_path).expanduser()
        if config.name_or_path.startswith(("/", "./", "../", "~")) and not local.is_dir():
            raise ModelLoadError(
                f"model folder not found: {local} (expected a folder saved with save_pretrained, or a hub id)"
            )
        source = str(local) if local.is_dir() else config.name_or_path
        try:
            self.model = CLIPModel.from_pretrained(source, revision=config.revision)
            processor = AutoProcessor.from_pretrained(source, revision=config.revision)
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"could not load CLIP model {config.name_or_path!r}: {str(error).splitlines()[0]} "
                "(offline? pass --model with a local directory saved by save_pretrained)"
            ) from error
        self.model.eval().to(self.device)
        if config.precision == "int8":
            if self.device.type != "cpu":
                raise ModelLoadError("--precision int8 runs on the CPU only; use --device cpu")
            self.model.vision_model = quantize_int8(self.model.vision_model)
        if config.precision == "fp16":
            if self.device.type != "cuda":
                raise ModelLoadError("--precision fp16 is for GPUs (on this CPU it is slower than fp32); use --device cuda")
            self.model.vision_model.half()
        self._input_dtype = torch.float16 if config.precision == "fp16" else torch.float32
        # The image tower is held on its own so that a fine-tuned copy can replace it (see
        # `with_vision`) while the text tower and the preprocessing stay shared.
        self.vision_model = self.model.vision_model
        self.visual_projection = self.model.visual_projection
        self.image_processor = processor.image_processor
        self.tokenizer = processor.tokenizer
        self.feature_dim = int(self.model.visual_projection.in_features)
        self.embed_dim = int(self.model.visual_projection.out_features)
        self.logit_scale = float(self.model.logit_scale.exp().item())
        self.max_text_tokens = int(self.model.config.text_config.max_position_embeddings)
        preprocessing = json.dumps(self.image_processor.to_dict(), sort_keys=True, default=str)
        self.fingerprint = {
            "backend": "hf-clip",
            "weights": _weights_fingerprint(config.name_or_path, config.revision),
            "preprocessing": hashlib.sha256(preprocessing.encode()).hexdigest()[:16],
            "precision": config.precision,
        }

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        images = [np.asarray(frame) for frame in frames]
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]

    @torch.no_grad()  # not inference_mode: callers may train on these tensors
    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        if self.device.type == "cuda" and not pixels.is_pinned():
            pixels = pixels.pin_memory()  # lets the copy below overlap with the GPU's work
        pixels = pixels.to(self.device, dtype=self._input_dtype, non_blocking=True)
        pooled = self.vision_model(pixel_values=pixels).pooler_output
        embeds = self.visual_projection(pooled.to(self.visual_projection.weight.dtype))
        embeds = embeds / embeds.norm(dim=-1, keepdim=True)
        return FrameFeatures(pooled=pooled.float().cpu(), embeds=embeds.float().cpu())

    def encode_frames(self, frames: np.ndarray | Sequence[np.ndarray]) -> FrameFeatures:
        return self.encode_pixels(self.preprocess(frames))

    @torch.no_grad()  # not inference_mode: callers may train on these tensors
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        outputs = []
        for start in range(0, len(texts), TEXT_BATCH):
            # padding=True pads to the longest text of the chunk: the features depend only on
            # the tokens up to end-of-text, so this equals the 77-token context and is faster.
            tokens = self.tokenizer(
                list(texts[start : start + TEXT_BATCH]),
                padding=True,
                truncation=True,
                max_length=self.max_text_tokens,
                return_tensors="pt",
            ).to(self.device)
            pooled = self.model.text_model(**tokens).pooler_output
            embeds = self.model.text_projection(pooled)
            outputs.append((embeds / embeds.norm(dim=-1, keepdim=True)).float().cpu())
        if not outputs:
            return torch.empty(0, self.embed_dim)
        return torch.cat(outputs)

    @torch.no_grad()  # not inference_mode: callers may train on these tensors
    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        weight = self.visual_projection.weight.detach().float().cpu()
        return pooled.float() @ weight.T

    def projection_weight(self) -> torch.Tensor:
        return self.visual_projection.weight.detach().float().cpu().clone()

    def with_vision(
        self, vision_model: torch.nn.Module, visual_projection: torch.nn.Module, tag: str
    ) -> "HFClipBackend":
        """A backend sharing this one's text tower and preprocessing, with another image tower
        (e.g. a fine-tuned copy). `tag` names it in the fingerprint, so caches never mix."""
        tuned = copy.copy(self)
        tuned.vision_model = vision_model.eval().to(self.device)
        tuned.visual_projection = visual_projection.eval().to(self.device)
        tuned._input_dtype = next(vision_model.parameters()).dtype
        tuned.fingerprint = {**self.fingerprint, "vision": tag}
        return tuned
