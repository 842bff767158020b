"""Sampled frames -> window features, through the cache, in memory that does not grow with the
video's length.

Frame models (`backend.kind == "frame"`): every sampled frame is encoded once and cached in
chunks of `chunk_seconds` of samples, keyed by (video key, fps, chunk number): sample k is the
frame shown at `(k + 0.5) / fps` seconds. A window's feature is `backend.video_embedding` of the
frames it covers, so a rerun with other labels, window, stride or threshold encodes no frame.

Clip models (`backend.kind == "clip"`): a window is one clip of the model's `clip_frames`
frames, taken evenly from the window's samples (repeated when it has fewer: raise `fps` to give
the model distinct frames). Clip rows are cached in chunks of windows, keyed by (video key,
fps, window, stride, clip length, chunk number): other labels or thresholds encode nothing.

Decoding and preprocessing run in one thread ahead of the model (a small bounded queue), chunks
are written as they complete (an interrupted run resumes at the first missing chunk, seeking
there), and only the frames of the current window and batch are held.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from clipaction.config import stable_hash
from clipaction.errors import ConfigError
from clipaction.features.cache import CachedVideo, FeatureCache, video_key
from clipaction.models.base import Backend, as_clip
from clipaction.timeline.config import TimelineConfig
from clipaction.timeline.decode import Sample, Skipped, StreamInfo, frames_at, probe_stream
from clipaction.timeline.grid import TimeGrid, chunk_samples, exact

log = logging.getLogger(__name__)

ENDS_EARLY = "the stream ends early"


@dataclass
class PassStats:
    """What one video's pass did: its stream facts, what came from the cache and what the
    model encoded, the decoder's work, and warnings (one line each, naming time ranges)."""

    info: StreamInfo | None = None
    grid: TimeGrid | None = None
    end: float | None = None  # where the stream really ended, when before its declared end
    chunks_cached: int = 0
    chunks_encoded: int = 0
    frames_encoded: int = 0
    decoded: int = 0
    seeks: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        declared = self.info.duration if self.info else 0.0
        return min(declared, self.end) if self.end is not None else declared


def clip_frames(backend: Backend) -> int:
    """Frames per clip of a clip-level backend (`ClipBackend.clip_frames`), or a ConfigError
    when it gives none."""
    frames = as_clip(backend).clip_frames
    if frames < 1:
        raise ConfigError(
            f"the {backend.family} model encodes clips but gives no frame count per clip (clip_frames {frames})",
            setting="model.name_or_path",
        )
    return int(frames)


def _skips_json(skips: list[Skipped]) -> str:
    return json.dumps([[s.first, s.last, s.start, s.end, s.reason] for s in skips])


def _skips_from(info: dict[str, str]) -> list[Skipped]:
    try:
        return [Skipped(int(a), int(b), float(c), float(d), str(e)) for a, b, c, d, e in json.loads(info.get("skipped", "[]"))]
    except (ValueError, TypeError):
        return []


