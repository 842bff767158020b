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
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from clipaction.config import CropPosition, SamplerConfig
from clipaction.features.cache import CachedVideo, FeatureCache, video_key
from clipaction.models.base import Backend
from clipaction.video.decode import VideoDecodeError, decode_settings, partial_warnings, read_sampled_frames
from clipaction.video.frames import square_crop
from clipaction.video.sampling import VideoMeta, sample_indices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """A video that could not be used, and why (one line)."""

    path: str
    error: str


@dataclass(frozen=True)
class VideoWarning:
    """A video that was used but decoded only partly, and how (one line)."""

    path: str
    warning: str


@dataclass
class Extraction:
    """Features by video path (str of the path as given), in the sampler's frame order;
    failures; warnings for videos used although they decoded only partly; how many videos came
    wholly from the cache, how many needed the model, and how many frames the model encoded."""

    features: dict[str, CachedVideo] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    warnings: list[VideoWarning] = field(default_factory=list)
    n_cached: int = 0
    n_encoded: int = 0
    n_frames_encoded: int = 0


def cache_space(backend: Backend, crop: CropPosition | None = None) -> dict:
    """Everything that changes a frame's cached features, besides the frame itself. A crop
    (three-crop testing: `clipaction.video.frames.square_crop`) gets a space of its own, so its
    entries never meet the uncropped ones; without a crop the space is what it always was."""
    space = {"model": backend.fingerprint, "decode": decode_settings()}
    return space if crop is None else {**space, "crop": crop}


def check_crop_space(cache: FeatureCache | None, crop: CropPosition | None) -> None:
    """Refuse to store features of one crop in another crop's space (a caller's bug)."""
    if cache is not None and cache.space.get("crop") != crop:
        raise ValueError(f"the cache's space is for crop {cache.space.get('crop')!r}, the extraction crops {crop!r}")


def stored_meta(entry: CachedVideo) -> VideoMeta | None:
    """The video metadata an entry was sampled with (what decoding established), if any."""
    try:
        return VideoMeta(int(entry.info["num_frames"]), float(entry.info["fps"]), float(entry.info["duration"]))
    except (KeyError, ValueError):
        return None


def stored_declared(entry: CachedVideo) -> float | None:
    """The duration in seconds the video's metadata declared, or None when not known (an entry
    written before it was stored, or a decoder that did not say)."""
    try:
        return float(entry.info["declared_duration"])
    except (KeyError, ValueError):
        return None


def select_frames(entry: CachedVideo, indices: Sequence[int]) -> CachedVideo | None:
    """The rows of `entry` for `indices` (in that order, repeats allowed), or None if any is absent."""
    rows = {int(index): row for row, index in enumerate(entry.indices)}
    if any(int(index) not in rows for index in indices):
        return None
    take = [rows[int(index)] for index in indices]
    return CachedVideo(
        indices=np.asarray(indices, dtype=np.int64), pooled=entry.pooled[take], embeds=entry.embeds[take], info=entry.info
    )


def merge_frames(old: CachedVideo | None, new: CachedVideo) -> CachedVideo:
    """An entry with the frames of both (new wins on a repeated index), sorted by frame index.

    Always valid: index i is the i-th frame of a full sequential decode whatever sampler asked
    for it. The metadata (which samplers read to pick indices) is the newer one."""
    parts = [new] if old is None else [old, new]
    by_index: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for part in parts:
        for row, index in enumerate(part.indices):
            by_index[int(index)] = (part.pooled[row], part.embeds[row])
    order = sorted(by_index)
    return CachedVideo(
        indices=np.asarray(order, dtype=np.int64),
        pooled=np.stack([by_index[i][0] for i in order]),
        embeds=np.stack([by_index[i][1] for i in order]),
        info=new.info,
    )


@dataclass
class _Pending:
    """A decoded video waiting for its new frames to pass through the model."""

    path: str
    key: str
    cached: CachedVideo | None  # what the cache already had for this video
    indices: np.ndarray  # the sampler's frame indices
    new_indices: np.ndarray  # the distinct indices not yet cached, in encoding order
    info: dict[str, str]
    pixels: torch.Tensor  # (len(new_indices), 3, S, S), consumed as batches are filled
    warnings: tuple[str, ...] = ()
    pooled: list[torch.Tensor] = field(default_factory=list)
    embeds: list[torch.Tensor] = field(default_factory=list)
    remaining: int = 0


