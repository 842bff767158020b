"""Hostile inputs (issue 5): every bad video is skipped with its reason, nothing else is lost.

Each case is checked where it is decided (decoder, dataset loader) and end to end: through
`extract_features` with the tiny backend, and through `main(["zeroshot", ...])` for paths, a
folder tree with symlink loops, and a UCF101 split list full of mistakes.
"""

from __future__ import annotations

import csv
import json
import os
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clipaction.cli import main
from clipaction.config import SamplerConfig
from clipaction.features.extract import extract_features
from clipaction.testing.videos import SyntheticVideo, make_folder_dataset, make_ucf101_like, render_frames, write_video
from clipaction.video.decode import (
    VideoDecodeError,
    decode_frames,
    probe,
    read_sampled_frames,
)
from clipaction.video.frames import MAX_SHORT_SIDE, bounded_size
from clipaction.video.sampling import VideoMeta, sample_indices

CLIP = SamplerConfig(name="center-clip", frames=4, window=1.0)
SAMPLERS = [
    SamplerConfig(name="middle"),
    SamplerConfig(name="uniform", frames=8),
    SamplerConfig(name="center-clip", frames=8, window=3.0),
]


# --- makers ---------------------------------------------------------------------------------


def sequential(path: Path, limit: int | None = None) -> np.ndarray:
    """Frames of a full sequential decode, as stored (no rotation, no resizing), up to the
    first decoder error (what a truncated file holds)."""
    frames = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if limit is not None and len(frames) >= limit:
                    break
        except av.error.FFmpegError:
            pass
    return np.stack(frames)


