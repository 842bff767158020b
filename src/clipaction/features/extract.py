"""Videos x sampler x backend -> per-frame features, through the cache (clip-level backends:
one feature per clip, see `clipaction.features.clips`).

The cache holds, per video, the features of every frame ever encoded for it (keyed by frame
index), so a sampler whose frames coincide with an earlier one's encodes only the new frames:
the middle frame, an 8-frame clip and 16 uniform frames share what they have in common.

Decoding and preprocessing run in worker threads (PyAV and the image processor release the GIL
for most of their work) a bounded number of videos ahead, while the main thread fills model
batches with frames from several videos and stores each video's entry as soon as all its new
frames are encoded. Memory stays bounded by the look-ahead, never by the number of videos.

A video that decodes only partly (its stream ends before its declared length, or frames repeat
to fill the sampler's count) is used and listed in `Extraction.warnings`, also when its features
come from the cache: the entry keeps the declared length, and the warning is worked out again
for the sampler at hand. Refusing such videos is the caller's choice (`--strict`).

The steps every path shares (cache check, decoding, failures and warnings, the batch loop,
the entries written) live in `clipaction.features.core`; this module is the frame path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from clipaction.config import CropPosition, SamplerConfig
from clipaction.features.cache import CachedVideo, FeatureCache
from clipaction.features.clips import extract_clips
from clipaction.features.core import (  # re-exported: callers import them from here
    Batches,
    Extraction,
    Failure,
    Turns,
    VideoWarning,
    check_crop_space,
    decode_video,
    decoded_ahead,
    find_cached,
    frame_entry,
    merge_frames,
    one_line,
    record_failure,
    record_warnings,
    select_frames,
    stored_declared,
    stored_meta,
)
from clipaction.models.base import Backend
from clipaction.video.decode import decode_settings

if TYPE_CHECKING:  # torch is imported where a model runs: a fully cached run needs none of it
    import torch

__all__ = [
    "Extraction",
    "Failure",
    "VideoWarning",
    "cache_space",
    "check_crop_space",
    "decode_video",
    "decoded_ahead",
    "extract_features",
    "merge_frames",
    "one_line",
    "select_frames",
    "stored_declared",
    "stored_meta",
]


def cache_space(backend: Backend, crop: CropPosition | None = None) -> dict:
    """Everything that changes a frame's cached features, besides the frame itself. A crop
    (three-crop testing: `clipaction.video.frames.square_crop`) gets a space of its own, so its
    entries never meet the uncropped ones; without a crop the space is what it always was."""
    space = {"model": backend.fingerprint, "decode": decode_settings()}
    return space if crop is None else {**space, "crop": crop}


@dataclass
class _Pending:
    """A decoded video waiting for its new frames to pass through the model."""

    path: str
    key: str
    cached: CachedVideo | None  # what the cache already had for this video
    indices: np.ndarray  # the sampler's frame indices
    new_indices: np.ndarray  # the distinct indices not yet cached, in encoding order
    info: dict[str, str]
    warnings: tuple[str, ...] = ()
    pooled: list[torch.Tensor] = field(default_factory=list)  # the new frames' features, in chunks
    embeds: list[torch.Tensor] = field(default_factory=list)


def extract_features(
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
    """Features of the frames `sampler` picks from every video in `paths`: read from `cache`
    where present, else encoded (and stored). With a `crop`, each frame is cut to that square
    before preprocessing, and `cache` must be opened on that crop's space
    (`cache_space(backend, crop)`). Videos that cannot be read are skipped with a
    warning and listed in `failures`; videos that decode only partly are used and listed in
    `warnings`. With `keep=False` (filling the cache only) no features are held, so memory does
    not grow with the number of videos.

    Clip-level backends (`backend.kind == "clip"`) encode each clip of `sampler.frames` frames
    together, one row per clip: see `clipaction.features.clips`."""
    if backend.kind == "clip":
        return extract_clips(
            paths, backend, sampler, cache, batch_size=batch_size, workers=workers, progress=progress, keep=keep,
            crop=crop,
        )  # fmt: skip
    check_crop_space(cache, crop)
    result = Extraction()
    bar = tqdm(total=len(paths), unit="video", desc="extract", disable=not progress, dynamic_ncols=True)
    todo = find_cached(paths, backend, sampler, cache, result, bar, keep)

    if todo:  # e.g. OpenVINO int8 calibrates on these videos
        backend.prepare_extraction([path for path, _, _ in todo], sampler)

    def done(pending: _Pending, pooled: list[torch.Tensor], embeds: list[torch.Tensor]) -> None:
        pending.pooled, pending.embeds = pooled, embeds
        result.n_frames_encoded += len(pending.new_indices)
        _finish(result, cache, pending, keep)
        bar.update(1)

    turns = Turns(backend)  # decoding and a CPU model take turns on the cores
    batches = Batches(backend, batch_size, split=True, done=done, turns=turns)  # a video may span batches
    decoded = decoded_ahead(todo, sampler, backend, workers, crop, turns)
    try:
        for item, outcome in decoded:
            path, key, cached = item
            if isinstance(outcome, BaseException):
                record_failure(result, bar, path, one_line(outcome))
                continue
            indices, new_indices, info, pixels, warnings = outcome
            batches.add(_Pending(path, key, cached, indices, new_indices, info, warnings), pixels)
        batches.flush()
    finally:  # on Ctrl-C: stop the decoding threads now; finished videos are already stored
        decoded.close()
        bar.close()
    return result


def _finish(result: Extraction, cache: FeatureCache | None, pending: _Pending, keep: bool) -> None:
    if not len(pending.new_indices) and pending.cached is None:
        raise RuntimeError(f"{pending.path}: nothing decoded and nothing cached")
    import torch

    embed_dim = pending.cached.embeds.shape[1] if pending.cached is not None else 0
    pooled = torch.cat(pending.pooled).numpy() if pending.pooled else np.zeros((0, 0), np.float32)
    embeds = torch.cat(pending.embeds).numpy() if pending.embeds else np.zeros((0, embed_dim), np.float32)
    merged, write = frame_entry(pending.cached, pending.new_indices, pooled, embeds, pending.info)
    if cache is not None and write:
        cache.store(pending.key, merged)
    record_warnings(result, pending.path, pending.warnings)
    if keep:
        video = select_frames(merged, pending.indices)
        assert video is not None, "every sampled frame is cached or newly encoded"
        result.features[pending.path] = video
    if len(pending.new_indices):
        result.n_encoded += 1
    else:
        result.n_cached += 1
