"""X-CLIP through transformers: `XCLIPModel` and its own processor (`XCLIPProcessor`: the image
processor the checkpoint ships, CLIP's tokenizer).

Preprocessing. The hub's X-CLIP checkpoints ship a `VideoMAEImageProcessor` (shortest edge 224,
centre crop, bilinear): it takes the frames of a clip as one video and returns (1, F, 3, S, S).
Folders saved with a `CLIPImageProcessor` exist too: it takes the frames as F images and returns
(F, 3, S, S). `preprocess` calls the model's processor exactly as `XCLIPProcessor(videos=...)`
does and accepts either shape. Both processors treat every frame on its own, so the decoder may
preprocess each distinct frame of a video once and assemble the clips from those rows.

Clip-level: the frames of a clip go through the vision transformer together (cross-frame
message tokens), the multi-frame integration transformer (MIT) pools them into the video
embedding, and the text is conditioned on the video by the prompt generator (cross-attention
from the label texts to the clip's patch features) before the softmax over the labels of
scale x cosine. So text features cannot be scored alone: the cache holds what the video side
produces, and the small prompt generator runs at scoring time (`XCLIPScoring`), exactly as
`XCLIPModel.forward` does.

Layouts (P = projection_dim, L = patches per frame):

- a clip row (`embeds`): (P + L * P,) = [MIT video embedding (unnormalised), the clip's patch
  features after `prompts_visual_layernorm` and `prompts_visual_projection`, averaged over
  frames, flattened]; `pooled` is the MIT video embedding alone.
- a text row: (P + 1,) = [text_projection output, TEXT_MARK], L2-normalised as the protocol
  asks. The prompt generator is not invariant to the text's scale, so the scale must survive
  the normalisation (and `zeroshot.class_text_features`' template averaging): the direction
  keeps it, and `text[:P] * TEXT_MARK / text[P]` gives the projection output back (for
  several templates, their mean weighted by each template's 1 / norm).

No optional capabilities: X-CLIP's visual projection is followed by the MIT, so it is not a
linear map from pooled features to the video embedding, and its image tower is not a
frame-by-frame tower.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from clipaction.errors import ModelLoadError
from clipaction.models.base import ArrayT, FrameFeatures, Scoring
from clipaction.models.catalog import Family, HubModel, Published, register_family
from clipaction.models.hf_common import load_pretrained, no_grad, tower_pass
from clipaction.models.hf_video import TEXT_BATCH, ClipLevelBackend
from clipaction.models.pooling import normalise
from clipaction.models.processor_files import ProcessorSpec
from clipaction.models.registry import BACKENDS

if TYPE_CHECKING:  # torch is imported where the model runs
    import torch

#: The constant appended to every text feature before normalising (see the module docstring);
#: small, so cosines between text rows are those of the projection outputs to about 1e-6.
TEXT_MARK = 1e-3
#: Videos per prompt-generator call at scoring time (bounds memory: V x C x P activations).
SCORE_BATCH = 64


def unpack_text(text: torch.Tensor) -> torch.Tensor:
    """(C, P + 1) text rows -> (C, P) text_projection outputs (see the module docstring)."""
    return text[:, :-1] * (TEXT_MARK / text[:, -1:])


def unpack_video(video: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, P + L * P) packed clip rows -> (V, P) video embeddings, (V, L, P) patch features."""
    return video[:, :dim], video[:, dim:].reshape(len(video), -1, dim)


def frames_of_one_video(pixels: torch.Tensor, count: int, processor: str) -> torch.Tensor:
    """An image processor's output for the `count` frames of one video -> (count, 3, S, S):
    (1, count, 3, S, S) (video processors such as VideoMAE's) or (count, 3, S, S) (per-image
    processors such as CLIP's). Any other shape is a ModelLoadError naming the processor."""
    if pixels.ndim == 5 and pixels.shape[0] == 1:
        pixels = pixels[0]
    if pixels.ndim != 4 or pixels.shape[0] != count:
        raise ModelLoadError(
            f"the X-CLIP image processor {processor} returned pixels of shape {tuple(pixels.shape)} for one video of "
            f"{count} frames; expected ({count}, 3, S, S) or (1, {count}, 3, S, S)",
            setting="model.name_or_path",
        )
    return pixels


