"""Class-name styles, class selection, label maps and prompt names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipaction.data import DatasetError
from clipaction.data.names import (
    NAME_STYLES,
    format_class_name,
    list_name_styles,
    load_label_map,
    name_exceptions,
    prompt_names,
    select_classes,
)
from clipaction.data.ucf101 import read_class_index

SPLITS = Path(__file__).resolve().parents[1].parent / "shared" / "ucf101_splits"


@pytest.mark.parametrize(
    "name, text",
    [
        ("ApplyEyeMakeup", "apply eye makeup"),
        ("Archery", "archery"),
        ("YoYo", "yo yo"),
        ("PlayingDaf", "playing daf"),
        ("SkyDiving", "sky diving"),
        ("Skijet", "skijet"),
        ("HandstandPushups", "handstand pushups"),
        ("HandStandPushups", "handstand pushups"),
        ("handstandpushups", "handstand pushups"),
        ("brush_hair", "brush hair"),
        ("fall_floor", "fall floor"),
        ("Nunchucks", "nunchucks"),
        ("TaiChi", "tai chi"),
        ("TVShow", "tv show"),
        ("BMX", "bmx"),
        ("Jump2Rope", "jump 2 rope"),
        ("pushup2", "pushup 2"),
        ("kick-ball  now", "kick ball now"),
        ("CleanAndJerk", "clean and jerk"),
        ("Cafe\u0301Ole", "cafe\u0301 ole"),  # a decomposed accent stays with its letter
        ("ÉtéÀParis", "été à paris"),
        ("\U0001d56c\U0001d56c", "\U0001d56c\U0001d56c"),  # capitals without a lowercase form: no split
        ("---", "---"),
        ("\u24b6", "\u24d0"),  # no letters or digits: kept, lowercased
    ],
)
def test_spaced(name, text):
    assert format_class_name(name, "spaced") == text


def test_raw_and_registry():
    assert format_class_name("ApplyEyeMakeup", "raw") == "ApplyEyeMakeup"
    assert list_name_styles() == ["plain", "raw", "spaced"]
    assert NAME_STYLES.get("raw")("brush_hair") == "brush_hair"
    with pytest.raises(ValueError, match="raw, spaced"):
        format_class_name("Archery", "fancy")


@pytest.mark.parametrize(
    "name, text",
    [
        ("backflip (human)", "backflip"),
        ("mountain climber (exercise)", "mountain climber"),
        ("passing American football (in game)", "passing American football"),
        ("arguing", "arguing"),
        ("a (b) c ((d))", "a c"),
        ("(only a note)", "(only a note)"),  # never an empty prompt
        ("ApplyEyeMakeup", "ApplyEyeMakeup"),
    ],
)
def test_plain_drops_the_parenthesised_disambiguation(name, text):
    assert format_class_name(name, "plain") == text


def test_exceptions_table_is_packaged_data():
    table = name_exceptions()
    assert table["HandStandPushups"] == "handstand pushups"
    assert table["YoYo"] == "yo yo"


@pytest.mark.skipif(not SPLITS.is_dir(), reason=f"{SPLITS} not present")
def test_spaced_on_every_ucf101_class():
    names = read_class_index(SPLITS / "classInd.txt")
    texts = [format_class_name(n, "spaced") for n in names]
    assert len(set(texts)) == 101
    assert all(t == t.lower() and t.strip() == t and "  " not in t for t in texts)
    # Joining the words back gives the name again, so no letter was lost.
    assert all(t.replace(" ", "") == n.lower() for t, n in zip(texts, names))


def test_select_classes():
    names = ["Basketball", "BasketballDunk", "Archery"]
    assert select_classes(names) == [0, 1, 2]
    assert select_classes(names, num_classes=2) == [0, 1]
    assert select_classes(names, num_classes=9) == [0, 1, 2]
    assert select_classes(names, ["archery", "BASKETBALL", "Archery"]) == [0, 2]
    with pytest.raises(DatasetError, match=r"unknown ucf101 class 'Basketbal'; closest: Basketball"):
        select_classes(names, ["Basketbal"], dataset="ucf101")
    with pytest.raises(DatasetError, match=r"valid \(3\): Basketball, BasketballDunk, Archery"):
        select_classes(names, ["zzz"])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_label_map_csv_and_json(tmp_path):
    csv_path = write(
        tmp_path / "map.csv", 'label,text\nArchery, shooting a bow \n\n"Basketball","dribbling, shooting"\n'
    )
    assert load_label_map(csv_path) == {"Archery": "shooting a bow", "Basketball": "dribbling, shooting"}
    assert load_label_map(write(tmp_path / "nohead.txt", "Archery,bow\n")) == {"Archery": "bow"}
    json_path = write(tmp_path / "map.json", json.dumps({"Archery": "bow", "YoYo": "yo-yo"}))
    assert load_label_map(json_path) == {"Archery": "bow", "YoYo": "yo-yo"}
    sniffed = write(tmp_path / "map.txt", ' {"Archery": "bow"}')
    assert load_label_map(sniffed) == {"Archery": "bow"}


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("m.csv", "Archery,bow\nYoYo\n", "line 2: expected 2 columns"),
        ("m.csv", "Archery,bow,arrow\n", "line 1: expected 2 columns"),
        ("m.csv", "Archery, \n", "line 1: empty text"),
        ("m.csv", ",bow\n", "line 1: empty label"),
        ("m.csv", "A,x\nA,y\n", "line 2: label 'A' given twice"),
        ("m.csv", "", "is empty"),
        ("m.csv", 'A,"x\n', "line"),
        ("m.json", "[1, 2]", "expected a JSON object"),
        ("m.json", '{"A": 3}', "must be a string"),
        ("m.json", '{"A": " "}', "empty text"),
        ("m.json", '{"A": "x",}', "invalid JSON at line 1"),
    ],
)
def test_bad_label_maps(tmp_path, name, text, match):
    path = write(tmp_path / name, text)
    with pytest.raises(DatasetError, match=match) as err:
        load_label_map(path)
    assert str(path) in str(err.value)


def test_label_map_missing_or_not_utf8(tmp_path):
    with pytest.raises(DatasetError, match="label map not found"):
        load_label_map(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"A,\xff\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_label_map(bad)


def test_prompt_names():
    classes = ("ApplyEyeMakeup", "HandStandPushups", "YoYo")
    assert prompt_names(classes, "raw") == list(classes)
    assert prompt_names(classes, "spaced") == ["apply eye makeup", "handstand pushups", "yo yo"]
    mapped = prompt_names(classes, "spaced", {"yoyo": "playing with a yo-yo", "ApplyEyeMakeup": "eye shadow"})
    assert mapped == ["eye shadow", "handstand pushups", "playing with a yo-yo"]
    with pytest.raises(
        DatasetError, match=r"no label map key matches a class \(closest to 'YoYos': YoYo\); classes: ApplyEyeMakeup"
    ):
        prompt_names(classes, "raw", {"YoYos": "x"})
    # a map written for more classes than the run uses serves the ones it has
    assert prompt_names(classes, "raw", {"YoYo": "yo-yo", "Archery": "archery"})[2] == "yo-yo"