def encode(
    path: Path,
    frames: np.ndarray,
    *,
    codec: str = "mpeg4",
    rate: int = 25,
    pts=None,
    time_base: Fraction | None = None,
    options: dict | None = None,
    container_options=None,
    rotation: tuple[int, bool, bool] | None = None,
) -> Path:
    """Encode RGB `frames` with the given pts (default 0, 1, 2, ... in 1/rate)."""
    time_base = time_base or Fraction(1, rate)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate, options=options or {"g": "10"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.time_base = time_base
        if rotation is not None:
            degrees, hflip, vflip = rotation
            stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_vfr(path: Path, n: int = 50, seed: int = 0) -> Path:
    """A variable-frame-rate video: frame durations drawn from 17-120 ms (pts in 1/1000 s)."""
    durations = np.random.default_rng(seed).choice([17, 33, 40, 80, 120], size=n)
    pts = np.concatenate([[0], np.cumsum(durations)[:-1]]).tolist()
    return encode(
        path, render_frames(SyntheticVideo(num_frames=n, seed=seed)), rate=1000, pts=pts, time_base=Fraction(1, 1000)
    )


def write_4k(path: Path, n: int = 6, width: int = 3840, height: int = 2160) -> Path:
    """A few 4K frames, encoded from YUV directly (no RGB conversion) so it takes < 1 s."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25, options={"g": "100", "qscale": "31"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        yuv = np.full((height * 3 // 2, width), 128, np.uint8)
        checker = (np.arange(height)[:, None] // 120 + np.arange(width)[None, :] // 120) % 2
        yuv[:height] = (checker * 160 + 40).astype(np.uint8)
        for i in range(n):
            yuv[height : height + 16] = 30 * i  # a different chroma band per frame
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_audio_only(path: Path) -> Path:
    """An AAC-in-MP4 file (what an .m4a renamed to .mp4 is): no video stream at all."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        samples = (0.3 * np.sin(np.arange(8192) / 5)).astype(np.float32)[None]
        for start in range(0, 8192, 1024):
            frame = av.AudioFrame.from_ndarray(samples[:, start : start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def first_half(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def avi_with_frame_count(src: Path, dst: Path, frames: int, keep_index: bool = True) -> Path:
    """A copy of an AVI whose headers (avih dwTotalFrames, strh dwLength) claim `frames`."""
    data = bytearray(src.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    struct.pack_into("<I", data, avih + 8 + 16, frames)
    struct.pack_into("<I", data, strh + 8 + 32, frames)
    if not keep_index:
        del data[data.find(b"idx1") :]
    dst.write_bytes(bytes(data))
    return dst


def mkv_with_duration(src: Path, dst: Path, factor: float) -> Path:
    """A copy of an MKV whose Segment Info Duration (float64, id 0x4489) is scaled by `factor`."""
    data = bytearray(src.read_bytes())
    at = data.find(b"\x44\x89\x88")
    assert at > 0, "no 8-byte Duration element"
    (duration,) = struct.unpack_from(">d", data, at + 3)
    struct.pack_into(">d", data, at + 3, duration * factor)
    dst.write_bytes(bytes(data))
    return dst


# --- decoder: files that are not videos, or only part of one ------------------------------------
# Zero-byte, random bytes .avi, text .mp4, an audio-only .wav and missing files are also checked
# in tests/test_decode.py::test_bad_files_raise_video_decode_error (every public entry point).


def test_truncated_mp4_without_its_index_is_refused_with_a_reason(tmp_path: Path) -> None:
    # PyAV writes the moov atom at the end: the first half has no index to read frames with.
    full = write_video(tmp_path / "full.mp4", SyntheticVideo(codec="h264", num_frames=60))
    with pytest.raises(VideoDecodeError, match="not a video or unreadable container") as info:
        read_sampled_frames(first_half(full, tmp_path / "half.mp4"), CLIP)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["avi", "faststart-mp4"])
def test_truncated_video_yields_the_frames_it_still_holds(tmp_path: Path, kind: str) -> None:
    spec = SyntheticVideo(num_frames=80)
    if kind == "avi":  # the idx1 index at the end is lost; ffmpeg reads the chunks in order
        full = write_video(tmp_path / "full.avi", spec)
    else:  # moov first, as web videos are: the index promises 80 frames, the data stops early
        full = encode(
            tmp_path / "full.mp4",
            render_frames(spec),
            codec="h264",
            container_options={"movflags": "faststart"},
            options={"g": "10", "bf": "2"},
        )
    cut = first_half(full, tmp_path / f"half{full.suffix}")
    ref = sequential(cut)
    assert 5 < len(ref) < 80
    with av.open(str(cut)) as container:
        present = sum(1 for packet in container.demux(video=0) if packet.size)
    for sampler in SAMPLERS:
        got = read_sampled_frames(cut, sampler)
        # The count is the packets still there; the last ones may not decode (a frame cut in two,
        # B-frames waiting for it), and a sampled index past them makes decoding count instead.
        assert len(ref) <= got.meta.num_frames <= present < 80
        assert list(got.indices) == sample_indices(got.meta, sampler)
        assert max(got.indices) < len(ref)
        assert np.array_equal(got.frames, ref[list(got.indices)])


# --- decoder: unusual but valid videos -------------------------------------------------------


@pytest.mark.parametrize("codec,suffix", [("mpeg4", ".avi"), ("h264", ".mp4"), ("h264", ".mkv")])
def test_one_frame_video(tmp_path: Path, codec: str, suffix: str) -> None:
    path = write_video(tmp_path / f"one{suffix}", SyntheticVideo(codec=codec, num_frames=1))
    ref = sequential(path)
    assert probe(path).num_frames == 1
    for sampler in SAMPLERS:
        got = read_sampled_frames(path, sampler)
        assert set(got.indices) == {0} and len(got.indices) == max(1, sampler.frames if sampler.name != "middle" else 1)
        assert np.array_equal(got.frames, np.repeat(ref[:1], len(got.indices), axis=0))


def test_video_shorter_than_the_sampling_window(tmp_path: Path) -> None:
    # 10 frames = 0.4 s against a 3 s window: the clip is the whole video.
    path = write_video(tmp_path / "short.mp4", SyntheticVideo(codec="h264", num_frames=10, gop=4))
    ref = sequential(path)
    got = read_sampled_frames(path, SamplerConfig(name="center-clip", frames=8, window=3.0))
    assert got.meta == VideoMeta(10, 25.0, 0.4)
    assert got.indices == (0, 1, 3, 4, 5, 6, 8, 9)
    assert np.array_equal(got.frames, ref[list(got.indices)])


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_variable_frame_rate_gives_the_sequential_frames(tmp_path: Path, suffix: str) -> None:
    path = write_vfr(tmp_path / f"vfr{suffix}", n=50)
    ref = sequential(path)
    assert len(ref) == 50
    for indices in ([0], [49], [25, 3, 25], list(range(0, 50, 7)), [48, 1, 30]):
        assert np.array_equal(decode_frames(path, indices), ref[indices]), indices
    for sampler in SAMPLERS:
        got = read_sampled_frames(path, sampler)
        # MKV cannot state a variable rate: its "1000 fps" time base must not be taken for one.
        assert got.meta.num_frames == 50 and 10 < got.meta.fps < 30
        assert list(got.indices) == sample_indices(got.meta, sampler)
        assert np.array_equal(got.frames, ref[list(got.indices)])


@pytest.fixture(scope="module")
def avi60(tmp_path_factory) -> tuple[Path, np.ndarray]:
    path = write_video(tmp_path_factory.mktemp("avi60") / "v.avi", SyntheticVideo(num_frames=60))
    return path, sequential(path)


@pytest.mark.parametrize(
    "claim,keep_index",
    [(20, True), (400, True), (0, True), (400, False), (0, False)],
    ids=["under-count", "over-count", "zero", "over-count-no-index", "zero-no-index"],
)
def test_avi_header_that_lies_about_the_frame_count(tmp_path: Path, avi60, claim: int, keep_index: bool) -> None:
    src, ref = avi60
    path = avi_with_frame_count(src, tmp_path / "lying.avi", claim, keep_index)
    true_meta = VideoMeta.from_frames(60, 25.0)
    for sampler in SAMPLERS:
        got = read_sampled_frames(path, sampler)
        assert got.meta == true_meta
        assert list(got.indices) == sample_indices(true_meta, sampler)
        assert np.array_equal(got.frames, ref[list(got.indices)])


@pytest.mark.parametrize("factor", [0.25, 10.0])
def test_mkv_duration_that_lies(tmp_path: Path, factor: float) -> None:
    src = write_video(tmp_path / "v.mkv", SyntheticVideo(codec="h264", num_frames=60, gop=12))
    path = mkv_with_duration(src, tmp_path / "lying.mkv", factor)
    ref = sequential(path)
    assert probe(path).num_frames != 60  # the metadata is wrong...
    got = read_sampled_frames(path, SamplerConfig(name="center-clip", frames=8, window=1.0))
    assert got.meta == VideoMeta.from_frames(60, 25.0)  # ...and the packets correct it
    assert np.array_equal(got.frames, ref[list(got.indices)])


# --- decoder: 4K frames are bounded before they are held --------------------------------------


def peak_rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


@pytest.mark.slow
def test_4k_frames_are_downscaled_before_they_are_held(tmp_path: Path) -> None:
    path = write_4k(tmp_path / "uhd.mp4", n=6)
    sampler = SamplerConfig(name="uniform", frames=6)
    decode_frames(path, [0])  # one-time set-up (codec, threads) is not what is measured
    try:  # reset the peak resident size (Linux >= 4.0), to see what decoding itself needs
        Path("/proc/self/clear_refs").write_text("5")
        before = peak_rss_kib()
    except OSError:
        before = None
    got = read_sampled_frames(path, sampler)
    if before is not None:
        # Measured: ~80 MB (decoder buffers ~50 MB + bounded frames); full-size RGB frames held
        # and stacked need ~360 MB.
        assert (peak_rss_kib() - before) < 180 * 1024
    assert got.frames.shape == (6, 720, 1280, 3) and got.frames.dtype == np.uint8
    assert got.meta.num_frames == 6
    # The picture is the same, only smaller: compare with the full frame averaged over 3x3 blocks.
    full = decode_frames(path, [2], max_short_side=None)[0]
    assert full.shape == (2160, 3840, 3)
    pooled = full.reshape(720, 3, 1280, 3, 3).astype(np.float32).mean(axis=(1, 3))
    assert np.abs(pooled - got.frames[2]).mean() < 3.0
    assert decode_frames(path, [], max_short_side=360).shape == (0, 360, 640, 3)


def test_frame_bound_keeps_aspect_and_leaves_small_frames_exact(tmp_path: Path) -> None:
    assert bounded_size(3840, 2160, 720) == (1280, 720)
    assert bounded_size(2160, 3840, 720) == (720, 1280)  # portrait
    assert bounded_size(4096, 2160, 720) == (1365, 720)
    assert bounded_size(320, 240, 720) == (320, 240)
    assert bounded_size(1000, 800, None) == (1000, 800)
    assert MAX_SHORT_SIDE == 720
    # UCF101's 320x240 passes bit-exact; a tighter bound shrinks it.
    path = write_video(tmp_path / "ucf.avi", SyntheticVideo(width=320, height=240, num_frames=12))
    ref = sequential(path)
    assert np.array_equal(decode_frames(path, [0, 11]), ref[[0, 11]])
    assert decode_frames(path, [3], max_short_side=120).shape == (1, 120, 160, 3)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_short_side"):
            decode_frames(path, [0], max_short_side=bad)


# --- decoder: rotation metadata is applied as players apply it --------------------------------


def upright(raw: np.ndarray, degrees: int, hflip: bool, vflip: bool) -> np.ndarray:
    """What PyAV's set_display_rotation documents: turn counter-clockwise, then mirror."""
    out = np.rot90(raw, degrees // 90, axes=(-3, -2))
    if hflip:
        out = out[..., :, ::-1, :]
    if vflip:
        out = out[..., ::-1, :, :]
    return out


@pytest.mark.parametrize(
    "rotation",
    [
        (90, False, False),
        (-90, False, False),
        (180, False, False),
        (0, True, False),
        (0, False, True),
        (90, True, False),
    ],
    ids=["ccw90", "cw90-phone-portrait", "180", "hflip", "vflip", "ccw90-hflip"],
)
def test_rotation_metadata_is_applied(tmp_path: Path, rotation: tuple[int, bool, bool]) -> None:
    frames = render_frames(SyntheticVideo(width=64, height=48, num_frames=30))
    path = encode(tmp_path / "rotated.mp4", frames, rotation=rotation)
    raw = sequential(path)  # PyAV itself returns frames as stored
    assert raw.shape == (30, 48, 64, 3)
    expected = upright(raw, *rotation)
    # Late frames go through the seeking reader, the sampler through read_sampled_frames.
    assert np.array_equal(decode_frames(path, [29, 3, 17]), expected[[29, 3, 17]])
    got = read_sampled_frames(path, SamplerConfig(name="center-clip", frames=4, window=1.0))
    assert np.array_equal(got.frames, expected[list(got.indices)])
    assert got.frames.flags["C_CONTIGUOUS"]
    assert decode_frames(path, []).shape == (0, *expected.shape[1:])


def test_rotated_4k_portrait_is_bounded_then_turned(tmp_path: Path) -> None:
    # A phone's portrait 4K clip: stored 3840x2160 with a -90 degree display matrix.
    frames = np.zeros((2, 2160, 3840, 3), np.uint8)
    frames[:, :1080, :1920] = (250, 20, 20)  # red top-left quadrant as stored
    path = encode(tmp_path / "phone.mp4", frames, rotation=(-90, False, False), options={"g": "1"})
    got = decode_frames(path, [1])[0]
    assert got.shape == (1280, 720, 3)
    # Turned clockwise, the stored top-left lands top-right.
    assert got[:600, 400:, 0].mean() > 200 and got[:600, :300, 0].mean() < 60


# --- end to end: extract_features skips what it cannot read and keeps the rest -----------------


@pytest.mark.slow
def test_extract_features_skips_bad_files_and_keeps_every_other_video(tiny_backend, tmp_path: Path) -> None:
    videos = tmp_path / "in"
    videos.mkdir()
    good_avi = write_video(videos / "good.avi", SyntheticVideo(num_frames=60, pattern=1))
    good_mp4 = write_video(tmp_path / "src.mp4", SyntheticVideo(codec="h264", num_frames=60, pattern=2))
    empty = videos / "empty.avi"
    empty.write_bytes(b"")
    noise = videos / "noise.avi"
    noise.write_bytes(np.random.default_rng(0).bytes(8192))
    text = videos / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 50)
    bad = {
        empty: "file is empty",
        first_half(good_mp4, videos / "half.mp4"): "not a video or unreadable container",
        noise: "not a video|no video stream|cannot decode|no frames",
        text: "not a video or unreadable container",
        write_audio_only(videos / "song.mp4"): r"no video stream \(streams: audio\)",
        videos / "gone.avi": "no such file|cannot read file",
    }
    frames = render_frames(SyntheticVideo(num_frames=30, pattern=3))
    fine = [
        good_avi,
        first_half(good_avi, videos / "half.avi"),
        write_video(videos / "one.mp4", SyntheticVideo(codec="h264", num_frames=1, pattern=4)),
        write_video(videos / "short.avi", SyntheticVideo(num_frames=8, pattern=5)),
        write_vfr(videos / "vfr.mkv", n=40),
        avi_with_frame_count(good_avi, videos / "lying.avi", 400),
        write_4k(videos / "uhd.avi", n=4),
        encode(videos / "rotated.mp4", frames, rotation=(-90, False, False)),
    ]
    paths = [p for pair in zip(fine, list(bad) + [None] * 2) for p in pair if p is not None]
    result = extract_features(paths, tiny_backend, CLIP, None, batch_size=5, workers=2, progress=False)

    assert set(result.features) == {str(p) for p in fine}
    assert all(f.pooled.shape[0] == 4 and np.isfinite(f.pooled).all() for f in result.features.values())
    failed = {f.path: f.error for f in result.failures}
    assert set(failed) == {str(p) for p in bad}
    for path, reason in bad.items():
        assert failed[str(path)] and "\n" not in failed[str(path)]
        assert __import__("re").search(reason, failed[str(path)]), (path.name, failed[str(path)])
    assert result.n_encoded == len(fine)


# --- end to end: hostile paths, symlink loops, a folder dataset through the CLI ----------------

ODD_LABELS = ['jump "high"', "café olé", "it's raining"]


def test_zeroshot_on_a_folder_with_odd_paths_and_symlink_loops(tiny_model_dir, tmp_path: Path, capsys) -> None:
    root = make_folder_dataset(
        tmp_path / "my videos ü", ODD_LABELS, videos_per_label=2, spec=SyntheticVideo(num_frames=20)
    )
    # File names with spaces, quotes, non-ASCII (NFC and NFD), a leading dash, a '#'.
    odd_names = ['clip "one" #1.mp4', "naïve 'two'.mp4", "Cafe\u0301 ñ 三.mp4", "-dash start.mp4"]
    for k, name in enumerate(odd_names):
        write_video(root / ODD_LABELS[k % 3] / name, SyntheticVideo(num_frames=20, pattern=k % 3, seed=50 + k))
    (root / ODD_LABELS[0] / "broken ' \".mp4").write_bytes(b"\x00garbage" * 64)
    # Symlink loops: to an ancestor, between two folders, and a link that points at itself.
    os.symlink(root, root / ODD_LABELS[0] / "up to root")
    os.symlink(root / ODD_LABELS[2], root / ODD_LABELS[1] / "to other")
    os.symlink(root / ODD_LABELS[1], root / ODD_LABELS[2] / "and back")
    os.symlink("self.mp4", root / ODD_LABELS[1] / "self.mp4")
    out = tmp_path / "out dir 'x'"
    code = main([
        "zeroshot", "--dataset", "folder", "--data-root", str(root), "--model", str(tiny_model_dir),
        "--device", "cpu", "--cache-dir", str(tmp_path / "cache ü"), "--no-progress", "--out", str(out),
        "--sampler", "center-clip", "--frames", "2", "--window", "0.5",
    ])  # fmt: skip
    assert code == 1  # finished, with one failure
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert sorted(results["dataset"]["classes"]) == sorted(ODD_LABELS)
    # 6 generated + 4 odd names: the loops list nothing twice, and a link into another label's
    # folder does not move that label's videos under its own label.
    assert results["dataset"]["n_evaluated"] == 10
    assert [Path(f["path"]).name for f in results["failures"]] == ["broken ' \".mp4"]
    with open(out / "predictions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = {Path(row["video"]).name for row in rows}
    assert set(odd_names) <= names and len(rows) == 10
    assert all(Path(row["video"]).is_file() for row in rows)  # paths survive the CSV round trip
    assert all(row["true_label"] in ODD_LABELS for row in rows)


def test_predict_with_odd_paths(tiny_model_dir, tmp_path: Path, capsys) -> None:
    video = write_video(tmp_path / "dir with 'quotes'" / 'ü "x" clip.mp4', SyntheticVideo(num_frames=12))
    code = main(["predict", str(video), "--labels", 'a "jump",ça marche', "--model", str(tiny_model_dir),
                 "--device", "cpu", "--cache-dir", str(tmp_path / "c"), "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert str(video) in printed or video.name in printed


# --- end to end: a UCF101 split list full of mistakes -----------------------------------------


def test_zeroshot_with_a_hostile_ucf101_split_list(tiny_model_dir, tmp_path: Path) -> None:
    classes = ["Archery", "Basketball"]
    data_root, splits = make_ucf101_like(
        tmp_path / "ucf",
        classes,
        train_groups=(8,),
        test_groups=(1,),
        clips_per_group=2,
        spec=SyntheticVideo(num_frames=20),
    )
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0\n")
    (data_root / "Basketball" / "v_Basketball_g01_c02.avi").write_bytes(b"")  # a corrupt video
    lines = [
        "Archery/v_Archery_g01_c01.avi   ",  # trailing spaces
        "",  # blank lines
        "Archery/v_Archery_g01_c02.avi",
        "Archery/v_Archery_g01_c01.avi",  # named twice
        "   ",
        "Basketball/v_Basketball_g01_c01.avi\t",
        "Basketball/v_Basketball_g01_c02.avi",
        "Basketball/v_Basketball_g01_c09.avi",  # names a missing file
        "../../etc/passwd",  # escapes the data root
        "Archery/../../etc/passwd",
        f"{tmp_path}/etc/passwd",  # absolute
    ]
    (splits / "testlist01.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())  # CRLF
    out = tmp_path / "out"
    code = main([
        "zeroshot", "--data-root", str(data_root), "--splits-dir", str(splits), "--num-classes", "2",
        "--model", str(tiny_model_dir), "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
        "--no-progress", "--out", str(out), "--sampler", "middle",
    ])  # fmt: skip
    assert code == 1
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["n_evaluated"] == 3
    failed = {f["path"]: f["error"] for f in results["failures"]}
    assert failed["Basketball/v_Basketball_g01_c09.avi"] == "missing: not found"
    assert "'..'" in failed["../../etc/passwd"] and "'..'" in failed["Archery/../../etc/passwd"]
    assert "absolute" in failed[f"{tmp_path}/etc/passwd"]
    assert "file is empty" in failed[str(data_root / "Basketball" / "v_Basketball_g01_c02.avi")]
    assert len(failed) == 5
    with open(out / "predictions.csv", newline="") as handle:
        evaluated = sorted(Path(row["video"]).name for row in csv.DictReader(handle))
    assert evaluated == ["v_Archery_g01_c01.avi", "v_Archery_g01_c02.avi", "v_Basketball_g01_c01.avi"]
    assert "root:x" not in (out / "results.json").read_text()
