"""The pure parts of the timeline, on cases worked out by hand: time grid, segments, the
writers, the ActivityNet mAP and the ground-truth readers."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from clipaction.errors import ConfigError, DataError
from clipaction.timeline.config import TimelineConfig
from clipaction.timeline.evaluate import (
    Detection,
    average_precision,
    detection_map,
    interpolated_ap,
    match_ids,
    read_ground_truth,
    segment_iou,
)
from clipaction.timeline.formats import activitynet_results, segments_csv, vtt_time, webvtt, windows_csv
from clipaction.timeline.grid import TimeGrid, chunk_samples
from clipaction.timeline.segments import Segment, Windows, find_segments, time_per_label
from clipaction.timeline.tiou import BENCHMARK_TIOU

# -- grid -------------------------------------------------------------------------------------


def test_samples_sit_in_the_middle_of_their_intervals():
    grid = TimeGrid(duration=10.0, fps=2, window=2, stride=1)
    assert grid.n_samples == 20
    assert [grid.sample_time(k) for k in (0, 1, 19)] == [0.25, 0.75, 9.75]
    # 10.2 s: a 21st sample at 10.25 does not fit; 10.3 s: it does
    assert TimeGrid(10.2, 2, 2, 1).n_samples == 20 and TimeGrid(10.3, 2, 2, 1).n_samples == 21


def test_windows_cover_the_samples_inside_them_and_slots_tile_the_video():
    grid = TimeGrid(duration=10.7, fps=2, window=2, stride=1)
    assert grid.n_windows == 9  # starts 0..8; [8, 10) is the last that fits
    assert grid.bounds(3) == (3.0, 5.0)
    assert list(grid.window_samples(3)) == [6, 7, 8, 9]  # 3.25, 3.75, 4.25, 4.75
    slots = [grid.slot(i) for i in range(grid.n_windows)]
    assert slots[0] == (0.0, 1.5) and slots[1] == (1.5, 2.5) and slots[-1] == (8.5, 10.7)
    assert all(a[1] == b[0] for a, b in zip(slots, slots[1:]))


def test_a_sample_on_a_window_edge_belongs_to_one_side_exactly():
    grid = TimeGrid(duration=3.0, fps=10, window=0.3, stride=0.1)  # floats that do not add up
    # sample 2 is at 0.25 s: inside [0.2, 0.5), not inside [0.3, 0.6)
    assert 2 in grid.window_samples(2) and 2 not in grid.window_samples(3)
    assert all(len(grid.window_samples(i)) == 3 for i in range(grid.n_windows))


def test_short_video_is_one_window_and_done_by_counts_finished_windows():
    assert TimeGrid(1.2, 2, 2, 1).n_windows == 1
    assert list(TimeGrid(1.2, 2, 2, 1).window_samples(0)) == [0, 1]
    grid = TimeGrid(10, 2, 2, 1)
    assert grid.windows_done_by(-1) == 0
    assert grid.windows_done_by(3) == 1  # window 0 is samples 0..3
    assert grid.windows_done_by(5) == 2
    assert grid.windows_done_by(19) == grid.n_windows == 9
    assert chunk_samples(2, 60) == 120


def test_config_refuses_windows_without_frames_and_bad_values():
    with pytest.raises(ConfigError) as error:
        TimelineConfig(fps=0.25, window=2)
    assert error.value.setting == "timeline.window"
    for field, value in (("fps", 0), ("stride", -1), ("threshold", 1.5), ("min_segment", -1)):
        with pytest.raises(ConfigError) as error:
            TimelineConfig(**{field: value})
        assert error.value.setting == f"timeline.{field}"
    config = TimelineConfig(labels=("run", "jump"), background="standing still")
    assert config.all_labels == ("run", "jump", "standing still")
    assert TimelineConfig(labels=("run", "idle"), background="idle").all_labels == ("run", "idle")


# -- segments ---------------------------------------------------------------------------------


def _windows(rows, labels=("a", "b", "bg"), stride=1.0):
    scores = np.asarray(rows, dtype=float)
    starts = np.arange(len(rows)) * stride
    slots = np.stack([starts, starts + stride], axis=1)
    return Windows(starts, starts + 2 * stride, slots, scores, tuple(labels))


def test_neighbouring_windows_with_one_top_label_merge_with_their_mean_score():
    windows = _windows([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.1, 0.9, 0.0]])
    segments = find_segments(windows, background="bg")
    assert segments == [
        Segment(0.0, 2.0, "a", pytest.approx(0.7)),
        Segment(2.0, 3.0, "b", pytest.approx(0.7)),
        Segment(4.0, 5.0, "b", pytest.approx(0.9)),  # the background window splits the b's
    ]
    assert time_per_label(segments) == {"a": 2.0, "b": 2.0}


def test_threshold_min_segment_and_missing_windows():
    nan = float("nan")
    windows = _windows(
        [[0.9, 0.1, 0], [0.5, 0.4, 0.1], [0.9, 0.1, 0], [nan, nan, nan], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]]
    )
    # window 1 is below 0.6: it breaks a's run; the NaN window (nothing decoded) breaks it too
    assert [(s.start, s.end, s.label) for s in find_segments(windows, threshold=0.6)] == [
        (0.0, 1.0, "a"),
        (2.0, 3.0, "a"),
        (4.0, 5.0, "a"),
        (5.0, 6.0, "b"),
    ]
    assert find_segments(windows, threshold=0.6, min_segment=1.5) == []
    merged = find_segments(windows, threshold=0.5)
    assert [(s.start, s.end) for s in merged][:1] == [(0.0, 3.0)]


# -- writers ----------------------------------------------------------------------------------


def test_csv_files_are_rfc4180_and_read_back():
    windows = _windows([[0.5, 0.25, 0.25], [float("nan")] * 3], labels=("a, with comma", 'say "hi"', "c"))
    text = windows_csv(windows)
    assert text.endswith("\r\n") and "\r\n" in text.rstrip("\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["start", "end", "a, with comma", 'say "hi"', "c"]
    assert rows[1] == ["0.000", "2.000", "0.500000", "0.250000", "0.250000"]
    assert rows[2][2:] == ["", "", ""]
    segments = [Segment(1.5, 4.25, 'cut, "fast"', 0.75)]
    rows = list(csv.reader(io.StringIO(segments_csv("match 1", segments))))
    assert rows == [
        ["video", "start", "end", "label", "score"],
        ["match 1", "1.500", "4.250", 'cut, "fast"', "0.750000"],
    ]
    assert '"cut, ""fast"""' in segments_csv("v", segments)  # quotes doubled inside quotes


