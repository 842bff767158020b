"""Synthetic videos with known facts, for tests and the offline demo (PyAV + numpy only).

Every video has a class-dependent look (background colour, stripe orientation and frequency,
chosen from `pattern`) plus content that changes every frame (a moving square and a brightness
ramp), so any two frames of one video differ and decoders can be checked frame by frame. A
small per-video noise field from `numpy.random.default_rng(seed)` makes videos of one class
differ from each other. Same arguments -> same pixels.
"""

from __future__ import annotations

import colorsys
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from clipaction.config import check_choice

log = logging.getLogger(__name__)

Codec = Literal["mpeg4", "h264"]

_CONTAINERS = {".avi": "avi", ".mp4": "mp4", ".mkv": "matroska"}


@dataclass(frozen=True)
class SyntheticVideo:
    """What to generate. The file suffix (.avi, .mp4, .mkv) picks the container.

    `gop` is the keyframe interval; `bframes` is the number of consecutive B-frames (None keeps
    the encoder default: libx264 then uses B-frames, MPEG-4 Part 2 does not).
    """

    codec: Codec = "mpeg4"
    width: int = 64
    height: int = 48
    fps: int | Fraction = 25
    num_frames: int = 50
    gop: int = 12
    bframes: int | None = None
    pattern: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("codec", self.codec, Codec)
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even and >= 16; got {self.width}x{self.height}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1; got {self.num_frames}")
        if self.gop < 1:
            raise ValueError(f"gop must be >= 1; got {self.gop}")
        if not Fraction(self.fps) > 0:
            raise ValueError(f"fps must be > 0; got {self.fps}")

    @property
    def duration(self) -> float:
        """Length in seconds (num_frames / fps)."""
        return float(self.num_frames / Fraction(self.fps))


