"""UCF101 split lists and loader: synthetic trees, then the real official lists."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipaction.config import DatasetConfig
from clipaction.data import DatasetError, load_dataset
from clipaction.data.ucf101 import read_class_index, read_split_list

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SPLITS = SHARED / "ucf101_splits"
FIRST_15 = (
    "ApplyEyeMakeup",
    "ApplyLipstick",
    "Archery",
    "BabyCrawling",
    "BalanceBeam",
    "BandMarching",
    "BaseballPitch",
    "Basketball",
    "BasketballDunk",
    "BenchPress",
    "Biking",
    "Billiards",
    "BlowDryHair",
    "BlowingCandles",
    "BodyWeightSquats",
)
SPLIT_SIZES = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}
# The archive spells these folders and files differently from the lists.
ARCHIVE_SPELLING = {"HandstandPushups": "HandStandPushups"}

needs_shared = pytest.mark.skipif(not SPLITS.is_dir(), reason=f"{SPLITS} not present")


def archive_path(entry: str) -> str:
    for listed, actual in ARCHIVE_SPELLING.items():
        entry = entry.replace(listed, actual)
    return entry


def make_videos(root: Path, entries) -> None:
    """Empty files at the list entries' paths, spelled as the real archive spells them."""
    made: set[Path] = set()
    for entry in entries:
        path = root / archive_path(entry)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode())
    return path


CLASSES = ["Archery", "Basketball", "BasketballDunk", "HandstandPushups"]


@pytest.fixture
def small(tmp_path):
    """A 4-class UCF101 layout: 2 train and 1 test video per class, all present."""
    splits = tmp_path / "splits"
    write(splits / "classInd.txt", "".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)))
    train = [(f"{c}/v_{c}_g08_c0{k}.avi", i) for i, c in enumerate(CLASSES, 1) for k in (1, 2)]
    test = [f"{c}/v_{c}_g01_c01.avi" for c in CLASSES]
    for s in (1, 2, 3):
        write(splits / f"trainlist0{s}.txt", "".join(f"{p} {i}\n" for p, i in train))
        write(splits / f"testlist0{s}.txt", "".join(f"{p}\n" for p in test))
    root = tmp_path / "UCF-101"
    make_videos(root, [p for p, _ in train] + test)
    return root, splits


def config(root, splits, **kw) -> DatasetConfig:
    kw.setdefault("num_classes", None)
    return DatasetConfig(name="ucf101", root=str(root), splits_dir=str(splits), **kw)


# --- parsers ---------------------------------------------------------------------------------


def test_parsers_accept_crlf_blank_lines_and_trailing_spaces(tmp_path):
    lf = write(tmp_path / "lf.txt", "A/v_a.avi 1\nB/v_b.avi 2\n")
    crlf = write(tmp_path / "crlf.txt", "\nA/v_a.avi 1  \n\n  B/v_b.avi\t2\t\n\n", newline="\r\n")
    assert read_split_list(lf) == read_split_list(crlf) == [("A/v_a.avi", 1), ("B/v_b.avi", 2)]
    assert read_split_list(write(tmp_path / "t.txt", "A/v_a.avi\n")) == [("A/v_a.avi", None)]
    ind = write(tmp_path / "ind.txt", "1 A\r\n2 B \r\n\r\n", newline="")
    assert read_class_index(ind) == ["A", "B"]


@pytest.mark.parametrize(
    "text, line",
    [
        ("A/v_a.avi 1\nA/v_b.avi one\n", 2),
        ("A/v_a.avi 1\n\nA/v_b.avi 1 2\n", 3),
        ("A/v_a.avi 0\n", 1),
        ("A/v_a.avi -1\n", 1),
        ("A/v_a.avi 1\n\nA/v_a.avi \u0661\n", 3),  # a non-ASCII digit is not a label
    ],
)
def test_bad_split_line_names_file_and_line(tmp_path, text, line):
    path = write(tmp_path / "trainlist01.txt", text)
    with pytest.raises(DatasetError, match=rf"trainlist01\.txt line {line}\b"):
        read_split_list(path)