def _decode(
    path: str, sampler: SamplerConfig, backend: Backend, have: frozenset[int], crop: CropPosition | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, str], torch.Tensor, tuple[str, ...]]:
    """Sample and decode a video; preprocess only the frames not in `have`, cut to the square
    `crop` first when one is given.

    Returns the sampler's indices, the new ones, the cache entry's info, the new frames'
    pixels and the decoder's warnings."""
    sampled = read_sampled_frames(path, sampler)
    new_positions: dict[int, int] = {}
    for position, index in enumerate(sampled.indices):
        if index not in have:
            new_positions.setdefault(index, position)
    info = {
        "path": str(Path(path).resolve()),
        "num_frames": str(sampled.meta.num_frames),
        "fps": repr(sampled.meta.fps),
        "duration": repr(sampled.meta.duration),
        # What the metadata claimed: a cached video's warnings are worked out again from it.
        "declared_duration": "unknown" if sampled.declared_duration is None else repr(sampled.declared_duration),
    }
    frames = sampled.frames[list(new_positions.values())]
    if crop is not None and len(frames):
        frames = square_crop(frames, crop)
    pixels = backend.preprocess(frames) if len(frames) else torch.empty(0)
    return (
        np.asarray(sampled.indices, dtype=np.int64),
        np.asarray(list(new_positions), dtype=np.int64),
        info,
        pixels,
        sampled.warnings,
    )


def _one_line(error: BaseException) -> str:
    if isinstance(error, VideoDecodeError):
        return error.reason  # its str() starts with the path, which the failure names already
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


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
        from clipaction.features.clips import extract_clips

        return extract_clips(
            paths, backend, sampler, cache, batch_size=batch_size, workers=workers, progress=progress, keep=keep,
            crop=crop,
        )  # fmt: skip
    check_crop_space(cache, crop)
    result = Extraction()
    todo: list[tuple[str, str, CachedVideo | None]] = []
    bar = tqdm(total=len(paths), unit="video", desc="extract", disable=not progress, dynamic_ncols=True)
    for raw_path in paths:
        path = str(raw_path)
        try:
            key = video_key(path)
        except OSError as error:
            _fail(result, bar, path, f"cannot read file: {error.strerror or error}")
            continue
        cached = cache.load(key) if cache is not None else None  # also checks the entry's checksum
        meta = stored_meta(cached) if cached is not None else None
        # An entry without the declared length predates it: decoding again (no model) adds it.
        hit, indices = None, None
        if meta is not None and "declared_duration" in cached.info:
            indices = sample_indices(meta, sampler)
            hit = select_frames(cached, indices)
        if hit is not None:
            if keep:
                result.features[path] = hit
            _warn(result, path, partial_warnings(meta, sampler, indices, stored_declared(cached)))
            result.n_cached += 1
            bar.update(1)
        else:
            todo.append((path, key, cached))

    if todo:  # e.g. OpenVINO int8 calibrates on these videos
        backend.prepare_extraction([path for path, _, _ in todo], sampler)

    batch: list[tuple[_Pending, torch.Tensor]] = []
    batch_frames = 0

    def run_batch() -> None:
        nonlocal batch, batch_frames
        if not batch:
            return
        features = backend.encode_pixels(torch.cat([pixels for _, pixels in batch]))
        result.n_frames_encoded += batch_frames
        start = 0
        for pending, pixels in batch:
            stop = start + len(pixels)
            pending.pooled.append(features.pooled[start:stop])
            pending.embeds.append(features.embeds[start:stop])
            pending.remaining -= len(pixels)
            start = stop
            if pending.remaining == 0:
                _finish(result, cache, pending, keep)
                bar.update(1)
        batch, batch_frames = [], 0

    decoded = decoded_ahead(todo, sampler, backend, workers, crop)
    try:
        for item, outcome in decoded:
            path, key, cached = item
            if isinstance(outcome, BaseException):
                _fail(result, bar, path, _one_line(outcome))
                continue
            indices, new_indices, info, pixels, warnings = outcome
            pending = _Pending(
                path, key, cached, indices, new_indices, info, pixels, warnings, remaining=len(new_indices)
            )
            if pending.remaining == 0:  # decoding re-measured the video; its frames were cached
                _finish(result, cache, pending, keep)
                bar.update(1)
            while len(pending.pixels):  # split a video across batches when it does not fit
                take = min(batch_size - batch_frames, len(pending.pixels))
                batch.append((pending, pending.pixels[:take]))
                pending.pixels = pending.pixels[take:]
                batch_frames += take
                if batch_frames == batch_size:
                    run_batch()
        run_batch()
    finally:  # on Ctrl-C: stop the decoding threads now; finished videos are already stored
        decoded.close()
        bar.close()
    return result


