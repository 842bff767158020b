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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from clipaction.config import CropPosition, SamplerConfig, stable_hash
from clipaction.errors import ConfigError
from clipaction.features.cache import CachedVideo, FeatureCache, video_key
from clipaction.models.base import Backend, as_clip
from clipaction.video.decode import partial_warnings
from clipaction.video.sampling import VideoMeta, multi_clip_groups, sample_indices, sampler_spec

log = logging.getLogger(__name__)


def clip_length(backend: Backend, sampler: SamplerConfig) -> int:
    """Frames per clip for `backend` under `sampler` (`sampler.frames`), or a one-line
    ConfigError naming the counts the model takes."""
    counts = as_clip(backend).frame_counts
    takes = " or ".join(str(count) for count in counts)
    if "frames" not in sampler_spec(sampler.name).uses:
        raise ConfigError(
            f"the {sampler.name} sampler takes no frame count, but {backend.family} models encode "
            f"clips of {takes} frames: use uniform, center-clip or multi-clip",
            setting="sampler.name",
        )
    if sampler.frames not in counts:
        raise ConfigError(
            f"this {backend.family} model takes {takes} frames per clip, not {sampler.frames}",
            setting="sampler.frames",
        )
    return sampler.frames


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


def clip_order(meta: VideoMeta, sampler: SamplerConfig, indices: Sequence[int]) -> list[int]:
    """The sampler's frame indices clip after clip, as the clips are encoded. Multi-clip: each
    clip's own frames (its windows may overlap, and then the sorted indices cut into runs of
    `frames` would mix frames of two clips); any other sampler: `indices` as sampled."""
    if sampler.name == "multi-clip" and sampler.clips > 1:
        groups = multi_clip_groups(meta, frames=sampler.frames, window=sampler.window, clips=sampler.clips)
        return [index for group in groups for index in group]
    return [int(i) for i in indices]


def info_meta(info: dict[str, str]) -> VideoMeta:
    """The video metadata an entry's `info` records (what decoding established)."""
    return VideoMeta(int(info["num_frames"]), float(info["fps"]), float(info["duration"]))


def clip_key(key: str, indices: Sequence[int], frames: int, order: Sequence[int] | None = None) -> str:
    """The clip entry's key: the video's key, the sampler's indices and the clip length, and
    the clips' frame order where it is not the sorted indices (overlapping multi-clip windows;
    entries of other samplers keep the key they always had)."""
    data: dict = {"video": key, "indices": [int(i) for i in indices], "clip_frames": int(frames)}
    if order is not None and [int(i) for i in order] != data["indices"]:
        data["order"] = [int(i) for i in order]
    return stable_hash(data, 32)


def _meta_entry(info: dict[str, str]) -> CachedVideo:
    empty = np.zeros((0, 0), np.float32)
    return CachedVideo(indices=np.zeros(0, np.int64), pooled=empty, embeds=empty, info=info)


@dataclass
class _Clips:
    """A decoded video's clips waiting for the model."""

    path: str
    key: str
    indices: np.ndarray
    info: dict[str, str]
    pixels: torch.Tensor  # (R, F, 3, S, S)
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
):
    """`extract_features` for clip-level backends (see the module docstring). Model calls take
    the clips of several videos, about `batch_size` frames in all (at least one video). With a
    `crop`, every frame is cut to that square first (`cache` on that crop's space)."""
    from clipaction.features.extract import (
        Extraction, _fail, _one_line, _warn, check_crop_space, decoded_ahead, stored_declared, stored_meta,
    )  # fmt: skip

    check_crop_space(cache, crop)

    frames = clip_length(backend, sampler)
    result = Extraction()
    todo: list[tuple[str, str, CachedVideo | None]] = []
    known: dict[str, dict[str, str]] = {}
    bar = tqdm(total=len(paths), unit="video", desc="extract", disable=not progress, dynamic_ncols=True)
    for raw_path in paths:
        path = str(raw_path)
        try:
            key = video_key(path)
        except OSError as error:
            _fail(result, bar, path, f"cannot read file: {error.strerror or error}")
            continue
        meta_entry = cache.load(key) if cache is not None else None
        meta = stored_meta(meta_entry) if meta_entry is not None else None
        hit = None
        if meta is not None:
            known[path] = {k: v for k, v in meta_entry.info.items() if k != "sha256"}
            indices = sample_indices(meta, sampler)
            hit = cache.load(clip_key(key, indices, frames, clip_order(meta, sampler, indices)))
            if hit is not None and [int(i) for i in hit.indices] != [int(i) for i in indices]:
                hit = None
        if hit is not None:
            if keep:
                result.features[path] = hit
            _warn(result, path, partial_warnings(meta, sampler, indices, stored_declared(meta_entry)))
            result.n_cached += 1
            bar.update(1)
        else:
            todo.append((path, key, None))

    batch: list[_Clips] = []

    def run_batch() -> None:
        nonlocal batch
        if not batch:
            return
        features = backend.encode_pixels(torch.cat([video.pixels for video in batch]))
        start = 0
        for video in batch:
            stop = start + len(video.pixels)
            entry = CachedVideo(
                indices=video.indices,
                pooled=features.pooled[start:stop].numpy(),
                embeds=features.embeds[start:stop].numpy(),
                info={**video.info, "clip_frames": str(frames)},
            )
            start = stop
            if cache is not None:
                if known.get(video.path) != video.info:
                    cache.store(video.key, _meta_entry(video.info))
                cache.store(clip_key(video.key, video.indices, frames, video.order), entry)
            _warn(result, video.path, video.warnings)
            if keep:
                result.features[video.path] = entry
            result.n_encoded += 1
            result.n_frames_encoded += int(np.prod(video.pixels.shape[:2]))
            bar.update(1)
        batch = []

    decoded = decoded_ahead(todo, sampler, backend, workers, crop)
    try:
        for (path, key, _), outcome in decoded:
            if isinstance(outcome, BaseException):
                _fail(result, bar, path, _one_line(outcome))
                continue
            indices, distinct, info, pixels, warnings = outcome
            if len(indices) % frames:
                raise RuntimeError(f"{path}: {len(indices)} sampled frames are not whole clips of {frames}")
            # the decoder preprocesses each distinct frame once; clips repeat them as sampled
            position = {int(index): row for row, index in enumerate(distinct)}
            order = clip_order(info_meta(info), sampler, indices)
            clips = pixels[[position[int(i)] for i in order]]
            clips = clips.reshape(len(indices) // frames, frames, *clips.shape[1:])
            frames_queued = sum(video.pixels.shape[0] * frames for video in batch)
            if batch and frames_queued + clips.shape[0] * frames > batch_size:
                run_batch()
            batch.append(_Clips(path, key, indices, info, clips, warnings, order))
        run_batch()
    finally:  # on Ctrl-C: stop the decoding threads now; finished videos are already stored
        decoded.close()
        bar.close()
    return result
