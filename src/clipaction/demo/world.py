"""A synthetic, compositional "action world": coloured shapes doing motions over a noisy texture.

A class is a sentence, "a red square moving up": one colour x one shape x one motion. Videos are
rendered with numpy and encoded with PyAV; every random choice (background, position, size,
speed, phase, length, noise) comes from `numpy.random.default_rng` seeded from the world's seed
and the video's identity, so the same world and seed give the same pixels and no two videos are
alike. The numbers a model gets on this world are about this world only, never about real actions.

Why the world looks like this (each choice gives the study something to show):

- Moving shapes leave a fading trail (motion blur), so one frame already hints at the direction;
  the trail is faint against the per-frame noise, so averaging frames helps.
- `blinking` shapes are absent from about half the frames: a single middle frame may show only
  background, an 8-frame clip never does. `bouncing` frames look like `moving up` or
  `moving down` one at a time; only several frames together say "bouncing".
- Close pairs (same shape, similar motion; same motion, similar shape) make confusions.
- Some (colour, shape) pairs are held out of the model's training entirely (`held_out`); the
  study's classes include such unseen compositions, so zero-shot on them is real zero-shot.

`write_world_dataset` writes the videos as the `folder` dataset's CSV manifest
(`path,label,split`), a label map (`label,text`: the class sentences, used as prompts) and
`world.json` (the world, the class list and which classes are unseen compositions).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

log = logging.getLogger(__name__)

#: RGB of each colour word, 0-255 (saturated, so a colour survives 4:2:0 chroma subsampling).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 195, 55),
    "blue": (45, 85, 235),
    "yellow": (235, 215, 35),
}
SHAPES = ("circle", "square", "triangle", "cross")
MOTIONS = ("moving up", "moving down", "moving left", "moving right", "spinning", "bouncing", "blinking")
_DIRECTIONS = {
    "moving up": (0.0, -1.0),
    "moving down": (0.0, 1.0),
    "moving left": (-1.0, 0.0),
    "moving right": (1.0, 0.0),
}
#: A spinning circle looks exactly like a still one: that composition does not exist.
_IMPOSSIBLE = frozenset({("circle", "spinning")})


@dataclass(frozen=True, order=True)
class Composition:
    """One class of the world: a colour, a shape and a motion (words of COLOURS, SHAPES, MOTIONS)."""

    colour: str
    shape: str
    motion: str

    @property
    def sentence(self) -> str:
        """The class text, used as the prompt: "a red square moving up"."""
        return f"a {self.colour} {self.shape} {self.motion}"

    @property
    def label(self) -> str:
        """The dataset label (a folder-safe name): "red_square_moving_up"."""
        return f"{self.colour}_{self.shape}_{self.motion}".replace(" ", "_")

    @classmethod
    def parse(cls, text: str) -> Composition:
        """From "red square moving up" (a leading "a " and underscores are accepted)."""
        words = text.replace("_", " ").split()
        if words and words[0] == "a":
            words = words[1:]
        if len(words) < 3:
            raise ValueError(f"a composition is 'colour shape motion'; got {text!r}")
        return cls(words[0], words[1], " ".join(words[2:]))


def _c(text: str) -> Composition:
    return Composition.parse(text)


#: The study's 15 classes: seen and unseen compositions, with close pairs (up vs bouncing,
#: left vs right, two spinning shapes, two blinking shapes).
STUDY_CLASSES = tuple(map(_c, (
    "red square moving up", "red square bouncing", "blue circle moving left", "blue circle moving right",
    "yellow triangle spinning", "yellow cross spinning", "green circle blinking", "green square blinking",
    "blue triangle moving down", "red cross moving right",
    # unseen: their (colour, shape) pairs are in `held_out`
    "green triangle moving up", "yellow square bouncing", "blue cross blinking", "red circle moving down",
    "green triangle spinning",
)))  # fmt: skip
#: Five more classes, outside the study: they measure forgetting beyond the trained classes.
EXTRA_CLASSES = tuple(map(_c, (
    "yellow circle moving up", "green cross moving left", "blue square spinning", "red triangle blinking",
    "yellow triangle bouncing",
)))  # fmt: skip


@dataclass(frozen=True)
class ActionWorld:
    """Everything that changes the pixels of the world's videos.

    `held_out`: (colour, shape) pairs the tiny model never sees in training, with any motion.
    `size`: frame side in pixels (square frames, so CLIP's centre crop cuts nothing).
    `seconds`: (min, max) video length. `radius`: (min, max) shape size, a fraction of `size`. `speed`: (min, max) pixels per frame of moving shapes.
    `trail`: how many earlier positions fade behind a moving shape, the nearest drawn with
    opacity `trail_strength`. `noise`: per-frame pixel
    noise (standard deviation, 0-255 scale).
    """

    colours: tuple[str, ...] = tuple(COLOURS)
    shapes: tuple[str, ...] = SHAPES
    motions: tuple[str, ...] = MOTIONS
    held_out: tuple[tuple[str, str], ...] = (
        ("green", "triangle"), ("yellow", "square"), ("blue", "cross"), ("red", "circle"),
    )  # fmt: skip
    classes: tuple[Composition, ...] = STUDY_CLASSES
    extra_classes: tuple[Composition, ...] = EXTRA_CLASSES
    size: int = 64
    fps: int = 25
    seconds: tuple[float, float] = (2.4, 3.6)
    speed: tuple[float, float] = (1.6, 2.6)
    radius: tuple[float, float] = (0.19, 0.24)
    trail: int = 5
    trail_strength: float = 0.6
    noise: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, values, known in (
            ("colours", self.colours, COLOURS),
            ("shapes", self.shapes, SHAPES),
            ("motions", self.motions, MOTIONS),
        ):
            unknown = [v for v in values if v not in known]
            if unknown:
                raise ValueError(f"{name} must be among {', '.join(known)}; got {', '.join(unknown)}")
        for comp in (*self.classes, *self.extra_classes):
            if comp not in self.compositions():
                raise ValueError(f"class {comp.sentence!r} is not a composition of this world")
        if len({c.label for c in (*self.classes, *self.extra_classes)}) != len(self.classes) + len(self.extra_classes):
            raise ValueError("a class is listed twice in classes/extra_classes")
        if self.size < 32 or self.size % 2:
            raise ValueError(f"size must be even and >= 32; got {self.size}")

    def compositions(self) -> list[Composition]:
        """Every composition that exists (sorted), seen or not."""
        return sorted(
            Composition(colour, shape, motion)
            for colour in self.colours
            for shape in self.shapes
            for motion in self.motions
            if (shape, motion) not in _IMPOSSIBLE
        )

    def is_unseen(self, comp: Composition) -> bool:
        """Whether the model never trains on this composition (its colour-shape pair is held out)."""
        return (comp.colour, comp.shape) in self.held_out

    def training_compositions(self) -> list[Composition]:
        """The compositions the tiny model trains on: all but the held-out ones."""
        return [c for c in self.compositions() if not self.is_unseen(c)]

    def words(self) -> list[str]:
        """Every word of every sentence (for a tokenizer that keeps them whole)."""
        return sorted({w for c in self.compositions() for w in c.sentence.split()})

    def to_json(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass(frozen=True)
class Rendered:
    """One rendered video and the facts it was drawn from.

    frames (T, S, S, 3) uint8 RGB; alpha (T, S, S) float32 in [0, 1], the current shape's
    coverage (its trail excluded); centre (T, 2) float (x, y) pixels; angle (T,) radians;
    radius (T,) pixels; visible (T,) bool (blinking off, or moved out of the frame).
    """

    frames: np.ndarray
    alpha: np.ndarray
    centre: np.ndarray
    angle: np.ndarray
    radius: np.ndarray
    visible: np.ndarray


def _shape_patch(
    shape: str, size: int, cx: float, cy: float, radius: float, angle: float
) -> tuple[slice, slice, np.ndarray]:
    """The shape's coverage on its bounding box only: (rows, cols, (h, w) float32 in [0, 1]).

    Anti-aliased over one pixel. `radius` is the circumradius-like size; `angle` rotates the
    shape (radians). The box is clipped to the frame (it may be empty)."""
    reach = radius + 2.0
    y0, y1 = max(0, int(np.floor(cy - reach))), min(size, int(np.ceil(cy + reach)))
    x0, x1 = max(0, int(np.floor(cx - reach))), min(size, int(np.ceil(cx + reach)))
    rows, cols = slice(y0, max(y0, y1)), slice(x0, max(x0, x1))
    dy = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] + 0.5 - cy
    dx = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] + 0.5 - cx
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # shape-local coordinates
    if shape == "circle":
        dist = np.hypot(u, v) - radius
    elif shape == "square":
        dist = np.maximum(np.abs(u), np.abs(v)) - 0.8 * radius
    elif shape == "triangle":  # equilateral, pointing up at angle 0
        dist = np.maximum(np.maximum(v, 0.866 * u - 0.5 * v), -0.866 * u - 0.5 * v) - 0.55 * radius
    elif shape == "cross":
        arm, half = radius, 0.33 * radius
        dist = np.minimum(np.maximum(np.abs(u) - arm, np.abs(v) - half), np.maximum(np.abs(u) - half, np.abs(v) - arm))
    else:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
    return rows, cols, np.clip(0.5 - dist, 0.0, 1.0).astype(np.float32)


def shape_alpha(shape: str, size: int, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """(size, size) float32 coverage in [0, 1] of `shape` centred at (cx, cy) (see `_shape_patch`)."""
    rows, cols, patch = _shape_patch(shape, size, cx, cy, radius, angle)
    alpha = np.zeros((size, size), dtype=np.float32)
    alpha[rows, cols] = patch
    return alpha


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32: a muted, low-contrast texture of a few random waves and blobs."""
    coords = np.arange(size, dtype=np.float32) / size
    base = rng.uniform(85, 150) + rng.uniform(-12, 12, size=3)
    image = np.broadcast_to(base.astype(np.float32), (size, size, 3)).copy()
    for _ in range(3):
        fx, fy = rng.uniform(-4, 4, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        tint = (rng.uniform(-12, 12, size=3) * rng.uniform(0.3, 1.0)).astype(np.float32)
        wave = np.sin(np.float32(2 * np.pi) * (fx * coords[None, :] + fy * coords[:, None]) + np.float32(phase))
        image += wave[..., None] * tint
    return image


def _trajectory(comp: Composition, world: ActionWorld, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """(centre (n, 2), angle (n,), on (n,) bool) for one video of `comp` at times 0..n-1."""
    size = world.size
    t = np.arange(n, dtype=np.float32)
    radius = rng.uniform(*world.radius) * size
    margin = radius + 2
    start = rng.uniform(margin, size - margin, size=2)
    centre = np.repeat(start[None], n, axis=0).astype(np.float32)
    angle = np.full(n, rng.uniform(-0.25, 0.25), dtype=np.float32)
    on = np.ones(n, dtype=bool)
    motion = comp.motion
    if motion in _DIRECTIONS:
        step = rng.uniform(*world.speed) * np.array(_DIRECTIONS[motion], dtype=np.float32)
        # The shape leaves at one side and comes back at the other, fully out of the frame
        # in between (so it is absent from a few frames, as if it passed by).
        span = size + 2 * radius
        centre = ((start[None] + t[:, None] * step[None] + radius) % span - radius).astype(np.float32)
    elif motion == "spinning":
        omega = rng.uniform(0.12, 0.22) * rng.choice([-1.0, 1.0])
        angle = (angle[0] + omega * t).astype(np.float32)
    elif motion == "bouncing":
        period = rng.uniform(16, 26)
        floor = size - margin
        height = rng.uniform(0.35, 0.5) * size
        phase = rng.uniform(0, period)
        centre[:, 1] = floor - height * np.abs(np.sin(np.pi * (t + phase) / period))
    elif motion == "blinking":
        period = int(rng.integers(10, 17))
        offset = int(rng.integers(0, period))
        on = ((t.astype(int) + offset) % period) < period // 2
    return centre, angle, on, np.full(n, radius, dtype=np.float32)


def video_length(world: ActionWorld, seed: int | Sequence[int]) -> int:
    """How many frames `render_video(world, _, seed)` draws (the seed's first draw)."""
    return int(round(np.random.default_rng(seed).uniform(*world.seconds) * world.fps))


def render_video(
    world: ActionWorld, comp: Composition, seed: int | Sequence[int], frames: Sequence[int] | None = None
) -> Rendered:
    """Draw one video of `comp` (its length, look and motion drawn from `seed`).

    `frames` (indices, default all) draws only those frames; each is the same as in the full
    video (every frame's noise has its own seed), and the facts cover the drawn frames only.
    """
    rng = np.random.default_rng(seed)
    size = world.size
    n = int(round(rng.uniform(*world.seconds) * world.fps))
    background = _background(rng, size)
    centre, angle, on, radius = _trajectory(comp, world, rng, n)
    colour = np.array(COLOURS[comp.colour], dtype=np.float32)
    colour = np.clip(colour * rng.uniform(0.85, 1.05), 0, 255)
    noise_seed = int(rng.integers(1 << 62))
    moving = comp.motion != "blinking"
    indices = np.arange(n) if frames is None else np.asarray(frames, dtype=int)
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"frame indices must lie in [0, {n}); got {indices.min()}..{indices.max()}")
    pixels = np.empty((len(indices), size, size, 3), dtype=np.uint8)
    alphas = np.empty((len(indices), size, size), dtype=np.float32)
    patches: dict[int, tuple[slice, slice, np.ndarray]] = {}

    def patch(t: int) -> tuple[slice, slice, np.ndarray]:
        # The shape at time t, drawn once: a moving shape's position is drawn again as the
        # trail of the next `world.trail` frames (the patches are only read).
        if t not in patches:
            patches[t] = _shape_patch(comp.shape, size, *centre[t], radius[t], angle[t])
        return patches[t]

    for j, i in enumerate(indices):
        image = background.copy()
        if moving:  # the fading trail: earlier positions, oldest first, each fainter
            for k in range(min(world.trail, i), 0, -1):
                rows, cols, ghost = patch(i - k)
                weight = world.trail_strength * (1 - k / (world.trail + 1))
                image[rows, cols] += (weight * ghost)[..., None] * (colour - image[rows, cols])
        alphas[j] = 0.0
        if on[i]:
            rows, cols, alpha = patch(i)
            image[rows, cols] += alpha[..., None] * (colour - image[rows, cols])
            alphas[j, rows, cols] = alpha
        noise = np.random.default_rng([noise_seed, int(i)]).standard_normal(image.shape, dtype=np.float32)
        pixels[j] = np.clip(image + world.noise * noise, 0, 255).astype(np.uint8)
    # Visible: at least half the shape's area is in the frame (and it is not blinked off).
    area = shape_alpha(comp.shape, size, size / 2, size / 2, radius[0], 0.0).sum()
    visible = alphas.reshape(len(indices), -1).sum(axis=1) >= 0.5 * area
    return Rendered(pixels, alphas, centre[indices], angle[indices], radius[indices], visible)


def video_seed(world: ActionWorld, comp: Composition, split: str, index: int) -> list[int]:
    """The seed of one video: distinct for every (world seed, composition, split, index)."""
    split_id = {"train": 1, "test": 2, "model": 3}[split]
    return [world.seed, split_id, _composition_ids(world)[comp], index]


@functools.lru_cache(maxsize=8)
def _composition_ids(world: ActionWorld) -> dict[Composition, int]:
    return {comp: i for i, comp in enumerate(world.compositions())}


def encode_video(path: str | Path, frames: np.ndarray, fps: int | Fraction = 25, gop: int = 12) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames to `path` with MPEG-4 Part 2 at 2 Mb/s (the rate
    `data.synthetic.write_video` uses: it keeps small frames sharp). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps)
    fmt = {".avi": "avi", ".mp4": "mp4", ".mkv": "matroska"}[path.suffix.lower()]
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream("mpeg4", rate=rate, options={"g": str(gop), "b": "2M"})
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        time_base = 1 / rate  # kept: the mp4 muxer replaces stream.time_base once the header is out
        stream.time_base = time_base
        # One scaler for the whole video: frame.reformat builds a new one per frame, which cost
        # more than drawing and encoding the frame (the same pixels either way).
        scaler = VideoReformatter()
        for i, rgb in enumerate(frames):
            frame = scaler.reformat(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"), format="yuv420p"
            )
            frame.pts = i
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@dataclass(frozen=True)
class WorldDataset:
    """Where `write_world_dataset` put things. `classes` are the study's labels in the world's
    order; `unseen` the labels of compositions the model never trained on."""

    root: Path
    manifest: Path
    label_map: Path
    info: Path
    classes: tuple[str, ...]
    extra_classes: tuple[str, ...]
    unseen: tuple[str, ...]


def dataset_videos(
    world: ActionWorld, train_per_class: int, test_per_class: int
) -> Iterator[tuple[Composition, str, int]]:
    """(composition, split, index) of every video of the dataset, in writing order."""
    for comp in (*world.classes, *world.extra_classes):
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            for index in range(count):
                yield comp, split, index


def write_world_dataset(
    root: str | Path, world: ActionWorld = ActionWorld(), *, train_per_class: int = 8, test_per_class: int = 6
) -> WorldDataset:
    """Write the world's classes (study and extra) as a `folder` dataset under `root`.

    Files: `videos/<label>/<split>_NN.mp4`, `manifest.csv` (path,label,split, paths relative to
    `root`), `labels.csv` (label,text: the class sentences) and `world.json` (the world config,
    the classes, the unseen ones, the sentences). Every video has its own seed (`video_seed`).
    """
    root = Path(root)
    rows = []
    for comp, split, index in dataset_videos(world, train_per_class, test_per_class):
        rel = f"videos/{comp.label}/{split}_{index + 1:02d}.mp4"
        rendered = render_video(world, comp, video_seed(world, comp, split, index))
        encode_video(root / rel, rendered.frames, world.fps)
        rows.append((rel, comp.label, split))
    every = (*world.classes, *world.extra_classes)
    manifest = _write_csv(root / "manifest.csv", ("path", "label", "split"), rows)
    label_map = _write_csv(root / "labels.csv", ("label", "text"), [(c.label, c.sentence) for c in every])
    unseen = tuple(c.label for c in every if world.is_unseen(c))
    info = root / "world.json"
    info.write_text(
        json.dumps(
            {
                "world": world.to_json(),
                "classes": [c.label for c in world.classes],
                "extra_classes": [c.label for c in world.extra_classes],
                "unseen": list(unseen),
                "sentences": {c.label: c.sentence for c in every},
                "train_per_class": train_per_class,
                "test_per_class": test_per_class,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    log.info("wrote %d videos of the action world to %s", len(rows), root)
    return WorldDataset(
        root=root,
        manifest=manifest,
        label_map=label_map,
        info=info,
        classes=tuple(c.label for c in world.classes),
        extra_classes=tuple(c.label for c in world.extra_classes),
        unseen=unseen,
    )


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path
