"""The fast decoding paths give exactly what the plain ones give: a reused one-thread scaler,
single-threaded sampled decoding, the table lookup of `fast_preprocess`, and time-based decoding
that skips the non-reference frames no sampled time shows. Each is compared with the
straightforward way (a full sequential decode, `frame.to_ndarray`, the HF image processor)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from clipaction.config import SamplerConfig
from clipaction.features.core import decode_video
from clipaction.testing.footage import Scene, numbered_frames, read_number, scene_frames, stamp_number, write_frames
from clipaction.testing.videos import SyntheticVideo, write_video
from clipaction.video.timed import Sample, frames_at


def _full_decode(path) -> tuple[list[np.ndarray], list[float]]:
    """Every frame (as `to_ndarray` gives it) and its time in seconds, in display order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    frames.sort(key=lambda pair: pair[0])
    return [f for _, f in frames], [t for t, _ in frames]


HANG_CHECK = """
import sys
from pathlib import Path
from clipaction.testing.footage import Scene, write_scenes
from clipaction.video.timed import Sample, frames_at
video = write_scenes(Path(sys.argv[1]), [Scene(6, 0), Scene(6, 1), Scene(6, 2)], fps=10, width=96, height=64)
for _ in range(100):
    for middle in (2.0, 7.0, 14.0):
        for item in frames_at(video, [(0, middle)]):
            if isinstance(item, Sample):
                break  # as a thumbnail does: one frame, then the decoder is freed mid-stream
print("done")
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_stopping_after_the_first_frame_many_times_never_hangs(tmp_path):
    # Freeing a frame-threaded H.264 decoder with frames in flight deadlocked on the GIL (a
    # decoder thread logging through PyAV's callback) within a few hundred early stops (the
    # serve Search tab's thumbnails) once RGB conversion was fast (a reused scaler), until
    # frames_at let the decoder finish its work without the GIL (`timed._quiesce`).
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", HANG_CHECK, str(tmp_path / "v.mp4")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]


@pytest.mark.parametrize(
    "spec",
    [
        SyntheticVideo(codec="mpeg4", width=160, height=120, num_frames=60, gop=12, seed=3),
        SyntheticVideo(codec="h264", width=160, height=120, num_frames=60, gop=25, seed=4),  # B-frames
    ],
    ids=["mpeg4", "h264"],
)
def test_extraction_pixels_equal_a_full_decode_through_the_image_processor(tmp_path, tiny_backend, spec):
    path = write_video(tmp_path / ("v.avi" if spec.codec == "mpeg4" else "v.mp4"), spec)
    sampler = SamplerConfig(name="uniform", frames=7)
    indices, new, _, pixels, _ = decode_video(str(path), sampler, tiny_backend, frozenset())
    frames, _ = _full_decode(path)
    processor = tiny_backend.processor.image_processor
    expected = processor(images=[frames[i] for i in new], return_tensors="pt")["pixel_values"]
    assert len(set(indices.tolist())) == len(new) == 7
    assert pixels.dtype == expected.dtype
    assert float((pixels - expected).abs().max()) == 0.0  # bit for bit: the same numbers


@pytest.mark.slow
def test_timed_decoding_skips_unshown_b_frames_and_shows_a_full_decodes_frames(tmp_path):
    # 12 s at 25 fps, x264's default B-frames; frames carry their number (mod 256) and texture
    scenes = [Scene(4.0, pattern) for pattern in range(3)]
    textured = scene_frames(scenes, 25, 96, 48, seed=2)
    path = write_frames(
        tmp_path / "b.mp4", (stamp_number(frame, i % 256) for i, frame in enumerate(textured)), fps=25, gop=250
    )
    frames, times = _full_decode(path)
    assert len(frames) == 300
    wanted = [(k, (k + 0.5) / 2) for k in range(24)]  # 2 samples a second, as the timeline takes them
    stats: dict = {}
    samples = [e for e in frames_at(path, wanted, stats=stats) if isinstance(e, Sample)]
    assert [s.index for s in samples] == [k for k, _ in wanted]
    for sample in samples:
        shown = int(np.searchsorted(times, sample.time, side="right") - 1)
        np.testing.assert_array_equal(sample.frame, frames[shown])
        assert read_number(sample.frame) == shown % 256
    assert stats["decoded"] < 250  # non-reference frames between the samples were not decoded
    # every frame wanted: nothing can be skipped, and every frame is the full decode's
    dense = [(k, t + 0.001) for k, t in enumerate(times[:60])]
    got = [e.frame for e in frames_at(path, dense) if isinstance(e, Sample)]
    assert len(got) == 60
    for k, frame in enumerate(got):
        np.testing.assert_array_equal(frame, frames[k])


def test_numbered_frames_survive_skipping_at_odd_times(tmp_path):
    path = write_frames(tmp_path / "n.mkv", numbered_frames(200), fps=25, gop=100)
    frames, times = _full_decode(path)
    rng = np.random.default_rng(5)
    queries = sorted(rng.uniform(0, times[-1], 30).round(4).tolist())
    found = [e for e in frames_at(path, list(enumerate(queries))) if isinstance(e, Sample)]
    assert len(found) == len(queries)
    for sample in found:
        shown = int(np.searchsorted(times, sample.time, side="right") - 1)
        assert read_number(sample.frame) == shown