def _class_look(pattern: int, height: int, width: int) -> np.ndarray:
    """The static class image, (H, W, 3) float32 in [0, 255]."""
    # Golden-ratio hue steps keep consecutive patterns far apart in colour.
    hue = (pattern * 0.6180339887) % 1.0
    sat = 0.35 + 0.3 * ((pattern // 7) % 2)
    bg = np.array(colorsys.hsv_to_rgb(hue, sat, 0.75), dtype=np.float32) * 255
    fg = np.array(colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.8, 0.9), dtype=np.float32) * 255
    angle = np.pi * (pattern % 4) / 4  # 0, 45, 90, 135 degrees
    period = (6.0, 10.0, 16.0)[(pattern // 4) % 3]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period)
    stripes = (np.sin(phase) > 0).astype(np.float32)[..., None]
    return bg * (1 - 0.5 * stripes) + fg * 0.5 * stripes


def render_frames(spec: SyntheticVideo) -> np.ndarray:
    """The RGB frames `write_video` encodes: (num_frames, height, width, 3) uint8."""
    n, h, w = spec.num_frames, spec.height, spec.width
    rng = np.random.default_rng(spec.seed)
    noise = rng.normal(0.0, 6.0, size=(h, w, 3)).astype(np.float32)
    start = rng.integers(0, 1 << 16, size=2)
    base = _class_look(spec.pattern, h, w) + noise
    t = np.arange(n, dtype=np.float32)
    ramp = 40.0 * (t / max(n - 1, 1)) - 20.0  # brightness from -20 to +20 over the video
    video = base[None] + ramp[:, None, None, None]
    side = max(4, min(h, w) // 4)
    ys = (start[0] + 2 * np.arange(n)) % (h - side)
    xs = (start[1] + 3 * np.arange(n)) % (w - side)
    square = np.array(colorsys.hsv_to_rgb((spec.pattern * 0.37) % 1.0, 1.0, 1.0)) * 255
    for i in range(n):
        video[i, ys[i] : ys[i] + side, xs[i] : xs[i] + side] = square
    return np.clip(video, 0, 255).astype(np.uint8)


def _encoder_options(spec: SyntheticVideo) -> dict[str, str]:
    if spec.codec == "h264":
        return {
            # Sparse, regular keyframes: no scene-cut keyframes, no shorter GOPs.
            "g": str(spec.gop),
            "keyint_min": str(spec.gop),
            "sc_threshold": "0",
            # x264's assembly (its AVX-512 paths on this CPU) sometimes encodes the same input
            # differently, up to 1 in 12 runs; plain C is deterministic, and veryfast (which
            # keeps B-frames) wins back the speed.
            "preset": "veryfast",
            "x264-params": "asm=0",
            "threads": "1",
            **({"bf": str(spec.bframes)} if spec.bframes is not None else {}),
        }
    # The default MPEG-4 rate (200 kb/s) smears the small frames; 2 Mb/s keeps luma within ~3 levels.
    opts = {"g": str(spec.gop), "b": "2M"}
    if spec.bframes is not None:
        opts["bf"] = str(spec.bframes)
    return opts


def write_video(path: str | Path, spec: SyntheticVideo) -> Path:
    """Encode `spec` to `path` (parent folders are created) and return the path."""
    path = Path(path)
    fmt = _CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"video suffix must be one of {', '.join(_CONTAINERS)}; got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(spec.fps)
    frames = render_frames(spec)
    codec = "libx264" if spec.codec == "h264" else "mpeg4"
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, options=_encoder_options(spec))
        assert isinstance(stream, av.VideoStream)  # a video codec's stream (the type checker cannot tell)
        stream.width, stream.height = spec.width, spec.height
        stream.pix_fmt = "yuv420p"
        # Keep our own copy: the mp4 muxer replaces stream.time_base (e.g. 1/12800) once the
        # header is written, and frames stamped with that would collapse onto one pts.
        time_base = 1 / rate
        stream.time_base = time_base
        stream.codec_context.gop_size = spec.gop
        if spec.bframes is not None:
            stream.codec_context.max_b_frames = spec.bframes
        scaler = VideoReformatter()  # one for the video: frame.reformat would build one per frame
        for i, rgb in enumerate(frames):
            frame = scaler.reformat(av.VideoFrame.from_ndarray(rgb, format="rgb24"), format="yuv420p")
            frame.pts = i
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    log.debug("wrote %s (%s, %d frames)", path, spec.codec, spec.num_frames)
    return path


def _two(n: int) -> str:
    return f"{n:02d}"


def make_ucf101_like(
    root: str | Path,
    class_names: Sequence[str],
    *,
    train_groups: Sequence[int] = (8, 9),
    test_groups: Sequence[int] = (1, 2),
    clips_per_group: int = 2,
    spec: SyntheticVideo = SyntheticVideo(),
) -> tuple[Path, Path]:
    """Write a UCF101-shaped dataset and its split lists; returns (data_root, splits_dir).

    Layout: `root/UCF-101/<Class>/v_<Class>_gXX_cYY.avi` and `root/ucfTrainTestlist/` with
    `classInd.txt`, `trainlist0{1,2,3}.txt` and `testlist0{1,2,3}.txt` (LF line endings; all
    three splits use the same groups). Class i (0-based, in the order given) has pattern i and
    label i + 1; every video has its own seed.
    """
    root = Path(root)
    data_root, splits_dir = root / "UCF-101", root / "ucfTrainTestlist"
    splits_dir.mkdir(parents=True, exist_ok=True)
    train_lines: list[str] = []
    test_lines: list[str] = []
    for ci, name in enumerate(class_names):
        for group in sorted(set(train_groups) | set(test_groups)):
            for clip in range(1, clips_per_group + 1):
                rel = f"{name}/v_{name}_g{_two(group)}_c{_two(clip)}.avi"
                seed = spec.seed * 1_000_003 + ci * 10_000 + group * 100 + clip
                write_video(data_root / rel, _replace(spec, pattern=ci, seed=seed))
                if group in train_groups:
                    train_lines.append(f"{rel} {ci + 1}")
                if group in test_groups:
                    test_lines.append(rel)
    (splits_dir / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(class_names)))
    for split in (1, 2, 3):
        (splits_dir / f"trainlist0{split}.txt").write_text("".join(f"{x}\n" for x in train_lines))
        (splits_dir / f"testlist0{split}.txt").write_text("".join(f"{x}\n" for x in test_lines))
    return data_root, splits_dir


def make_folder_dataset(
    root: str | Path,
    labels: Sequence[str],
    videos_per_label: int = 3,
    spec: SyntheticVideo = SyntheticVideo(),
) -> Path:
    """Write `root/<label>/<label-slug>_NN.mp4` for each label (pattern = label index); returns root."""
    root = Path(root)
    for li, label in enumerate(labels):
        slug = re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_") or "video"
        for k in range(videos_per_label):
            seed = spec.seed * 1_000_003 + li * 1_000 + k
            write_video(root / label / f"{slug}_{_two(k + 1)}.mp4", _replace(spec, pattern=li, seed=seed))
    return root


def _replace(spec: SyntheticVideo, **changes: Any) -> SyntheticVideo:
    import dataclasses

    return dataclasses.replace(spec, **changes)