@dataclass(frozen=True)
class XCLIPScoring(Scoring):
    """softmax over the labels of scale x cos(video, prompt-conditioned text), as
    XCLIPModel.forward computes logits_per_video. `prompt_generator` returns the model's
    `prompts_generator` (loaded on first use: a fully cached run loads the weights only here)."""

    prompt_generator: Callable[[], torch.nn.Module] | None = field(default=None, compare=False, repr=False)

    def logits(self, video_embeds: ArrayT, text_features: ArrayT) -> ArrayT:
        """(V, P + L * P) packed video features x (C, P + 1) text rows -> (V, C) logits (numpy
        in, numpy out: the prompt generator runs on torch either way)."""
        import torch

        if isinstance(video_embeds, np.ndarray):
            logits = self._logits(torch.from_numpy(video_embeds), torch.as_tensor(np.asarray(text_features)))
            return logits.numpy()
        return self._logits(video_embeds, torch.as_tensor(text_features))

    @no_grad
    def _logits(self, video_embeds: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        import torch

        assert self.prompt_generator is not None, "XCLIPScoring needs the model's prompt generator"
        generator = self.prompt_generator()
        parameter = next(generator.parameters())
        text = unpack_text(text_features.float())
        dim = text.shape[1]
        outputs = []
        for start in range(0, len(video_embeds), SCORE_BATCH):
            chunk = video_embeds[start : start + SCORE_BATCH].float()
            video, patches = unpack_video(chunk, dim)
            texts = text.unsqueeze(0).expand(len(chunk), -1, -1).to(parameter.device, parameter.dtype)
            texts = texts + generator(texts, patches.to(parameter.device, parameter.dtype))
            texts = normalise(texts.float().cpu())
            video = normalise(video)
            outputs.append(torch.einsum("bd,bkd->bk", video, self.scale * texts))
        if not outputs:
            return torch.zeros(0, len(text_features))
        return torch.cat(outputs) + self.bias if self.bias else torch.cat(outputs)


@BACKENDS.register("xclip")
class XCLIPBackend(ClipLevelBackend):
    """XCLIPModel + its processor, in eval mode. See `clipaction.models.hf_video`."""

    family = "xclip"
    model_class = "XCLIPModel"
    video_tower_attribute = "vision_model"
    processor_spec = ProcessorSpec(
        processors=("XCLIPProcessor",), image_processors=("VideoMAEImageProcessor", "CLIPImageProcessor")
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._processor: Any = None
        self._processor_lock = threading.Lock()

    @property
    def processor(self) -> Any:
        # Decoding threads preprocess: the first loads the processor, the others wait.
        with self._processor_lock:
            if self._processor is None:
                from transformers import AutoProcessor

                self._processor = load_pretrained(AutoProcessor, self.source, "processor")
            return self._processor

    @property
    def embed_dim(self) -> int:
        return int(self.source.config.get("projection_dim", 512))

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """One clip's uint8 frames (F, H, W, 3) -> (F, 3, S, S) float32, through the model's own
        processor as one video: a VideoMAE image processor's (1, F, 3, S, S) loses its video
        axis, a CLIP image processor's (F, 3, S, S) is already per frame."""
        images = [np.asarray(frame) for frame in frames]
        pixels = self.processor(videos=images, return_tensors="pt")["pixel_values"]
        return frames_of_one_video(pixels, len(images), type(self.processor.image_processor).__name__)

    @no_grad
    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        """(B, F, 3, S, S) clips -> pooled (B, P) video embeddings (unnormalised) and embeds
        (B, P + L * P) packed rows; the steps of XCLIPModel.forward's video side."""
        import torch

        model = self.model
        batch, frames = pixels.shape[:2]
        with tower_pass(self.config.precision, batch, "clips"):  # bf16 autocast; CUDA OOM -> one line
            flat = self._to_device(pixels.reshape(batch * frames, *pixels.shape[2:]))
            vision = model.vision_model(pixel_values=flat)
            # .float(): with fp16 only the vision transformer is halved (a no-op in fp32)
            cls_features = model.visual_projection(vision.pooler_output.float()).view(batch, frames, -1)
            video = model.mit(cls_features).pooler_output
            patches = model.prompts_visual_layernorm(vision.last_hidden_state[:, 1:, :].float())
            patches = patches @ model.prompts_visual_projection
            patches = patches.view(batch, frames, -1, video.shape[-1]).mean(dim=1)
        video, patches = video.float().cpu(), patches.float().cpu()
        return FrameFeatures(pooled=video, embeds=torch.cat([video, patches.flatten(1)], dim=1))

    @no_grad
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (T, P + 1) L2-normalised rows carrying the text_projection output (see the
        module docstring; `unpack_text` gives it back)."""
        import torch

        model, tokenizer = self.model, self.processor.tokenizer
        max_tokens = int(model.config.text_config.max_position_embeddings)
        outputs = []
        for start in range(0, len(texts), TEXT_BATCH):
            # padding to the longest text of the chunk: the features depend only on the tokens
            # up to end-of-text (causal mask, pooled at EOT)
            tokens = tokenizer(
                list(texts[start : start + TEXT_BATCH]),
                padding=True,
                truncation=True,
                max_length=max_tokens,
                return_tensors="pt",
            ).to(self.device)
            embeds = model.text_projection(model.text_model(**tokens).pooler_output).float().cpu()
            mark = torch.full((len(embeds), 1), TEXT_MARK)
            outputs.append(normalise(torch.cat([embeds, mark], dim=1)))
        if not outputs:
            return torch.empty(0, self.embed_dim + 1)
        return torch.cat(outputs)

    def video_embedding(self, rows: ArrayT) -> ArrayT:
        """A video's (R, P + L * P) clip rows -> its (P + L * P,) packed feature: one clip
        passes through; several clips (multi-clip) average their normalised video embeddings
        and their patch features (the model itself averages patch features over frames).
        A numpy array in gives one out (computed on torch, as the scoring that takes it)."""
        import torch

        if isinstance(rows, np.ndarray):
            return self.video_embedding(torch.from_numpy(rows)).numpy()
        rows = rows.float()
        if len(rows) == 1:
            return rows[0]
        video, patches = unpack_video(rows, self.embed_dim)
        return torch.cat([normalise(normalise(video).mean(dim=0)), patches.mean(dim=0).flatten()])

    def scoring(self) -> Scoring:
        if self._scoring is None:
            stored = self.source.read_tensor("logit_scale") if self._model is None else None
            log_scale = stored if stored is not None else self.model.logit_scale.detach().cpu()
            self._scoring = XCLIPScoring(
                scale=float(log_scale.float().exp()),
                kind=self.score_kind,
                prompt_generator=lambda: self.model.prompts_generator,
            )
        return self._scoring


# What `clipaction models` and the docs say about this family (clipaction.models.catalog):
# hub ids, inputs, scoring, and published figures with their sources.
CATALOG = register_family(
    Family(
        family="xclip",
        title="X-CLIP",
        transformers_class="XCLIPModel",
        kind="clip",
        scores="softmax(scale·cos) over the labels, the text conditioned on the video by the prompt generator",
        models=(
            HubModel("microsoft/xclip-base-patch32", 224, frames="8", note="trained on Kinetics-400"),
            HubModel(
                "microsoft/xclip-base-patch16-zero-shot",
                224,
                frames="32",
                published=Published(
                    72.0,
                    44.6,
                    "microsoft/VideoX README (X-CLIP zero-shot table); ± std over the splits from the "
                    "X-CLIP paper (Ni et al., ECCV 2022), as FROSTER's table repeats them",
                    "X-CLIP B/16, 32 frames, trained on Kinetics-400; mean ± std over the 3 splits",
                    ucf101_std=2.3,
                    hmdb51_std=5.2,
                    k600=65.2,
                    k600_std=0.4,
                    k600_protocol="X-CLIP B/16, 32 frames, trained on Kinetics-400; 3 splits of 160 classes, mean ± std",
                ),
            ),
        ),
        pick="Trained on video with text: its zero-shot figure (72.0 on UCF101 with B/16) is above "
        "CLIP B/16's single frame. The frames of a clip are encoded together, so a model takes "
        "exactly the frame count it was trained with. Text features depend on the video (the "
        "prompt generator runs per video at scoring time): scoring many labels costs more than "
        "with CLIP. No visual projection over pooled features, no frame tower.",
    )
)