@pytest.mark.parametrize(
    "text, line",
    [("1 A\n3 B\n", 2), ("1 A\n2\n", 2), ("A 1\n", 1), ("1 A\n2 a\n", 2), ("1 A B\n", 1)],
)
def test_bad_class_index_line(tmp_path, text, line):
    path = write(tmp_path / "classInd.txt", text)
    with pytest.raises(DatasetError, match=rf"classInd\.txt line {line}\b"):
        read_class_index(path)


def test_empty_class_index_and_non_utf8(tmp_path):
    with pytest.raises(DatasetError, match="no classes"):
        read_class_index(write(tmp_path / "classInd.txt", "\n\n"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"A/v_a.avi 1\nA/\xff.avi\n")
    with pytest.raises(DatasetError, match="line 2"):
        read_split_list(bad)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_read_split_list_parses_or_raises_dataset_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("prop") / "list.txt"
    path.write_text(text, encoding="utf-8")
    try:
        entries = read_split_list(path)
    except DatasetError:
        return
    for entry, label in entries:
        assert entry and not any(ch.isspace() for ch in entry)
        assert label is None or label >= 1


# --- loader on a small synthetic layout -------------------------------------------------------


def test_loads_and_labels_follow_class_index(small):
    root, splits = small
    test = load_dataset(config(root, splits))
    assert test.classes == tuple(CLASSES)
    assert [r.label for r in test.records] == [0, 1, 2, 3]
    assert all(r.path.is_absolute() and r.path.is_file() for r in test.records)
    assert [r.class_name for r in test.records] == CLASSES
    assert (test.split, test.subset) == (1, "test")
    assert len(load_dataset(config(root, splits, subset="train"))) == 8
    assert len(load_dataset(config(root, splits, subset="all"))) == 12


def test_selection_by_name_and_number(small):
    root, splits = small
    ds = load_dataset(config(root, splits, classes=("handstandpushups", "ARCHERY"), subset="all"))
    assert ds.classes == ("Archery", "HandstandPushups")
    assert {r.label for r in ds.records} == {0, 1}
    assert all(r.class_name == ds.classes[r.label] for r in ds.records)
    # The archive spelling resolves though the lists say HandstandPushups.
    assert any("HandStandPushups/v_HandStandPushups" in str(r.path) for r in ds.records)
    assert load_dataset(config(root, splits, num_classes=2)).classes == ("Archery", "Basketball")


def test_unknown_class_suggests_close_names(small):
    root, splits = small
    with pytest.raises(DatasetError, match="Basketball") as err:
        load_dataset(config(root, splits, classes=("BasketbalDunk",)))
    assert "BasketbalDunk" in str(err.value)


def test_missing_files_are_counted_and_named(small):
    root, splits = small
    (root / "Archery" / "v_Archery_g01_c01.avi").unlink()
    (root / "Basketball" / "v_Basketball_g08_c02.avi").unlink()
    ds = load_dataset(config(root, splits, subset="all"))
    assert len(ds) == 10
    assert [(m.path, m.error) for m in ds.missing] == [
        ("Basketball/v_Basketball_g08_c02.avi", "not found"),
        ("Archery/v_Archery_g01_c01.avi", "not found"),
    ]


def test_missing_class_folder_is_missing_not_dropped(small):
    root, splits = small
    for f in (root / "Archery").iterdir():
        f.unlink()
    (root / "Archery").rmdir()
    ds = load_dataset(config(root, splits))
    assert [m.path for m in ds.missing] == ["Archery/v_Archery_g01_c01.avi"]
    assert ds.classes == tuple(CLASSES)


def test_entries_escaping_the_root_are_refused(small):
    root, splits = small
    secret = root.parent / "secret.avi"
    secret.touch()
    with open(splits / "testlist01.txt", "a") as f:
        f.write("../secret.avi\nArchery/../../secret.avi\n")
        f.write(f"{root}/Archery/v_Archery_g01_c01.avi\nC:\\UCF-101\\Archery\\x.avi\n")
    ds = load_dataset(config(root, splits))
    assert len(ds) == 4
    assert all(root in r.path.parents for r in ds.records)
    refused = {m.path: m.error for m in ds.missing}
    assert len(refused) == 4
    assert "'..'" in refused["../secret.avi"] and "'..'" in refused["Archery/../../secret.avi"]
    assert "absolute" in refused[f"{root}/Archery/v_Archery_g01_c01.avi"]
    assert "absolute" in refused["C:\\UCF-101\\Archery\\x.avi"]


def test_duplicates_kept_once_with_a_warning(small, caplog):
    root, splits = small
    with open(splits / "testlist01.txt", "a") as f:
        f.write("Archery/v_Archery_g01_c01.avi\narchery/V_ARCHERY_G01_C01.AVI\n")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(config(root, splits))
    assert len(ds) == 4 and not ds.missing
    assert "duplicated" in caplog.text


def test_exact_spelling_wins_over_case_insensitive_twins(small):
    root, splits = small
    (root / "Archery" / "V_ARCHERY_G01_C01.AVI").touch()
    ds = load_dataset(config(root, splits))
    assert ds.records[0].path.name == "v_Archery_g01_c01.avi" and not ds.missing
    write(splits / "testlist01.txt", "Archery/v_archery_g01_c01.avi\n")
    ds = load_dataset(config(root, splits))
    assert not ds.records and ds.missing[0].error.startswith("ambiguous: matches Archery/")


def test_train_label_must_agree_with_folder(small):
    root, splits = small
    with open(splits / "trainlist01.txt", "a") as f:
        f.write("Archery/v_Archery_g09_c01.avi 2\n")
    with pytest.raises(DatasetError, match=r"trainlist01\.txt line 9: label 2 disagrees"):
        load_dataset(config(root, splits, subset="train"))


def test_unknown_class_folder_in_list(small):
    root, splits = small
    with open(splits / "testlist01.txt", "a") as f:
        f.write("Archer/v_Archer_g01_c01.avi\n")
    with pytest.raises(DatasetError, match=r"testlist01\.txt line 5: class folder 'Archer'"):
        load_dataset(config(root, splits))


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(root=None), "--data-root"),
        (dict(splits_dir=None), "--splits-dir"),
        (dict(root="nowhere"), r"data root not found: .*nowhere \(expected the UCF-101 folder .*ApplyEyeMakeup/\)"),
        (dict(splits_dir="nowhere"), r"splits dir not found: .*nowhere .*classInd\.txt"),
    ],
)
def test_clear_errors_for_missing_options_and_folders(small, tmp_path, change, match):
    root, splits = small
    kw = dict(root=str(root), splits_dir=str(splits))
    kw.update({k: (str(tmp_path / v) if v else v) for k, v in change.items()})
    with pytest.raises(DatasetError, match=match):
        load_dataset(DatasetConfig(name="ucf101", num_classes=None, **kw))