def decoded_ahead(
    todo: list[tuple[str, str, CachedVideo | None]],
    sampler: SamplerConfig,
    backend: Backend,
    workers: int,
    crop: CropPosition | None = None,
) -> Iterator[tuple[tuple[str, str, CachedVideo | None], tuple | BaseException]]:
    """Yields (item, decoded or the error) in order, decoding up to 4 x workers videos ahead
    (each frame cut to the square `crop` first, when one is given)."""
    if not todo:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")

    def submit(item: tuple[str, str, CachedVideo | None]) -> Future:
        have = frozenset(int(i) for i in item[2].indices) if item[2] is not None else frozenset()
        if crop is None:  # the call without a crop stays the 4-argument one it always was
            return pool.submit(_decode, item[0], sampler, backend, have)
        return pool.submit(_decode, item[0], sampler, backend, have, crop)

    try:
        queue: deque[tuple[tuple[str, str, CachedVideo | None], Future]] = deque()
        items = iter(todo)
        for item in items:
            queue.append((item, submit(item)))
            if len(queue) >= 4 * max(1, workers):
                break
        while queue:
            item, future = queue.popleft()
            try:
                outcome = future.result()
            except (VideoDecodeError, OSError, ValueError, RuntimeError) as error:
                outcome = error
            next_item = next(items, None)
            if next_item is not None:
                queue.append((next_item, submit(next_item)))
            yield item, outcome
    finally:
        # On Ctrl-C or an error downstream, drop the videos queued ahead instead of decoding
        # them: only the few already being decoded are waited for.
        pool.shutdown(wait=True, cancel_futures=True)


def _finish(result: Extraction, cache: FeatureCache | None, pending: _Pending, keep: bool) -> None:
    embed_dim = pending.cached.embeds.shape[1] if pending.cached is not None else 0
    new = CachedVideo(
        indices=pending.new_indices,
        pooled=torch.cat(pending.pooled).numpy() if pending.pooled else np.zeros((0, 0), np.float32),
        embeds=torch.cat(pending.embeds).numpy() if pending.embeds else np.zeros((0, embed_dim), np.float32),
        info=pending.info,
    )
    if len(new.indices):
        merged = merge_frames(pending.cached, new)
    elif pending.cached is not None:  # every frame cached; the metadata may be new
        merged = replace(pending.cached, info=pending.info)
    else:
        raise RuntimeError(f"{pending.path}: nothing decoded and nothing cached")
    old_info = {} if pending.cached is None else {k: v for k, v in pending.cached.info.items() if k != "sha256"}
    if cache is not None and (len(new.indices) or old_info != pending.info):
        cache.store(pending.key, merged)
    _warn(result, pending.path, pending.warnings)
    if keep:
        video = select_frames(merged, pending.indices)
        assert video is not None, "every sampled frame is cached or newly encoded"
        result.features[pending.path] = video
    if len(new.indices):
        result.n_encoded += 1
    else:
        result.n_cached += 1


def _warn(result: Extraction, path: str, warnings: Sequence[str]) -> None:
    for warning in warnings:
        log.warning("%s decoded only partly: %s", path, warning)
        result.warnings.append(VideoWarning(path, warning))


def _fail(result: Extraction, bar: tqdm, path: str, reason: str) -> None:
    log.warning("skipped %s: %s", path, reason)
    result.failures.append(Failure(path, reason))
    bar.update(1)
