"""The timeline's detection mAP scored as the official evaluators score it: ActivityNet's
thresholds 0.5:0.05:0.95 with ten distinct keys, segments.json named by the ground truth's ids,
byte-order marks in annotation and label files, labels that are no ground-truth class, and the
written files scored by an independent re-implementation of ActivityNet's `eval_detection.py`
that reads them by id exactly as the official one does."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from clipaction.errors import ConfigError, DataError
from clipaction.testing.footage import ColourBackend, Scene, write_scenes
from clipaction.timeline import TimelineConfig, label_videos
from clipaction.timeline.evaluate import Detection, detection_map, load_ground_truth, read_ground_truth
from clipaction.timeline.tiou import BENCHMARK_TIOU, parse_tiou, tiou_key

ANET_KEYS = ["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95"]
LABELS = ("red", "green", "blue")


# -- an independent ActivityNet evaluator -----------------------------------------------------


def _tiou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / ((a[1] - a[0]) + (b[1] - b[0]) - inter)


def _voc_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    prec = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
    rec = np.concatenate([[0.0], recall, [1.0]])
    steps = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(np.sum((rec[steps] - rec[steps - 1]) * prec[steps]))


def _class_ap(truth: list[tuple], predictions: list[tuple], thresholds) -> np.ndarray:
    """truth: (video, start, end); predictions: (video, start, end, score) in file order."""
    if not predictions:
        return np.zeros(len(thresholds))
    # the kit: prediction['score'].values.argsort()[::-1] on the rows in file order
    ranked = [predictions[i] for i in np.array([p[3] for p in predictions]).argsort()[::-1]]
    owner = -np.ones((len(thresholds), len(truth)), dtype=int)
    hits = np.zeros((len(thresholds), len(ranked)))
    for rank, (video, start, end, _) in enumerate(ranked):
        mine = [i for i, t in enumerate(truth) if t[0] == video]
        overlaps = np.array([_tiou((start, end), truth[i][1:]) for i in mine])
        for k, threshold in enumerate(thresholds):
            for j in overlaps.argsort()[::-1]:
                if overlaps[j] < threshold:
                    break
                if owner[k, mine[j]] < 0:
                    owner[k, mine[j]] = rank
                    hits[k, rank] = 1
                    break
    tp = np.cumsum(hits, axis=1)
    fp = np.cumsum(1 - hits, axis=1)
    return np.array([_voc_ap(tp[k] / (tp[k] + fp[k]), tp[k] / len(truth)) for k in range(len(thresholds))])


def official_map(ground_truth: dict, results: dict, thresholds=BENCHMARK_TIOU["activitynet"], subset="validation"):
    """(mAP per threshold, average mAP) as ActivityNet's ANETdetection computes them: the
    ground truth of `subset`, classes in order of first appearance, predictions looked up by
    the result file's video ids and labels (a label that is no class: KeyError, as the kit)."""
    classes: dict[str, int] = {}
    truth: list[tuple] = []
    for video, entry in ground_truth["database"].items():
        if entry["subset"] != subset:
            continue
        for note in entry["annotations"]:
            truth.append(
                (
                    video,
                    float(note["segment"][0]),
                    float(note["segment"][1]),
                    classes.setdefault(note["label"], len(classes)),
                )
            )
    predictions = [
        (video, float(row["segment"][0]), float(row["segment"][1]), classes[row["label"]], float(row["score"]))
        for video, rows in results["results"].items()
        for row in rows
    ]
    ap = np.zeros((len(thresholds), len(classes)))
    for index in classes.values():
        ap[:, index] = _class_ap(
            [t[:3] for t in truth if t[3] == index], [(*p[:3], p[4]) for p in predictions if p[3] == index], thresholds
        )
    maps = ap.mean(axis=1)
    return maps, float(maps.mean())


# -- thresholds and hand-worked AP ------------------------------------------------------------


