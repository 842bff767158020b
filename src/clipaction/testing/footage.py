"""Untrimmed test footage with known facts: scenes whose content changes at known times, frames
that carry their own number, variable frame rates and non-zero start times (PyAV + numpy).

Frames are rendered and encoded one at a time, so an hour of footage never sits in memory.
Same arguments -> same pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from clipaction.models.base import FrameBackendBase, FrameFeatures

log = logging.getLogger(__name__)

_CONTAINERS = {".avi": "avi", ".mp4": "mp4", ".mkv": "matroska", ".ts": "mpegts"}
#: Scene colours (RGB 0-255): far apart, so a frame's mean colour says which scene it is from.
PALETTE = (
    (220, 40, 40),  # red
    (40, 200, 60),  # green
    (50, 70, 230),  # blue
    (230, 210, 40),  # yellow
    (200, 60, 210),  # magenta
    (40, 210, 210),  # cyan
)
PALETTE_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan")
#: Pixels per bit of a frame number stamped by `stamp_number` (survives lossy coding).
_BIT = 8


@dataclass(frozen=True)
class Scene:
    """`seconds` of footage in colour `PALETTE[pattern]`."""

    seconds: float
    pattern: int


def scene_frames(scenes: Sequence[Scene], fps: float, width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames at `fps`: each scene's colour with mild noise and a small moving
    grey square (so consecutive frames differ and encoders cannot skip them). Frame i lies in
    the scene that contains time i / fps."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 5.0, size=(height, width, 3)).astype(np.float32)
    side = max(4, min(width, height) // 6)
    bounds = np.cumsum([scene.seconds for scene in scenes])
    total = int(np.floor(bounds[-1] * fps + 1e-9)) if len(scenes) else 0
    for i in range(total):
        scene = scenes[int(np.searchsorted(bounds, i / fps, side="right"))]
        colour = np.array(PALETTE[scene.pattern % len(PALETTE)], dtype=np.float32)
        frame = colour[None, None, :] + noise
        y, x = (3 * i) % (height - side), (5 * i) % (width - side)
        frame[y : y + side, x : x + side] = 128.0
        yield np.clip(frame, 0, 255).astype(np.uint8)


def stamp_number(frame: np.ndarray, number: int, bits: int = 8) -> np.ndarray:
    """`frame` with `number` written as `bits` black/white blocks along its top edge."""
    out = frame.copy()
    for bit in range(bits):
        out[:_BIT, bit * _BIT : (bit + 1) * _BIT] = 255 if (number >> bit) & 1 else 0
    return out


def read_number(frame: np.ndarray, bits: int = 8) -> int:
    """The number `stamp_number` wrote (block means rounded to black/white)."""
    value = 0
    for bit in range(bits):
        if frame[1 : _BIT - 1, bit * _BIT + 1 : (bit + 1) * _BIT - 1].mean() > 127:
            value |= 1 << bit
    return value


def numbered_frames(count: int, width: int = 96, height: int = 48) -> Iterator[np.ndarray]:
    """`count` mid-grey frames, frame i stamped with i (mod 256)."""
    base = np.full((height, width, 3), 128, dtype=np.uint8)
    for i in range(count):
        yield stamp_number(base, i % 256)


def write_frames(
    path: str | Path,
    frames: Iterable[np.ndarray],
    times: Iterable[float | Fraction] | None = None,
    *,
    fps: float | Fraction = 25,
    codec: str = "h264",
    gop: int = 25,
    time_base: Fraction = Fraction(1, 1000),
) -> Path:
    """Encode `frames` to `path` (the suffix picks the container). Frame i is shown from
    `times[i]` seconds (default i / fps): give `times` for a variable frame rate or a non-zero
    start. Frames are encoded as they come (memory does not grow with length)."""
    path = Path(path)
    fmt = _CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"video suffix must be one of {', '.join(_CONTAINERS)}; got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    stamps = iter(times) if times is not None else (Fraction(i) / rate for i in _count())
    options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "veryfast", "threads": "1"}
    if times is not None:
        options["bf"] = "0"  # stamped frames go out in order (MP4 needs rising dts)
    if codec != "h264":
        options = {"g": str(gop), "b": "2M"}
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream("libx264" if codec == "h264" else codec, rate=rate, options=options)
        assert isinstance(stream, av.VideoStream)  # a video codec's stream (the type checker cannot tell)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        opened = False
        scaler = VideoReformatter()  # one for the video: frame.reformat would build one per frame
        for rgb, when in zip(frames, stamps):
            if not opened:
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                # our own time base for the encoder (the muxer may change the stream's)
                stream.time_base = time_base if times is not None else 1 / rate
                stream.codec_context.time_base = stream.time_base
                opened = True
            frame = scaler.reformat(av.VideoFrame.from_ndarray(rgb, format="rgb24"), format="yuv420p")
            base = time_base if times is not None else 1 / rate
            frame.pts = int(round(Fraction(when) / base))
            frame.time_base = base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    log.debug("wrote %s", path)
    return path


def _count() -> Iterator[int]:
    i = 0
    while True:
        yield i
        i += 1


def write_scenes(
    path: str | Path,
    scenes: Sequence[Scene],
    *,
    fps: float = 25,
    width: int = 64,
    height: int = 48,
    codec: str = "h264",
    gop: int = 25,
    seed: int = 0,
) -> Path:
    """A constant-rate video of `scenes` (see `scene_frames`)."""
    return write_frames(path, scene_frames(scenes, fps, width, height, seed), fps=fps, codec=codec, gop=gop)


class ColourBackend(FrameBackendBase):
    """A stand-in model whose features follow the generated content, for tests and the README
    figure (not registered: no `--model` reaches it): a frame's feature is its mean colour
    (centred, L2-normalised), a text's is the `PALETTE` colour it names, CLIP's softmax over
    scale x cosine. `encoded` counts the frames through `encode_pixels`. With `clip_frames`,
    it is a clip-level backend (kind "clip", a `ClipBackend`) whose clip feature is the mean
    over the clip's frames; without, a `FrameBackend` on the torch runtime. `aliases` lets
    other words name palette colours (`{"juggling": 0}`: red)."""

    family = "colour"
    capabilities: frozenset = frozenset()
    device = torch.device("cpu")

    def __init__(
        self, clip_frames: int | None = None, scale: float = 30.0, aliases: dict[str, int] | None = None
    ) -> None:
        super().__init__()
        #: words that name a palette colour in texts, besides the colour names themselves
        self.aliases = dict(aliases or {})
        self.kind = "clip" if clip_frames else "frame"  # type: ignore[assignment]
        #: frames per clip (0: a frame model) and the counts it takes
        self.clip_frames = int(clip_frames or 0)
        self.frame_counts: tuple[int, ...] = (self.clip_frames,) if clip_frames else ()
        self.fingerprint = {"backend": "colour-test", "kind": self.kind, "clip_frames": clip_frames}
        self.scale = scale
        self.encoded = 0

    def preprocess(self, frames) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, 1, 1) mean colour in [0, 1]."""
        means = np.asarray(frames, dtype=np.float32).mean(axis=(1, 2)) / 255.0
        return torch.from_numpy(means)[:, :, None, None]

    def _encode_torch(self, pixels: torch.Tensor) -> FrameFeatures:
        from clipaction.models.base import FrameFeatures
        from clipaction.models.pooling import normalise

        if self.kind == "clip":  # (B, F, 3, 1, 1)
            self.encoded += pixels.shape[0] * pixels.shape[1]
            colour = pixels.mean(dim=1)[:, :, 0, 0]
        else:
            self.encoded += len(pixels)
            colour = pixels[:, :, 0, 0]
        embeds = normalise(colour - 0.5)
        return FrameFeatures(pooled=embeds, embeds=embeds)

    def encode_frames(self, frames):
        pixels = self.preprocess(frames)
        return self.encode_pixels(pixels[None] if self.kind == "clip" else pixels)

    def encode_texts(self, texts) -> torch.Tensor:
        from clipaction.models.pooling import normalise

        rows = []
        for text in texts:
            named = [i for i, name in enumerate(PALETTE_NAMES) if name in text]
            named += [index for word, index in self.aliases.items() if word in text]
            colour = PALETTE[named[0]] if named else (128, 128, 128)
            rows.append(torch.tensor(colour, dtype=torch.float32) / 255.0 - 0.5 + (0 if named else 1e-3))
        return normalise(torch.stack(rows))

    def video_embedding(self, rows: torch.Tensor) -> torch.Tensor:
        from clipaction.models.pooling import pool_frames

        return pool_frames(rows)

    def scoring(self):
        from clipaction.models.base import Scoring

        return Scoring(scale=self.scale)

    def describe(self) -> dict:
        return {"family": self.family, "kind": self.kind, "score": "softmax", "logit_scale": self.scale}