def test_missing_split_file_is_named(small):
    root, splits = small
    (splits / "testlist02.txt").unlink()
    with pytest.raises(DatasetError, match=r"split file not found: .*testlist02\.txt \(expected testlist02\.txt"):
        load_dataset(config(root, splits, split=2))
    (splits / "classInd.txt").unlink()
    with pytest.raises(DatasetError, match=r"classInd\.txt"):
        load_dataset(config(root, splits))


def test_root_one_level_too_high_gets_a_hint(small):
    root, splits = small
    with pytest.raises(DatasetError, match="did you mean .*UCF-101"):
        load_dataset(config(root.parent, splits))


# --- the real official split lists ------------------------------------------------------------


@pytest.fixture(scope="module")
def real_lists():
    if not SPLITS.is_dir():
        pytest.skip(f"{SPLITS} not present")
    names = read_class_index(SPLITS / "classInd.txt")
    lists = {
        (kind, s): read_split_list(SPLITS / f"{kind}list0{s}.txt") for kind in ("train", "test") for s in (1, 2, 3)
    }
    return names, lists


@pytest.fixture(scope="module")
def real_tree(real_lists, tmp_path_factory):
    """All 13,320 videos of UCF101 as empty files, named from the real lists."""
    _, lists = real_lists
    root = tmp_path_factory.mktemp("real") / "UCF-101"
    make_videos(root, {p for p, _ in lists[("train", 1)] + lists[("test", 1)]})
    return root


