"""The synthetic video generator: decodable, deterministic, class-distinct, fast."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clipaction.testing.videos import (
    SyntheticVideo,
    make_folder_dataset,
    make_ucf101_like,
    render_frames,
    write_video,
)


def decode_all(path: Path) -> tuple[np.ndarray, list[bool], list[int], av.video.stream.VideoStream]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, keys, types = [], [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            keys.append(bool(frame.key_frame))
            types.append(int(frame.pict_type))
        return np.stack(frames), keys, types, stream


@pytest.mark.parametrize(
    "codec,suffix",
    [("mpeg4", ".avi"), ("h264", ".mp4"), ("h264", ".mkv"), ("mpeg4", ".mp4")],
)
def test_written_video_has_the_spec_facts(tmp_path: Path, codec: str, suffix: str) -> None:
    spec = SyntheticVideo(codec=codec, width=64, height=48, fps=25, num_frames=40, gop=12)
    path = write_video(tmp_path / "sub" / f"v{suffix}", spec)
    assert path.exists() and path.parent.name == "sub"
    frames, keys, _, _ = decode_all(path)
    assert frames.shape == (40, 48, 64, 3)
    assert [i for i, k in enumerate(keys) if k] == [0, 12, 24, 36]
    # Lossy (and 4:2:0 halves the colour resolution of the stripes), but close to what was rendered.
    rendered = render_frames(spec).astype(np.float32)
    decoded = frames.astype(np.float32)
    assert np.abs(decoded - rendered).mean() < 16
    assert np.abs(decoded.mean(-1) - rendered.mean(-1)).mean() < 6
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == 25


def test_h264_uses_b_frames_and_mpeg4_does_not(tmp_path: Path) -> None:
    b = av.video.frame.PictureType.B
    _, _, types264, _ = decode_all(write_video(tmp_path / "a.mp4", SyntheticVideo(codec="h264")))
    _, _, types4, _ = decode_all(write_video(tmp_path / "a.avi", SyntheticVideo(codec="mpeg4")))
    assert b in types264
    assert b not in types4
    _, _, no_b, _ = decode_all(write_video(tmp_path / "b.mp4", SyntheticVideo(codec="h264", bframes=0)))
    assert b not in no_b


def test_fractional_frame_rate(tmp_path: Path) -> None:
    spec = SyntheticVideo(fps=Fraction(30000, 1001), num_frames=20)
    path = write_video(tmp_path / "ntsc.avi", spec)
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)
    assert spec.duration == pytest.approx(20 * 1001 / 30000)


def test_every_frame_differs_and_content_is_deterministic(tmp_path: Path) -> None:
    spec = SyntheticVideo(codec="h264", num_frames=30, seed=5)
    a, _, _, _ = decode_all(write_video(tmp_path / "a.mp4", spec))
    b, _, _, _ = decode_all(write_video(tmp_path / "b.mp4", spec))
    assert np.array_equal(a, b)
    assert all(not np.array_equal(a[i], a[i + 1]) for i in range(len(a) - 1))
    other, _, _, _ = decode_all(write_video(tmp_path / "c.mp4", SyntheticVideo(codec="h264", num_frames=30, seed=6)))
    assert not np.array_equal(a, other)


@pytest.mark.parametrize("codec,suffix", [("h264", ".mp4"), ("mpeg4", ".avi")])
def test_repeated_writes_are_bit_identical(tmp_path: Path, codec: str, suffix: str) -> None:
    # Threaded or AVX-512 x264 once gave a different encoding in about 1 of 12 runs.
    spec = SyntheticVideo(codec=codec, num_frames=30, seed=5)
    first = write_video(tmp_path / f"first{suffix}", spec).read_bytes()
    for k in range(8):
        again = write_video(tmp_path / f"again{suffix}", spec)
        decode_all(again)  # decoding between writes stirs the heap, which made x264 drift
        assert again.read_bytes() == first, k


def test_twenty_patterns_look_distinct() -> None:
    means = []
    for pattern in range(20):
        frames = render_frames(SyntheticVideo(num_frames=2, pattern=pattern)).astype(np.float32)
        means.append(frames[0])
    for i in range(20):
        for j in range(i + 1, 20):
            assert np.abs(means[i] - means[j]).mean() > 10, (i, j)


def test_same_class_videos_differ_but_less_than_classes() -> None:
    a = render_frames(SyntheticVideo(num_frames=1, pattern=3, seed=1)).astype(np.float32)
    b = render_frames(SyntheticVideo(num_frames=1, pattern=3, seed=2)).astype(np.float32)
    c = render_frames(SyntheticVideo(num_frames=1, pattern=4, seed=1)).astype(np.float32)
    assert 0 < np.abs(a - b).mean() < np.abs(a - c).mean()


def test_bad_spec_and_suffix_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mpeg4, h264"):
        SyntheticVideo(codec="vp9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_frames"):
        SyntheticVideo(num_frames=0)
    with pytest.raises(ValueError, match=r"\.avi"):
        write_video(tmp_path / "v.webm", SyntheticVideo())


def test_make_ucf101_like_writes_the_official_layout(tmp_path: Path) -> None:
    classes = ["ApplyEyeMakeup", "Archery", "Basketball"]
    spec = SyntheticVideo(num_frames=6)
    data_root, splits = make_ucf101_like(tmp_path, classes, clips_per_group=2, spec=spec)
    assert data_root == tmp_path / "UCF-101" and splits == tmp_path / "ucfTrainTestlist"
    videos = sorted(p.relative_to(data_root).as_posix() for p in data_root.rglob("*.avi"))
    assert len(videos) == 3 * 4 * 2
    assert "Archery/v_Archery_g08_c02.avi" in videos
    assert (splits / "classInd.txt").read_text() == "1 ApplyEyeMakeup\n2 Archery\n3 Basketball\n"
    for split in (1, 2, 3):
        train = (splits / f"trainlist0{split}.txt").read_text().splitlines()
        test = (splits / f"testlist0{split}.txt").read_text().splitlines()
        assert train[0] == "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
        assert "Basketball/v_Basketball_g09_c02.avi 3" in train
        assert test[0] == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
        assert len(train) == len(test) == 12
        assert all((data_root / line.split()[0]).exists() for line in train + test)
    # Each video has its own seed, each class its own pattern.
    a, _, _, _ = decode_all(data_root / "Archery/v_Archery_g08_c01.avi")
    b, _, _, _ = decode_all(data_root / "Archery/v_Archery_g08_c02.avi")
    assert not np.array_equal(a, b)


def test_make_ucf101_like_is_deterministic(tmp_path: Path) -> None:
    spec = SyntheticVideo(num_frames=4)
    r1, _ = make_ucf101_like(tmp_path / "a", ["X"], train_groups=(8,), test_groups=(1,), clips_per_group=1, spec=spec)
    r2, _ = make_ucf101_like(tmp_path / "b", ["X"], train_groups=(8,), test_groups=(1,), clips_per_group=1, spec=spec)
    for rel in ("X/v_X_g01_c01.avi", "X/v_X_g08_c01.avi"):
        assert np.array_equal(decode_all(r1 / rel)[0], decode_all(r2 / rel)[0])


def test_make_folder_dataset(tmp_path: Path) -> None:
    root = make_folder_dataset(
        tmp_path / "mine", ["jumping", "playing guitar"], videos_per_label=2, spec=SyntheticVideo(num_frames=5)
    )
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mp4"))
    assert files == [
        "jumping/jumping_01.mp4",
        "jumping/jumping_02.mp4",
        "playing guitar/playing_guitar_01.mp4",
        "playing guitar/playing_guitar_02.mp4",
    ]
    assert decode_all(root / files[0])[0].shape == (5, 48, 64, 3)
