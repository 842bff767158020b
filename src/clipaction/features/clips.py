"""Videos x sampler x clip-level backend -> one feature row per clip, through the cache.

Clip models (`backend.kind == "clip"`: X-CLIP, VideoPrism) encode the frames of a clip
together, so a clip's feature depends on all its frame indices at once and nothing can be
shared frame by frame. The sampler's indices are cut into clips of `sampler.frames`
(one clip for `uniform` and `center-clip`, `clips` of them for `multi-clip`, each clip its own
window's frames: `clip_order`); each clip becomes one row, and `backend.video_embedding(rows)`
makes the video's feature from them.

Cache layout (in the backend's cache space, beside nothing else: the model fingerprint keys
the space):

- `<video_key>`: the video's *meta entry*, no rows, only `info` (path, frame count, fps,
  duration, declared duration): what sampling needs, so a rerun finds its indices without
  decoding;
- `clip_key(video_key, indices, frames, order)`: the *clip entry*: `indices` the sampler's indices,
  `pooled` (R, D) and `embeds` (R, E) one row per clip, `info` as above plus `clip_frames`.
  Another sampler (other indices) gets another entry, so switching samplers back and forth
  encodes each set once.

A video shorter than a clip has frames repeated (the sampler does this), and is listed in
`Extraction.warnings` like any partly decoded video, also when it comes from the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from clipaction.config import CropPosition, SamplerConfig
from clipaction.features.cache import FeatureCache
from clipaction.features.core import (  # clip_* and meta_entry re-exported: callers import them from here
    Batches,
    Extraction,
    Turns,
    check_crop_space,
    clip_entries,
    clip_key,
    clip_length,
    clip_order,
    clip_pixels,
    decoded_ahead,
    find_cached,
    info_meta,
    meta_entry,
    one_line,
    plain_info,
    record_failure,
    record_warnings,
)
from clipaction.models.base import Backend, as_clip
from clipaction.video.sampling import sampler_spec

if TYPE_CHECKING:  # torch is imported where a model runs: a fully cached run needs none of it
    import torch

__all__ = [
    "clip_key",
    "clip_length",
    "clip_order",
    "clip_sampler",
    "extract_clips",
    "info_meta",
    "meta_entry",
    "sampler_for",
]

log = logging.getLogger(__name__)


def clip_sampler(backend: Backend, sampler: SamplerConfig, frames_given: bool) -> SamplerConfig:
    """`sampler` with the clip model's own frame count (its config's `num_frames`) unless the
    user gave one (`frames_given`); frame models get `sampler` unchanged."""
    if backend.kind != "clip" or frames_given or "frames" not in sampler_spec(sampler.name).uses:
        return sampler
    return replace(sampler, frames=int(as_clip(backend).clip_frames))


def sampler_for(backend: Backend, sampler: SamplerConfig) -> SamplerConfig:
    """`sampler` as `backend` takes it. Frame models: unchanged. Clip models: the frame count
    becomes the model's own when it cannot take `sampler.frames` (so `run --model` works for
    any family; the sampler used is what results.json records), and a sampler that takes no
    frame count (`middle`) is a ConfigError. The CLI refuses a --frames the user gave that the
    model cannot take before calling this."""
    if backend.kind != "clip":
        return sampler
    resolved = clip_sampler(backend, sampler, frames_given=sampler.frames in as_clip(backend).frame_counts)
    clip_length(backend, resolved)
    if resolved != sampler:
        log.info("%s model: %d frames per clip instead of %d", backend.family, resolved.frames, sampler.frames)
    return resolved


@dataclass
class _Clips:
    """A decoded video's clips waiting for the model."""

    path: str
    key: str
    known: dict[str, str] | None  # the meta entry's info the cache holds, if any
    indices: np.ndarray
    info: dict[str, str]
    warnings: tuple[str, ...]
    order: list[int]  # `indices` clip after clip (`clip_order`)


def extract_clips(
    paths: Sequence[str | Path],
    backend: Backend,
    sampler: SamplerConfig,
    cache: FeatureCache | None,
    *,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
    keep: bool = True,
    crop: CropPosition | None = None,
) -> Extraction:
    """`extract_features` for clip-level backends (see the module docstring). Model calls take
    the clips of several videos, about `batch_size` frames in all (at least one video). With a
    `crop`, every frame is cut to that square first (`cache` on that crop's space)."""
    check_crop_space(cache, crop)

    frames = clip_length(backend, sampler)
    result = Extraction()
    bar = tqdm(total=len(paths), unit="video", desc="extract", disable=not progress, dynamic_ncols=True)
    # a meta entry has no frames: decoding leaves none out
    todo = find_cached(paths, backend, sampler, cache, result, bar, keep)

    def done(video: _Clips, pooled: list[torch.Tensor], embeds: list[torch.Tensor]) -> None:
        import torch

        writes = clip_entries(
            video.key, video.known, video.indices, video.order, frames,
            torch.cat(pooled).numpy(), torch.cat(embeds).numpy(), video.info,
        )  # fmt: skip
        if cache is not None:
            for key, entry in writes:
                cache.store(key, entry)
        record_warnings(result, video.path, video.warnings)
        if keep:
            result.features[video.path] = writes[-1][1]
        result.n_encoded += 1
        result.n_frames_encoded += len(video.order)
        bar.update(1)

    # a video's clips stay in one model call: batches of about `batch_size` frames
    turns = Turns(backend)  # decoding and a CPU model take turns on the cores
    batches = Batches(backend, batch_size // frames, split=False, done=done, turns=turns)
    decoded = decoded_ahead(todo, sampler, backend, workers, crop, turns)
    try:
        for (path, key, stored), outcome in decoded:
            if isinstance(outcome, BaseException):
                record_failure(result, bar, path, one_line(outcome))
                continue
            indices, distinct, info, pixels, warnings = outcome
            if len(indices) % frames:
                raise RuntimeError(f"{path}: {len(indices)} sampled frames are not whole clips of {frames}")
            order = clip_order(info_meta(info), sampler, indices)
            known = plain_info(stored) if stored is not None else None
            batches.add(
                _Clips(path, key, known, indices, info, warnings, order), clip_pixels(pixels, distinct, order, frames)
            )
        batches.flush()
    finally:  # on Ctrl-C: stop the decoding threads now; finished videos are already stored
        decoded.close()
        bar.close()
    return result
