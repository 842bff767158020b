"""`clipaction timeline`: label long videos over time, write each video's outputs and one
results.json, and evaluate against ground truth when given.

Per video (in `<out>/<video id>/`): windows.csv, segments.csv, segments.json, `<video>.vtt`,
timeline.png; in `<out>/`: results.json (settings, per-video summary, warnings, failures, mAP)
and segments.json with every video (the ActivityNet result file to evaluate elsewhere). With
ground truth, segments.json names each video by its ground-truth id (`v_abc.mp4` -> `abc`), so
the official evaluators read it as clipaction's own mAP does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from clipaction.features.cache import FeatureCache
from clipaction.models.base import Backend
from clipaction.outputs import environment, now_iso, output_folder, write_json, write_text_atomic
from clipaction.timeline.config import TimelineConfig
from clipaction.timeline.features import PassStats, window_features
from clipaction.timeline.formats import activitynet_results, write_outputs
from clipaction.timeline.segments import Segment, Windows, find_segments, time_per_label
from clipaction.video.decode import VideoDecodeError

if TYPE_CHECKING:
    from clipaction.timeline.evaluate import GroundTruth

log = logging.getLogger(__name__)

#: Windows scored per call of the scoring (bounds memory for clip models' packed features).
_SCORE_BATCH = 256


@dataclass
class VideoTimeline:
    """One labelled video: its windows' scores, segments, what the pass did, and outputs."""

    path: str
    video_id: str
    windows: Windows
    segments: list[Segment]
    stats: PassStats
    outputs: dict[str, Path] = field(default_factory=dict)
    #: the id segments.json gives the video: its ground-truth id when it has one, else video_id
    result_id: str = ""

    def __post_init__(self) -> None:
        self.result_id = self.result_id or self.video_id

    def summary(self) -> dict[str, Any]:
        info = self.stats.info
        return {
            "video": self.path,
            "id": self.video_id,
            "result_id": self.result_id,
            "duration": self.stats.duration,
            "declared_duration": info.duration if info else None,
            "start_time": info.start_time if info else None,
            "n_windows": int(len(self.windows.starts)),
            "n_windows_scored": int(np.isfinite(self.windows.scores).all(axis=1).sum()),
            "n_segments": len(self.segments),
            "seconds_per_label": time_per_label(self.segments),
            "cache": {
                "chunks_cached": self.stats.chunks_cached,
                "chunks_encoded": self.stats.chunks_encoded,
                "frames_encoded": self.stats.frames_encoded,
            },
            "decoder": {"frames_decoded": self.stats.decoded, "seeks": self.stats.seeks},
            "outputs": {name: str(path) for name, path in self.outputs.items()},
        }


def score_windows(
    path: str | Path,
    backend: Backend,
    config: TimelineConfig,
    text_features: torch.Tensor,
    labels: Sequence[str],
    cache: FeatureCache | None,
    *,
    progress: bool = False,
) -> tuple[Windows, PassStats]:
    """Every window's probabilities of `labels` (C rows of `text_features`), streaming."""
    stats = PassStats()
    scoring = backend.scoring()
    found: dict[int, np.ndarray] = {}
    batch: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if batch:
            logits = scoring.logits(torch.stack([feature for _, feature in batch]), text_features)
            for (index, _), row in zip(batch, scoring.probabilities(logits).numpy()):
                found[index] = row
            batch.clear()

    for index, feature in window_features(path, backend, config, cache, stats, progress=progress):
        if feature is not None:
            batch.append((index, feature))
            if len(batch) >= _SCORE_BATCH:
                flush()
    flush()
    grid = stats.grid
    duration = stats.duration
    kept = [i for i in range(grid.n_windows) if i == 0 or grid.bounds(i)[0] < duration]
    scores = np.full((len(kept), len(labels)), np.nan)
    for row, i in enumerate(kept):
        if i in found:
            scores[row] = found[i]
    bounds = np.array([grid.bounds(i) for i in kept]).reshape(-1, 2)
    slots = np.array([grid.slot(i) for i in kept]).reshape(-1, 2).clip(0, duration)
    if len(slots):
        slots[-1, 1] = duration
    windows = Windows(bounds[:, 0], bounds[:, 1].clip(max=duration), slots, scores, tuple(labels))
    return windows, stats


def video_ids(paths: Sequence[str | Path]) -> list[str]:
    """A short id per video: its file name without the suffix, made unique with -2, -3..."""
    ids: list[str] = []
    for path in paths:
        stem = Path(path).stem or "video"
        candidate, number = stem, 2
        while candidate in ids:
            candidate, number = f"{stem}-{number}", number + 1
        ids.append(candidate)
    return ids