def test_activitynet_thresholds_are_the_kits_and_have_ten_distinct_keys():
    assert BENCHMARK_TIOU["activitynet"] == tuple(np.linspace(0.5, 0.95, 10))  # bit for bit
    assert parse_tiou("0.5:0.05:0.95") == BENCHMARK_TIOU["activitynet"]
    assert [tiou_key(t) for t in BENCHMARK_TIOU["activitynet"]] == ANET_KEYS
    assert parse_tiou("0.3,0.5, 0.7") == (0.3, 0.5, 0.7)
    for bad in ("0.5:0.05:0.97", "0.5,0.5", "0:0.1:0.5", "1.5", "high", "0.5:0.05"):
        with pytest.raises(ConfigError) as error:
            parse_tiou(bad)
        assert error.value.setting == "timeline.tiou_thresholds"
    with pytest.raises(ConfigError, match="more than once"):
        detection_map([], [], (0.55, 0.5500000001))  # the same key: one value would overwrite the other
    with pytest.raises(ConfigError):
        TimelineConfig(labels=("a",), tiou_thresholds=(0.5, 2.0))


def test_map_at_0_5_to_0_95_worked_by_hand():
    # class A: ground truth G1 0-10, G2 20-36 (16 s); class B: one segment, never predicted
    truth = [Detection("x", "A", 0, 10), Detection("x", "A", 20, 36), Detection("x", "B", 40, 50)]
    predictions = [
        Detection("x", "A", 0, 10, 0.9),  # tIoU 1 with G1
        Detection("x", "A", 20, 33, 0.8),  # tIoU 13/16 = 0.8125 with G2
        Detection("x", "A", 20, 35, 0.7),  # tIoU 15/16 = 0.9375 with G2
        Detection("x", "C", 0, 10, 0.99),  # no class C: ignored
    ]
    result = detection_map(truth, predictions)
    assert list(result["map"]) == ANET_KEYS and len(set(result["map"])) == 10
    # t <= 0.8: TP TP FP (the third finds G2 taken) -> precision 1, 1, 2/3 at recall 1/2, 1, 1: AP 1
    # t = 0.85, 0.9: TP FP TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: AP 1/2 + 1/2 * 2/3
    # t = 0.95: TP FP FP -> recall reaches 1/2 at precision 1: AP 1/2
    ap_a = [1.0] * 7 + [5 / 6, 5 / 6, 0.5]
    assert list(result["ap_per_class"]["A"].values()) == pytest.approx(ap_a)
    assert list(result["ap_per_class"]["B"].values()) == [0.0] * 10
    assert list(result["map"].values()) == pytest.approx([a / 2 for a in ap_a])
    assert result["average_map"] == pytest.approx(sum(ap_a) / 20)
    # the independent evaluator agrees
    gt = {
        "database": {
            "x": {
                "subset": "validation",
                "annotations": [{"segment": [t.start, t.end], "label": t.label} for t in truth],
            }
        }
    }
    found = {
        "results": {"x": [{"segment": [p.start, p.end], "label": p.label, "score": p.score} for p in predictions[:3]]}
    }
    maps, average = official_map(gt, found)
    assert list(result["map"].values()) == pytest.approx(list(maps)) and result["average_map"] == pytest.approx(average)


def test_a_tiou_equal_to_the_threshold_is_a_match():
    # tIoU exactly 0.5 and 0.75 (binary fractions): the kit keeps a match when tIoU >= threshold
    truth = [Detection("x", "A", 0, 10), Detection("y", "A", 0, 10)]
    predictions = [Detection("x", "A", 0, 5, 0.9), Detection("y", "A", 0, 7.5, 0.8)]
    result = detection_map(truth, predictions)["map"]
    assert [result[k] for k in ("0.5", "0.55", "0.75", "0.8")] == [1.0, 0.25, 0.25, 0.0]
    gt = {"database": {v: {"subset": "validation", "annotations": [{"segment": [0, 10], "label": "A"}]} for v in "xy"}}
    found = {"results": {p.video: [{"segment": [p.start, p.end], "label": "A", "score": p.score}] for p in predictions}}
    assert list(result.values()) == pytest.approx(list(official_map(gt, found)[0]))


# -- byte-order marks -------------------------------------------------------------------------


