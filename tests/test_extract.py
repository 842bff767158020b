"""Extraction: batched across videos, equal to encoding each video alone, cached, resumable."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from clipaction.config import SamplerConfig
from clipaction.features.cache import FeatureCache, video_key
from clipaction.features.extract import cache_space, extract_features
from clipaction.testing.videos import SyntheticVideo, write_video
from clipaction.video.decode import probe
from clipaction.video.sampling import sample_indices

SAMPLER = SamplerConfig(name="center-clip", frames=4, window=1.0)


def _sequential_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("videos")
    paths = [
        write_video(root / f"v{i}.avi", SyntheticVideo(num_frames=40 + 5 * i, pattern=i, seed=i)) for i in range(3)
    ]
    paths.append(write_video(root / "h264.mp4", SyntheticVideo(codec="h264", num_frames=60, pattern=5, seed=9)))
    return paths


def test_features_equal_encoding_each_video_alone(videos, tiny_backend, tmp_path):
    cache = FeatureCache(tmp_path, cache_space(tiny_backend))
    # batch size 3 does not divide 4 frames per video: videos are split across batches
    result = extract_features(videos, tiny_backend, SAMPLER, cache, batch_size=3, workers=2, progress=False)
    assert result.failures == [] and result.n_encoded == len(videos) and result.n_cached == 0
    for path in videos:
        indices = sample_indices(probe(path), SAMPLER)
        frames = np.stack([_sequential_frames(path)[i] for i in indices])
        expected = tiny_backend.encode_frames(frames)
        got = result.features[str(path)]
        np.testing.assert_array_equal(got.indices, indices)
        np.testing.assert_allclose(got.pooled, expected.pooled.numpy(), atol=1e-5)
        np.testing.assert_allclose(got.embeds, expected.embeds.numpy(), atol=1e-5)


def test_second_run_reads_everything_from_the_cache(videos, tiny_backend, tmp_path):
    cache = FeatureCache(tmp_path, cache_space(tiny_backend))
    first = extract_features(videos, tiny_backend, SAMPLER, cache, progress=False)
    again = extract_features(videos, tiny_backend, SAMPLER, cache, progress=False)
    assert again.n_cached == len(videos) and again.n_encoded == 0
    for path in videos:
        np.testing.assert_array_equal(again.features[str(path)].embeds, first.features[str(path)].embeds)


def test_interrupted_extraction_resumes_with_what_is_missing(videos, tiny_backend, tmp_path):
    cache = FeatureCache(tmp_path, cache_space(tiny_backend))
    extract_features(videos[:2], tiny_backend, SAMPLER, cache, progress=False)
    resumed = extract_features(videos, tiny_backend, SAMPLER, cache, progress=False)
    assert (resumed.n_cached, resumed.n_encoded) == (2, len(videos) - 2)


def test_samplers_share_the_frames_they_have_in_common(videos, tiny_backend, tmp_path):
    cache = FeatureCache(tmp_path, cache_space(tiny_backend))
    uniform = SamplerConfig(name="uniform", frames=4)
    first = extract_features(videos, tiny_backend, uniform, cache, progress=False)
    assert first.n_frames_encoded == 4 * len(videos)
    # a centre clip whose window covers the whole video picks exactly the uniform frames
    whole = SamplerConfig(name="center-clip", frames=4, window=60.0)
    same = extract_features(videos, tiny_backend, whole, cache, progress=False)
    assert (same.n_cached, same.n_encoded, same.n_frames_encoded) == (len(videos), 0, 0)
    # the middle frame is not among them: one new frame per video, stored beside the others
    middle = SamplerConfig(name="middle")
    more = extract_features(videos, tiny_backend, middle, cache, progress=False)
    assert (more.n_encoded, more.n_frames_encoded) == (len(videos), len(videos))
    for path in videos:
        assert more.features[str(path)].embeds.shape[0] == 1
        stored = cache.load(video_key(path))
        assert len(stored.indices) == 5 and list(stored.indices) == sorted(stored.indices)
        expected = tiny_backend.encode_frames(
            np.stack([_sequential_frames(path)[i] for i in more.features[str(path)].indices])
        )
        np.testing.assert_allclose(more.features[str(path)].embeds, expected.embeds.numpy(), atol=1e-5)
    # and the uniform frames are still served from the merged entry
    again = extract_features(videos, tiny_backend, uniform, cache, progress=False)
    assert again.n_frames_encoded == 0
    for path in videos:
        np.testing.assert_array_equal(again.features[str(path)].embeds, first.features[str(path)].embeds)


def test_bad_files_are_skipped_with_reasons(videos, tiny_backend, tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.avi"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    missing = tmp_path / "missing.avi"
    paths = [videos[0], empty, noise, text, missing, videos[1]]
    result = extract_features(paths, tiny_backend, SAMPLER, None, progress=False)
    assert set(result.features) == {str(videos[0]), str(videos[1])}
    failed = {f.path: f.error for f in result.failures}
    assert set(failed) == {str(empty), str(noise), str(text), str(missing)}
    assert all(reason and "\n" not in reason for reason in failed.values())


def test_changed_video_is_encoded_again(tiny_backend, tmp_path):
    path = write_video(tmp_path / "v.avi", SyntheticVideo(pattern=1, seed=1))
    cache = FeatureCache(tmp_path / "cache", cache_space(tiny_backend))
    first = extract_features([path], tiny_backend, SAMPLER, cache, progress=False)
    key = video_key(path)
    write_video(path, SyntheticVideo(pattern=7, seed=3))  # edited in place: same path
    assert video_key(path) != key
    second = extract_features([path], tiny_backend, SAMPLER, cache, progress=False)
    assert second.n_encoded == 1
    assert not torch.allclose(
        torch.from_numpy(first.features[str(path)].embeds), torch.from_numpy(second.features[str(path)].embeds)
    )


def test_a_copied_or_moved_dataset_finds_its_cache(videos, tiny_backend, tmp_path):
    """Entries are keyed by content: the same files in another folder (another mount point,
    another machine) are read from the cache, under their new paths."""
    import shutil

    cache = FeatureCache(tmp_path / "cache", cache_space(tiny_backend))
    first = extract_features(videos, tiny_backend, SAMPLER, cache, progress=False)
    copies = []
    for path in videos:
        copy = tmp_path / "elsewhere" / "sub dir" / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, copy)  # new path, new inode, new mtime
        copies.append(copy)
    again = extract_features(copies, tiny_backend, SAMPLER, cache, progress=False)
    assert (again.n_cached, again.n_encoded, again.n_frames_encoded) == (len(videos), 0, 0)
    for path, copy in zip(videos, copies):
        np.testing.assert_array_equal(again.features[str(copy)].embeds, first.features[str(path)].embeds)


def test_decoding_runs_a_bounded_number_of_videos_ahead(monkeypatch):
    """Memory stays bounded by the look-ahead: however many videos are listed and however slow
    the consumer (the model), at most 4 x workers decoded videos wait to be encoded."""
    import threading
    import time

    from clipaction.features import core as extract_mod

    started = []
    lock = threading.Lock()

    def fake_decode(path, sampler, backend, have):
        with lock:
            started.append(path)
        return path

    monkeypatch.setattr(extract_mod, "decode_video", fake_decode)
    workers = 2
    todo = [(f"v{i}.avi", f"k{i}", None) for i in range(100)]
    consumed = 0
    for item, outcome in extract_mod.decoded_ahead(todo, SAMPLER, backend=None, workers=workers):
        assert outcome == item[0]  # in order
        consumed += 1
        time.sleep(0.002)  # a slow model: the decoders would run far ahead if nothing held them
        with lock:
            assert len(started) - consumed <= 4 * workers
    assert consumed == len(todo) and started == [path for path, _, _ in todo]


def test_decoding_waits_while_a_cpu_model_runs(videos, tiny_backend, tmp_path, monkeypatch):
    """On the CPU, decoding and the model take turns: no video is decoded while the model computes
    a batch (decoding would take cores from the model's threads mid-layer); the features are
    those of a plain run."""
    import threading
    import time

    import clipaction.features.core as core

    events: list[tuple[str, float, float]] = []
    lock = threading.Lock()
    original_decode, original_encode = core.decode_video, tiny_backend.encode_pixels

    def decode(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original_decode(*args, **kwargs)
        finally:
            with lock:
                events.append(("decode", start, time.perf_counter()))

    def encode(pixels):
        start = time.perf_counter()
        time.sleep(0.05)  # a model slow enough that decoding ahead would overlap it
        try:
            return original_encode(pixels)
        finally:
            with lock:
                events.append(("model", start, time.perf_counter()))

    monkeypatch.setattr(core, "decode_video", decode)
    monkeypatch.setattr(tiny_backend, "encode_pixels", encode)
    many = videos * 3  # the same files under several names: 12 videos, 4 frames each
    links = []
    for i, path in enumerate(many):
        link = tmp_path / f"{i}{path.suffix}"
        link.symlink_to(path)
        links.append(link)
    result = extract_features(links, tiny_backend, SAMPLER, None, batch_size=4, workers=2, progress=False)
    assert result.failures == [] and len(result.features) == len(links)
    model_runs = [(start, end) for kind, start, end in events if kind == "model"]
    decodes = [(start, end) for kind, start, end in events if kind == "decode"]
    assert len(model_runs) >= 10 and len(decodes) == len(links)
    overlaps = [(d, m) for d in decodes for m in model_runs if d[0] < m[1] and m[0] < d[1]]
    assert overlaps == []
    monkeypatch.undo()
    plain = extract_features(links[:4], tiny_backend, SAMPLER, None, batch_size=4, workers=2, progress=False)
    for link in links[:4]:
        np.testing.assert_array_equal(plain.features[str(link)].embeds, result.features[str(link)].embeds)


def test_a_model_off_the_cpu_leaves_the_cores_to_decoding():
    from types import SimpleNamespace

    from clipaction.features.core import Turns

    gpu, cpu = Turns(SimpleNamespace(device_name="cuda:0")), Turns(SimpleNamespace(device_name="cpu"))
    assert not gpu.active and cpu.active
    decoded = __import__("threading").Event()

    def decode() -> None:
        with gpu.decoder():
            decoded.set()

    with gpu.model():  # a GPU model's call does not hold the decoders back
        waiter = __import__("threading").Thread(target=decode)
        waiter.start()
        assert decoded.wait(timeout=5)