def test_activitynet_results_and_webvtt():
    segments = [Segment(0.0, 2.5, "a <b> & c", 0.5), Segment(3661.0, 3662.25, "run", 0.987)]
    data = activitynet_results({"v1": segments})
    assert data["results"]["v1"][1] == {"label": "run", "score": 0.987, "segment": [3661.0, 3662.25]}
    json.dumps(data)
    assert vtt_time(3661.25) == "01:01:01.250" and vtt_time(0.0004) == "00:00:00.000"
    text = webvtt(segments)
    assert text.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.500\na &lt;b&gt; &amp; c (50%)\n")
    assert "01:01:01.000 --> 01:01:02.250\nrun (99%)" in text


# -- mAP --------------------------------------------------------------------------------------


def test_segment_iou_by_hand():
    ious = segment_iou((20, 30), np.array([[25, 35], [20, 30], [40, 50], [0, 100]]))
    assert ious == pytest.approx([5 / 15, 1.0, 0.0, 0.1])


def test_interpolated_ap_makes_precision_monotone():
    # TP, FP, TP over 2 ground truths: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    assert interpolated_ap(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_detection_map_worked_by_hand():
    truth = [Detection("v", "A", 0, 10), Detection("v", "A", 20, 30), Detection("v", "B", 5, 15)]
    predictions = [
        Detection("v", "A", 0, 10, 0.9),  # tIoU 1 with the first A
        Detection("v", "A", 25, 35, 0.8),  # tIoU 1/3 with the second A: a hit only at 0.3
        Detection("v", "A", 40, 50, 0.7),  # overlaps nothing
        Detection("v", "B", 5, 10, 0.6),  # tIoU 0.5 with B
        Detection("v", "C", 0, 10, 0.9),  # a label without ground truth: ignored
    ]
    result = detection_map(truth, predictions, BENCHMARK_TIOU["thumos14"])
    # A: at 0.3 both found before the miss -> AP 1; above, 1 of 2 found first -> AP 0.5
    assert result["ap_per_class"]["A"] == pytest.approx({"0.3": 1.0, "0.4": 0.5, "0.5": 0.5, "0.6": 0.5, "0.7": 0.5})
    assert result["ap_per_class"]["B"] == pytest.approx({"0.3": 1.0, "0.4": 1.0, "0.5": 1.0, "0.6": 0.0, "0.7": 0.0})
    assert result["map"] == pytest.approx({"0.3": 1.0, "0.4": 0.75, "0.5": 0.75, "0.6": 0.25, "0.7": 0.25})
    assert result["average_map"] == pytest.approx(0.6)


def test_a_ground_truth_is_matched_once_and_to_its_best_overlap():
    truth = [Detection("v", "A", 0, 10), Detection("v", "A", 8, 20)]
    # the first prediction overlaps both; it takes the better one (8..20, tIoU 10/12)
    predictions = [Detection("v", "A", 8, 18, 0.9), Detection("v", "A", 9, 18, 0.8), Detection("w", "A", 0, 10, 0.7)]
    ap = average_precision(truth, predictions, (0.5,))
    # ranks: TP (8..20), the second finds 8..20 taken and 0..10 under 0.5 -> FP; other video -> FP
    assert ap == pytest.approx([0.5])
    assert average_precision(truth, [], (0.5,)) == pytest.approx([0.0])


def test_ground_truth_from_activitynet_json_and_thumos_files(tmp_path):
    anet = tmp_path / "gt.json"
    anet.write_text(
        json.dumps(
            {"database": {"abc": {"subset": "validation", "annotations": [{"segment": [1.5, 4], "label": "Run"}]}}}
        )
    )
    assert read_ground_truth(anet) == [Detection("abc", "Run", 1.5, 4.0)]
    folder = tmp_path / "annotation"
    folder.mkdir()
    (folder / "BaseballPitch_test.txt").write_text("video_test_0000004 0.2 1.1\nvideo_test_0000004  14.5 16.0\n")
    (folder / "Ambiguous_test.txt").write_text("video_test_0000004 3 4\n")
    items = read_ground_truth(folder)
    assert items == [
        Detection("video_test_0000004", "BaseballPitch", 0.2, 1.1),
        Detection("video_test_0000004", "BaseballPitch", 14.5, 16.0),
    ]
    assert read_ground_truth(folder / "BaseballPitch_test.txt") == items
    (tmp_path / "bad.txt").write_text("video 1\n")
    with pytest.raises(DataError) as error:
        read_ground_truth(tmp_path / "bad.txt")
    assert error.value.setting == "timeline.ground_truth"
    # ActivityNet ids lack the v_ of the downloaded files; an exact id wins over one without v_
    assert match_ids(["abc"], ["v_abc", "other"]) == {"v_abc": "abc"}
    assert match_ids(["abc", "v_x"], ["v_abc", "abc", "v_x"]) == {"abc": "abc", "v_x": "v_x"}
