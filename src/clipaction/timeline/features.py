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

Decoding and preprocessing run in one thread ahead of the model (one batch ahead), chunks
are written as they complete (an interrupted run resumes at the first missing chunk, seeking
there), and only the frames of the current window and batch are held.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from clipaction.config import stable_hash
from clipaction.errors import ConfigError
from clipaction.features.cache import CachedVideo, FeatureCache, video_key
from clipaction.models.base import Backend, as_clip
from clipaction.timeline.config import TimelineConfig
from clipaction.timeline.grid import TimeGrid, chunk_samples, exact
from clipaction.video.timed import Sample, Skipped, StreamInfo, frames_at, probe_stream

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
        return [
            Skipped(int(a), int(b), float(c), float(d), str(e))
            for a, b, c, d, e in json.loads(info.get("skipped", "[]"))
        ]
    except (ValueError, TypeError):
        return []


@dataclass
class _Batch:
    """Decoder events not yet handed over: (H, W, 3) uint8 `frames` of samples `indices`, the
    skips, and `resolved`, the highest sample number settled so far."""

    frames: list[np.ndarray] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    skips: list[Skipped] = field(default_factory=list)
    resolved: int = -1

    def add(self, event: Sample | Skipped) -> None:
        if isinstance(event, Sample):
            self.frames.append(event.frame)
            self.indices.append(event.index)
            self.resolved = event.index
        else:
            self.skips.append(event)
            self.resolved = event.last


class _Producer:
    """Decodes the wanted samples in a thread and hands over (samples, pixels, skips, resolved)
    batches through a bounded queue; `resolved` is the highest sample number settled so far."""

    _END = object()

    def __init__(
        self,
        path: str,
        wanted: list[tuple[int, float]],
        info: StreamInfo,
        backend: Backend,
        batch: int,
        stats: PassStats,
    ) -> None:
        # One batch waiting while the next is decoded is enough to keep the model busy, and a
        # batch is batch_size preprocessed frames (32 x 0.6 MB for ViT-B/32): a deeper queue
        # only raised the peak of every video long enough to fill it (1 vs 10 minutes, 320x240,
        # OpenVINO int8: 953 -> 1011 MB with 3; 945 -> 970 MB with 1; same speed).
        self.queue: queue.Queue = queue.Queue(maxsize=1)
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
        pending = _Batch()
        try:
            for event in frames_at(path, wanted, info=info, stats=self.decoder_stats):
                if self.stop.is_set():
                    return
                pending.add(event)
                if len(pending.frames) >= batch and not self._flush(pending, backend):
                    return
            if (pending.frames or pending.skips) and not self._flush(pending, backend):
                return
            self._put(self._END)
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(error)

    def _flush(self, pending: _Batch, backend: Backend) -> bool:
        """Hand over the pending frames, preprocessed ((N, 3, S, S), or None when none), and
        skips; False when the consumer has stopped."""
        pixels = backend.preprocess(np.stack(pending.frames)) if pending.frames else None
        item = (pending.indices, pixels, pending.skips, pending.resolved)
        pending.frames, pending.indices, pending.skips = [], [], []
        return self._put(item)

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


@dataclass
class _ChunkRows:
    """The rows of one chunk encoded in this pass: `indices` (samples or windows), their `pooled`
    (P,) and `embeds` (D,) rows from `Backend.encode_pixels`, and the skips that fell in it."""

    indices: list[int] = field(default_factory=list)
    pooled: list[torch.Tensor] = field(default_factory=list)
    embeds: list[torch.Tensor] = field(default_factory=list)
    skips: list[Skipped] = field(default_factory=list)

    def add(self, index: int, pooled: torch.Tensor, embeds: torch.Tensor) -> None:
        self.indices.append(index)
        self.pooled.append(pooled)
        self.embeds.append(embeds)

    def entry(self, info: dict[str, str]) -> CachedVideo:
        """A cache entry: indices (N,) int64, pooled (N, P) and embeds (N, D) float, or (0, 0)."""
        return CachedVideo(
            indices=np.asarray(self.indices, dtype=np.int64),
            pooled=torch.stack(self.pooled).numpy() if self.pooled else np.zeros((0, 0), np.float32),
            embeds=torch.stack(self.embeds).numpy() if self.embeds else np.zeros((0, 0), np.float32),
            info=info,
        )


def _close(producer: _Producer | None, stats: PassStats) -> None:
    """Stop the decoding thread and count its work into `stats`."""
    if producer is not None:
        producer.close()
        stats.decoded += producer.decoder_stats.get("decoded", 0)
        stats.seeks += producer.decoder_stats.get("seeks", 0)


