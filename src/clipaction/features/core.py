"""The extraction core every path shares: the frame path (`features.extract`), the clip path
(`features.clips`) and the Ray engine (`features.engines.ray_engine`) all find a video in the
cache with `check_video`, decode it with `decode_video` (locally through `decoded_ahead`),
record failures and warnings with `record_failure` / `record_warnings`, and work out the
entries to write with `frame_entry` / `clip_entries`. So whichever engine fills a cache, it
writes the same entries under the same keys.

Cache layout (the keys and contents never change between versions: caches are portable):

- frame models: `<video_key>` holds every frame ever encoded for the video, keyed by frame
  index (`merge_frames`), `info` the decoder's metadata (`decode_video`);
- clip models: `<video_key>` holds the *meta entry* (`meta_entry`: no rows, only `info`), and
  `clip_key(video_key, indices, frames, order)` the clip entry, one row per clip.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from clipaction.config import CropPosition, SamplerConfig, stable_hash
from clipaction.errors import ConfigError
from clipaction.features.cache import CachedVideo, FeatureCache, video_key
from clipaction.models.base import Backend, as_clip
from clipaction.video.decode import VideoDecodeError, partial_warnings, read_sampled_frames
from clipaction.video.frames import square_crop
from clipaction.video.sampling import VideoMeta, multi_clip_groups, sample_indices, sampler_spec

if TYPE_CHECKING:  # torch is imported where a model runs: a fully cached run needs none of it
    import torch

log = logging.getLogger("clipaction.features.extract")  # the name warnings always came under


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


def record_warnings(result: Extraction, path: str, warnings: Sequence[str]) -> None:
    """Log and list the partial-decoding `warnings` of a video that was used."""
    for warning in warnings:
        log.warning("%s decoded only partly: %s", path, warning)
        result.warnings.append(VideoWarning(path, warning))


def record_failure(result: Extraction, bar: tqdm, path: str, reason: str) -> None:
    """Log and list a video that could not be used (and count it done on the progress bar)."""
    log.warning("skipped %s: %s", path, reason)
    result.failures.append(Failure(path, reason))
    bar.update(1)


def one_line(error: BaseException) -> str:
    """An error as the one line a failure records."""
    if isinstance(error, VideoDecodeError):
        return error.reason  # its str() starts with the path, which the failure names already
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def unreadable(error: OSError) -> str:
    """The failure of a file that cannot even be hashed."""
    return f"cannot read file: {error.strerror or error}"


def check_crop_space(cache: FeatureCache | None, crop: CropPosition | None) -> None:
    """Refuse to store features of one crop in another crop's space (a caller's bug)."""
    if cache is not None and cache.space.get("crop") != crop:
        raise ValueError(f"the cache's space is for crop {cache.space.get('crop')!r}, the extraction crops {crop!r}")


# --- entries ----------------------------------------------------------------------------------


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


def info_meta(info: dict[str, str]) -> VideoMeta:
    """The video metadata an entry's `info` records (what decoding established)."""
    return VideoMeta(int(info["num_frames"]), float(info["fps"]), float(info["duration"]))


def plain_info(entry: CachedVideo | None) -> dict[str, str]:
    """An entry's `info` without the checksum the cache adds ({} for no entry)."""
    return {} if entry is None else {k: v for k, v in entry.info.items() if k != "sha256"}


