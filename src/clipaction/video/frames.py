"""A decoded PyAV frame -> the upright (H, W, 3) uint8 RGB array a player would show, with its
short side bounded so that 4K footage never holds full-size RGB frames in memory; and the
square crops of multi-crop testing (`square_crop`)."""

from __future__ import annotations

import logging
import math
import threading

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from clipaction.config import CropPosition

log = logging.getLogger(__name__)

MAX_SHORT_SIDE = 720
"""Default bound on a returned frame's short side (pixels): 720p keeps detail far above CLIP's
224 px input while a 4K frame shrinks 9x in memory."""

# Area averaging: the right filter for downscaling (no aliasing from skipped pixels).
_INTERPOLATION = "AREA"

# One scaler per thread, reused for every frame, converting in the calling thread (threads=1).
# `frame.to_ndarray(format=...)` builds a new SwsContext per frame, and with PyAV's default
# threads=0 each starts and joins a pool of one thread per CPU: 2-4x the CPU per frame, and RSS
# that grew with the video's length (thread stacks and allocator arenas of the short-lived
# threads; benchmarks/timeline_memory.py: +100 MB over 1200 conversions, flat when reused).
# The pixels are the same (same flags; tests/test_pipeline_exact.py). A fast conversion once
# exposed a deadlock in freeing a frame-threaded decoder under PyAV's log callback: that is
# fixed where it arises (`clipaction.video.timed._quiesce`), not by slowing this down.
_SCALERS = threading.local()


def _scaler() -> VideoReformatter:
    scaler = getattr(_SCALERS, "scaler", None)
    if scaler is None:
        scaler = _SCALERS.scaler = VideoReformatter()
    return scaler


def check_max_short_side(max_short_side: int | None) -> None:
    """Raise ValueError unless `max_short_side` is None or an integer >= 1."""
    if max_short_side is not None and (
        isinstance(max_short_side, bool) or not isinstance(max_short_side, int) or max_short_side < 1
    ):
        raise ValueError(f"max_short_side must be an integer >= 1 or None; got {max_short_side!r}")


def bounded_size(width: int, height: int, max_short_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the short side is at most `max_short_side`, aspect kept."""
    short = min(width, height)
    if max_short_side is None or short <= max_short_side:
        return width, height
    scale = max_short_side / short
    if width <= height:
        return max_short_side, max(1, round(height * scale))
    return max(1, round(width * scale)), max_short_side


def _display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's 3x3 display matrix as 9 int32 (FFmpeg's layout), or None."""
    data = frame.side_data.get("DISPLAYMATRIX")
    if data is None:
        return None
    raw = bytes(data)
    return np.frombuffer(raw, dtype=np.int32) if len(raw) == 36 else None


class Orientation:
    """The display matrix of one decoding pass, read once.

    Reading `frame.side_data` costs memory PyAV does not give back (PyAV 18.1: about a whole
    frame for 720p H.264, 26 KB at 320x240, whether or not the frame has side data; the
    timeline's peak RSS grew with the video's length), while `frame.rotation` is read in C for
    free. So a pass reads the matrix from its first converted frame, and again only for a frame
    whose rotation differs from the last one read. In MP4/MOV the matrix belongs to the track,
    the same for every frame; only a mirror that appears mid-stream without any change of
    rotation would be missed."""

    def __init__(self) -> None:
        self._rotation: int | None = None
        self._matrix: np.ndarray | None = None

    def matrix(self, frame: av.VideoFrame) -> np.ndarray | None:
        """`frame`'s display matrix as 9 int32, or None."""
        rotation = frame.rotation
        if rotation != self._rotation:
            self._rotation, self._matrix = rotation, _display_matrix(frame)
        return self._matrix


def _orient(image: np.ndarray, frame: av.VideoFrame, matrix: np.ndarray | None) -> np.ndarray:
    """`image` (H, W, 3) turned upright as the display `matrix` says, as FFmpeg's tools do."""
    if matrix is None:
        return image
    # FFmpeg's get_rotation(): the clockwise angle in [0, 360); frame.rotation is counter-clockwise.
    theta = -float(frame.rotation)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        out = image.transpose(1, 0, 2) if matrix[3] > 0 else np.rot90(image, -1)
    elif abs(theta - 180) < 1:
        out = image[:, ::-1] if matrix[0] < 0 else image
        out = out[::-1] if matrix[4] < 0 else out
    elif abs(theta - 270) < 1:
        out = np.rot90(image, -1)[::-1] if matrix[3] < 0 else np.rot90(image, 1)
    elif abs(theta) < 1 or abs(theta - 360) < 1:
        out = image[::-1] if matrix[4] < 0 else image
    else:
        log.debug("display rotation of %.0f degrees is not a right angle: left as stored", theta)
        out = image
    return np.ascontiguousarray(out)


def to_rgb(
    frame: av.VideoFrame, max_short_side: int | None = MAX_SHORT_SIDE, orientation: Orientation | None = None
) -> np.ndarray:
    """The frame as an upright (H, W, 3) uint8 RGB array with its short side bounded.
    `orientation`: the decoding pass's (one per pass: see `Orientation`); None reads the frame's
    display matrix afresh."""
    width, height = bounded_size(frame.width, frame.height, max_short_side)
    if (width, height) == (frame.width, frame.height):
        rgb = _scaler().reformat(frame, format="rgb24", threads=1)
    else:
        # Scaled while still a frame: the full-size RGB image is never allocated.
        rgb = _scaler().reformat(
            frame, width=width, height=height, format="rgb24", interpolation=_INTERPOLATION, threads=1
        )
    return _orient(rgb.to_ndarray(), frame, (orientation or Orientation()).matrix(frame))


def square_crop(frames: np.ndarray, position: CropPosition) -> np.ndarray:
    """(..., H, W, C) frames -> (..., S, S, C), S = min(H, W): the square at the start
    (`left`; the top of a portrait frame), the middle (`center`) or the end (`right`; the
    bottom) of the long side, as three-crop testing takes them before the model's own resize.
    A square frame is returned whole for every position. Pure: no copy of the pixels beyond
    making the result contiguous."""
    frames = np.asarray(frames)
    if frames.ndim < 3:
        raise ValueError(f"frames must be (..., H, W, C); got shape {frames.shape}")
    height, width = frames.shape[-3], frames.shape[-2]
    side = min(height, width)
    offsets = {"left": 0, "center": (max(height, width) - side) // 2, "right": max(height, width) - side}
    if position not in offsets:
        raise ValueError(f"crop position must be one of left, center, right; got {position!r}")
    start = offsets[position]
    if width >= height:
        return np.ascontiguousarray(frames[..., :, start : start + side, :])
    return np.ascontiguousarray(frames[..., start : start + side, :, :])