class _Producer:
    """Decodes the wanted samples in a thread and hands over (samples, pixels, skips, resolved)
    batches through a bounded queue; `resolved` is the highest sample number settled so far."""

    _END = object()

    def __init__(self, path: str, wanted: list[tuple[int, float]], info: StreamInfo, backend: Backend, batch: int, stats: PassStats) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=3)
        self.stop = threading.Event()
        self.decoder_stats: dict[str, int] = {}
        self.args = (path, wanted, info, backend, max(1, batch))
        self.thread = threading.Thread(target=self._run, name="timeline-decode", daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        path, wanted, info, backend, batch = self.args
        frames: list[np.ndarray] = []
        indices: list[int] = []
        skips: list[Skipped] = []
        resolved = -1

        def flush() -> bool:
            nonlocal frames, indices, skips
            pixels = backend.preprocess(np.stack(frames)) if frames else None
            item = (indices, pixels, skips, resolved)
            frames, indices, skips = [], [], []
            return self._put(item)

        try:
            for event in frames_at(path, wanted, info=info, stats=self.decoder_stats):
                if self.stop.is_set():
                    return
                if isinstance(event, Sample):
                    frames.append(event.frame)
                    indices.append(event.index)
                    resolved = event.index
                else:
                    skips.append(event)
                    resolved = event.last
                if len(frames) >= batch and not flush():
                    return
            if (frames or skips) and not flush():
                return
            self._put(self._END)
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(error)

    def batches(self) -> Iterator[tuple[list[int], torch.Tensor | None, list[Skipped], int]]:
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


class _Bar:
    """Progress over the video's duration (seconds)."""

    def __init__(self, total: float, name: str, enabled: bool) -> None:
        self.bar = tqdm(total=round(total, 1), unit="s", desc=name[-30:], disable=not enabled, dynamic_ncols=True)
        self.done = 0.0

    def to(self, seconds: float) -> None:
        seconds = round(min(seconds, self.bar.total), 1)
        if seconds > self.done:
            self.bar.update(round(seconds - self.done, 1))
            self.done = seconds

    def close(self) -> None:
        self.bar.close()


def window_features(
    path: str | Path,
    backend: Backend,
    config: TimelineConfig,
    cache: FeatureCache | None,
    stats: PassStats,
    *,
    progress: bool = False,
) -> Iterator[tuple[int, torch.Tensor | None]]:
    """(window index, its feature for `backend.scoring().logits`, or None when none of its
    samples decoded) for every window of the video, in order. Fills `stats` as it goes."""
    path = str(path)
    key = video_key(path)
    info = probe_stream(path)
    grid = TimeGrid(info.duration, config.fps, config.window, config.stride)
    stats.info, stats.grid = info, grid
    bar = _Bar(info.duration, Path(path).name, progress)
    try:
        if backend.kind == "clip":
            yield from _clip_windows(path, key, info, grid, backend, config, cache, stats, bar)
        else:
            yield from _frame_windows(path, key, info, grid, backend, config, cache, stats, bar)
    finally:
        bar.close()


def _note_skip(stats: PassStats, skip: Skipped) -> None:
    if skip.reason == ENDS_EARLY:
        stats.end = skip.start if stats.end is None else min(stats.end, skip.start)
    line = skip.warning
    if line not in stats.warnings:
        log.warning("%s", line)
        stats.warnings.append(line)


# -- frame models -----------------------------------------------------------------------------


def _frame_chunk_key(key: str, fps: float, size: int, chunk: int) -> str:
    return stable_hash({"video": key, "timeline": "frames", "fps": str(exact(fps)), "size": size, "chunk": chunk}, 32)


def _frame_windows(path, key, info, grid, backend, config, cache, stats, bar):
    size = chunk_samples(config.fps, config.chunk_seconds)
    n = grid.n_samples
    n_chunks = math.ceil(n / size)
    keys = [_frame_chunk_key(key, config.fps, size, c) for c in range(n_chunks)]
    missing = [c for c in range(n_chunks) if cache is None or cache.load(keys[c]) is None]
    stats.chunks_cached = n_chunks - len(missing)
    wanted = [(k, grid.sample_time(k)) for c in missing for k in range(c * size, min(n, (c + 1) * size))]
    rows: dict[int, torch.Tensor] = {}  # sample -> embedding row, for windows not yet done
    pending: dict[int, dict[str, list]] = {c: {"k": [], "pooled": [], "embeds": [], "skips": []} for c in missing}
    next_window = 0

    def windows_until(resolved: int) -> Iterator[tuple[int, torch.Tensor | None]]:
        nonlocal next_window
        done = grid.windows_done_by(resolved)
        while next_window < done:
            samples = grid.window_samples(next_window)
            present = [rows[k] for k in samples if k in rows]
            yield next_window, backend.video_embedding(torch.stack(present)) if present else None
            next_window += 1
            bar.to(grid.bounds(next_window - 1)[1])
        if next_window < grid.n_windows:
            first = grid.window_samples(next_window).start
            for k in [k for k in rows if k < first]:
                del rows[k]

    def take_chunk(c: int, entry: CachedVideo) -> None:
        for k, row in zip(entry.indices.tolist(), torch.from_numpy(entry.embeds)):
            rows[int(k)] = row
        for skip in _skips_from(entry.info):
            _note_skip(stats, skip)

    def last_of(c: int) -> int:
        return min(n, (c + 1) * size) - 1

    chunk = 0

    def settle(resolved: int) -> Iterator[tuple[int, torch.Tensor | None]]:
        """Take every chunk complete once samples up to `resolved` are settled, in order."""
        nonlocal chunk
        while chunk < n_chunks:
            if chunk in pending:
                if resolved < last_of(chunk):
                    return
                entry = _store_frames(cache, keys[chunk], pending.pop(chunk), path, chunk, size)
                stats.chunks_encoded += 1
            else:  # cached: read when reached (one chunk at a time is held)
                entry = cache.load(keys[chunk]) if cache is not None else None
                if entry is None:
                    raise RuntimeError(f"the cache entry of chunk {chunk} vanished during the run")
            take_chunk(chunk, entry)
            chunk += 1
            yield from windows_until(last_of(chunk - 1))

    producer = _Producer(path, wanted, info, backend, config.model.batch_size, stats) if wanted else None
    try:
        yield from settle(-1)
        for indices, pixels, skips, resolved in producer.batches() if producer else ():
            if pixels is not None:
                features = backend.encode_pixels(pixels)
                stats.frames_encoded += len(indices)
                for position, k in enumerate(indices):
                    part = pending[k // size]
                    part["k"].append(k)
                    part["pooled"].append(features.pooled[position])
                    part["embeds"].append(features.embeds[position])
            for skip in skips:
                pending[skip.first // size]["skips"].append(skip)
                _note_skip(stats, skip)
            yield from settle(resolved)
        yield from settle(n)  # the decoder is done: every sample is settled
        yield from windows_until(n - 1)
    finally:
        if producer is not None:
            producer.close()
            stats.decoded += producer.decoder_stats.get("decoded", 0)
            stats.seeks += producer.decoder_stats.get("seeks", 0)


def _store_frames(cache, key, part, path, chunk, size) -> CachedVideo:
    embeds = torch.stack(part["embeds"]).numpy() if part["embeds"] else np.zeros((0, 0), np.float32)
    pooled = torch.stack(part["pooled"]).numpy() if part["pooled"] else np.zeros((0, 0), np.float32)
    entry = CachedVideo(
        indices=np.asarray(part["k"], dtype=np.int64),
        pooled=pooled,
        embeds=embeds,
        info={"path": str(Path(path).resolve()), "chunk": str(chunk), "samples": str(size), "skipped": _skips_json(part["skips"])},
    )
    if cache is not None:
        cache.store(key, entry)
    return entry
# -- clip models ------------------------------------------------------------------------------


def _clip_chunk_key(key: str, config: TimelineConfig, frames: int, size: int, chunk: int) -> str:
    return stable_hash(
        {
            "video": key,
            "timeline": "clips",
            "fps": str(exact(config.fps)),
            "window": str(exact(config.window)),
            "stride": str(exact(config.stride)),
            "clip_frames": frames,
            "size": size,
            "chunk": chunk,
        },
        32,
    )


def clip_positions(available: int, frames: int) -> list[int]:
    """`frames` positions spread evenly over `available` samples (repeats when fewer)."""
    return [((2 * j + 1) * available) // (2 * frames) for j in range(frames)]


def _clip_windows(path, key, info, grid, backend, config, cache, stats, bar):
    frames = clip_frames(backend)
    size = max(1, round(exact(config.chunk_seconds) / exact(config.stride)))  # windows per chunk
    n_windows = grid.n_windows
    n_chunks = math.ceil(n_windows / size)
    keys = [_clip_chunk_key(key, config, frames, size, c) for c in range(n_chunks)]
    missing = [c for c in range(n_chunks) if cache is None or cache.load(keys[c]) is None]
    stats.chunks_cached = n_chunks - len(missing)
    if grid.n_windows and grid.window_samples(0).stop - grid.window_samples(0).start < frames:
        stats.warnings.append(
            f"a {config.window:g} s window holds {len(grid.window_samples(0))} frames at {config.fps:g} frames/s, "
            f"fewer than the {frames} this model takes: frames are repeated (raise --fps to {frames / config.window:g})"
        )
    wanted_set: set[int] = set()
    for c in missing:
        for i in range(c * size, min(n_windows, (c + 1) * size)):
            wanted_set.update(grid.window_samples(i))
    wanted = [(k, grid.sample_time(k)) for k in sorted(wanted_set)]
    pixels_of: dict[int, torch.Tensor] = {}  # sample -> preprocessed frame (3, S, S)
    settled = -1
    next_window = 0
    chunk_rows: dict[int, dict[str, list]] = {c: {"i": [], "pooled": [], "embeds": [], "skips": []} for c in missing}
    queued: list[tuple[int, torch.Tensor]] = []  # (window, clip pixels) waiting for the model
    per_call = max(1, config.model.batch_size // frames)
    results: dict[int, torch.Tensor | None] = {}  # window -> its row, until handed out

    def encode_queued() -> None:
        nonlocal queued
        if not queued:
            return
        features = backend.encode_pixels(torch.stack([clip for _, clip in queued]))
        stats.frames_encoded += len(queued) * frames
        for position, (i, _) in enumerate(queued):
            part = chunk_rows[i // size]
            part["i"].append(i)
            part["pooled"].append(features.pooled[position])
            part["embeds"].append(features.embeds[position])
            results[i] = features.embeds[position]
        queued = []

    def assemble(upto: int) -> None:
        """Queue the clips of the windows (of missing chunks) whose samples are settled."""
        nonlocal next_window
        done = grid.windows_done_by(upto)
        while next_window < done:
            i = next_window
            next_window += 1
            if i // size not in chunk_rows:
                continue
            present = [k for k in grid.window_samples(i) if k in pixels_of]
            if not present:
                results[i] = None
                continue
            clip = torch.stack([pixels_of[present[p]] for p in clip_positions(len(present), frames)])
            queued.append((i, clip))
            if len(queued) >= per_call:
                encode_queued()
        if next_window < n_windows:
            first = grid.window_samples(next_window).start
            for k in [k for k in pixels_of if k < first]:
                del pixels_of[k]

    handed = 0

    def hand_out(final: bool = False) -> Iterator[tuple[int, torch.Tensor | None]]:
        """Yield windows in order, chunk by chunk, storing finished chunks on the way."""
        nonlocal handed
        while handed < n_chunks:
            c = handed
            windows = range(c * size, min(n_windows, (c + 1) * size))
            if c in chunk_rows:
                if not final and any(i not in results for i in windows):
                    return
                part = chunk_rows.pop(c)
                entry = CachedVideo(
                    indices=np.asarray(part["i"], dtype=np.int64),
                    pooled=torch.stack(part["pooled"]).numpy() if part["pooled"] else np.zeros((0, 0), np.float32),
                    embeds=torch.stack(part["embeds"]).numpy() if part["embeds"] else np.zeros((0, 0), np.float32),
                    info={"path": str(Path(path).resolve()), "chunk": str(c), "clip_frames": str(frames), "skipped": _skips_json(part["skips"])},
                )
                if cache is not None:
                    cache.store(keys[c], entry)
                stats.chunks_encoded += 1
            else:
                entry = cache.load(keys[c]) if cache is not None else None
                if entry is None:
                    raise RuntimeError(f"the cache entry of chunk {c} vanished during the run")
                for skip in _skips_from(entry.info):
                    _note_skip(stats, skip)
            rows = {int(i): torch.from_numpy(row) for i, row in zip(entry.indices.tolist(), entry.embeds)}
            for i in windows:
                results.pop(i, None)
                yield i, backend.video_embedding(rows[i][None]) if i in rows else None
            bar.to(grid.bounds(windows[-1])[1] if len(windows) else 0)
            handed += 1

    producer = _Producer(path, wanted, info, backend, config.model.batch_size, stats) if wanted else None
    try:
        yield from hand_out()
        for indices, pixels, skips, resolved in producer.batches() if producer else ():
            for position, k in enumerate(indices):
                pixels_of[k] = pixels[position]
            for skip in skips:
                _note_skip(stats, skip)
                for i in range(grid.windows_done_by(skip.first - 1), grid.windows_done_by(skip.last) + 1):
                    if i // size in chunk_rows and skip not in chunk_rows[i // size]["skips"]:
                        chunk_rows[i // size]["skips"].append(skip)
                        break
            settled = resolved
            assemble(settled)
            yield from hand_out()
        assemble(grid.n_samples)
        encode_queued()
        yield from hand_out(final=True)
    finally:
        if producer is not None:
            producer.close()
            stats.decoded += producer.decoder_stats.get("decoded", 0)
            stats.seeks += producer.decoder_stats.get("seeks", 0)