def label_videos(
    videos: Sequence[str | Path],
    config: TimelineConfig,
    out: str | Path,
    *,
    backend: Backend | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Label every video, write the outputs (see the module docstring); returns results.json's
    content. Unreadable videos are listed in `failures` and the rest go on."""
    from clipaction.classify.run import check_labels, open_cache
    from clipaction.classify.scoring import class_text_features, load_templates
    from clipaction.models import load_backend

    labels = list(config.all_labels)
    check_labels(labels)
    templates = load_templates(config.templates)
    truth = None
    ids = video_ids(videos)
    result_ids: dict[str, str] = {}
    if config.ground_truth:
        from clipaction.timeline.evaluate import load_ground_truth, match_ids

        truth = load_ground_truth(config.ground_truth)  # a bad file fails before any work
        result_ids = match_ids({t.video for t in truth.detections}, ids)
        _warn_labels_without_class(truth, _segment_labels(config))
    folder = output_folder(out)
    backend = backend or load_backend(config.model)
    cache = open_cache(config.cache_dir, backend)
    text_features = class_text_features(backend, labels, templates, cache)
    done: list[VideoTimeline] = []
    failures: list[dict[str, str]] = []
    started = time.perf_counter()
    for path, video_id in zip(videos, ids):
        try:
            windows, stats = score_windows(path, backend, config, text_features, labels, cache, progress=progress)
        except (VideoDecodeError, OSError) as error:
            reason = error.reason if isinstance(error, VideoDecodeError) else (error.strerror or str(error))
            log.warning("skipped %s: %s", path, reason)
            failures.append({"path": str(path), "error": reason})
            continue
        segments = find_segments(
            windows, threshold=config.threshold, min_segment=config.min_segment, background=config.background
        )
        item = VideoTimeline(
            str(path), video_id, windows, segments, stats, result_id=result_ids.get(video_id, video_id)
        )
        item.outputs = write_outputs(
            folder / video_id, video_id, Path(path).stem, windows, segments, result_id=item.result_id
        )
        from clipaction.timeline.figure import draw_timeline

        item.outputs["figure"] = draw_timeline(
            folder / video_id / "timeline.png",
            windows,
            segments,
            title=Path(path).name,
            threshold=config.threshold,
            background=config.background,
        )
        done.append(item)
    results: dict[str, Any] = {
        "task": "timeline",
        "settings": {**dataclasses.asdict(config), "labels": labels},
        "model": {**backend.describe(), "device": str(backend.device)},
        "videos": [item.summary() for item in done],
        "warnings": [{"path": item.path, "warning": line} for item in done for line in item.stats.warnings],
        "failures": failures,
        "seconds": time.perf_counter() - started,
    }
    if truth is not None:
        results["evaluation"] = evaluate_against(truth, done, _segment_labels(config), config.tiou_thresholds)
    write_text_atomic(
        folder / "segments.json",
        json.dumps(activitynet_results({item.result_id: item.segments for item in done}), indent=2) + "\n",
    )
    results["env"] = environment(str(backend.device))
    results["created_at"] = now_iso()
    write_json(folder / "results.json", results)
    return results


def _segment_labels(config: TimelineConfig) -> list[str]:
    """The labels a segment can have: all but the background."""
    return [label for label in config.all_labels if label != config.background]


def _warn_labels_without_class(truth: GroundTruth, labels: Sequence[str]) -> list[str]:
    from clipaction.timeline.evaluate import labels_without_class

    unknown = labels_without_class(labels, truth.classes)
    if unknown:
        log.warning(
            "label(s) %s match no ground-truth class: their segments are left out of the mAP, and "
            "ActivityNet's evaluator stops on a segments.json that holds them",
            ", ".join(map(repr, unknown)),
        )
    return unknown


def evaluate_against(
    truth: GroundTruth, done: Sequence[VideoTimeline], labels: Sequence[str], thresholds: Sequence[float] | None = None
) -> dict[str, Any]:
    """mAP of the segments found against the ground truth (`GroundTruth`) of the videos run,
    read by ground-truth ids as the official evaluator reads segments.json; `labels`: those a
    segment can have; `thresholds`: None for the benchmark's own."""
    from clipaction.timeline.evaluate import ID_RULE, PROTOCOL, Detection, detection_map, labels_without_class
    from clipaction.timeline.tiou import describe_tiou

    thresholds = tuple(thresholds) if thresholds else truth.tiou_thresholds
    truth_ids = {t.video for t in truth.detections}
    matched = [item for item in done if item.result_id in truth_ids]
    run = {item.result_id for item in matched}
    kept = [t for t in truth.detections if t.video in run]
    # scored as written to segments.json (times and scores rounded), so an evaluator reading it agrees
    written = activitynet_results({item.result_id: item.segments for item in matched})["results"]
    predictions = [
        Detection(video, row["label"], row["segment"][0], row["segment"][1], row["score"])
        for video, rows in written.items()
        for row in rows
    ]
    evaluation = detection_map(kept, predictions, thresholds)
    unknown = labels_without_class(labels, truth.classes)
    without = [item.video_id for item in done if item.result_id not in truth_ids]
    evaluation.update(
        benchmark=truth.benchmark,
        protocol=PROTOCOL[truth.benchmark],
        tiou=describe_tiou(thresholds),
        id_matching={item.video_id: item.result_id for item in matched},
        id_matching_rule=ID_RULE,
        videos_without_ground_truth=without,
        ground_truth_videos_not_run=len(truth_ids - run),
        classes_not_among_labels=sorted({t.label for t in kept} - set(labels)),
        labels_not_in_ground_truth=unknown,
        segments_of_labels_not_in_ground_truth={
            label: sum(s.label == label for item in done for s in item.segments) for label in unknown
        },
    )
    for video in without:
        log.warning("%s has no ground truth; it is left out of the mAP", video)
    return evaluation


def timeline_realtime_factor(
    video: str | Path, backend: Backend, config: TimelineConfig, labels: Sequence[str] = ("a", "b")
) -> dict[str, float]:
    """Seconds of video labelled per second of wall time, from decoding to window scores
    (no cache, so every frame is decoded and encoded; the texts are encoded beforehand, as a
    cached run has them)."""
    text = backend.encode_texts([f"a photo of a person {label}." for label in labels])
    start = time.perf_counter()
    windows, stats = score_windows(video, backend, config, text, labels, None)
    wall = time.perf_counter() - start
    return {
        "video_seconds": stats.duration,
        "wall_seconds": wall,
        "realtime_factor": stats.duration / wall if wall > 0 else float("nan"),
        "frames_encoded": stats.frames_encoded,
        "frames_decoded": stats.decoded,
    }
