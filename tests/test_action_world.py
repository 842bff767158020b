"""The synthetic action world: reproducible pixels, held-out compositions, and each class's
defining property (colour, shape, motion) really in the pixels, measured from the frames."""

from __future__ import annotations

import csv
import functools
import json

import av
import numpy as np
import pytest

from clipaction.demo.world import (
    COLOURS,
    ActionWorld,
    Composition,
    render_video,
    video_seed,
)

WORLD = ActionWorld()


def _colour_mask(frames: np.ndarray, colour: str, tolerance: float = 70.0) -> np.ndarray:
    """(T, H, W) bool: pixels within `tolerance` (RGB distance) of the colour word's RGB."""
    target = np.array(COLOURS[colour], dtype=np.float32)
    return np.linalg.norm(frames.astype(np.float32) - target, axis=-1) < tolerance


@functools.cache
def _render(comp: Composition, index: int = 0):
    """The demo's test video `index` of `comp`, drawn once per session (treat it as read-only)."""
    return render_video(WORLD, comp, video_seed(WORLD, comp, "test", index))


def test_same_seed_same_pixels_other_seed_other_video():
    comp = WORLD.classes[0]
    first, again = _render(comp), _render(comp)
    assert np.array_equal(first.frames, again.frames)
    other = _render(comp, 1)
    assert first.frames.shape[1:] == other.frames.shape[1:]
    assert not np.array_equal(first.frames[: len(other.frames)][:10], other.frames[:10])
    # A subset of frames is drawn exactly as in the whole video.
    part = render_video(WORLD, comp, video_seed(WORLD, comp, "test", 0), frames=[3, 17])
    assert np.array_equal(part.frames, first.frames[[3, 17]])


def test_world_config_is_checked():
    with pytest.raises(ValueError, match="not a composition"):
        ActionWorld(classes=(Composition("red", "circle", "spinning"),))  # a spinning circle looks still
    with pytest.raises(ValueError, match="colours must be among"):
        ActionWorld(colours=("mauve",))


def test_held_out_compositions_never_in_training(world_model_dir):
    training = json.loads((world_model_dir / "training.json").read_text())
    trained = {Composition.parse(sentence) for sentence in training["training_compositions"]}
    held = {tuple(pair) for pair in training["held_out"]}
    assert held == set(WORLD.held_out)
    assert not any((c.colour, c.shape) in held for c in trained)
    unseen = [c for c in WORLD.classes if WORLD.is_unseen(c)]
    seen = [c for c in WORLD.classes if not WORLD.is_unseen(c)]
    assert len(unseen) >= 4 and len(seen) >= 8
    assert not set(unseen) & trained and set(seen) <= trained
    # Every word of an unseen sentence is seen in training, in other combinations.
    words = {w for c in trained for w in c.sentence.split()}
    assert all(set(c.sentence.split()) <= words for c in unseen)


