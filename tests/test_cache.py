"""The embedding cache: keys, round trips, atomic writes, damage detection."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from clipaction.features.cache import CachedVideo, FeatureCache, video_key


def _video(seed: int = 0) -> CachedVideo:
    rng = np.random.default_rng(seed)
    return CachedVideo(
        indices=np.array([3, 7, 11]),
        pooled=rng.standard_normal((3, 8)).astype(np.float32),
        embeds=rng.standard_normal((3, 4)).astype(np.float32),
        info={"path": "/x.avi", "fps": "25.0"},
    )


def test_round_trip(tmp_path):
    cache = FeatureCache(tmp_path, {"model": "m", "sampler": {"name": "middle"}})
    cache.store("abcd", _video())
    loaded = cache.load("abcd")
    assert loaded is not None
    np.testing.assert_array_equal(loaded.indices, [3, 7, 11])
    np.testing.assert_array_equal(loaded.pooled, _video().pooled)
    np.testing.assert_array_equal(loaded.embeds, _video().embeds)
    assert loaded.info["fps"] == "25.0"
    assert cache.load("other") is None
    assert not list(tmp_path.rglob(".tmp-*")), "no temp files are left behind"


def test_spaces_are_separate(tmp_path):
    first = FeatureCache(tmp_path, {"model": "m", "sampler": {"name": "middle"}})
    second = FeatureCache(tmp_path, {"model": "m", "sampler": {"name": "uniform", "frames": 8}})
    first.store("abcd", _video())
    assert second.load("abcd") is None
    assert (first.dir / "space.json").is_file()


def test_damaged_entry_is_detected(tmp_path):
    cache = FeatureCache(tmp_path, {"model": "m"})
    cache.store("abcd", _video())
    path = cache.entry_path("abcd")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the array bytes
    path.write_bytes(bytes(data))
    assert cache.load("abcd") is None
    path.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    assert cache.load("abcd") is None


def test_a_damaged_description_is_detected_too(tmp_path):
    """The entry's description (fps, frame count: what sampling reads) is covered by its
    checksum: an entry whose fps was altered on disk is not used."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    cache = FeatureCache(tmp_path, {"model": "m"})
    cache.store("abcd", _video())
    path = cache.entry_path("abcd")
    with safe_open(str(path), framework="np") as handle:
        info = dict(handle.metadata())
        arrays = {name: handle.get_tensor(name) for name in handle.keys()}
    save_file(arrays, str(path), metadata={**info, "fps": "30.0"})  # same arrays, same sha256 field
    assert cache.load("abcd") is None
    save_file(arrays, str(path), metadata=info)  # put back exactly: valid again
    assert cache.load("abcd") is not None


def test_video_key_changes_when_the_content_changes(tmp_path):
    video = tmp_path / "v.avi"
    video.write_bytes(b"1234")
    before = video_key(video)
    assert video_key(video) == before
    video.write_bytes(b"12345")  # longer
    assert video_key(video) != before
    after_size = video_key(video)
    video.write_bytes(b"12346")  # same size, one byte edited in place
    assert video_key(video) != after_size


def test_video_key_follows_the_bytes_not_the_path_or_mtime(tmp_path):
    """A dataset copied, moved or mounted elsewhere keeps its keys."""
    video = tmp_path / "a" / "v.avi"
    video.parent.mkdir()
    video.write_bytes(bytes(range(256)) * 5000)  # more than one read chunk
    key = video_key(video)
    copy = tmp_path / "b" / "renamed.avi"
    copy.parent.mkdir()
    shutil.copyfile(video, copy)
    assert video_key(copy) == key
    moved = tmp_path / "moved.avi"
    video.rename(moved)
    stat = moved.stat()
    os.utime(moved, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert video_key(moved) == key
    with pytest.raises(OSError):
        video_key(tmp_path / "absent.avi")


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path):
    cache = FeatureCache(tmp_path, {"model": "m"})
    cache.store("abcd", _video())
    stale = cache.entry_path("abcd").parent / ".tmp-killed"
    fresh = cache.entry_path("abcd").parent / ".tmp-live"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (0, 0))
    FeatureCache(tmp_path, {"model": "m"})
    assert not stale.exists() and fresh.exists()
    assert cache.load("abcd") is not None


def test_text_features_are_cached_and_checked(tmp_path, tiny_backend):
    import torch

    from clipaction.classify.scoring import class_text_features

    cache = FeatureCache(tmp_path, {"model": "m"})
    first = class_text_features(tiny_backend, ["archery", "biking"], ["a photo of {}.", "a video of {}."], cache)
    stored = list((cache.dir / "texts").glob("*.safetensors"))
    assert len(stored) == 1

    class NoText:  # the same model, but encoding any text would fail the test
        def encode_texts(self, texts):
            raise AssertionError("texts were encoded again")

    again = class_text_features(NoText(), ["archery", "biking"], ["a photo of {}.", "a video of {}."], cache)
    torch.testing.assert_close(again, first)
    data = bytearray(stored[0].read_bytes())
    data[-3] ^= 0xFF
    stored[0].write_bytes(bytes(data))
    assert (
        cache.load_texts(["a photo of archery.", "a video of archery.", "a photo of biking.", "a video of biking."])
        is None
    )
