"""Videos x sampler x backend -> per-frame features, through the cache.

Decoding and preprocessing run in worker threads (PyAV and the image processor release the GIL
for most of their work) a bounded number of videos ahead, while the main thread fills model
batches with frames from several videos and writes each video's entry as soon as all its frames
are encoded. Memory stays bounded by the look-ahead, never by the number of videos.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from clipaction.config import SamplerConfig
from clipaction.features.cache import CachedVideo, FeatureCache, video_key
from clipaction.models.base import Backend
from clipaction.video.decode import VideoDecodeError, read_sampled_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """A video that could not be used, and why (one line)."""

    path: str
    error: str


@dataclass
class Extraction:
    """Features by video path (str of the path as given), failures, and where features came from."""

    features: dict[str, CachedVideo] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    n_cached: int = 0
    n_encoded: int = 0


def cache_space(backend: Backend, sampler: SamplerConfig) -> dict:
    """Everything that changes a video's cached features, besides the video itself."""
    return {"model": backend.fingerprint, "sampler": sampler.cache_fields()}


@dataclass
class _Pending:
    """A decoded video waiting for its frames to pass through the model."""

    path: str
    key: str
    indices: np.ndarray
    info: dict[str, str]
    pixels: torch.Tensor  # (F, 3, S, S), consumed from the front as batches are filled
    pooled: list[torch.Tensor] = field(default_factory=list)
    embeds: list[torch.Tensor] = field(default_factory=list)
    remaining: int = 0


def _decode(path: str, sampler: SamplerConfig, backend: Backend) -> tuple[np.ndarray, dict[str, str], torch.Tensor]:
    sampled = read_sampled_frames(path, sampler)
    info = {
        "path": str(Path(path).resolve()),
        "num_frames": str(sampled.meta.num_frames),
        "fps": str(sampled.meta.fps),
        "duration": str(sampled.meta.duration),
    }
    return np.asarray(sampled.indices, dtype=np.int64), info, backend.preprocess(sampled.frames)


def _one_line(error: BaseException) -> str:
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
) -> Extraction:
    """Features of every video in `paths`, read from `cache` where present, else encoded (and
    stored). Videos that cannot be read are skipped with a warning and listed in `failures`.
    With `keep=False` (filling the cache only) no features are held, so memory does not grow
    with the number of videos."""
    result = Extraction()
    todo: list[tuple[str, str]] = []
    bar = tqdm(total=len(paths), unit="video", desc="extract", disable=not progress, dynamic_ncols=True)
    for raw_path in paths:
        path = str(raw_path)
        try:
            key = video_key(path)
        except OSError as error:
            _fail(result, bar, path, f"cannot read file: {error.strerror or error}")
            continue
        cached = cache.load(key) if cache is not None else None  # also checks the entry's checksum
        if cached is not None:
            if keep:
                result.features[path] = cached
            result.n_cached += 1
            bar.update(1)
        else:
            todo.append((path, key))

    batch: list[tuple[_Pending, torch.Tensor]] = []
    batch_frames = 0

    def run_batch() -> None:
        nonlocal batch, batch_frames
        if not batch:
            return
        features = backend.encode_pixels(torch.cat([pixels for _, pixels in batch]))
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

    decoded = decoded_ahead(todo, sampler, backend, workers)
    try:
        for path, key, outcome in decoded:
            if isinstance(outcome, BaseException):
                _fail(result, bar, path, _one_line(outcome))
                continue
            indices, info, pixels = outcome
            pending = _Pending(path, key, indices, info, pixels, remaining=len(pixels))
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
    todo: list[tuple[str, str]], sampler: SamplerConfig, backend: Backend, workers: int
) -> Iterator[tuple[str, str, tuple | BaseException]]:
    """Yields (path, key, decoded or the error) in order, decoding up to 4 x workers ahead."""
    if not todo:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")
    try:
        queue: deque[tuple[str, str, Future]] = deque()
        items = iter(todo)
        for path, key in items:
            queue.append((path, key, pool.submit(_decode, path, sampler, backend)))
            if len(queue) >= 4 * max(1, workers):
                break
        while queue:
            path, key, future = queue.popleft()
            try:
                outcome = future.result()
            except (VideoDecodeError, OSError, ValueError, RuntimeError) as error:
                outcome = error
            next_item = next(items, None)
            if next_item is not None:
                queue.append((*next_item, pool.submit(_decode, next_item[0], sampler, backend)))
            yield path, key, outcome
    finally:
        # On Ctrl-C or an error downstream, drop the videos queued ahead instead of decoding
        # them: only the few already being decoded are waited for.
        pool.shutdown(wait=True, cancel_futures=True)


def _finish(result: Extraction, cache: FeatureCache | None, pending: _Pending, keep: bool) -> None:
    video = CachedVideo(
        indices=pending.indices,
        pooled=torch.cat(pending.pooled).numpy(),
        embeds=torch.cat(pending.embeds).numpy(),
        info=pending.info,
    )
    if cache is not None:
        cache.store(pending.key, video)
    if keep:
        result.features[pending.path] = video
    result.n_encoded += 1


def _fail(result: Extraction, bar: tqdm, path: str, reason: str) -> None:
    log.warning("skipped %s: %s", path, reason)
    result.failures.append(Failure(path, reason))
    bar.update(1)