def test_byte_order_marks_are_not_part_of_the_first_id_or_label(tmp_path):
    folder = tmp_path / "annotation"
    folder.mkdir()
    (folder / "BaseballPitch_test.txt").write_bytes(
        b"\xef\xbb\xbfvideo_test_0000004 0.2 1.1\r\nvideo_test_0000004 14.5 16.0\r\n"
    )
    truth = load_ground_truth(folder)
    assert truth.detections[0] == Detection("video_test_0000004", "BaseballPitch", 0.2, 1.1)
    assert truth.benchmark == "thumos14" and truth.tiou_thresholds == (0.3, 0.4, 0.5, 0.6, 0.7)
    anet = tmp_path / "gt.json"
    anet.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps({"database": {"abc": {"annotations": [{"segment": [1, 2], "label": "Run"}]}}}).encode()
    )
    assert read_ground_truth(anet) == [Detection("abc", "Run", 1.0, 2.0)]
    assert load_ground_truth(anet).benchmark == "activitynet"
    # THUMOS14 converted to ActivityNet's JSON is known by its ids
    anet.write_text(
        json.dumps({"database": {"video_test_0000004": {"annotations": [{"segment": [1, 2], "label": "Run"}]}}})
    )
    assert load_ground_truth(anet).benchmark == "thumos14"
    (tmp_path / "latin1.txt").write_bytes("vid\xe9o 1 2\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_ground_truth(tmp_path / "latin1.txt")


def test_a_labels_file_with_a_byte_order_mark(tmp_path):
    from clipaction.cli.commands import _parse_labels

    (tmp_path / "labels.txt").write_bytes(b"\xef\xbb\xbfriding a bike\r\nrowing\r\n")
    assert _parse_labels("@" + str(tmp_path / "labels.txt")) == ["riding a bike", "rowing"]
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        _parse_labels("@" + str(tmp_path / "latin1.txt"))


# -- the real timeline path -------------------------------------------------------------------


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> dict[str, Path]:
    """Two downloaded-style ActivityNet files (`v_<id>.mp4`) of known scenes."""
    folder = tmp_path_factory.mktemp("anet")
    return {
        "vidA060": write_scenes(folder / "v_vidA060.mp4", (Scene(10, 0), Scene(7, 1), Scene(13, 2)), fps=10, gop=10),
        "vidB007": write_scenes(folder / "v_vidB007.mp4", (Scene(12, 2), Scene(12, 0)), fps=10, gop=10),
    }


# ground truth that the stand-in model gets partly right: segments off by up to 2 s, a red
# segment it cannot find (inside blue), blue claimed where video B is red
GROUND_TRUTH = {
    "vidA060": [((0, 10), "red"), ((11, 17), "green"), ((17, 30), "blue"), ((22, 25), "red")],
    "vidB007": [((0, 14), "blue"), ((12, 24), "red")],
}


def _anet_json(truth: dict, extra: dict | None = None) -> dict:
    database = {
        video: {
            "subset": "validation",
            "annotations": [{"segment": list(span), "label": label} for span, label in notes],
        }
        for video, notes in {**truth, **(extra or {})}.items()
    }
    return {"version": "VERSION 1.3", "taxonomy": [], "database": database}


def _run(tmp_path: Path, footage: dict, truth: dict, name: str = "out", **changes) -> tuple[dict, Path]:
    (tmp_path / f"{name}.json").write_text(json.dumps(truth))
    config = TimelineConfig(
        **{
            "labels": LABELS,
            "chunk_seconds": 8.0,
            "ground_truth": str(tmp_path / f"{name}.json"),
            "cache_dir": str(tmp_path / "cache"),
            **changes,
        }
    )
    results = label_videos(sorted(footage.values()), config, tmp_path / name, backend=ColourBackend())
    return results, tmp_path / name


def test_segments_json_uses_the_ground_truth_ids(tmp_path, footage):
    results, out = _run(tmp_path, footage, _anet_json(GROUND_TRUTH, {"vidZZZ": [((0, 5), "red")]}))
    evaluation = results["evaluation"]
    assert evaluation["id_matching"] == {"v_vidA060": "vidA060", "v_vidB007": "vidB007"}
    assert "v_" in evaluation["id_matching_rule"] and evaluation["videos_without_ground_truth"] == []
    assert evaluation["ground_truth_videos_not_run"] == 1  # vidZZZ: the official kit would count it
    combined = json.loads((out / "segments.json").read_text())
    assert sorted(combined["results"]) == ["vidA060", "vidB007"]
    # each video's own files: segments.json by the ground-truth id, the folder and csv by the file
    own = json.loads((out / "v_vidA060" / "segments.json").read_text())
    assert list(own["results"]) == ["vidA060"]
    assert (out / "v_vidA060" / "segments.csv").read_text().splitlines()[1].startswith("v_vidA060,")
    assert [v["result_id"] for v in results["videos"]] == ["vidA060", "vidB007"]
    stored = json.loads((out / "results.json").read_text())["evaluation"]
    assert stored["id_matching"] == evaluation["id_matching"] and list(stored["map"]) == ANET_KEYS


def test_without_ground_truth_the_ids_stay_the_file_names(tmp_path, footage):
    config = TimelineConfig(labels=LABELS, chunk_seconds=8.0, cache_dir=str(tmp_path / "cache"))
    label_videos([footage["vidA060"]], config, tmp_path / "out", backend=ColourBackend())
    assert list(json.loads((tmp_path / "out" / "segments.json").read_text())["results"]) == ["v_vidA060"]


def test_the_official_algorithm_reading_the_written_files_gives_clipactions_map(tmp_path, footage):
    truth = _anet_json(GROUND_TRUTH)
    results, out = _run(tmp_path, footage, truth)
    written = json.loads((out / "segments.json").read_text())
    maps, average = official_map(truth, written)
    ours = results["evaluation"]
    assert list(ours["map"].values()) == pytest.approx(list(maps), abs=1e-12)
    assert ours["average_map"] == pytest.approx(average, abs=1e-12)
    assert 0.1 < average < 0.9 and len(set(np.round(maps, 6))) > 1  # a case with something to get wrong
    # the file names' ids, as segments.json had them before: the official evaluator finds nothing
    renamed = {"results": {f"v_{video}": rows for video, rows in written["results"].items()}}
    assert official_map(truth, renamed)[1] == 0.0


def test_thumos14_ground_truth_gets_its_thresholds_and_says_how_it_was_scored(tmp_path, footage):
    folder = tmp_path / "annotation"
    folder.mkdir()
    # one line, after a byte-order mark: read with the mark, the id would match no video
    (folder / "red_test.txt").write_bytes(b"\xef\xbb\xbfvidA060 0 10\n")
    (folder / "Ambiguous_test.txt").write_text("vidA060 12 13\n")
    config = TimelineConfig(
        labels=("red", "green"), chunk_seconds=8.0, ground_truth=str(folder), cache_dir=str(tmp_path / "cache")
    )
    results = label_videos([footage["vidA060"]], config, tmp_path / "out", backend=ColourBackend())
    evaluation = results["evaluation"]
    assert evaluation["benchmark"] == "thumos14" and evaluation["tiou"] == "0.3:0.1:0.7"
    assert list(evaluation["map"]) == ["0.3", "0.4", "0.5", "0.6", "0.7"]
    assert evaluation["map"]["0.7"] == 1.0  # red 0-10.5 against 0-10
    assert "ActivityNet" in evaluation["protocol"] and "Ambiguous" in evaluation["protocol"]
    # thresholds given override the benchmark's
    again = label_videos(
        [footage["vidA060"]],
        TimelineConfig(
            labels=("red",),
            chunk_seconds=8.0,
            ground_truth=str(folder),
            cache_dir=str(tmp_path / "cache"),
            tiou_thresholds=(0.5, 0.55),
        ),
        tmp_path / "again",
        backend=ColourBackend(),
    )
    assert list(again["evaluation"]["map"]) == ["0.5", "0.55"]


def test_the_tiou_flag_is_checked_and_named(tmp_path, footage, capsys):
    from clipaction.cli import main

    argv = ["timeline", str(footage["vidA060"]), "--labels", "red", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main([*argv, "--tiou", "0.5:0.05:0.97"]) == 2
    assert "--tiou: '0.5:0.05:0.97'" in capsys.readouterr().err


def test_labels_that_are_no_ground_truth_class_are_named(tmp_path, footage, caplog):
    truth = _anet_json({"vidA060": [((0, 10), "red"), ((10, 17), "green")]})
    with caplog.at_level(logging.WARNING, logger="clipaction.timeline.run"):
        results, out = _run(
            tmp_path,
            {"vidA060": footage["vidA060"]},
            truth,
            labels=("red", "green", "blue", "purple"),
            background="purple",
        )
    warning = next(r.getMessage() for r in caplog.records if "no ground-truth class" in r.getMessage())
    assert "'blue'" in warning and "purple" not in warning  # the background is never a segment
    evaluation = results["evaluation"]
    assert evaluation["labels_not_in_ground_truth"] == ["blue"]
    assert evaluation["segments_of_labels_not_in_ground_truth"] == {"blue": 1}
    # clipaction ignores them; the official evaluator stops on the file that holds them
    with pytest.raises(KeyError, match="blue"):
        official_map(truth, json.loads((out / "segments.json").read_text()))
