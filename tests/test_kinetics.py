"""The Kinetics dataset: the official annotation CSV (BOM, CRLF, quoted labels, extra columns),
clips found flat or in label folders, missing clips named, subsets, label sets, and the
packaged Kinetics-600 zero-shot class splits."""

from __future__ import annotations

import csv
import hashlib
import io
from importlib.resources import files
from pathlib import Path

import pytest

from clipaction.config import DatasetConfig
from clipaction.data import DatasetError, load_dataset
from clipaction.data.kinetics import clip_name, read_annotations, zeroshot_split

# (label, youtube id, start, end, split); the fourth clip is listed but never downloaded.
ROWS = [
    ("backflip (human)", "aB3-x_9QzZ0", 12, 22, "validate"),
    ("curling (sport)", "Zz_top-0001", 0, 10, "validate"),
    ("dancing, gangnam style", "q-q-q-q-q-q", 100, 110, "validate"),
    ("curling (sport)", "never_here1", 5, 15, "validate"),
    ("arguing", "trainclip01", 30, 40, "train"),
]
HEADER = "label,youtube_id,time_start,time_end,split,is_cc"


def write_csv(path: Path, rows=ROWS, header: str = HEADER, bom: bool = True, newline: str = "\r\n") -> Path:
    """The official layout: header, one clip a line, labels with commas quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(header.split(","))
    for label, vid, start, end, split in rows:
        writer.writerow([label, vid, start, end, split, 0][: len(header.split(","))])
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8", newline="")
    return path


def touch_clips(root: Path, per_label: bool, rows=ROWS[:3] + ROWS[4:]) -> dict[str, Path]:
    """Empty files named as the download tools name clips (the loader only lists them)."""
    made = {}
    for label, vid, start, end, _ in rows:
        folder = root / label.replace(" ", "_") if per_label else root
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{vid}_{start:06d}_{end:06d}.mp4"
        path.write_bytes(b"")
        made[vid] = path
    return made


def config(root: Path, annotations: Path, **kw) -> DatasetConfig:
    return DatasetConfig(name="kinetics", root=str(root), manifest=str(annotations), num_classes=None, **kw)


def test_clip_name_is_the_download_tools_name():
    assert clip_name("aB3-x_9QzZ0", 12, 22) == "aB3-x_9QzZ0_000012_000022"
    assert clip_name("x", 123456, 1234567) == "x_123456_1234567"


def test_annotations_with_bom_crlf_quotes_and_extra_columns(tmp_path):
    rows = read_annotations(write_csv(tmp_path / "validate.csv"))
    assert [(r.label, r.youtube_id, r.start, r.end, r.split) for r in rows] == [tuple(row) for row in ROWS]
    assert [r.line for r in rows] == [2, 3, 4, 5, 6]
    # any column order and case
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("YouTube_ID,Label,time_end,time_start\nabc,jumping,20,10\n", encoding="utf-8")
    (row,) = read_annotations(shuffled)
    assert (row.label, row.youtube_id, row.start, row.end, row.split) == ("jumping", "abc", 10, 20, "")


@pytest.mark.parametrize("per_label", [False, True], ids=["flat", "per-label"])
def test_flat_and_per_label_layouts_give_the_same_dataset(tmp_path, per_label):
    made = touch_clips(tmp_path / "clips", per_label)
    ds = load_dataset(config(tmp_path / "clips", write_csv(tmp_path / "validate.csv"), subset="test"))
    # labels as the file spells them, sorted over every row (train's "arguing" too)
    assert ds.classes == ("arguing", "backflip (human)", "curling (sport)", "dancing, gangnam style")
    got = {(r.path, r.class_name, r.label) for r in ds.records}
    assert got == {
        (made["aB3-x_9QzZ0"], "backflip (human)", 1),
        (made["Zz_top-0001"], "curling (sport)", 2),
        (made["q-q-q-q-q-q"], "dancing, gangnam style", 3),
    }
    assert [(m.path, m.error.split(" (")[0]) for m in ds.missing] == [
        ("never_here1_000005_000015", "not found under the data root")
    ]
    assert "line 5" in ds.missing[0].error


def test_subsets_follow_the_split_column(tmp_path):
    touch_clips(tmp_path / "clips", per_label=True)
    annotations = write_csv(tmp_path / "all.csv")
    train = load_dataset(config(tmp_path / "clips", annotations, subset="train"))
    every = load_dataset(config(tmp_path / "clips", annotations, subset="all"))
    assert [r.class_name for r in train.records] == ["arguing"] and not train.missing
    assert len(every.records) == 4 and len(every.missing) == 1
    assert train.classes == every.classes  # one numbering whatever the subset


def test_a_given_label_set_is_kept_whole_even_without_rows(tmp_path):
    touch_clips(tmp_path / "clips", per_label=False)
    annotations = write_csv(tmp_path / "validate.csv")
    wanted = ("curling (sport)", "zumba", "backflip (human)")  # zumba: no row in the file
    ds = load_dataset(config(tmp_path / "clips", annotations, subset="all", classes=wanted))
    assert ds.classes == wanted
    assert sorted((r.class_name, r.label) for r in ds.records) == [("backflip (human)", 2), ("curling (sport)", 0)]
    with pytest.raises(DatasetError, match="no class given is a label"):
        load_dataset(config(tmp_path / "clips", annotations, classes=("zumba", "yoga")))


def test_a_clip_listed_twice_is_used_once_and_duplicates_of_a_file_prefer_the_label_folder(tmp_path):
    root = tmp_path / "clips"
    made = touch_clips(root, per_label=True)
    stray = root / "other" / made["aB3-x_9QzZ0"].name
    stray.parent.mkdir()
    stray.write_bytes(b"")
    annotations = write_csv(tmp_path / "v.csv", rows=ROWS + [ROWS[0]])
    ds = load_dataset(config(root, annotations, subset="all"))
    backflips = [r.path for r in ds.records if r.class_name == "backflip (human)"]
    assert backflips == [made["aB3-x_9QzZ0"]]


@pytest.mark.parametrize(
    "text, match",
    [
        ("youtube_id,time_start,time_end,split\nabc,1,11,test\n", "no label column"),
        ("label,youtube_id,time_start\nx,abc,1\n", "no time_end column"),
        ("label,youtube_id,time_start,time_end\nx,abc,one,11\n", "line 2: time_start must be a whole number"),
        ("label,youtube_id,time_start,time_end\nx,abc,20,10\n", "line 2: time_end 10 is not after"),
        ("label,youtube_id,time_start,time_end\n\nx,,1,11\n", "line 3: empty label or youtube_id"),
        ("label,youtube_id,time_start,time_end\nx,abc\n", "line 2: expected 4 cells"),
        ("", "empty"),
    ],
)
def test_a_bad_annotation_file_is_one_line_naming_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=match):
        read_annotations(path)


def test_missing_inputs_name_the_setting(tmp_path):
    annotations = write_csv(tmp_path / "v.csv")
    with pytest.raises(DatasetError) as error:
        load_dataset(config(tmp_path / "nowhere", annotations))
    assert error.value.setting == "dataset.root" and "data root not found" in error.value.message
    with pytest.raises(DatasetError) as error:
        load_dataset(config(tmp_path, tmp_path / "none.csv"))
    assert error.value.setting == "dataset.manifest"


# --- the Kinetics-600 zero-shot class splits -------------------------------------------------


def _packaged(split: int) -> bytes:
    return files("clipaction.data").joinpath("kinetics600_zeroshot", f"split{split}.csv").read_bytes()


@pytest.mark.parametrize("split", [1, 2, 3])
def test_packaged_class_splits(split):
    chosen = zeroshot_split(split)
    rows = list(csv.DictReader(io.StringIO(_packaged(split).decode())))
    assert chosen.names == tuple(r["name"] for r in rows) and len(chosen.names) == 160
    assert chosen.packaged and chosen.sha256 == hashlib.sha256(_packaged(split)).hexdigest()


def test_packaged_class_splits_are_the_shared_copies(shared_dir):
    for split in (1, 2, 3):
        assert _packaged(split) == (shared_dir / "kinetics600_zeroshot_splits" / f"split{split}.csv").read_bytes()


def test_the_splits_hold_kinetics600_names_with_their_disambiguations():
    names = [set(zeroshot_split(s).names) for s in (1, 2, 3)]
    assert "backflip (human)" in names[0] | names[1] | names[2]
    assert names[0] != names[1] != names[2]


def test_a_split_dir_replaces_the_packaged_files(tmp_path):
    (tmp_path / "split2.csv").write_text("id,name\n0,b\n1,a\n", encoding="utf-8")
    chosen = zeroshot_split(2, tmp_path)
    assert chosen.names == ("b", "a") and not chosen.packaged and chosen.path == str(tmp_path / "split2.csv")
    with pytest.raises(DatasetError, match="class split file not found"):
        zeroshot_split(1, tmp_path)
    (tmp_path / "split3.csv").write_text("id,name\n0,a\n2,b\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="expected '1,<class name>'"):
        zeroshot_split(3, tmp_path)