# -- frame models -----------------------------------------------------------------------------


def _frame_chunk_key(key: str, fps: float, size: int, chunk: int) -> str:
    return stable_hash({"video": key, "timeline": "frames", "fps": str(exact(fps)), "size": size, "chunk": chunk}, 32)


class _FramePass:
    """The state of one frame-model pass over a video, between decoder batches.

    Every sampled frame is encoded once; its embedding row (D,) lands in its chunk (`size`
    samples), and a chunk, once every sample of it is settled, is stored in the cache and its
    rows taken for the windows. Windows are handed out in order as soon as the chunks they
    cover are taken; rows no later window covers are dropped.
    """

    def __init__(
        self,
        path: str,
        key: str,
        grid: TimeGrid,
        backend: Backend,
        config: TimelineConfig,
        cache: FeatureCache | None,
        stats: PassStats,
        bar: _Bar,
    ) -> None:
        self.path, self.grid, self.backend, self.cache, self.stats, self.bar = path, grid, backend, cache, stats, bar
        self.size = chunk_samples(config.fps, config.chunk_seconds)
        self.n = grid.n_samples
        self.n_chunks = math.ceil(self.n / self.size)
        self.keys = [_frame_chunk_key(key, config.fps, self.size, c) for c in range(self.n_chunks)]
        missing = [c for c in range(self.n_chunks) if cache is None or cache.load(self.keys[c]) is None]
        stats.chunks_cached = self.n_chunks - len(missing)
        self.wanted = [
            (k, grid.sample_time(k)) for c in missing for k in range(c * self.size, min(self.n, (c + 1) * self.size))
        ]
        self.rows: dict[int, torch.Tensor] = {}  # sample -> embedding row, for windows not yet done
        self.pending: dict[int, _ChunkRows] = {c: _ChunkRows() for c in missing}
        self.next_window = 0  # the first window not yet handed out
        self.chunk = 0  # the first chunk not yet taken

    def _last_of(self, c: int) -> int:
        return min(self.n, (c + 1) * self.size) - 1

    def encode(self, indices: list[int], pixels: torch.Tensor | None, skips: list[Skipped]) -> None:
        """Encode a decoder batch: `pixels` (len(indices), 3, S, S) preprocessed frames of
        samples `indices` (None when empty); rows and skips go to their chunks."""
        if pixels is not None:
            features = self.backend.encode_pixels(pixels)
            self.stats.frames_encoded += len(indices)
            for position, k in enumerate(indices):
                self.pending[k // self.size].add(k, features.pooled[position], features.embeds[position])
        for skip in skips:
            self.pending[skip.first // self.size].skips.append(skip)
            _note_skip(self.stats, skip)

    def windows_until(self, resolved: int) -> Iterator[tuple[int, torch.Tensor | None]]:
        """Yield (window, feature (1, D) or None) for the windows whose samples up to
        `resolved` are settled, then drop the rows no later window covers."""
        grid = self.grid
        done = grid.windows_done_by(resolved)
        while self.next_window < done:
            samples = grid.window_samples(self.next_window)
            present = [self.rows[k] for k in samples if k in self.rows]
            yield self.next_window, self.backend.video_embedding(torch.stack(present)) if present else None
            self.next_window += 1
            self.bar.to(grid.bounds(self.next_window - 1)[1])
        if self.next_window < grid.n_windows:
            first = grid.window_samples(self.next_window).start
            for k in [k for k in self.rows if k < first]:
                del self.rows[k]

    def settle(self, resolved: int) -> Iterator[tuple[int, torch.Tensor | None]]:
        """Take every chunk complete once samples up to `resolved` are settled, in order, and
        yield the windows that completes."""
        while self.chunk < self.n_chunks:
            c = self.chunk
            if c in self.pending:
                if resolved < self._last_of(c):
                    return
                entry = _store_frames(self.cache, self.keys[c], self.pending.pop(c), self.path, c, self.size)
                self.stats.chunks_encoded += 1
            else:  # cached: read when reached (one chunk at a time is held)
                entry = self.cache.load(self.keys[c]) if self.cache is not None else None
                if entry is None:
                    raise RuntimeError(f"the cache entry of chunk {c} vanished during the run")
            self._take_chunk(entry)
            self.chunk += 1
            yield from self.windows_until(self._last_of(c))

    def _take_chunk(self, entry: CachedVideo) -> None:
        for k, row in zip(entry.indices.tolist(), torch.from_numpy(entry.embeds)):
            self.rows[int(k)] = row
        for skip in _skips_from(entry.info):
            _note_skip(self.stats, skip)


def _frame_windows(
    path: str,
    key: str,
    info: StreamInfo,
    grid: TimeGrid,
    backend: Backend,
    config: TimelineConfig,
    cache: FeatureCache | None,
    stats: PassStats,
    bar: _Bar,
) -> Iterator[tuple[int, torch.Tensor | None]]:
    """`window_features` for a frame model: a window's feature pools its frames' rows."""
    state = _FramePass(path, key, grid, backend, config, cache, stats, bar)
    producer = _Producer(path, state.wanted, info, backend, config.model.batch_size, stats) if state.wanted else None
    try:
        yield from state.settle(-1)
        for indices, pixels, skips, resolved in producer.batches() if producer else ():
            state.encode(indices, pixels, skips)
            yield from state.settle(resolved)
        yield from state.settle(state.n)  # the decoder is done: every sample is settled
        yield from state.windows_until(state.n - 1)
    finally:
        _close(producer, stats)


def _store_frames(
    cache: FeatureCache | None, key: str, part: _ChunkRows, path: str, chunk: int, size: int
) -> CachedVideo:
    entry = part.entry(
        {
            "path": str(Path(path).resolve()),
            "chunk": str(chunk),
            "samples": str(size),
            "skipped": _skips_json(part.skips),
        }
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


class _ClipPass:
    """The state of one clip-model pass over a video, between decoder batches.

    Windows are assembled into clips once their samples are settled, queued until
    `per_call` clips fill a model call (`per_call * clip_frames` frames, the batch size), and
    handed out in window order, chunk by chunk: a chunk of `size` windows is stored in the cache
    once every window of it has a row. Holds the preprocessed frames (3, S, S) of the windows
    not yet assembled and the rows (D,) of the chunks not yet handed out.
    """

    def __init__(
        self,
        path: str,
        key: str,
        grid: TimeGrid,
        backend: Backend,
        config: TimelineConfig,
        cache: FeatureCache | None,
        stats: PassStats,
        bar: _Bar,
    ) -> None:
        self.path, self.grid, self.backend, self.cache, self.stats, self.bar = path, grid, backend, cache, stats, bar
        self.frames = clip_frames(backend)
        self.size = max(1, round(exact(config.chunk_seconds) / exact(config.stride)))  # windows per chunk
        self.n_windows = grid.n_windows
        self.n_chunks = math.ceil(self.n_windows / self.size)
        self.keys = [_clip_chunk_key(key, config, self.frames, self.size, c) for c in range(self.n_chunks)]
        missing = [c for c in range(self.n_chunks) if cache is None or cache.load(self.keys[c]) is None]
        stats.chunks_cached = self.n_chunks - len(missing)
        if grid.n_windows and grid.window_samples(0).stop - grid.window_samples(0).start < self.frames:
            stats.warnings.append(
                f"a {config.window:g} s window holds {len(grid.window_samples(0))} frames at {config.fps:g} frames/s, "
                f"fewer than the {self.frames} this model takes: frames are repeated (raise --fps to {self.frames / config.window:g})"
            )
        self.wanted = self._wanted(missing)
        self.per_call = max(1, config.model.batch_size // self.frames)
        self.pixels_of: dict[int, torch.Tensor] = {}  # sample -> preprocessed frame (3, S, S)
        self.next_window = 0  # the first window not yet assembled
        self.chunk_rows: dict[int, _ChunkRows] = {c: _ChunkRows() for c in missing}
        self.queued: list[tuple[int, torch.Tensor]] = []  # (window, clip pixels) waiting for the model
        self.results: dict[int, torch.Tensor | None] = {}  # window -> its row, until handed out
        self.handed = 0  # chunks handed out

    def _windows_of(self, chunk: int) -> range:
        return range(chunk * self.size, min(self.n_windows, (chunk + 1) * self.size))

    def _wanted(self, missing: list[int]) -> list[tuple[int, float]]:
        """(sample, time in seconds) of every sample a window of a `missing` chunk covers, sorted."""
        wanted: set[int] = set()
        for c in missing:
            for i in self._windows_of(c):
                wanted.update(self.grid.window_samples(i))
        return [(k, self.grid.sample_time(k)) for k in sorted(wanted)]

    def take(self, indices: list[int], pixels: torch.Tensor | None, skips: list[Skipped]) -> None:
        """Hold a decoder batch: `pixels` (len(indices), 3, S, S) preprocessed frames of samples
        `indices` (None when empty); each skip is noted once, in the first missing chunk it touches."""
        for position, k in enumerate(indices):
            self.pixels_of[k] = pixels[position]
        for skip in skips:
            _note_skip(self.stats, skip)
            for i in range(self.grid.windows_done_by(skip.first - 1), self.grid.windows_done_by(skip.last) + 1):
                part = self.chunk_rows.get(i // self.size)
                if part is not None and skip not in part.skips:
                    part.skips.append(skip)
                    break

    def encode_queued(self) -> None:
        """Encode the queued clips (one model call: (clips, clip_frames, 3, S, S)) into rows."""
        if not self.queued:
            return
        features = self.backend.encode_pixels(torch.stack([clip for _, clip in self.queued]))
        self.stats.frames_encoded += len(self.queued) * self.frames
        for position, (i, _) in enumerate(self.queued):
            self.chunk_rows[i // self.size].add(i, features.pooled[position], features.embeds[position])
            self.results[i] = features.embeds[position]
        self.queued = []

    def assemble(self, upto: int) -> None:
        """Queue the clips of the windows (of missing chunks) whose samples up to `upto` are
        settled, and drop the frames no later window covers."""
        done = self.grid.windows_done_by(upto)
        while self.next_window < done:
            i = self.next_window
            self.next_window += 1
            if i // self.size not in self.chunk_rows:
                continue
            present = [k for k in self.grid.window_samples(i) if k in self.pixels_of]
            if not present:
                self.results[i] = None
                continue
            clip = torch.stack([self.pixels_of[present[p]] for p in clip_positions(len(present), self.frames)])
            self.queued.append((i, clip))
            if len(self.queued) >= self.per_call:
                self.encode_queued()
        if self.next_window < self.n_windows:
            first = self.grid.window_samples(self.next_window).start
            for k in [k for k in self.pixels_of if k < first]:
                del self.pixels_of[k]

    def hand_out(self, final: bool = False) -> Iterator[tuple[int, torch.Tensor | None]]:
        """Yield (window, feature (1, D) or None) in order, chunk by chunk, storing finished
        chunks on the way; stops at the first chunk not finished unless `final`."""
        while self.handed < self.n_chunks:
            c = self.handed
            windows = self._windows_of(c)
            if c in self.chunk_rows and not final and any(i not in self.results for i in windows):
                return
            entry = self._chunk_entry(c)
            rows = {int(i): torch.from_numpy(row) for i, row in zip(entry.indices.tolist(), entry.embeds)}
            for i in windows:
                self.results.pop(i, None)
                yield i, self.backend.video_embedding(rows[i][None]) if i in rows else None
            self.bar.to(self.grid.bounds(windows[-1])[1] if len(windows) else 0)
            self.handed += 1

    def _chunk_entry(self, c: int) -> CachedVideo:
        """Chunk `c`'s rows: stored now when encoded in this pass, else read from the cache."""
        if c in self.chunk_rows:
            part = self.chunk_rows.pop(c)
            entry = part.entry(
                {
                    "path": str(Path(self.path).resolve()),
                    "chunk": str(c),
                    "clip_frames": str(self.frames),
                    "skipped": _skips_json(part.skips),
                }
            )
            if self.cache is not None:
                self.cache.store(self.keys[c], entry)
            self.stats.chunks_encoded += 1
            return entry
        entry = self.cache.load(self.keys[c]) if self.cache is not None else None
        if entry is None:
            raise RuntimeError(f"the cache entry of chunk {c} vanished during the run")
        for skip in _skips_from(entry.info):
            _note_skip(self.stats, skip)
        return entry


def _clip_windows(
    path: str,
    key: str,
    info: StreamInfo,
    grid: TimeGrid,
    backend: Backend,
    config: TimelineConfig,
    cache: FeatureCache | None,
    stats: PassStats,
    bar: _Bar,
) -> Iterator[tuple[int, torch.Tensor | None]]:
    """`window_features` for a clip model: one clip of `clip_frames` frames per window."""
    state = _ClipPass(path, key, grid, backend, config, cache, stats, bar)
    producer = _Producer(path, state.wanted, info, backend, config.model.batch_size, stats) if state.wanted else None
    try:
        yield from state.hand_out()
        for indices, pixels, skips, resolved in producer.batches() if producer else ():
            state.take(indices, pixels, skips)
            state.assemble(resolved)
            yield from state.hand_out()
        state.assemble(grid.n_samples)
        state.encode_queued()
        yield from state.hand_out(final=True)
    finally:
        _close(producer, stats)