def select_frames(entry: CachedVideo, indices: Sequence[int]) -> CachedVideo | None:
    """The rows of `entry` for `indices` (in that order, repeats allowed), or None if any is absent."""
    rows = {int(index): row for row, index in enumerate(entry.indices)}
    if any(int(index) not in rows for index in indices):
        return None
    take = [rows[int(index)] for index in indices]
    return CachedVideo(
        indices=np.asarray(indices, dtype=np.int64),
        pooled=entry.pooled[take],
        embeds=entry.embeds[take],
        info=entry.info,
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


def meta_entry(info: dict[str, str]) -> CachedVideo:
    """A clip model's meta entry: no rows, only what sampling needs (`info`)."""
    empty = np.zeros((0, 0), np.float32)
    return CachedVideo(indices=np.zeros(0, np.int64), pooled=empty, embeds=empty, info=info)


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


def clip_order(meta: VideoMeta, sampler: SamplerConfig, indices: Sequence[int]) -> list[int]:
    """The sampler's frame indices clip after clip, as the clips are encoded. Multi-clip: each
    clip's own frames (its windows may overlap, and then the sorted indices cut into runs of
    `frames` would mix frames of two clips); any other sampler: `indices` as sampled."""
    if sampler.name == "multi-clip" and sampler.clips > 1:
        groups = multi_clip_groups(meta, frames=sampler.frames, window=sampler.window, clips=sampler.clips)
        return [index for group in groups for index in group]
    return [int(i) for i in indices]


def clip_key(key: str, indices: Sequence[int], frames: int, order: Sequence[int] | None = None) -> str:
    """The clip entry's key: the video's key, the sampler's indices and the clip length, and
    the clips' frame order where it is not the sorted indices (overlapping multi-clip windows;
    entries of other samplers keep the key they always had)."""
    data: dict = {"video": key, "indices": [int(i) for i in indices], "clip_frames": int(frames)}
    if order is not None and [int(i) for i in order] != data["indices"]:
        data["order"] = [int(i) for i in order]
    return stable_hash(data, 32)


def frame_entry(
    old: CachedVideo | None, new_indices: np.ndarray, pooled: np.ndarray, embeds: np.ndarray, info: dict[str, str]
) -> tuple[CachedVideo, bool]:
    """A frame model's entry after encoding `new_indices` (rows `pooled`, `embeds`) of a video
    whose entry was `old`, and whether it must be written (new frames, or new metadata)."""
    if len(new_indices):
        return merge_frames(old, CachedVideo(new_indices, pooled, embeds, info)), True
    if old is None:
        raise RuntimeError("nothing decoded and nothing cached")
    return replace(old, info=info), plain_info(old) != info  # every frame cached; the metadata may be new


def clip_entries(
    key: str, old_info: dict[str, str] | None, indices: np.ndarray, order: Sequence[int] | None, frames: int,
    pooled: np.ndarray, embeds: np.ndarray, info: dict[str, str],
) -> list[tuple[str, CachedVideo]]:  # fmt: skip
    """What a clip model writes for a video: its meta entry (unless `old_info`, the meta entry
    the cache holds, already says `info`) and the clip entry, as (key, entry); the clip entry last."""
    entry = CachedVideo(indices, pooled, embeds, {**info, "clip_frames": str(frames)})
    writes = [] if old_info == info else [(key, meta_entry(info))]
    return writes + [(clip_key(key, indices, frames, order), entry)]


# --- the cache check --------------------------------------------------------------------------


@dataclass
class Lookup:
    """What the cache holds for one video under a sampler: `entry`, the video's features when
    every sampled frame (or the clip) is there, with `warnings` then the video's
    partial-decoding warnings; `stored`, what the video's own key holds (frame models: the
    frames encoded so far; clip models: the meta entry)."""

    entry: CachedVideo | None = None
    stored: CachedVideo | None = None
    warnings: tuple[str, ...] = ()

    @property
    def hit(self) -> bool:
        return self.entry is not None

    @property
    def have(self) -> list[int]:
        """The frame indices already encoded (frame models; none for clip models)."""
        return [] if self.stored is None else [int(i) for i in self.stored.indices]


def lookup(cache: FeatureCache | None, key: str, sampler: SamplerConfig, backend: Backend) -> Lookup:
    """The check every path makes before decoding a video (the entry's checksum included)."""
    stored = cache.load(key) if cache is not None else None
    meta = stored_meta(stored) if stored is not None else None
    if meta is None:
        return Lookup(None, stored)
    if backend.kind == "clip":
        indices = sample_indices(meta, sampler)
        clip = cache.load(clip_key(key, indices, clip_length(backend, sampler), clip_order(meta, sampler, indices)))
        if clip is None or [int(i) for i in clip.indices] != [int(i) for i in indices]:
            return Lookup(None, stored)
        return Lookup(clip, stored, tuple(partial_warnings(meta, sampler, indices, stored_declared(stored))))
    # An entry without the declared length predates it: decoding again (no model) adds it.
    if "declared_duration" in stored.info:
        indices = sample_indices(meta, sampler)
        hit = select_frames(stored, indices)
        if hit is not None:
            return Lookup(hit, stored, tuple(partial_warnings(meta, sampler, indices, stored_declared(stored))))
    return Lookup(None, stored)


def complete(
    cache: FeatureCache, key: str, indices: Sequence[int], backend: Backend, clip_frames: int = 0,
    order: Sequence[int] | None = None,
) -> bool:  # fmt: skip
    """Whether the cache now holds every sampled frame (or the clip, its frames in `order`) of
    this video, as a hit needs: a retried batch or another shard wrote it since the driver
    looked, and it is not written again."""
    if backend.kind == "clip":
        clip = cache.load(clip_key(key, indices, clip_frames, order))
        return clip is not None and [int(i) for i in clip.indices] == [int(i) for i in indices]
    entry = cache.load(key)
    return entry is not None and "declared_duration" in entry.info and select_frames(entry, indices) is not None


def record_hit(result: Extraction, path: str, found: Lookup, keep: bool) -> None:
    """Count a video found whole in the cache (its features kept with `keep`)."""
    if keep and found.entry is not None:
        result.features[path] = found.entry
    record_warnings(result, path, found.warnings)
    result.n_cached += 1


def find_cached(
    paths: Sequence[str | Path], backend: Backend, sampler: SamplerConfig, cache: FeatureCache | None,
    result: Extraction, bar: tqdm, keep: bool,
) -> list[tuple[str, str, CachedVideo | None]]:  # fmt: skip
    """The local paths' first step (frame and clip models alike): hash each video, count (and keep) those the cache holds
    whole, fail those that cannot be read; returns the rest as (path, key, what its key holds)."""
    todo: list[tuple[str, str, CachedVideo | None]] = []
    for raw_path in paths:
        path = str(raw_path)
        try:
            key = video_key(path)
        except OSError as error:
            record_failure(result, bar, path, unreadable(error))
            continue
        found = lookup(cache, key, sampler, backend)
        if found.hit:
            record_hit(result, path, found, keep)
            bar.update(1)
        else:
            todo.append((path, key, found.stored))
    return todo


# --- decoding ---------------------------------------------------------------------------------


def decode_video(
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
    positions = list(new_positions.values())
    # Every sampled frame new and distinct (the usual case): the decoder's array as it is, not
    # a copy of it (8 frames: about 1 ms of a video's 20).
    frames = sampled.frames if positions == list(range(len(sampled.frames))) else sampled.frames[positions]
    if crop is not None and len(frames):
        frames = square_crop(frames, crop)
    pixels = backend.preprocess(frames) if len(frames) else _no_pixels()
    return (
        np.asarray(sampled.indices, dtype=np.int64),
        np.asarray(list(new_positions), dtype=np.int64),
        info,
        pixels,
        sampled.warnings,
    )


def _no_pixels() -> torch.Tensor:
    import torch

    return torch.empty(0)


#: The errors that make a video a failure (not the run's): decoding, I/O, bad contents.
DECODE_ERRORS = (VideoDecodeError, OSError, ValueError, RuntimeError)


def clip_pixels(pixels: torch.Tensor, new_indices: Sequence[int], order: Sequence[int], frames: int) -> torch.Tensor:
    """A clip model's input (R, F, 3, S, S) from the decoder's distinct frames (`new_indices`
    order): the decoder preprocesses each distinct frame once; clips repeat them as sampled."""
    position = {int(index): row for row, index in enumerate(new_indices)}
    clips = pixels[[position[int(i)] for i in order]]
    return clips.reshape(len(order) // frames, frames, *clips.shape[1:])


class Turns:
    """Who uses the CPU cores now: the model or the decoders.

    A CPU model (torch's intra-op threads, OpenVINO's) already runs a thread per core, and its
    threads meet after every layer: a decoding thread that takes a core mid-layer stalls them
    all. So they take turns: a model call starts when the videos being decoded are done, and no
    video starts decoding while the model runs; the decoders have every core while the model
    waits for frames. (On the 2-core machines the gain was within the run-to-run noise of the
    bench, see docs/performance.md; what the turns guarantee is that no decode overlaps a model
    call.) A model on a GPU leaves the cores to the decoders: then nobody waits (`active` is
    False)."""

    def __init__(self, backend: Backend | None) -> None:
        self.active = backend is not None and backend.device_name.split(":")[0] == "cpu"
        self._changed = threading.Condition()
        self._model_running = False
        self._decoding = 0

    @contextmanager
    def model(self) -> Iterator[None]:
        """Around one model call: waits for the videos being decoded, holds new ones back."""
        if not self.active:
            yield
            return
        with self._changed:
            self._model_running = True
            self._changed.wait_for(lambda: self._decoding == 0)
        try:
            yield
        finally:
            with self._changed:
                self._model_running = False
                self._changed.notify_all()

    @contextmanager
    def decoder(self) -> Iterator[None]:
        """Around the decoding of one video: starts when the model is not running."""
        if not self.active:
            yield
            return
        with self._changed:
            self._changed.wait_for(lambda: not self._model_running)
            self._decoding += 1
        try:
            yield
        finally:
            with self._changed:
                self._decoding -= 1
                self._changed.notify_all()


def _decode_in_turn(turns: Turns, *args: Any) -> tuple:
    with turns.decoder():
        return decode_video(*args)


def decoded_ahead(
    todo: list[tuple[str, str, CachedVideo | None]],
    sampler: SamplerConfig,
    backend: Backend,
    workers: int,
    crop: CropPosition | None = None,
    turns: Turns | None = None,
) -> Iterator[tuple[tuple[str, str, CachedVideo | None], tuple | BaseException]]:
    """Yields (item, decoded or the error) in order, decoding up to 4 x workers videos ahead
    (each frame cut to the square `crop` first, when one is given), each video when `turns`
    gives the decoders the cores (None: whenever a thread is free)."""
    if not todo:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")
    turns = turns if turns is not None else Turns(None)

    def submit(item: tuple[str, str, CachedVideo | None]) -> Future:
        have = frozenset(int(i) for i in item[2].indices) if item[2] is not None else frozenset()
        if crop is None:  # the call without a crop stays the 4-argument one it always was
            return pool.submit(_decode_in_turn, turns, item[0], sampler, backend, have)
        return pool.submit(_decode_in_turn, turns, item[0], sampler, backend, have, crop)

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
            except DECODE_ERRORS as error:
                outcome = error
            next_item = next(items, None)
            if next_item is not None:
                queue.append((next_item, submit(next_item)))
            yield item, outcome
    finally:
        # On Ctrl-C or an error downstream, drop the videos queued ahead instead of decoding
        # them: only the few already being decoded are waited for.
        pool.shutdown(wait=True, cancel_futures=True)


# --- the model --------------------------------------------------------------------------------

#: Called once per item when all its rows went through the model: (owner, pooled chunks,
#: embeds chunks), the chunks in row order (torch tensors as the backend returned them).
Done = Callable[[Any, list["torch.Tensor"], list["torch.Tensor"]], None]


@dataclass
class _Queued:
    owner: Any
    rows: torch.Tensor  # not yet queued for the model
    remaining: int
    pooled: list[torch.Tensor] = field(default_factory=list)
    embeds: list[torch.Tensor] = field(default_factory=list)


class Batches:
    """The one batch loop: the rows (frames, or clips) of several videos go through
    `backend.encode_pixels` `capacity` rows at a time. With `split`, a video's rows may span
    batches and every batch but the last is full; without, a video's rows stay together (a batch
    is run first when they would overflow it; a video larger than `capacity` is one batch).
    `done` gets each video's features as soon as its last row is encoded; `flush` runs what is
    queued."""

    def __init__(self, backend: Backend, capacity: int, split: bool, done: Done, turns: Turns | None = None) -> None:
        self.backend, self.capacity, self.split, self.done = backend, max(1, capacity), split, done
        self.turns = turns if turns is not None else Turns(None)
        self.batch: list[tuple[_Queued, torch.Tensor]] = []
        self.size = 0
        self._buffer: torch.Tensor | None = None  # the model's input, reused from batch to batch

    def add(self, owner: Any, rows: torch.Tensor) -> None:
        item = _Queued(owner, rows, remaining=len(rows))
        if not len(rows):  # nothing to encode (its frames were cached)
            self.done(owner, [], [])
            return
        if not self.split:
            if self.batch and self.size + len(rows) > self.capacity:
                self.flush()
            self.batch.append((item, rows))
            self.size += len(rows)
            return
        while len(item.rows):
            take = min(self.capacity - self.size, len(item.rows))
            self.batch.append((item, item.rows[:take]))
            item.rows = item.rows[take:]
            self.size += take
            if self.size == self.capacity:
                self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch, self.size = self.batch, [], 0
        rows = batch[0][1] if len(batch) == 1 else self._joined([rows for _, rows in batch])
        with self.turns.model():
            features = self.backend.encode_pixels(rows)
        start = 0
        for item, rows in batch:
            stop = start + len(rows)
            item.pooled.append(features.pooled[start:stop])
            item.embeds.append(features.embeds[start:stop])
            item.remaining -= len(rows)
            start = stop
            if item.remaining == 0:
                self.done(item.owner, item.pooled, item.embeds)

    def _joined(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """`parts` laid end to end, in a buffer kept from batch to batch. A new tensor per
        batch (64 frames of 224 x 224: 38.5 MB) cost its pages' first touch on top of the copy:
        torch.cat took 3-5% of an OpenVINO int8 extraction's time, about half that into the kept
        buffer. The model call is synchronous and keeps no reference to its input (a GPU
        backend copies it to pinned memory first), so the next batch may overwrite it."""
        import torch

        rows = sum(len(part) for part in parts)
        shape, dtype = parts[0].shape[1:], parts[0].dtype
        if (
            self._buffer is None
            or self._buffer.shape[1:] != shape
            or self._buffer.dtype != dtype
            or len(self._buffer) < rows
        ):
            self._buffer = torch.empty((max(rows, self.capacity), *shape), dtype=dtype)
        return torch.cat(parts, out=self._buffer[:rows])
