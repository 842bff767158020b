"""The `folder` dataset: folder trees and CSV manifests of a user's own videos."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from clipaction.config import DatasetConfig
from clipaction.data import DatasetError, load_dataset
from clipaction.data.folder import walk_files


def touch(root: Path, *paths: str) -> None:
    for p in paths:
        path = root / p
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def folder(root=None, **kw) -> DatasetConfig:
    kw.setdefault("num_classes", None)
    return DatasetConfig(name="folder", root=str(root) if root else None, **kw)


def test_flat_tree_sorted_labels_and_extensions(tmp_path):
    touch(
        tmp_path,
        "walk/a.mp4",
        "walk/b.MKV",
        "walk/notes.txt",
        "run/x.avi",
        "run/deep/y.WebM",
        "Jump/z.mov",
        "readme.md",
        "stray.mp4",
        ".hidden/h.mp4",
        "empty/readme.txt",
    )
    ds = load_dataset(folder(tmp_path))
    assert ds.classes == ("Jump", "run", "walk")  # sorted; folders without videos are no class
    got = sorted((r.class_name, r.path.relative_to(tmp_path).as_posix()) for r in ds.records)
    assert got == [
        ("Jump", "Jump/z.mov"),
        ("run", "run/deep/y.WebM"),
        ("run", "run/x.avi"),
        ("walk", "walk/a.mp4"),
        ("walk", "walk/b.MKV"),
    ]
    assert all(ds.classes[r.label] == r.class_name and r.path.is_absolute() for r in ds.records)
    # Without train/ and test/ folders every video belongs to every subset.
    for subset in ("train", "all"):
        assert load_dataset(folder(tmp_path, subset=subset)).records == ds.records


def test_split_tree_picks_subset_and_shares_labels(tmp_path):
    touch(tmp_path, "train/walk/a.mp4", "train/walk/b.mp4", "train/run/c.mp4", "Test/swim/d.mp4", "Test/walk/e.mp4")
    test = load_dataset(folder(tmp_path, subset="test"))
    train = load_dataset(folder(tmp_path, subset="train"))
    both = load_dataset(folder(tmp_path, subset="all"))
    assert test.classes == train.classes == both.classes == ("run", "swim", "walk")
    assert sorted(r.path.name for r in test.records) == ["d.mp4", "e.mp4"]
    assert sorted(r.path.name for r in train.records) == ["a.mp4", "b.mp4", "c.mp4"]
    assert len(both) == 5
    walk = [r for r in test.records if r.class_name == "walk"]
    assert walk[0].label == 2


def test_split_tree_without_the_requested_folder(tmp_path):
    touch(tmp_path, "train/walk/a.mp4")
    with pytest.raises(DatasetError, match="no test/ folder"):
        load_dataset(folder(tmp_path, subset="test"))


def test_train_beside_labels_is_a_label(tmp_path, caplog):
    touch(tmp_path, "train/a.mp4", "walk/b.mp4")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(folder(tmp_path, subset="test"))
    assert ds.classes == ("train", "walk")
    assert "treating every folder as a label" in caplog.text


def test_symlinks_followed_and_cycles_end(tmp_path):
    outside = tmp_path / "elsewhere"
    touch(outside, "clip.mp4")
    root = tmp_path / "videos"
    touch(root, "walk/a.mp4")
    os.symlink(outside / "clip.mp4", root / "walk" / "linked.mp4")
    os.symlink(outside, root / "run")
    os.symlink(root / "walk", root / "walk" / "loop")  # a cycle
    os.symlink(tmp_path / "gone.mp4", root / "walk" / "broken.mp4")
    ds = load_dataset(folder(root))
    got = sorted((r.class_name, r.path.name) for r in ds.records)
    assert got == [("run", "clip.mp4"), ("walk", "a.mp4"), ("walk", "linked.mp4")]
    rels = [rel for rel, _ in walk_files(root)]
    assert len(rels) == len(set(rels)) == 3


def test_class_selection_and_num_classes(tmp_path, caplog):
    touch(tmp_path, *(f"{c}/v.mp4" for c in ("a", "b", "c", "d")))
    assert load_dataset(folder(tmp_path, classes=("D", "b"))).classes == ("b", "d")
    with caplog.at_level(logging.WARNING):
        assert load_dataset(folder(tmp_path, num_classes=2)).classes == ("a", "b")
    assert "first 2 of 4 labels" in caplog.text
    assert load_dataset(folder(tmp_path, num_classes=15)).classes == ("a", "b", "c", "d")
    touch(tmp_path, "walking/v.mp4")
    with pytest.raises(DatasetError, match="closest: walking"):
        load_dataset(folder(tmp_path, classes=("walkng",)))


def test_tree_errors(tmp_path):
    with pytest.raises(DatasetError, match="--data-root"):
        load_dataset(folder(None))
    with pytest.raises(DatasetError, match=r"data root not found: .*nowhere"):
        load_dataset(folder(tmp_path / "nowhere"))
    touch(tmp_path, "walk/notes.txt")
    with pytest.raises(DatasetError, match="no videos found"):
        load_dataset(folder(tmp_path))
    touch(tmp_path, "Walk/a.mp4", "walk/b.mp4")
    with pytest.raises(DatasetError, match="differ only in case"):
        load_dataset(folder(tmp_path))


# --- manifests --------------------------------------------------------------------------------


def write_manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_with_header_splits_and_missing(tmp_path):
    touch(tmp_path, "clips/a.mp4", "clips/b.mp4", "clips/c.mp4", "clips/d.mp4")
    manifest = write_manifest(
        tmp_path / "manifest.csv",
        "path,label,split\n"
        "clips/a.mp4,walk,train\n"
        "\n"
        "clips/b.mp4, run ,TEST\n"
        "clips/c.mp4,walk,\n"
        f"{tmp_path}/clips/d.mp4,swim,test\n"
        "clips/gone.mp4,walk,test\n",
    )
    test = load_dataset(folder(manifest=str(manifest), subset="test"))
    assert test.classes == ("run", "swim", "walk")
    assert sorted((r.class_name, r.path.name) for r in test.records) == [
        ("run", "b.mp4"),
        ("swim", "d.mp4"),
        ("walk", "c.mp4"),
    ]
    assert [(m.path, m.error) for m in test.missing] == [("clips/gone.mp4", "not found")]
    train = load_dataset(folder(manifest=str(manifest), subset="train"))
    assert sorted(r.path.name for r in train.records) == ["a.mp4", "c.mp4"]
    assert not train.missing
    assert len(load_dataset(folder(manifest=str(manifest), subset="all"))) == 4


def test_manifest_without_header_resolves_against_root(tmp_path):
    touch(tmp_path / "data", "x/1.avi", "x/2.avi")
    manifest = write_manifest(tmp_path / "lists" / "m.csv", "x/1.avi,cat\nx/2.avi,dog\n")
    ds = load_dataset(folder(tmp_path / "data", manifest=str(manifest)))
    assert [(r.class_name, r.path) for r in ds.records] == [
        ("cat", tmp_path / "data/x/1.avi"),
        ("dog", tmp_path / "data/x/2.avi"),
    ]
    # Without root, relative paths resolve against the manifest's folder: all missing here.
    ds = load_dataset(folder(manifest=str(manifest)))
    assert not ds.records and [m.path for m in ds.missing] == ["x/1.avi", "x/2.avi"]


def test_manifest_duplicates(tmp_path, caplog):
    touch(tmp_path, "a.mp4")
    manifest = write_manifest(tmp_path / "m.csv", "a.mp4,walk\n./a.mp4,walk\n")
    with caplog.at_level(logging.WARNING):
        assert len(load_dataset(folder(manifest=str(manifest)))) == 1
    assert "repeats line 1" in caplog.text
    write_manifest(manifest, "a.mp4,walk\n./a.mp4,run\n")
    with pytest.raises(DatasetError, match="line 2: .*also on line 1"):
        load_dataset(folder(manifest=str(manifest)))


@pytest.mark.parametrize(
    "text, match",
    [
        ("path,label\na.mp4\n", "line 2: expected 2 or 3 columns"),
        ("a.mp4,walk\nb.mp4,walk,train,extra\n", "line 2: expected 2 or 3 columns"),
        ("a.mp4,walk\n\nb.mp4, \n", "line 3: empty label"),
        (",walk\n", "line 1: empty path"),
        ("a.mp4,walk,val\n", "line 1: split must be train, test or empty"),
        ("path,label,fold\n", "line 1: header must be path,label"),
        ('a.mp4,"walk\n', "line"),
    ],
)
def test_bad_manifest_rows(tmp_path, text, match):
    manifest = write_manifest(tmp_path / "m.csv", text)
    with pytest.raises(DatasetError, match=rf"m\.csv {match}" if match != "line" else "line"):
        load_dataset(folder(manifest=str(manifest)))


def test_manifest_not_found(tmp_path):
    with pytest.raises(DatasetError, match=r"manifest not found: .*nope\.csv"):
        load_dataset(folder(manifest=str(tmp_path / "nope.csv")))


def test_links_between_label_folders_and_to_ancestors_end_and_keep_labels(tmp_path):
    root = tmp_path / "videos"
    touch(root, "a_walk/1.mp4", "b_run/2.mp4", "b_run/3.mp4", "c_swim/4.mp4")
    # Sorted first, a_walk would otherwise enter b_run through the link and claim its videos.
    os.symlink(root / "b_run", root / "a_walk" / "to run")
    os.symlink(root / "a_walk", root / "b_run" / "back to walk")
    os.symlink(root, root / "c_swim" / "root")  # an ancestor: a loop through the top
    os.symlink("/", root / "c_swim" / "slash")  # would walk the whole machine
    os.symlink("me.mp4", root / "c_swim" / "me.mp4")  # points at itself (ELOOP)
    ds = load_dataset(folder(root))
    got = sorted((r.class_name, r.path.relative_to(root).as_posix()) for r in ds.records)
    assert got == [
        ("a_walk", "a_walk/1.mp4"),
        ("b_run", "b_run/2.mp4"),
        ("b_run", "b_run/3.mp4"),
        ("c_swim", "c_swim/4.mp4"),
    ]
    # Walking a label folder alone still follows a link to a sibling (outside that folder).
    rels = [rel for rel, _ in walk_files(root / "a_walk")]
    assert rels == ["1.mp4", "to run/2.mp4", "to run/3.mp4"]
