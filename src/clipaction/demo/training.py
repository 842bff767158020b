"""A tiny CLIP trained on the action world (`clipaction.demo.world`), built once and cached.

Contrastive training (symmetric InfoNCE, as CLIP) on single frames and the sentences of the
world's *training* compositions only: the held-out (colour, shape) pairs never appear, so
zero-shot on them is real zero-shot. Frames go through the very CLIPImageProcessor saved with
the model, so training and inference preprocess alike. A batch holds distinct compositions, so
every other sentence in it is a true negative.

Deterministic for a seed: weights are initialised from a seeded global torch RNG that is put
back afterwards, sampling uses seeded numpy generators, and training runs on a fixed number of
torch threads (restored afterwards). The result is saved with `save_pretrained` (model and
CLIPProcessor) and loads by path through the library's normal backend. Its numbers are about
the synthetic world, not about real actions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipaction.config import stable_hash
from clipaction.demo.world import ActionWorld, Composition, render_video, video_length, video_seed
from clipaction.testing.tiny_clip import build_tokenizer

log = logging.getLogger(__name__)

#: The sentence of frames without a shape (trained, never a class).
EMPTY = "an empty background"


@dataclass(frozen=True)
class TinyTrainConfig:
    """The tiny CLIP's shape and how it is trained.

    `videos_per_composition` x `frames_per_video` frames (random visible ones) are drawn for
    each training composition, plus a blinked-off frame per blinking video for the EMPTY
    sentence; each step takes `batch_size` distinct sentences (at most all of them) and
    `frames_per_step` frames of each. Learning rate: linear warm-up over `warmup` steps, then
    cosine decay to zero. `threads`: torch threads while training (the result depends on it).
    """

    image_size: int = 32
    patch_size: int = 4
    vision_width: int = 48
    vision_layers: int = 2
    text_width: int = 64
    text_layers: int = 2
    heads: int = 4
    projection_dim: int = 32
    videos_per_composition: int = 24
    frames_per_video: int = 3
    steps: int = 500
    batch_size: int = 96
    frames_per_step: int = 2
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.05
    seed: int = 0
    threads: int = 2


def clip_config(train: TinyTrainConfig, tokenizer) -> CLIPConfig:  # noqa: F821
    from transformers import CLIPConfig

    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return CLIPConfig(
        text_config={
            "hidden_size": train.text_width,
            "intermediate_size": 2 * train.text_width,
            "num_hidden_layers": train.text_layers,
            "num_attention_heads": train.heads,
            "max_position_embeddings": 77,
            "vocab_size": len(tokenizer),
            **special,
        },
        vision_config={
            "hidden_size": train.vision_width,
            "intermediate_size": 2 * train.vision_width,
            "num_hidden_layers": train.vision_layers,
            "num_attention_heads": train.heads,
            "image_size": train.image_size,
            "patch_size": train.patch_size,
        },
        projection_dim=train.projection_dim,
    )


def build_processor(world: ActionWorld, train: TinyTrainConfig):
    """The CLIPProcessor saved with the model: the world's tokenizer and an image processor
    that resizes the (square) frames to the model's input size."""
    from transformers import CLIPImageProcessor, CLIPProcessor

    size = train.image_size
    image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return CLIPProcessor(image_processor=image_processor, tokenizer=build_tokenizer([*world.words(), *EMPTY.split()]))


def training_frames(world: ActionWorld, train: TinyTrainConfig) -> tuple[np.ndarray, list[Composition], np.ndarray]:
    """((N, H, W, 3) uint8 frames, the training compositions, (N,) each frame's index into them).

    Only training compositions; only frames where the shape is visible (a blinked-off or
    passing-by frame shows no class). Videos use the `model` seed stream, so none of them is a
    video of the dataset that the study evaluates.
    """
    comps = world.training_compositions()
    frames, labels = [], []
    for ci, comp in enumerate(comps):
        for k in range(train.videos_per_composition):
            seed = video_seed(world, comp, "model", k)
            n = video_length(world, seed)
            # Twice as many random candidates as needed (after the trail has formed), so that
            # enough of them show the shape.
            pick = np.random.default_rng([train.seed, ci, k])
            candidates = np.sort(pick.choice(np.arange(world.trail, n), 2 * train.frames_per_video, replace=False))
            rendered = render_video(world, comp, seed, frames=candidates)
            keep = np.flatnonzero(rendered.visible)[: train.frames_per_video]
            frames.append(rendered.frames[keep])
            labels.extend([ci] * len(keep))
            # A blinked-off frame shows only background: it trains the EMPTY sentence, so that
            # such frames do not land near some class when a clip's frames are averaged.
            empty = np.flatnonzero(rendered.alpha.reshape(len(candidates), -1).max(axis=1) == 0)[:1]
            frames.append(rendered.frames[empty])
            labels.extend([len(comps)] * len(empty))
    return np.concatenate(frames), comps, np.asarray(labels)


def _lr_factor(step: int, train: TinyTrainConfig) -> float:
    if step < train.warmup:
        return (step + 1) / train.warmup
    progress = (step - train.warmup) / max(1, train.steps - train.warmup)
    return 0.5 * (1 + np.cos(np.pi * progress))