def test_dataset_files_record_classes_and_unseen(world_data):
    info = json.loads(world_data.info.read_text())
    assert info["classes"] == list(world_data.classes) == [c.label for c in WORLD.classes]
    assert set(info["unseen"]) == {c.label for c in (*WORLD.classes, *WORLD.extra_classes) if WORLD.is_unseen(c)}
    with open(world_data.label_map, newline="") as handle:
        texts = dict(list(csv.reader(handle))[1:])
    assert texts["red_square_moving_up"] == "a red square moving up"
    with open(world_data.manifest, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["path", "label", "split"]
    assert {r[2] for r in rows[1:]} == {"train", "test"}
    assert all((world_data.root / r[0]).is_file() for r in rows[1:])


def test_written_video_decodes_to_the_rendered_frames(world_data):
    comp = WORLD.classes[0]
    rendered = _render(comp)
    path = world_data.root / "videos" / comp.label / "test_01.mp4"
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape == rendered.frames.shape
    # MPEG-4 at 2 Mb/s and 4:2:0 chroma: close to the drawn pixels, not equal.
    assert np.abs(decoded.astype(int) - rendered.frames.astype(int)).mean() < 8


@pytest.mark.parametrize("comp", WORLD.classes, ids=lambda c: c.label)
def test_colour_and_shape_are_in_the_pixels(comp):
    rendered = _render(comp)
    mask = _colour_mask(rendered.frames, comp.colour)
    drawn = rendered.alpha > 0.5
    shown = np.flatnonzero(rendered.visible)
    # Where the generator says the shape is, the pixels have its colour (and few others do).
    overlap = (mask[shown] & drawn[shown]).sum() / max(1, (mask[shown] | drawn[shown]).sum())
    assert overlap > 0.6
    # No other colour word is drawn there.
    for other in COLOURS:
        if other != comp.colour:
            assert _colour_mask(rendered.frames[shown], other)[drawn[shown]].mean() < 0.02
    # Shape, measured on the pixel mask of a frame where the shape is whole: how much of the
    # disc around its centroid it fills, and how convex it is.
    radius = rendered.radius[0]
    inside = [
        i for i in shown
        if radius + 2 < rendered.centre[i][0] < WORLD.size - radius - 2
        and radius + 2 < rendered.centre[i][1] < WORLD.size - radius - 2
    ]  # fmt: skip
    frame_mask = drawn[inside[len(inside) // 2]] & mask[inside[len(inside) // 2]]
    fill, solidity = _shape_measures(frame_mask)
    expected = {"circle": (0.8, 1.01), "square": (0.5, 0.8), "triangle": (0.25, 0.5), "cross": (0.45, 0.75)}
    low, high = expected[comp.shape]
    assert low < fill < high, (comp.shape, fill)
    if comp.shape == "cross":
        assert solidity < 0.85
    else:
        assert solidity > 0.85


def _shape_measures(mask: np.ndarray) -> tuple[float, float]:
    """(area / area of the disc reaching the farthest pixel, area / convex hull area)."""
    from scipy.spatial import ConvexHull

    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys], axis=1).astype(float)
    centre = points.mean(axis=0)
    reach = np.sqrt(((points - centre) ** 2).sum(axis=1)).max() + 0.5
    hull = ConvexHull(np.concatenate([points + d for d in ((0, 0), (1, 0), (0, 1), (1, 1))]))
    return len(points) / (np.pi * reach**2), len(points) / hull.volume


def _centroids(rendered, colour: str) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) x, y of the colour mask's centroid per frame, and (T,) its pixel count."""
    mask = _colour_mask(rendered.frames, colour) & (rendered.alpha > 0.5)
    counts = mask.reshape(len(mask), -1).sum(axis=1)
    ys, xs = np.mgrid[0 : mask.shape[1], 0 : mask.shape[2]]
    with np.errstate(invalid="ignore"):
        cx = (mask * xs).reshape(len(mask), -1).sum(axis=1) / counts
        cy = (mask * ys).reshape(len(mask), -1).sum(axis=1) / counts
    return np.stack([cx, cy], axis=1), counts


@pytest.mark.parametrize("comp", WORLD.classes, ids=lambda c: c.label)
def test_motion_is_in_the_pixels(comp):
    rendered = _render(comp)
    centre, counts = _centroids(rendered, comp.colour)
    whole = counts >= 0.9 * np.median(counts[counts > 0])
    steps = [centre[i + 1] - centre[i] for i in range(len(centre) - 1) if whole[i] and whole[i + 1]]
    step = np.median(np.array(steps), axis=0) if steps else np.zeros(2)
    direction = {"moving up": (0, -1), "moving down": (0, 1), "moving left": (-1, 0), "moving right": (1, 0)}
    if comp.motion in direction:
        along = step @ np.array(direction[comp.motion])
        assert along > 1.0, step  # pixels per frame, the way the sentence says
        assert abs(step @ np.array(direction[comp.motion][::-1])) < 0.3
    elif comp.motion == "blinking":
        assert 0.25 < (counts == 0).mean() < 0.75  # absent from about half the frames
        assert np.nanstd(centre[counts > 0], axis=0).max() < 0.5  # and it stays put
    elif comp.motion == "bouncing":
        dy = np.diff(centre[whole][:, 1])
        assert (dy > 0.5).mean() > 0.2 and (dy < -0.5).mean() > 0.2  # up and down
        assert np.nanstd(centre[whole][:, 0]) < 0.5
    elif comp.motion == "spinning":
        masks = _colour_mask(rendered.frames, comp.colour) & (rendered.alpha > 0.5)
        assert np.nanstd(centre[whole], axis=0).max() < 0.7  # in place...
        changed = (masks[1:] ^ masks[:-1]).reshape(len(masks) - 1, -1).sum(axis=1)
        assert np.median(changed) > 0.1 * np.median(counts)  # ...but turning
