"""The embedding cache: one safetensors file per video, written atomically.

Layout: `<cache_dir>/<space>/<kk>/<video_key>.safetensors`, where `space` hashes everything about
the model, preprocessing and sampler that changes the numbers (described in `<space>/space.json`)
and `video_key` hashes the video's content (its size and a SHA-256 of its bytes), never its path
or modification time: a dataset moved, copied or mounted elsewhere finds its entries, and a
video edited in place is a miss. (Entries written under the older path-and-mtime keys are
simply never found again and get encoded once more.)
Entries carry a SHA-256 of their arrays, so a damaged file is detected and re-encoded. No pickle:
arrays go through safetensors, descriptions through JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from clipaction.config import stable_hash
from clipaction.errors import OutputError
from clipaction.paths import default_cache_dir

log = logging.getLogger(__name__)

CACHE_FORMAT = 3  # 2: one entry per video holding every frame so far; 3: the checksum covers info too


@dataclass(frozen=True)
class CachedVideo:
    """The stored features of one video's sampled frames.

    indices: (F,) int64 frame indices; pooled: (F, D) float32 pre-projection features;
    embeds: (F, E) float32 projected, L2-normalised features. `info` has path, fps, num_frames.
    """

    indices: np.ndarray
    pooled: np.ndarray
    embeds: np.ndarray
    info: dict[str, str]


#: Bytes read per step while hashing a video: big enough that the per-call overhead vanishes,
#: small enough that memory stays flat for any file size.
_CHUNK = 1 << 20
#: Content digests already computed in this process, by what identifies a file's state on its
#: file system (device, inode, size, mtime, ctime). A run hashes each video once although
#: several steps ask for its key; the key itself never contains any of these.
_DIGESTS: dict[tuple[int, ...], str] = {}
_DIGESTS_MAX = 1 << 17


def content_digest(path: str | Path) -> str:
    """SHA-256 (hex) of the file's bytes, read in 1 MiB chunks. OSError when unreadable."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def video_key(path: str | Path) -> str:
    """Hash of the video's size and the SHA-256 of its bytes: the same bytes anywhere (another
    folder, machine or mount point) give the same key, and any change to them gives a new one.
    Raises OSError when the file cannot be read."""
    stat = os.stat(path)
    state = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    digest = _DIGESTS.get(state)
    if digest is None:
        digest = content_digest(path)
        if len(_DIGESTS) >= _DIGESTS_MAX:
            _DIGESTS.clear()
        _DIGESTS[state] = digest
    return stable_hash({"size": stat.st_size, "sha256": digest}, 32)


def _checksum(arrays: dict[str, np.ndarray], info: dict[str, str] | None = None) -> str:
    """SHA-256 of the arrays and of the entry's description (frame count, fps... which sampling
    reads), so damage to either is caught."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    if info:
        digest.update(json.dumps({k: v for k, v in info.items() if k != "sha256"}, sort_keys=True).encode())
    return digest.hexdigest()


class FeatureCache:
    """Stores and finds `CachedVideo`s for one (model, preprocessing, sampler) space."""

    def __init__(self, cache_dir: str | Path | None, space: dict[str, Any]) -> None:
        self.root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.space = space
        self.dir = self.root / stable_hash({"format": CACHE_FORMAT, **space}, 20)
        description = self.dir / "space.json"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not description.exists():
                _atomic_write_bytes(description, json.dumps(space, indent=2, default=str).encode())
        except OSError as error:
            raise OutputError(
                f"cannot use {self.root} as the embedding cache: {error.strerror or error}; "
                "give a folder you can write (or set $CLIPACTION_CACHE)",
                setting="cache_dir",
            ) from None
        self._remove_stale_temp_files()

    def _remove_stale_temp_files(self, older_than_s: float = 600.0) -> None:
        """Temp files of a writer killed mid-write. A live writer's temp file exists for
        milliseconds, so anything older is garbage."""
        cutoff = time.time() - older_than_s
        for tmp in self.dir.glob("*/.tmp-*"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                pass  # another process removed or renamed it first

    def entry_path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.safetensors"

    def load(self, key: str) -> CachedVideo | None:
        """The entry for `key`, or None when absent or damaged (a damaged one is logged)."""
        path = self.entry_path(key)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="np") as handle:
                info = dict(handle.metadata() or {})
                arrays = {name: handle.get_tensor(name) for name in handle.keys()}
            if info.get("sha256") != _checksum(arrays, info):
                raise ValueError("checksum mismatch")
            return CachedVideo(indices=arrays["indices"], pooled=arrays["pooled"], embeds=arrays["embeds"], info=info)
        except Exception as error:  # any damage means: encode again
            log.warning("damaged cache entry %s (%s); it will be re-encoded", path, error)
            return None

    def load_texts(self, texts: list[str]) -> np.ndarray | None:
        """Stored (T, E) features of exactly these texts, in order, or None."""
        path = self._texts_path(texts)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="np") as handle:
                info = dict(handle.metadata() or {})
                features = handle.get_tensor("features")
            if info.get("sha256") != _checksum({"features": features}) or len(features) != len(texts):
                raise ValueError("checksum mismatch")
            return features
        except Exception as error:
            log.warning("damaged text cache entry %s (%s); it will be re-encoded", path, error)
            return None

    def store_texts(self, texts: list[str], features: np.ndarray) -> None:
        arrays = {"features": np.ascontiguousarray(features, dtype=np.float32)}
        path = self._texts_path(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write(path, arrays, {"sha256": _checksum(arrays), "n_texts": str(len(texts))})

    def _texts_path(self, texts: list[str]) -> Path:
        return self.dir / "texts" / f"{stable_hash(texts, 32)}.safetensors"

    def store(self, key: str, video: CachedVideo) -> None:
        arrays = {
            "indices": np.asarray(video.indices, dtype=np.int64),
            "pooled": np.ascontiguousarray(video.pooled, dtype=np.float32),
            "embeds": np.ascontiguousarray(video.embeds, dtype=np.float32),
        }
        info = {k: str(v) for k, v in video.info.items() if k != "sha256"}
        info["sha256"] = _checksum(arrays, info)
        path = self.entry_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write(path, arrays, info)

    @staticmethod
    def _write(path: Path, arrays: dict[str, np.ndarray], info: dict[str, str]) -> None:
        # The temp name never ends in .safetensors, so nothing mistakes it for an entry.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        os.close(fd)
        try:
            save_file(arrays, tmp, metadata=info)
            os.replace(tmp, path)  # atomic: readers see the old state or the whole new entry
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
