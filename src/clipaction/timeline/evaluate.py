"""Temporal detection mAP as the ActivityNet evaluation computes it (`eval_detection.py` of
ActivityNet's Evaluation kit), and ground truth from ActivityNet JSON or THUMOS14 annotation
text files. Pure apart from reading the ground-truth files.

Per class: predictions sorted by score (highest first, `argsort()[::-1]` as the kit does);
each is matched, at each tIoU threshold, to the unmatched ground-truth segment of its video
with the highest tIoU at or above the threshold (a true positive), else it is a false
positive; AP is the area under the precision-recall curve with precision made monotone
(the kit's `interpolated_prec_rec`). mAP at a threshold is the mean AP over the ground-truth
classes (a class with no prediction has AP 0); the summary is the mean over thresholds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from clipaction.errors import DataError

log = logging.getLogger(__name__)

TIOU_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class Detection:
    """A segment of `video` labelled `label`; `score` only for predictions."""

    video: str
    label: str
    start: float
    end: float
    score: float = 1.0


def segment_iou(target: Sequence[float], candidates: np.ndarray) -> np.ndarray:
    """tIoU of one [start, end] segment with each row of (N, 2) `candidates`."""
    candidates = np.asarray(candidates, dtype=float).reshape(-1, 2)
    inter = (np.minimum(target[1], candidates[:, 1]) - np.maximum(target[0], candidates[:, 0])).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision-recall curve with precision made non-increasing."""
    mprec = np.hstack([[0.0], precision, [0.0]])
    mrec = np.hstack([[0.0], recall, [1.0]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    steps = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mprec[steps]))


def average_precision(
    truth: Sequence[Detection], predictions: Sequence[Detection], thresholds: Sequence[float] = TIOU_THRESHOLDS
) -> np.ndarray:
    """(T,) AP of one class's `predictions` against its `truth` at each tIoU threshold."""
    aps = np.zeros(len(thresholds))
    if not truth or not predictions:
        return aps
    by_video: dict[str, list[int]] = {}
    for index, item in enumerate(truth):
        by_video.setdefault(item.video, []).append(index)
    bounds = np.array([[t.start, t.end] for t in truth], dtype=float)
    order = np.asarray([p.score for p in predictions], dtype=float).argsort()[::-1]
    locked = -np.ones((len(thresholds), len(truth)), dtype=int)
    tp = np.zeros((len(thresholds), len(predictions)))
    fp = np.zeros((len(thresholds), len(predictions)))
    for rank, index in enumerate(order):
        prediction = predictions[index]
        candidates = by_video.get(prediction.video)
        if not candidates:
            fp[:, rank] = 1
            continue
        ious = segment_iou((prediction.start, prediction.end), bounds[candidates])
        best_first = ious.argsort()[::-1]
        for t, threshold in enumerate(thresholds):
            for j in best_first:
                if ious[j] < threshold:
                    fp[t, rank] = 1
                    break
                if locked[t, candidates[j]] >= 0:
                    continue
                tp[t, rank] = 1
                locked[t, candidates[j]] = rank
                break
            if not tp[t, rank] and not fp[t, rank]:
                fp[t, rank] = 1
    tp_sum, fp_sum = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    recall = tp_sum / len(truth)
    precision = tp_sum / (tp_sum + fp_sum)
    for t in range(len(thresholds)):
        aps[t] = interpolated_ap(precision[t], recall[t])
    return aps


def detection_map(
    truth: Sequence[Detection], predictions: Sequence[Detection], thresholds: Sequence[float] = TIOU_THRESHOLDS
) -> dict:
    """mAP per tIoU threshold over the classes of `truth`, their mean, and AP per class.
    Predictions of labels that no ground truth has are ignored (as the kit refuses them)."""
    classes = sorted({item.label for item in truth})
    per_class = {}
    for label in classes:
        per_class[label] = average_precision(
            [t for t in truth if t.label == label], [p for p in predictions if p.label == label], thresholds
        )
    table = np.array([per_class[label] for label in classes]) if classes else np.zeros((0, len(thresholds)))
    maps = table.mean(axis=0) if classes else np.full(len(thresholds), np.nan)
    return {
        "tiou_thresholds": list(thresholds),
        "map": {f"{t:.1f}": float(m) for t, m in zip(thresholds, maps)},
        "average_map": float(np.mean(maps)) if classes else float("nan"),
        "ap_per_class": {label: {f"{t:.1f}": float(v) for t, v in zip(thresholds, per_class[label])} for label in classes},
        "n_ground_truth": len(truth),
        "n_predictions": len(predictions),
    }


# -- ground truth -------------------------------------------------------------------------


def read_ground_truth(path: str | Path) -> list[Detection]:
    """ActivityNet-style JSON (`{"database": {id: {"annotations": [{"segment", "label"}]}}}`),
    a THUMOS14 annotation file (`<Class>_test.txt`: `video start end` per line) or a folder of
    them (the class is the file name before `_test`/`_val`; `Ambiguous` is not a class)."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise DataError(f"{path} has no THUMOS14 annotation files (*.txt)", setting="timeline.ground_truth")
        return [item for file in files for item in _thumos_file(file)]
    if not path.is_file():
        raise DataError(f"ground truth not found: {path}", setting="timeline.ground_truth")
    if path.suffix.lower() == ".json":
        return _activitynet(path)
    return _thumos_file(path)


def _activitynet(path: Path) -> list[Detection]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        database = data["database"]
        items = []
        for video, entry in database.items():
            for note in entry.get("annotations", []):
                start, end = (float(v) for v in note["segment"])
                items.append(Detection(str(video), str(note["label"]), start, end))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(
            f"{path} is not ActivityNet ground truth ({{'database': {{id: {{'annotations': [...]}}}}}}): {error}",
            setting="timeline.ground_truth",
        ) from None
    return items


def _thumos_file(path: Path) -> list[Detection]:
    label = path.stem
    for suffix in ("_test", "_val", "_validation"):
        if label.endswith(suffix):
            label = label[: -len(suffix)]
    if label.lower() == "ambiguous":
        log.info("%s: ambiguous segments are not a class; ignored", path)
        return []
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            video, start, end = parts[0], float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise DataError(f"{path}:{number}: expected 'video start end'; got {line!r}", setting="timeline.ground_truth") from None
        items.append(Detection(video, label, start, end))
    return items


def match_videos(truth: Iterable[Detection], names: Mapping[str, str]) -> tuple[list[Detection], list[str]]:
    """Ground truth of the videos run, keyed by their ids: `names` maps a video id (file stem)
    to itself; ActivityNet ids match with or without the `v_` the downloaded files carry.
    Returns the matched ground truth (renamed to the ids) and the ids without ground truth."""
    aliases: dict[str, str] = {}
    for video in names:
        aliases[video] = video
        if video.startswith("v_"):
            aliases.setdefault(video[2:], video)
    kept = [Detection(aliases[t.video], t.label, t.start, t.end) for t in truth if t.video in aliases]
    found = {t.video for t in kept}
    return kept, [video for video in names if video not in found]
