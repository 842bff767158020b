"""Writers of a video's timeline: windows.csv, segments.csv (RFC 4180 through the csv module),
segments.json (the ActivityNet result format) and WebVTT subtitles. Pure text builders plus an
atomic write each."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from clipaction.outputs import write_text_atomic
from clipaction.timeline.segments import Segment, Windows

#: Decimal places of times (ms) and scores in the text outputs.
_TIME, _SCORE = 3, 6


def _csv_text(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    # RFC 4180: CRLF line ends, fields quoted only when they hold a comma, quote or line break
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def windows_csv(windows: Windows) -> str:
    """start, end, then one probability column per label; empty cells for a window without
    a decoded frame."""
    rows: list[list[object]] = [["start", "end", *windows.labels]]
    for start, end, scores in zip(windows.starts, windows.ends, windows.scores):
        cells = ["" if not math.isfinite(v) else f"{v:.{_SCORE}f}" for v in scores]
        rows.append([f"{start:.{_TIME}f}", f"{end:.{_TIME}f}", *cells])
    return _csv_text(rows)


def segments_csv(video: str, segments: Sequence[Segment]) -> str:
    """video, start, end, label, score: one row per segment."""
    rows: list[list[object]] = [["video", "start", "end", "label", "score"]]
    rows += [[video, f"{s.start:.{_TIME}f}", f"{s.end:.{_TIME}f}", s.label, f"{s.score:.{_SCORE}f}"] for s in segments]
    return _csv_text(rows)


def activitynet_results(by_video: Mapping[str, Sequence[Segment]]) -> dict:
    """`{"version", "results": {video_id: [{"label", "score", "segment": [start, end]}]},
    "external_data"}`: what the ActivityNet evaluation reads as a prediction file."""
    return {
        "version": "VERSION 1.3",
        "results": {
            video: [
                {
                    "label": s.label,
                    "score": round(s.score, _SCORE),
                    "segment": [round(s.start, _TIME), round(s.end, _TIME)],
                }
                for s in segments
            ]
            for video, segments in by_video.items()
        },
        "external_data": {"used": False, "details": "zero-shot CLIP-like model, no training on these labels"},
    }


def vtt_time(seconds: float) -> str:
    """WebVTT timestamp hh:mm:ss.ttt."""
    millis = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _cue_text(text: str) -> str:
    # cue text is HTML-like: escape markup characters; "-->" would end the timing line
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def webvtt(segments: Sequence[Segment], *, scores: bool = True) -> str:
    """Subtitles with one cue per segment: the label (and its score)."""
    lines = ["WEBVTT", ""]
    for number, segment in enumerate(segments, 1):
        label = _cue_text(segment.label)
        text = f"{label} ({segment.score:.0%})" if scores else label
        lines += [str(number), f"{vtt_time(segment.start)} --> {vtt_time(segment.end)}", text, ""]
    return "\n".join(lines) + "\n"


def write_outputs(
    folder: Path,
    video_id: str,
    video_name: str,
    windows: Windows,
    segments: Sequence[Segment],
    *,
    result_id: str | None = None,
) -> dict[str, Path]:
    """Write windows.csv, segments.csv, segments.json and `<video_name>.vtt` into `folder`.
    segments.csv names the video `video_id`; segments.json names it `result_id` (default
    `video_id`): the id the ground truth gives it, which the official evaluators look up."""
    paths = {
        "windows": folder / "windows.csv",
        "segments": folder / "segments.csv",
        "segments_json": folder / "segments.json",
        "subtitles": folder / f"{video_name}.vtt",
    }
    write_text_atomic(paths["windows"], windows_csv(windows))
    write_text_atomic(paths["segments"], segments_csv(video_id, segments))
    write_text_atomic(
        paths["segments_json"], json.dumps(activitynet_results({result_id or video_id: segments}), indent=2) + "\n"
    )
    write_text_atomic(paths["subtitles"], webvtt(segments))
    return paths
