"""A copy of a video that browsers can play: H.264 in MP4, written with PyAV.

Browsers play MP4/WebM with H.264, VP8, VP9 or AV1 in yuv420p; UCF101's MPEG-4 Part 2 (Xvid)
in AVI plays in none of them, so such a source gets an H.264 preview (video only, at most
`MAX_SIDE` pixels on its longer side). A playable source is served as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from clipaction.errors import DataError

log = logging.getLogger(__name__)

#: (container format names PyAV reports, codecs browsers decode in them)
_PLAYABLE = (
    ({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"}, {"h264", "vp9", "av1"}),
    ({"matroska", "webm"}, {"vp8", "vp9", "av1"}),
)
_PLAYABLE_SUFFIXES = {".mp4", ".m4v", ".webm"}
MAX_SIDE = 640


def browser_playable(path: str | Path) -> bool:
    """Whether a browser's <video> plays `path` as it is (container, codec and pixel format)."""
    if Path(path).suffix.lower() not in _PLAYABLE_SUFFIXES:
        return False
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return False
            stream = container.streams.video[0]
            formats = set(container.format.name.split(","))
            codec = stream.codec_context.name
            pix_fmt = stream.codec_context.pix_fmt or ""
    except (av.FFmpegError, OSError, ValueError):
        return False
    return pix_fmt in ("yuv420p", "yuvj420p") and any(
        formats & names and codec in codecs for names, codecs in _PLAYABLE
    )


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def make_preview(source: str | Path, target: str | Path, *, progress: Callable[[float], None] | None = None) -> Path:
    """Transcode `source`'s first video stream to H.264/MP4 at `target` (written to a temp name
    and renamed, so a half-written preview is never served). Raises DataError when `source`
    cannot be decoded."""
    source, target = Path(source), Path(target)
    tmp = target.with_name(f".tmp-{target.name}")
    try:
        with av.open(str(source)) as src:
            if not src.streams.video:
                raise DataError(f"{source.name} has no video stream")
            stream = src.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            width, height = stream.codec_context.width, stream.codec_context.height
            scale = min(1.0, MAX_SIDE / max(width, height, 1))
            out_w, out_h = _even(width * scale), _even(height * scale)
            total = stream.frames or 0
            # faststart puts the index first, so the browser can start playing before the end arrives
            with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as dst:
                out = dst.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": "23"})
                out.width, out.height, out.pix_fmt = out_w, out_h, "yuv420p"
                time_base = Fraction(1) / Fraction(rate)
                out.time_base = time_base
                for i, frame in enumerate(src.decode(stream)):
                    picture = frame.reformat(width=out_w, height=out_h, format="yuv420p")
                    # renumbered: sources with odd timestamps (AVI, variable rate) still play evenly
                    picture.pts, picture.time_base = i, time_base
                    dst.mux(out.encode(picture))
                    if progress and total and i % 25 == 0:
                        progress(min(1.0, i / total))
                dst.mux(out.encode(None))
        tmp.replace(target)
    except av.FFmpegError as error:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot read {source.name} as a video: {error.strerror or error}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.debug("preview of %s written to %s (%dx%d)", source, target, out_w, out_h)
    return target
