"""What the Search tab shows of a search result, without Gradio: the moment (video, start,
end, score), its caption, a thumbnail of its middle frame and the player that starts at it.

A result is whatever the search function returns per moment: an object with attributes or a
dict with the keys `video`, `start`, `end`, `score` (and `probability` for sigmoid models).
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from clipaction.video.timed import Sample, frames_at

log = logging.getLogger(__name__)

#: Longer side of a thumbnail, in pixels.
THUMB_SIDE = 320
_PLACEHOLDER_GREY = 96


@dataclass(frozen=True)
class Moment:
    """A stretch [`start`, `end`) seconds of `video` (a path as the index holds it) and its
    `score` (cosine similarity to the query; `probability`: the sigmoid models' probability)."""

    video: str
    start: float
    end: float
    score: float
    probability: float | None = None

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2

    @property
    def name(self) -> str:
        return Path(self.video).name

    @property
    def path(self) -> Path:
        """The video file (a relative path in the index is taken from the working folder)."""
        return Path(os.path.abspath(Path(self.video).expanduser()))


def as_moment(result: Any) -> Moment:
    """A search result (dict or object with video, start, end, score[, probability]) as a Moment."""

    def get(key: str, default: Any = ...) -> Any:
        value = result.get(key, default) if isinstance(result, dict) else getattr(result, key, default)
        if value is ...:
            raise TypeError(f"a search result needs {key!r}; got {type(result).__name__}")
        return value

    probability = get("probability", None)
    return Moment(
        video=str(get("video")),
        start=float(get("start")),
        end=float(get("end")),
        score=float(get("score")),
        probability=None if probability is None else float(probability),
    )


def clock(seconds: float) -> str:
    """Seconds as m:ss.s (h:mm:ss.s from an hour on), as a player shows them."""
    tenths = int(round(max(0.0, seconds) * 10))
    minutes, tenth_seconds = divmod(tenths, 600)
    hours, minutes = divmod(minutes, 60)
    secs = f"{tenth_seconds // 10:02d}.{tenth_seconds % 10}"
    return f"{hours}:{minutes:02d}:{secs}" if hours else f"{minutes}:{secs}"


def time_range(moment: Moment) -> str:
    return f"{clock(moment.start)}–{clock(moment.end)}"


def caption(moment: Moment) -> str:
    """`name · m:ss.s–m:ss.s · score` (and the probability when the model gives one): short,
    so that a thumbnail's caption shows it whole."""
    text = f"{moment.name} · {time_range(moment)} · {moment.score:.3f}"
    if moment.probability is not None:
        text += f" · p {moment.probability:.1%}"
    return text


def middle_frame(moment: Moment) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB frame shown at the moment's middle time, or None when the video
    cannot be read there (moved, damaged)."""
    try:
        for item in frames_at(moment.path, [(0, moment.middle)]):
            if isinstance(item, Sample):
                return item.frame
    except Exception as error:  # a broken file is a grey tile, never a failed search
        log.warning("no thumbnail for %s at %.2f s: %s", moment.video, moment.middle, error)
    return None


def _key(moment: Moment) -> str:
    try:
        stat = moment.path.stat()
        version = f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        version = "missing"
    text = f"{moment.path}\0{version}\0{moment.middle:.3f}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def write_thumbnail(moment: Moment, folder: Path) -> Path:
    """A JPEG of the moment's middle frame (longer side `THUMB_SIDE`) in `folder`, named by the
    video's path, size, mtime and the time (so a repeated search decodes nothing); a grey tile
    when the frame cannot be read."""
    from PIL import Image

    target = folder / f"{_key(moment)}.jpg"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    frame = middle_frame(moment)
    if frame is None:
        frame = np.full((180, THUMB_SIDE, 3), _PLACEHOLDER_GREY, dtype=np.uint8)
    image = Image.fromarray(frame)
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    tmp = target.with_name(f".tmp-{target.name}")
    image.save(tmp, format="JPEG", quality=85)
    tmp.replace(target)
    return target


def file_url(path: Path) -> str:
    """The page-relative URL at which Gradio serves `path` (when it is allowed)."""
    return "gradio_api/file=" + quote(str(path), safe="/")


def player_html(url: str, moment: Moment) -> str:
    """An HTML5 player of `url` starting at the moment (a `#t=START` media fragment)."""
    source = html.escape(f"{url}#t={moment.start:.3f}", quote=True)
    label = html.escape(f"{moment.name}, {time_range(moment)}")
    return (
        f'<video id="search-video" src="{source}" data-start="{moment.start:.3f}" controls autoplay '
        f'playsinline preload="auto" style="width:100%;max-height:420px"></video>'
        f'<p id="search-playing">Playing {label}</p>'
    )