@needs_shared
def test_real_class_index(real_lists):
    names, _ = real_lists
    assert len(names) == 101
    assert tuple(names[:15]) == FIRST_15
    # classInd order is not sorted order at exactly these two pairs.
    assert names.index("Hammering") < names.index("HammerThrow")
    assert names.index("JumpingJack") < names.index("JumpRope")
    assert sorted(names) != names
    assert "HandstandPushups" in names and "HandStandPushups" not in names


@needs_shared
@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_split_sizes_and_labels(real_lists, split):
    names, lists = real_lists
    train, test = lists[("train", split)], lists[("test", split)]
    assert (len(train), len(test)) == SPLIT_SIZES[split]
    assert all(names[label - 1] == path.split("/")[0] for path, label in train)
    assert all(label is None for _, label in test)
    assert not {p for p, _ in train} & {p for p, _ in test}


@needs_shared
@pytest.mark.parametrize("name", ["classInd.txt", "trainlist01.txt", "testlist02.txt", "trainlist03.txt"])
def test_real_lists_parse_identically_with_crlf(real_lists, tmp_path, name):
    original = SPLITS / name
    copy = tmp_path / name
    copy.write_bytes(original.read_bytes().replace(b"\n", b"\r\n"))
    reader = read_class_index if name == "classInd.txt" else read_split_list
    assert reader(copy) == reader(original)


@needs_shared
def test_real_first_15_classes_split_1(real_tree):
    root = real_tree
    test = load_dataset(config(root, SPLITS, num_classes=15))
    train = load_dataset(config(root, SPLITS, num_classes=15, subset="train"))
    assert (len(test), len(train)) == (568, 1442)
    assert test.classes == train.classes == FIRST_15
    assert not test.missing and not train.missing
    for record in test.records + train.records:
        assert record.path.parent.name == FIRST_15[record.label] == record.class_name
    assert len(load_dataset(DatasetConfig(root=str(root), splits_dir=str(SPLITS)))) == 568  # defaults


@needs_shared
@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_all_classes_every_split(real_tree, split):
    train = load_dataset(config(real_tree, SPLITS, split=split, subset="train"))
    test = load_dataset(config(real_tree, SPLITS, split=split, subset="test"))
    assert (len(train), len(test)) == SPLIT_SIZES[split]
    assert not train.missing and not test.missing
    assert len(train.classes) == 101


@needs_shared
def test_real_labels_follow_class_index_and_handstand_resolves(real_tree):
    picks = ("JumpRope", "HammerThrow", "handstandpushups", "JumpingJack", "Hammering")
    ds = load_dataset(config(real_tree, SPLITS, classes=picks, subset="all"))
    assert ds.classes == ("Hammering", "HammerThrow", "HandstandPushups", "JumpingJack", "JumpRope")
    assert not ds.missing
    for record in ds.records:
        folder = record.path.parent.name
        assert folder == archive_path(ds.classes[record.label])
    handstand = [r for r in ds.records if r.class_name == "HandstandPushups"]
    assert handstand and all(r.path.parent.name == "HandStandPushups" for r in handstand)
    assert all(r.path.name.startswith("v_HandStandPushups_") for r in handstand)
    assert all(r.path.is_file() for r in handstand)
