"""HMDB51 split files and loader: small generated layouts, then the real official split files."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import pytest

from clipaction.config import DatasetConfig
from clipaction.data import DatasetError, load_dataset
from clipaction.data.hmdb51 import read_class_names, read_split_file, split_file_name
from clipaction.data.names import prompt_names

CLASSES = ["brush_hair", "catch", "kick_ball"]
# Per split, the mark of each video k of every class: 1 train, 2 test, 0 unused.
MARKS = {1: (1, 1, 2, 0), 2: (2, 1, 1, 0), 3: (1, 2, 1, 0)}


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def video(name: str, k: int) -> str:
    return f"Someone_{name}_f_cm_np1_ri_med_{k}.avi"


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode())
    return path


@pytest.fixture
def small(tmp_path):
    """3 classes x 4 videos; split files in the official format (trailing space, LF)."""
    root, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    for name in CLASSES:
        for s, marks in MARKS.items():
            lines = "".join(f"{video(name, k)} {m} \n" for k, m in enumerate(marks))
            write(splits / split_file_name(name, s), lines)
        for k in range(len(MARKS[1])):
            touch(root / name / video(name, k))
    return root, splits


def config(root, splits, **kw) -> DatasetConfig:
    kw.setdefault("num_classes", None)
    return DatasetConfig(name="hmdb51", root=str(root), splits_dir=str(splits), **kw)


# --- parsing ---------------------------------------------------------------------------------


def test_split_file_accepts_crlf_blank_lines_and_spaces(tmp_path):
    lf = write(tmp_path / "a_test_split1.txt", "x.avi 1 \ny.avi 2 \nz.avi 0 \n")
    crlf = write(tmp_path / "b_test_split1.txt", "\n  x.avi\t1  \n\ny.avi 2\nz.avi 0", newline="\r\n")
    expected = [("x.avi", 1), ("y.avi", 2), ("z.avi", 0)]
    assert [(v, m) for _, v, m in read_split_file(lf)] == expected
    assert [(v, m) for _, v, m in read_split_file(crlf)] == expected
    assert [n for n, _, _ in read_split_file(crlf)] == [2, 4, 5]


@pytest.mark.parametrize(
    "text, line",
    [
        ("x.avi 1\ny.avi 3\n", 2),
        ("x.avi 1\n\ny.avi\n", 3),
        ("x.avi 1 2\n", 1),
        ("x.avi one\n", 1),
        ("x.avi -1\n", 1),
        ("x.avi \u0661\n", 1),  # a non-ASCII digit is not a mark
    ],
)
def test_bad_line_names_file_and_line(tmp_path, text, line):
    path = write(tmp_path / "a_test_split1.txt", text)
    with pytest.raises(DatasetError, match=rf"a_test_split1\.txt line {line}: expected '<video file> <0\|1\|2>'"):
        read_split_file(path)


def test_empty_split_file_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no entries"):
        read_split_file(write(tmp_path / "a_test_split1.txt", "\n\n"))


def test_classes_come_from_split_file_names_sorted(small, tmp_path):
    _, splits = small
    write(splits / "README.txt", "not a split file\n")
    assert read_class_names(splits) == CLASSES
    clash = tmp_path / "clash"
    write(clash / "run_test_split1.txt", "x.avi 1\n")
    write(clash / "Run_test_split1.txt", "x.avi 1\n")
    with pytest.raises(DatasetError, match="differ only in case"):
        read_class_names(clash)


# --- loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("split", [1, 2, 3])
def test_subsets_follow_the_marks(small, split):
    root, splits = small
    marks = MARKS[split]
    for subset, ids in (("train", {1}), ("test", {2}), ("all", {1, 2})):
        ds = load_dataset(config(root, splits, split=split, subset=subset))
        assert ds.classes == tuple(CLASSES) and (ds.split, ds.subset) == (split, subset)
        want = [(c, video(c, k)) for c in CLASSES for k, m in enumerate(marks) if m in ids]
        assert [(r.class_name, r.path.name) for r in ds.records] == want
        assert all(r.path == root / r.class_name / r.path.name for r in ds.records)
        assert all(CLASSES[r.label] == r.class_name for r in ds.records)
        assert not ds.missing


def test_selection_by_name_and_number(small):
    root, splits = small
    ds = load_dataset(config(root, splits, classes=("KICK_BALL", "brush_hair")))
    assert ds.classes == ("brush_hair", "kick_ball")
    assert [r.label for r in ds.records] == [0, 1]
    assert load_dataset(config(root, splits, num_classes=2)).classes == ("brush_hair", "catch")
    assert load_dataset(config(root, splits, num_classes=99)).classes == tuple(CLASSES)
    with pytest.raises(DatasetError, match="unknown hmdb51 class 'kick_bal'; closest: kick_ball"):
        load_dataset(config(root, splits, classes=("kick_bal",)))


def test_spaced_names_for_prompts(small):
    ds = load_dataset(config(*small))
    assert prompt_names(ds.classes, "spaced") == ["brush hair", "catch", "kick ball"]
    assert prompt_names(ds.classes, "raw") == CLASSES


def test_files_match_case_insensitively(small):
    root, splits = small
    (root / "catch").rename(root / "Catch")
    name = video("brush_hair", 2)
    (root / "brush_hair" / name).rename(root / "brush_hair" / name.upper())
    ds = load_dataset(config(root, splits))
    assert not ds.missing
    assert {r.path.parent.name for r in ds.records} == {"brush_hair", "Catch", "kick_ball"}
    assert (root / "brush_hair" / name.upper()) in {r.path for r in ds.records}


def test_missing_files_and_folders_go_to_missing(small, caplog):
    root, splits = small
    (root / "catch" / video("catch", 2)).unlink()
    for path in (root / "kick_ball").iterdir():
        path.unlink()
    (root / "kick_ball").rmdir()
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(config(root, splits))
    assert len(ds) == 1
    assert [(m.path, m.error) for m in ds.missing] == [
        (f"catch/{video('catch', 2)}", "not found"),
        (f"kick_ball/{video('kick_ball', 2)}", "not found: no class folder"),
    ]
    assert "class folders not found" in caplog.text and "missing or refused" in caplog.text


@pytest.mark.parametrize("entry", ["../catch/x.avi", "/etc/passwd", "..", "sub/x.avi", "..\\x.avi", "C:x.avi"])
def test_entries_that_are_not_file_names_are_refused(small, entry):
    root, splits = small
    (root / "catch" / "sub").mkdir()
    touch(root / "catch" / "sub" / "x.avi")
    touch(root / "x.avi")
    write(splits / split_file_name("brush_hair", 1), f"{entry} 2\n{video('brush_hair', 2)} 2\n")
    ds = load_dataset(config(root, splits, classes=("brush_hair",)))
    assert [r.path.name for r in ds.records] == [video("brush_hair", 2)]
    assert [(m.path, m.error) for m in ds.missing] == [
        (f"brush_hair/{entry}", "refused: expected a file name inside the class folder")
    ]


def test_duplicates_kept_once(small, caplog):
    root, splits = small
    name = video("catch", 2)
    write(splits / split_file_name("catch", 1), f"{name} 2\n{name} 2\n{name.upper()} 1\n")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(config(root, splits, classes=("catch",), subset="all"))
    assert [r.path.name for r in ds.records] == [name]
    assert "2 duplicated list entries" in caplog.text


def test_exact_spelling_wins_over_case_twins(small):
    root, splits = small
    name = video("catch", 2)
    touch(root / "catch" / name.upper())
    ds = load_dataset(config(root, splits, classes=("catch",)))
    names = {p.name for p in (root / "catch").iterdir()}
    if name.upper() not in names or name not in names:
        pytest.skip("case-insensitive file system")
    assert [r.path.name for r in ds.records] == [name]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"root": None}, "hmdb51 needs --data-root"),
        ({"splits_dir": None}, "hmdb51 needs --splits-dir"),
        ({"root": "/nonexistent/hmdb51"}, "data root not found: /nonexistent/hmdb51"),
        ({"splits_dir": "/nonexistent/splits"}, "splits dir not found: /nonexistent/splits"),
    ],
)
def test_clear_errors_for_missing_options_and_folders(small, change, match):
    root, splits = small
    values = {"root": str(root), "splits_dir": str(splits), **change}
    with pytest.raises(DatasetError, match=match):
        load_dataset(DatasetConfig(name="hmdb51", num_classes=None, **values))


def test_missing_split_file_is_named(small):
    root, splits = small
    (splits / split_file_name("catch", 3)).unlink()
    assert len(load_dataset(config(root, splits, split=2))) == 3
    with pytest.raises(DatasetError, match=r"split file not found: .*catch_test_split3\.txt"):
        load_dataset(config(root, splits, split=3))


def test_splits_dir_one_level_too_high_gets_a_hint(small):
    root, splits = small
    with pytest.raises(DatasetError, match=f"no HMDB51 split files .*found them in {splits}"):
        load_dataset(config(root, splits.parent))


def test_root_one_level_too_high_gets_a_hint(small, tmp_path):
    root, splits = small
    top = tmp_path / "top"
    top.mkdir()
    root.rename(top / "hmdb51")
    with pytest.raises(DatasetError, match=f"no class folders found .*did you mean {top / 'hmdb51'}"):
        load_dataset(config(top, splits))


# --- the real official split files ------------------------------------------------------------

STANDARD_ORDER_START = ("brush_hair", "cartwheel", "catch", "chew", "clap", "climb", "climb_stairs")


@pytest.fixture(scope="module")
def real_splits(shared_dir):
    splits = shared_dir / "hmdb51_splits"
    if not splits.is_dir():
        pytest.skip(f"{splits} not present")
    names = read_class_names(splits)
    marks = {
        (name, s): [(v, m) for _, v, m in read_split_file(splits / split_file_name(name, s))]
        for name in names
        for s in (1, 2, 3)
    }
    return splits, names, marks


@pytest.fixture(scope="module")
def real_tree(real_splits, tmp_path_factory):
    """All 6,766 HMDB51 videos as empty files, named from the real split files."""
    _, names, marks = real_splits
    root = tmp_path_factory.mktemp("real") / "hmdb51"
    for name in names:
        (root / name).mkdir(parents=True)
        for v, _ in marks[(name, 1)]:
            os.close(os.open(root / name / v, os.O_CREAT | os.O_WRONLY, 0o644))
    return root


def test_real_classes(real_splits):
    splits, names, _ = real_splits
    assert len(names) == 51 and names == sorted(names)
    assert tuple(names[:7]) == STANDARD_ORDER_START and names[-1] == "wave"
    assert sorted(p.name for p in splits.iterdir()) == sorted(split_file_name(n, s) for n in names for s in (1, 2, 3))


def test_real_split_counts(real_splits):
    _, names, marks = real_splits
    for s in (1, 2, 3):
        total = Counter()
        for name in names:
            per_class = Counter(m for _, m in marks[(name, s)])
            assert (per_class[1], per_class[2]) == (70, 30), (name, s)
            total.update(per_class)
        assert (total[1], total[2], total[0]) == (3570, 1530, 1666)
    # Every split lists the same 6,766 videos, each once, with unique names across classes.
    videos = [v for name in names for v, _ in marks[(name, 1)]]
    assert len(videos) == len(set(videos)) == 6766
    for name in names:
        assert {v for v, _ in marks[(name, 2)]} == {v for v, _ in marks[(name, 3)]} == {v for v, _ in marks[(name, 1)]}


def test_real_test_lists_overlap_between_splits(real_splits):
    # Unlike UCF101 (disjoint test lists), HMDB51's test lists share videos, so the cache
    # saves work across splits: 4,590 test evaluations but only 4,243 distinct videos.
    _, names, marks = real_splits
    test = {s: {(n, v) for n in names for v, m in marks[(n, s)] if m == 2} for s in (1, 2, 3)}
    assert (len(test[1] & test[2]), len(test[1] & test[3]), len(test[2] & test[3])) == (104, 126, 155)
    assert len(test[1] | test[2] | test[3]) == 4243


@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_loader_every_split(real_splits, real_tree, split):
    splits, names, _ = real_splits
    train = load_dataset(config(real_tree, splits, split=split, subset="train"))
    test = load_dataset(config(real_tree, splits, split=split, subset="test"))
    assert (len(train), len(test)) == (3570, 1530)
    assert len(load_dataset(config(real_tree, splits, split=split, subset="all"))) == 5100
    assert train.classes == test.classes == tuple(names)
    assert not train.missing and not test.missing
    assert not {r.path for r in train.records} & {r.path for r in test.records}
    assert all(r.path.parent.name == names[r.label] == r.class_name for r in test.records)
    assert Counter(r.label for r in test.records) == {i: 30 for i in range(51)}


def test_real_files_parse_identically_with_crlf(real_splits, tmp_path):
    splits, _, _ = real_splits
    original = splits / "brush_hair_test_split1.txt"
    copy = tmp_path / original.name
    copy.write_bytes(original.read_bytes().replace(b"\n", b"\r\n"))
    assert read_split_file(copy) == read_split_file(original)
