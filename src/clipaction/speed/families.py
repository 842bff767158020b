"""`clipaction bench --families`: every model family at its real image-tower size, one run.

Each family is a random-weight model with the compute of a released checkpoint's image tower
(CLIP ViT-B/32 at 224; MetaCLIP 2 with a ViT-B/32 tower (the released worldwide-huge is an
H/14, about 20x the compute); SigLIP 2 ViT-B/16 at 224; X-CLIP B/32 with 8 frames; VideoPrism
base with 16 frames at 288). Per family and precision: frames/s of the encoder alone (on
preprocessed frames), frames/s and videos/s of extraction end to end (decode + preprocess +
encode, through the cache code), their ratio (efficiency), peak memory, and for int8 the
cosine of its video features to fp32's. Everything is measured in the same process, so the
ratios hold even on a noisy machine.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from clipaction.classify.scoring import video_embeddings
from clipaction.config import BenchConfig, ModelConfig
from clipaction.features.cache import FeatureCache
from clipaction.features.clips import sampler_for
from clipaction.features.extract import cache_space, extract_features
from clipaction.models import load_backend
from clipaction.models.base import as_clip
from clipaction.speed.run import PeakRss
from clipaction.testing.models import build_random_model

log = logging.getLogger(__name__)

#: `--families` name -> what is built (a description for the JSON). The names are the CLI's
#: (kept as they were); "siglip2" here is SigLIP 2 at a fixed resolution, which loads as the
#: "siglip" family (tiny builder variant "siglip2-fixed", see `BUILDER_VARIANTS`).
FAMILY_MODELS = {
    "clip": "random CLIP ViT-B/32, 224 px",
    "metaclip_2": "random MetaCLIP 2 with a ViT-B/32 image tower, 224 px",
    "siglip2": "random SigLIP 2 ViT-B/16, 224 px (fixed resolution; loads as the siglip family)",
    "xclip": "random X-CLIP B/32, 8 frames, 224 px",
    "videoprism": "random VideoPrism base, 16 frames, 288 px",
}
#: int8 features must stay this close to fp32's to be offered (README: Models, Speed).
INT8_COSINE_BOUND = 0.99


#: `--families` names -> the `build_random_model` variant, where they differ.
BUILDER_VARIANTS = {"siglip2": "siglip2-fixed"}


def build_family_model(family: str, out_dir: Path) -> Path:
    """The real-size random model of `family` (see FAMILY_MODELS), saved to `out_dir`."""
    variant = BUILDER_VARIANTS.get(family, family)
    return build_random_model(out_dir, variant, shape="base", logit_scale=100.0 if family == "clip" else None)


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def encoder_fps(backend: Any, frames_per_call: int, min_seconds: float) -> float:
    """Frames/s of `encode_pixels` alone on preprocessed random frames (frame models: a batch
    of `frames_per_call` frames; clip models: as many clips as fit in it)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (frames_per_call, 240, 320, 3), dtype=np.uint8)
    if backend.kind == "clip":
        length = int(as_clip(backend).clip_frames)
        clips = max(1, frames_per_call // length)
        pixels = torch.stack([backend.preprocess(frames[:length]) for _ in range(clips)])
        count = clips * length
    else:
        pixels = backend.preprocess(frames)
        count = frames_per_call
    backend.encode_pixels(pixels)  # warm-up: allocations, one-time kernels
    done, elapsed = 0, 0.0
    while elapsed < min_seconds or done < 2 * count:
        seconds, _ = _timed(lambda: backend.encode_pixels(pixels))
        done, elapsed = done + count, elapsed + seconds
    return done / elapsed


def measure_family(family: str, paths: list[Path], config: BenchConfig, work: Path) -> dict[str, Any]:
    """fp32 and int8 figures of one family (see the module docstring)."""
    model_dir = build_family_model(family, work / f"model-{family}")
    row: dict[str, Any] = {"model": FAMILY_MODELS[family]}
    features = {}
    for precision in ("fp32", "int8"):
        backend = load_backend(ModelConfig(name_or_path=str(model_dir), device="cpu", precision=precision))
        sampler = sampler_for(backend, config.sampler)
        batch = max(config.batch_sizes)
        fps = encoder_fps(backend, batch, config.min_seconds)
        cache = FeatureCache(work / f"cache-{family}-{precision}", cache_space(backend))
        with PeakRss() as rss:
            seconds, extraction = _timed(
                lambda: extract_features(
                    paths, backend, sampler, cache, batch_size=batch, workers=config.workers, progress=False
                )  # fmt: skip
            )
        frames = len(extraction.features) * sampler.frames_per_video
        features[precision] = (backend, extraction)
        row[precision] = {
            "frames_per_video": sampler.frames_per_video,
            "model_fps": fps,
            "extract_fps": frames / seconds,
            "extract_videos_per_s": len(extraction.features) / seconds,
            "efficiency": frames / seconds / fps,
            "peak_rss_mb": rss.peak_kb / 1024,
            "failures": len(extraction.failures),
        }
        log.info("bench %s %s: encoder %.1f frames/s, end to end %.1f", family, precision, fps, frames / seconds)
    (fp32_backend, fp32), (int8_backend, int8) = features["fp32"], features["int8"]
    common = [p for p in fp32.features if p in int8.features]
    if common:
        reference = video_embeddings(fp32_backend, fp32, common)
        fast = video_embeddings(int8_backend, int8, common)
        cosines = (reference * fast).sum(-1) / (reference.norm(dim=-1) * fast.norm(dim=-1))
    else:
        cosines = torch.zeros(0)
    row["int8"]["cosine_min"] = float(cosines.min()) if len(common) else None
    row["int8"]["cosine_mean"] = float(cosines.mean()) if len(common) else None
    row["int8"]["within_bound"] = bool(len(common) and float(cosines.min()) >= INT8_COSINE_BOUND)
    row["int8_speedup"] = row["int8"]["model_fps"] / row["fp32"]["model_fps"]
    del features, fp32_backend, int8_backend
    gc.collect()
    return row


def bench_families(families: tuple[str, ...], config: BenchConfig = BenchConfig()) -> dict[str, Any]:
    """One row per family, on the same generated UCF101-like videos."""
    from clipaction.speed.run import make_videos

    with tempfile.TemporaryDirectory(prefix="clipaction-bench-families-") as tmp:
        work = Path(tmp)
        paths = make_videos(work / "videos", config)
        return {family: measure_family(family, paths, config, work) for family in families}
