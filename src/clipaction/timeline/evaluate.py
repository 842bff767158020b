"""Temporal detection mAP as the ActivityNet evaluation computes it (`eval_detection.py` of
ActivityNet's Evaluation kit), and ground truth from ActivityNet JSON or THUMOS14 annotation
text files. Pure apart from reading the ground-truth files.

Per class: predictions sorted by score (highest first, `argsort()[::-1]` as the kit does);
each is matched, at each tIoU threshold, to the unmatched ground-truth segment of its video
with the highest tIoU at or above the threshold (a true positive), else it is a false
positive; AP is the area under the precision-recall curve with precision made monotone
(the kit's `interpolated_prec_rec`). mAP at a threshold is the mean AP over the ground-truth
classes (a class with no prediction has AP 0); the summary is the mean over thresholds.

The timeline scores its segments under the ground truth's video ids (`match_ids`), as the
official evaluator reads a result file, and keys thresholds by `tiou.tiou_key`. Each
benchmark has its thresholds (`tiou.BENCHMARK_TIOU`): ActivityNet 0.5:0.05:0.95, THUMOS14
0.3:0.1:0.7. THUMOS14 is scored with this same ActivityNet algorithm, as recent papers score it,
not with THUMOS14's own MATLAB kit, which differs in its rules (e.g. a detection that matches
nothing but overlaps an `Ambiguous` region is not counted as a false positive there).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from clipaction.errors import DataError
from clipaction.timeline.tiou import BENCHMARK_TIOU, check_tiou, tiou_key

log = logging.getLogger(__name__)

#: The thresholds ActivityNet's evaluation uses by default (0.5:0.05:0.95).
TIOU_THRESHOLDS = BENCHMARK_TIOU["activitynet"]

Benchmark = Literal["activitynet", "thumos14"]

#: How each benchmark's numbers are computed, as results.json says it.
PROTOCOL = {
    "activitynet": "ActivityNet detection mAP (Evaluation/eval_detection.py): per class, predictions by "
    "score, each matched to the unmatched ground truth of its video with the highest tIoU >= the "
    "threshold; interpolated AP; mAP over the ground-truth classes; average mAP over the thresholds",
    "thumos14": "the ActivityNet algorithm (Evaluation/eval_detection.py) on THUMOS14 ground truth, as "
    "recent papers compute it; not THUMOS14's MATLAB kit (TH14evalDet), which differs in its rules "
    "(e.g. it does not count an unmatched detection overlapping an 'Ambiguous' region as a false "
    "positive; here 'Ambiguous' is not read and such a detection is a false positive)",
}


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
    """mAP per tIoU threshold over the classes of `truth`, their mean, and AP per class, keyed
    by `tiou_key` ("0.5", "0.55", ...; thresholds with the same key are a ConfigError).
    Predictions of labels that no ground truth has are ignored (the kit stops on them: see
    `labels_without_class`)."""
    thresholds = check_tiou(thresholds)
    keys = [tiou_key(t) for t in thresholds]
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
        "map": {key: float(m) for key, m in zip(keys, maps)},
        "average_map": float(np.mean(maps)) if classes else float("nan"),
        "ap_per_class": {label: {key: float(v) for key, v in zip(keys, per_class[label])} for label in classes},
        "n_ground_truth": len(truth),
        "n_predictions": len(predictions),
    }


# -- ground truth -------------------------------------------------------------------------

#: THUMOS14's video ids (`video_test_0000004`, `video_validation_0000051`): a JSON ground truth
#: whose ids are all of this form is THUMOS14 converted to ActivityNet's format.
_THUMOS_ID = re.compile(r"video_(test|validation)_\d{7}")


@dataclass(frozen=True)
class GroundTruth:
    """The segments of a ground-truth file and the benchmark it belongs to (which chooses the
    default tIoU thresholds)."""

    detections: list[Detection]
    benchmark: Benchmark

    @property
    def tiou_thresholds(self) -> tuple[float, ...]:
        return BENCHMARK_TIOU[self.benchmark]

    @property
    def classes(self) -> set[str]:
        return {item.label for item in self.detections}


def load_ground_truth(path: str | Path) -> GroundTruth:
    """ActivityNet-style JSON (`{"database": {id: {"annotations": [{"segment", "label"}]}}}`),
    a THUMOS14 annotation file (`<Class>_test.txt`: `video start end` per line) or a folder of
    them (the class is the file name before `_test`/`_val`; `Ambiguous` is not a class). Text
    is UTF-8, a byte-order mark ignored. JSON is ActivityNet unless all its ids are THUMOS14's."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise DataError(f"{path} has no THUMOS14 annotation files (*.txt)", setting="timeline.ground_truth")
        return GroundTruth([item for file in files for item in _thumos_file(file)], "thumos14")
    if not path.is_file():
        raise DataError(f"ground truth not found: {path}", setting="timeline.ground_truth")
    if path.suffix.lower() == ".json":
        items = _activitynet(path)
        ids = {item.video for item in items}
        thumos = bool(ids) and all(_THUMOS_ID.fullmatch(video) for video in ids)
        return GroundTruth(items, "thumos14" if thumos else "activitynet")
    return GroundTruth(_thumos_file(path), "thumos14")


def read_ground_truth(path: str | Path) -> list[Detection]:
    """The segments of `load_ground_truth(path)`."""
    return load_ground_truth(path).detections


def _read_text(path: Path) -> str:
    # utf-8-sig: a byte-order mark would otherwise become part of the first id and never match
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not UTF-8 text ({error.reason} at byte {error.start})", setting="timeline.ground_truth"
        ) from None


def _activitynet(path: Path) -> list[Detection]:
    text = _read_text(path)
    try:
        data = json.loads(text)
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
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            video, start, end = parts[0], float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise DataError(
                f"{path}:{number}: expected 'video start end'; got {line!r}", setting="timeline.ground_truth"
            ) from None
        items.append(Detection(video, label, start, end))
    return items


#: How `match_ids` pairs videos with ground truth, as results.json says it.
ID_RULE = (
    "a video's id is its file name without the suffix; it takes the ground-truth id equal to it, "
    "else the one without the 'v_' that ActivityNet's downloaded files carry (v_abc -> abc); "
    "segments.json names videos by their ground-truth ids"
)


def match_ids(truth_ids: Iterable[str], video_ids: Sequence[str]) -> dict[str, str]:
    """Video id -> ground-truth id for the videos that have ground truth (see `ID_RULE`);
    videos without are left out. An id equal to a video's wins over one without `v_`, so two
    videos never share a ground-truth id (`abc` and `v_abc` with ground truth `abc`: the second
    has none)."""
    known = set(truth_ids)
    matched = {video: video for video in video_ids if video in known}
    taken = set(matched.values())
    for video in video_ids:
        if video not in matched and video.startswith("v_") and video[2:] in known and video[2:] not in taken:
            matched[video] = video[2:]
            taken.add(video[2:])
    return {video: matched[video] for video in video_ids if video in matched}


def labels_without_class(labels: Iterable[str], classes: Iterable[str]) -> list[str]:
    """The labels that are not a ground-truth class, sorted: their predictions count for no
    class here, and ActivityNet's evaluator stops (KeyError) on a result file holding them."""
    return sorted(set(labels) - set(classes))