def train_world_clip(world: ActionWorld, train: TinyTrainConfig, out_dir: str | Path) -> Path:
    """Train the tiny CLIP on `world` and save it (model + processor + training.json) to
    `out_dir`; returns it. Takes tens of seconds on two CPU cores."""
    from transformers import CLIPModel

    started = time.perf_counter()
    processor = build_processor(world, train)
    tokenizer = processor.tokenizer
    frames, comps, labels = training_frames(world, train)
    pixels = processor.image_processor(images=list(frames), return_tensors="pt")["pixel_values"]
    tokens = tokenizer([*(c.sentence for c in comps), EMPTY], padding=True, return_tensors="pt")
    prepared = time.perf_counter() - started

    threads = torch.get_num_threads()
    rng_state = torch.random.get_rng_state()
    try:
        torch.set_num_threads(train.threads)
        torch.manual_seed(train.seed)  # CLIPModel initialises from the global RNG; restored below
        model = CLIPModel(clip_config(train, tokenizer))
        losses = _fit(model, pixels, labels, tokens, len(comps) + 1, train)
    finally:
        torch.random.set_rng_state(rng_state)
        torch.set_num_threads(threads)
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    seconds = time.perf_counter() - started
    record = {
        "world": world.to_json(),
        "train": dataclasses.asdict(train),
        "training_compositions": [c.sentence for c in comps],
        "extra_training_sentences": [EMPTY],
        "held_out": [list(pair) for pair in world.held_out],
        "n_frames": int(len(frames)),
        "loss_every_50_steps": [round(v, 4) for v in losses[::50]] + [round(losses[-1], 4)],
        "logit_scale": float(model.logit_scale.detach().exp()),
        "seconds": {"prepare": round(prepared, 2), "total": round(seconds, 2)},
        "note": "a tiny CLIP trained on a synthetic world of coloured shapes; not a model of real actions",
    }
    (out_dir / "training.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log.info("trained the world's tiny CLIP in %.1f s (final loss %.3f)", seconds, losses[-1])
    return out_dir


def _fit(model, pixels: torch.Tensor, labels: np.ndarray, tokens, n_texts: int, train: TinyTrainConfig) -> list[float]:
    """Symmetric InfoNCE over `train.steps` batches; returns the losses.

    pixels (N, 3, S, S) preprocessed frames; labels (N,) text index of each frame; tokens: the
    `n_texts` tokenized sentences (padded, in index order). A batch takes `batch_size` distinct
    texts and `frames_per_step` frames of each: image -> text is a softmax over the batch's
    texts, text -> image a softmax over its images with all of the text's frames positive.
    """
    rng = np.random.default_rng([train.seed, 7])
    by_text = [np.flatnonzero(labels == c) for c in range(n_texts)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, train))
    batch, per = min(train.batch_size, n_texts), train.frames_per_step
    targets = torch.arange(batch).repeat_interleave(per)  # (batch * per,) text of each image
    positive = targets[None, :] == torch.arange(batch)[:, None]  # (batch, batch * per)
    losses = []
    model.train()
    for _ in range(train.steps):
        chosen = rng.choice(n_texts, size=batch, replace=False)
        picks = np.concatenate([rng.choice(by_text[c], size=per, replace=len(by_text[c]) < per) for c in chosen])
        # Projected features read explicitly (transformers 5's get_*_features return objects).
        image = model.visual_projection(model.vision_model(pixel_values=pixels[picks]).pooler_output)
        text = model.text_projection(
            model.text_model(
                input_ids=tokens["input_ids"][chosen], attention_mask=tokens["attention_mask"][chosen]
            ).pooler_output
        )
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp().clamp(max=100.0) * image @ text.T  # (batch * per, batch)
        to_text = torch.nn.functional.cross_entropy(logits, targets)
        log_p = logits.T.log_softmax(dim=1)  # (batch, batch * per)
        to_image = -(log_p.masked_fill(~positive, float("-inf")).logsumexp(dim=1)).mean()
        loss = 0.5 * (to_text + to_image)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    return losses


def cache_key(world: ActionWorld, train: TinyTrainConfig) -> str:
    """Hash of everything that changes the trained weights: the world, the training settings
    and the versions of the libraries that draw, encode and train."""
    import av
    import transformers

    import clipaction

    versions = {
        "clipaction": clipaction.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "av": av.__version__,
    }
    return stable_hash({"world": world.to_json(), "train": dataclasses.asdict(train), "versions": versions})


def trained_world_model(
    cache_root: str | Path, world: ActionWorld = ActionWorld(), train: TinyTrainConfig = TinyTrainConfig()
) -> Path:
    """The folder of the tiny CLIP trained on `world`: `cache_root/world-clip-<key>`, trained
    (into a temporary folder, then renamed) only when it does not exist yet."""
    cache_root = Path(cache_root).expanduser()
    final = cache_root / f"world-clip-{cache_key(world, train)}"
    if (final / "training.json").is_file():
        log.info("reusing the world's tiny CLIP in %s", final)
        return final
    cache_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".world-clip-", dir=cache_root))
    try:
        train_world_clip(world, train, scratch)
        try:
            os.rename(scratch, final)
        except OSError:
            if not (final / "training.json").is_file():  # not a concurrent build that won
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return final
