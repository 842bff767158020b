"""The `ray` engine: extraction as a Ray Data pipeline that fills the shared cache.

1. The driver hashes the videos (content keys, in threads) and drops those already cached
   (the same check as the local path: `features.core.lookup`); one row per distinct content.
2. Decoding + preprocessing (`features.core.decode_video`, as the local path's threads do):
   `map_batches` over a function, as Ray tasks on CPUs, streaming
   (a video's pixels exist only between its decoding task and the actor that encodes it).
   Ray Data's `read_videos` is not used: it decodes every frame into rows, and clipaction needs
   a few exact frames per video from its own decoder.
3. The model: `map_batches` over a callable class, a pool of `workers` actors (each with
   `gpus_per_worker` GPUs when asked), the weights loaded once per actor. Each actor writes
   its videos' entries (`features.core.frame_entry` / `clip_entries`, as the local path)
   into the shared cache with the cache's atomic writes (temp file +
   rename), after checking the entry is not already complete, and returns one row per video:
   encoded, cached or failed (with its one-line reason).
4. A lost actor is restarted and its batch retried (`max_restarts`, `max_task_retries`);
   videos of that batch already written are found complete and not written again, and a
   half-written entry never exists (rename), so nothing is written twice or half.

The cache must be on storage every node sees at the same path (NFS, Lustre, a cloud file
system); features never travel back to the driver. Ray's own object transport carries rows
between tasks; nothing is pickled to disk. Only this module imports ray.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from clipaction.config import CropPosition, EngineConfig, ModelConfig, SamplerConfig, stable_hash
from clipaction.errors import ConfigError
from clipaction.features.cache import CachedVideo, FeatureCache, video_key
from clipaction.features.core import (
    DECODE_ERRORS,
    Batches,
    Extraction,
    Failure,
    VideoWarning,
    check_crop_space,
    clip_entries,
    clip_length,
    clip_order,
    clip_pixels,
    complete,
    decode_video,
    frame_entry,
    info_meta,
    lookup,
    one_line,
    plain_info,
    unreadable,
)
from clipaction.models import load_backend
from clipaction.models.base import Backend

if TYPE_CHECKING:  # torch is imported where a model runs: a fully cached run needs none of it
    import torch

log = logging.getLogger(__name__)

#: Restarts of a lost actor and retries of its batch, and retries of a lost decoding task.
RETRIES = 3


@dataclass(frozen=True)
class FaultHooks:
    """For the fault tests only. `crash_once_on`: a video's file name; the actor that is about
    to store it calls os._exit(1) the first time (a marker file in `marker_dir` remembers
    that). `write_log`: a file getting one line per entry written (its key). `delay_s`: a pause
    per video in the actor, so a test can kill the driver mid-run."""

    crash_once_on: str | None = None
    marker_dir: str | None = None
    write_log: str | None = None
    delay_s: float = 0.0


def connect(engine: EngineConfig) -> float:
    """Join the Ray cluster at `engine.ray_address` (else $RAY_ADDRESS, else start a local
    instance), unless this process already has; returns the seconds it took. An explicit
    HOST:PORT joins a cluster with token authentication when a token is at hand, as Ray's own
    `auto` does (`_token_mode`)."""
    import ray

    if ray.is_initialized():
        return 0.0
    start = time.perf_counter()
    address = engine.ray_address or os.environ.get("RAY_ADDRESS") or None
    token = False
    try:
        token = _token_mode(address)
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:
        raise ConfigError(_unreachable(address, error, token), setting="engine.ray_address") from None
    return time.perf_counter() - start


#: What a driver needs to join a cluster with token authentication, and where Ray looks for it.
_AUTH_HELP = (
    "set RAY_AUTH_MODE=token and give the cluster's token in RAY_AUTH_TOKEN, or in the file named by "
    "RAY_AUTH_TOKEN_PATH (default ~/.ray/auth_token)"
)


def _token_mode(address: str | None) -> bool:
    """Whether this driver will present a token. Ray (2.60: token authentication on by default)
    turns token mode on by itself for `auto` and a new local instance, but not for an explicit
    address, so a driver given HOST:PORT of a `ray start --head` cluster is
    refused. Here it is turned on as `auto` would: only when $RAY_AUTH_MODE is unset and a token
    is available (env or file), by setting it for this process and its children, as Ray does. A
    driver in token mode still joins a cluster without authentication (checked: its token is
    not looked at)."""
    if not address or address == "auto" or address.startswith("ray://"):
        mode = os.environ.get("RAY_AUTH_MODE", "")
        return mode.lower() == "token"
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return False
    setup_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = setup_log.level
    setup_log.setLevel(logging.ERROR)  # its warning speaks of starting a cluster, not joining one
    try:
        return bool(maybe_enable_token_auth_if_token_available(warn_if_disabled=False))
    finally:
        setup_log.setLevel(level)


def _unreachable(address: str | None, error: BaseException, token: bool) -> str:
    """One line: why joining `address` failed, and for a refused token what to set."""
    if type(error).__name__ == "AuthenticationError":  # Ray's own: no token where one is asked for
        return f"token authentication: {getattr(error, 'message', error)}; {_AUTH_HELP}"
    text = f"{error} {error.__cause__ or ''}"
    auth = any(sign in text for sign in ("Unauthenticated", "InvalidAuthToken", "AuthenticationError"))
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    if auth and token:
        return (
            f"{where} refused this driver's token (token authentication): give the cluster's token in "
            "RAY_AUTH_TOKEN, or in the file named by RAY_AUTH_TOKEN_PATH (default ~/.ray/auth_token)"
        )
    if auth:
        return f"{where} requires token authentication and this driver has no token: {_AUTH_HELP}"
    return f"cannot reach {where}: {one_line(error)}"


def actor_count(engine: EngineConfig, resources: dict[str, float]) -> int:
    """`engine.workers`, or as many actors as the cluster's GPUs (or CPUs, one per actor's
    CPUs plus one for decoding) allow; a ConfigError when it has fewer GPUs than one needs."""
    gpus = resources.get("GPU", 0.0)
    if engine.gpus_per_worker > 0 and gpus < engine.gpus_per_worker:
        raise ConfigError(
            f"asks {engine.gpus_per_worker:g} GPU(s) per worker but the cluster has {gpus:g}",
            setting="engine.gpus_per_worker",
        )
    if engine.workers is not None:
        return engine.workers
    if engine.gpus_per_worker > 0:
        return max(1, int(gpus // engine.gpus_per_worker))
    return max(1, int(resources.get("CPU", 1.0) // (engine.cpus_per_worker + 1)))


def fill_cache(
    paths: Sequence[str],
    backend: Backend,
    model: ModelConfig,
    sampler: SamplerConfig,
    cache: FeatureCache,
    *,
    engine: EngineConfig,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
    hooks: FaultHooks | None = None,
    stats: dict[str, float] | None = None,
    crop: CropPosition | None = None,
) -> Extraction:
    """Encode into `cache` every video of `paths` it lacks, on the Ray cluster (each frame cut
    to the square `crop` first when one is given; `cache` on that crop's space). The returned
    Extraction holds no features: counts, failures and warnings (in the order of `paths`).
    `stats`, when given, receives timings: `connect_s` (joining or starting Ray), `plan_s`
    (hashing and cache lookups), `run_s` (the pipeline, start to last row) and `busy_s` (from
    the first model batch's start to the last one's end on the actors' clocks: the run without
    starting workers and loading the model)."""
    import ray

    if load_backend(model).fingerprint != backend.fingerprint:
        raise ConfigError(
            "the ray engine rebuilds the model from its settings on every worker, and they do not "
            "describe this backend (e.g. a fine-tuned image tower): use the local engine",
            setting="engine.name",
        )
    check_crop_space(cache, crop)
    frames = 0
    if backend.kind == "clip":
        frames = clip_length(backend, sampler)  # a wrong frame count fails here, not per video
    result = Extraction()
    stats = {} if stats is None else stats
    start = time.perf_counter()
    rows, duplicates = _plan(paths, backend, sampler, cache, workers, result)
    stats["plan_s"] = time.perf_counter() - start
    if not rows:
        return _ordered(result, paths)
    stats["connect_s"] = connect(engine)
    start = time.perf_counter()
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = progress
    videos_per_batch = max(1, math.ceil(batch_size / max(1, sampler.frames_per_video)))
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / videos_per_batch)))
    with warnings.catch_warnings():
        # Ray 2.5x deprecates passing retries as keyword arguments without naming a
        # replacement; explicit, bounded retries matter more here than the warning.
        warnings.simplefilter("ignore", DeprecationWarning)
        encoded = _pipeline(dataset, model, sampler, cache, engine, batch_size, videos_per_batch, frames, hooks,
                            actor_count(engine, ray.cluster_resources()), crop)  # fmt: skip
    first, last = math.inf, -math.inf
    for row in encoded.iter_rows():
        _account(result, row, duplicates.get(row["key"], []))
        first, last = min(first, row["batch_started"]), max(last, row["batch_ended"])
    stats["run_s"] = time.perf_counter() - start
    stats["busy_s"] = max(0.0, last - first)
    return _ordered(result, paths)


def _pipeline(
    dataset: Any,
    model: ModelConfig,
    sampler: SamplerConfig,
    cache: FeatureCache,
    engine: EngineConfig,
    batch_size: int,
    videos_per_batch: int,
    frames: int,
    hooks: FaultHooks | None,
    n_actors: int,
    crop: CropPosition | None = None,
) -> Any:
    """decode (tasks) -> encode and store (actors), as a lazy Ray dataset of result rows."""
    from ray.data import ActorPoolStrategy

    threads = engine.threads_per_worker or max(1, round(engine.cpus_per_worker))
    decoded = dataset.map_batches(
        _decode_rows,
        fn_kwargs={"model": model, "sampler": sampler, "crop": crop},
        batch_size=1,
        batch_format="pandas",
        num_cpus=1,
        max_retries=RETRIES,
    )
    encoded = decoded.map_batches(
        _Encoder,
        fn_constructor_kwargs={
            "model": _worker_model(model, engine),
            "sampler": sampler,
            "cache_root": str(cache.root),
            "space": cache.space,
            "batch_size": batch_size,
            "threads": threads,
            "clip_frames": frames,
            "hooks": asdict(hooks or FaultHooks()),
        },
        batch_size=videos_per_batch,
        batch_format="pandas",
        compute=ActorPoolStrategy(size=n_actors),
        num_cpus=engine.cpus_per_worker,
        num_gpus=engine.gpus_per_worker or None,
        max_restarts=RETRIES,
        max_task_retries=RETRIES,
    )
    return encoded


def _worker_model(model: ModelConfig, engine: EngineConfig) -> ModelConfig:
    # Without GPUs asked for, an actor must not take one it was not given.
    return replace(model, device="cpu") if engine.gpus_per_worker == 0 and model.device == "auto" else model


def _plan(
    paths: Sequence[str],
    backend: Backend,
    sampler: SamplerConfig,
    cache: FeatureCache,
    workers: int,
    result: Extraction,
) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    """The rows to encode (one per distinct content) and the other paths with the same content;
    cached videos are counted (with their warnings) and unreadable ones failed in `result`."""

    def key_of(path: str) -> str | OSError:
        try:
            return video_key(path)
        except OSError as error:
            return error

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hash") as pool:
        keys = list(pool.map(key_of, paths))
    rows: list[dict[str, str]] = []
    duplicates: dict[str, list[str]] = {}
    for path, key in zip(paths, keys):
        if isinstance(key, OSError):
            result.failures.append(Failure(path, unreadable(key)))
            continue
        if key in duplicates:
            duplicates[key].append(path)
            continue
        found = lookup(cache, key, sampler, backend)
        if found.hit:
            result.n_cached += 1
            result.warnings += [VideoWarning(path, warning) for warning in found.warnings]
            continue
        duplicates[key] = []
        rows.append({"path": path, "key": key, "have": json.dumps(found.have)})
    return rows, duplicates


def _account(result: Extraction, row: dict[str, Any], same: list[str]) -> None:
    status, path = row["status"], row["path"]
    for one in [path, *same]:
        if status == "failed":
            result.failures.append(Failure(one, row["error"]))
            continue
        result.warnings += [VideoWarning(one, warning) for warning in json.loads(row["warnings"])]
        if status == "encoded" and one == path:
            result.n_encoded += 1
            result.n_frames_encoded += int(row["frames"])
        else:
            result.n_cached += 1


def _ordered(result: Extraction, paths: Sequence[str]) -> Extraction:
    order = {path: i for i, path in enumerate(paths)}
    result.failures.sort(key=lambda f: order.get(f.path, len(order)))
    result.warnings.sort(key=lambda w: order.get(w.path, len(order)))
    return result


# --- on the workers ---------------------------------------------------------------------------

#: Backends built in this worker process, by their ModelConfig: decoding tasks reuse the
#: process, and building one reads the model's config files.
_BACKENDS: dict[str, Backend] = {}


def _backend(model: ModelConfig) -> Backend:
    name = stable_hash(model)
    if name not in _BACKENDS:
        _BACKENDS[name] = load_backend(model)
    return _BACKENDS[name]


def _decode_rows(batch: Any, model: ModelConfig, sampler: SamplerConfig, crop: CropPosition | None = None) -> Any:
    """A Ray task: decode and preprocess the rows' videos (only frames not yet cached). A video
    that cannot be decoded becomes a row with its reason, never an exception."""
    import pandas as pd

    # Preprocessing only (never the weights), which no device or precision changes.
    backend = _backend(replace(model, device="cpu", precision="fp32"))
    out = []
    for path, key, have in zip(batch["path"], batch["key"], batch["have"]):
        row = {"path": path, "key": key, "error": "", "indices": "[]", "new_indices": "[]", "info": "{}",
               "warnings": "[]", **pixel_fields(None)}  # fmt: skip
        try:
            indices, new_indices, info, pixels, warnings = decode_video(
                path, sampler, backend, frozenset(json.loads(have)), crop
            )
        except DECODE_ERRORS as error:
            row["error"] = one_line(error)
        else:
            row.update(indices=json.dumps(indices.tolist()), new_indices=json.dumps(new_indices.tolist()),
                       info=json.dumps(info), warnings=json.dumps(list(warnings)), **pixel_fields(pixels))  # fmt: skip
        out.append(row)
    return pd.DataFrame(out)


def pixel_fields(pixels: torch.Tensor | None) -> dict[str, str | bytes]:
    """A decoded video's model input as a row's fields (bytes, shape, dtype): float32 pixel
    values, or the uint8 frames a runtime that normalises in its graph takes (`takes_bytes`),
    kept as uint8 (a quarter of the bytes through the object store). None: no pixels."""
    if pixels is None:
        return {"pixels": b"", "shape": "[0]", "dtype": "float32"}
    array = np.ascontiguousarray(pixels.numpy())
    if array.dtype != np.uint8:
        array = array.astype(np.float32, copy=False)
    return {"pixels": array.tobytes(), "shape": json.dumps(list(array.shape)), "dtype": str(array.dtype)}


def row_pixels(record: dict) -> torch.Tensor:
    """The model input `pixel_fields` put into a row."""
    import torch

    array = np.frombuffer(record["pixels"], dtype=np.dtype(record["dtype"])).reshape(json.loads(record["shape"]))
    return torch.from_numpy(array.copy())


class _Encoder:
    """A Ray actor: the model, loaded once, encoding batches of decoded videos into the cache."""

    def __init__(self, model: ModelConfig, sampler: SamplerConfig, cache_root: str, space: dict, batch_size: int,
                 threads: int, clip_frames: int, hooks: dict) -> None:  # fmt: skip
        import torch

        torch.set_num_threads(threads)
        self.backend = _backend(model)
        self.sampler = sampler
        self.cache = FeatureCache(cache_root, space)
        self.batch_size = batch_size
        self.clip_frames = clip_frames
        self.hooks = FaultHooks(**hooks)
        # Another model on this node (other files at the same path) would mix features into
        # the space of the driver's: refuse every video instead.
        self.mismatch = (
            ""
            if space.get("model") == self.backend.fingerprint
            else (
                f"this worker's model at {model.name_or_path} differs from the driver's; put the model "
                "folder on shared storage or use a hub id"
            )
        )
        if not self.mismatch:
            self._warm_up()

    def _warm_up(self) -> None:
        """Load the weights and run the model once, here, in the actor's start-up. Weights load
        on first use, and a fresh process's first forward pass pays one-time costs (reading the
        weight file, allocator and kernel set-up: seconds for a ViT-B/32 on 2 cores); left to
        the first batch, they made it seconds slower than the others and were counted as the
        engine's throughput (`busy_s`), against a local engine whose model was already warm. A
        model that cannot run fails in its first batch instead, with the reason, for each video."""
        frames = max(1, self.clip_frames)
        try:
            pixels = self.backend.preprocess(np.zeros((frames, 64, 64, 3), dtype=np.uint8))
            if self.clip_frames:
                pixels = clip_pixels(pixels, range(frames), range(frames), frames)  # one clip (1, F, 3, S, S)
            self.backend.encode_pixels(pixels)
        except Exception as error:
            log.warning("the model could not be warmed up: %s", one_line(error))

    def __call__(self, batch: Any) -> Any:
        started = time.time()
        rows, todo = [], []
        for record in batch.to_dict("records"):
            row = {"path": record["path"], "key": record["key"], "status": "failed", "error": record["error"],
                   "warnings": record["warnings"], "frames": 0}  # fmt: skip
            rows.append(row)
            if row["error"] or self.mismatch:
                row["error"] = row["error"] or self.mismatch
                continue
            indices = np.asarray(json.loads(record["indices"]), dtype=np.int64)
            if complete(
                self.cache, record["key"], indices, self.backend, self.clip_frames, self._order(record, indices)
            ):
                row["status"] = "cached"  # a retried batch, or another shard, wrote it already
                continue
            todo.append((row, record, indices, row_pixels(record)))
        try:
            features = self._encode([self._model_input(record, indices, pixels) for _, record, indices, pixels in todo])
        except Exception as error:  # the batch's videos fail, the job goes on
            for row, *_ in todo:
                row["error"] = f"encoding failed: {one_line(error)}"
            return self._frame(rows, started)
        for (row, record, indices, _pixels), (pooled, embeds) in zip(todo, features):
            self._hooks_before_store(row["path"])
            try:
                row["status"] = self._store(record, indices, pooled, embeds)
                row["frames"] = int(len(pooled) * (self.clip_frames or 1))
            except Exception as error:
                row["error"] = f"cannot store its features: {one_line(error)}"
        return self._frame(rows, started)

    @staticmethod
    def _frame(rows: list[dict], started: float) -> Any:
        import pandas as pd

        ended = time.time()
        return pd.DataFrame([{**row, "batch_started": started, "batch_ended": ended} for row in rows])

    def _order(self, record: dict, indices: np.ndarray) -> list[int] | None:
        """A clip model's frame indices clip after clip (`features.clips.clip_order`)."""
        if not self.clip_frames:
            return None
        return clip_order(info_meta(json.loads(record["info"])), self.sampler, indices)

    def _model_input(self, record: dict, indices: np.ndarray, pixels: Any) -> Any:
        if not self.clip_frames:
            return pixels
        return clip_pixels(pixels, json.loads(record["new_indices"]), self._order(record, indices), self.clip_frames)

    def _encode(self, inputs: list[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each video's (pooled, embeds) rows, the model run on about `batch_size` frames at a
        time across videos (the local path's batch loop, `features.core.Batches`)."""
        results: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros((0, 0), np.float32),) * 2] * len(inputs)

        import torch

        def done(position: int, pooled: list[torch.Tensor], embeds: list[torch.Tensor]) -> None:
            if pooled:
                results[position] = (torch.cat(pooled).float().numpy(), torch.cat(embeds).float().numpy())

        batches = Batches(self.backend, self.batch_size // (self.clip_frames or 1), split=True, done=done)
        for position, rows in enumerate(inputs):
            batches.add(position, rows)
        batches.flush()
        return results

    def _store(self, record: dict, indices: np.ndarray, pooled: np.ndarray, embeds: np.ndarray) -> str:
        info = json.loads(record["info"])
        key = record["key"]
        old = self.cache.load(key)  # now, not when the driver looked: another writer may have added frames
        if self.clip_frames:
            known = plain_info(old) if old is not None else None
            order = self._order(record, indices)
            for write_key, entry in clip_entries(key, known, indices, order, self.clip_frames, pooled, embeds, info):
                self._write(write_key, entry)
            return "encoded"
        new_indices = np.asarray(json.loads(record["new_indices"]), dtype=np.int64)
        entry, write = frame_entry(old, new_indices, pooled, embeds, info)
        if write:
            self._write(key, entry)
        return "encoded" if len(new_indices) else "cached"

    def _write(self, key: str, entry: CachedVideo) -> None:
        self.cache.store(key, entry)
        if self.hooks.write_log:
            with open(self.hooks.write_log, "a", encoding="utf-8") as log_file:
                log_file.write(key + "\n")

    def _hooks_before_store(self, path: str) -> None:
        hooks = self.hooks
        if hooks.delay_s:
            time.sleep(hooks.delay_s)
        if hooks.crash_once_on and os.path.basename(path) == hooks.crash_once_on and hooks.marker_dir:
            marker = os.path.join(hooks.marker_dir, "crashed-" + hooks.crash_once_on)
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)  # the actor dies as a lost node's would: no cleanup, no exception
