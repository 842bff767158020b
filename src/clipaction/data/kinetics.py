"""Kinetics (400/600/700) from an official annotation CSV and a folder of downloaded clips.

`manifest` is the annotation file (`train.csv`, `validate.csv`, `test.csv` of any Kinetics
release): a header naming at least `label`, `youtube_id`, `time_start` and `time_end` (any
order, any case; `split` and extra columns such as `is_cc` are read or ignored); a UTF-8 BOM,
CRLF line ends and quoted labels with commas are accepted. `root` holds the clips, named as the
download tools name them, `<youtube_id>_<start:06d>_<end:06d>.<ext>` (any video extension),
either flat or in one folder per label: files are found by name anywhere under the root, so
both layouts (and folder names with spaces or underscores) work. A listed clip that is not
there goes to `missing` (downloads of Kinetics always miss some).

Subset: with a `split` column, `train` takes its `train` rows, `test` its held-out rows
(`validate`, `val`, `validation`, `test`) and `all` every row; rows without a split value belong
to every subset. Classes are the labels as the file spells them ("backflip (human)"), sorted
(the order of the official label lists), over every row of the file, so every subset numbers
them alike. `classes` gives the label set instead, in its order, also with names that have no
row in the file (the Kinetics-600 zero-shot protocol scores against all 160 names of a split
whatever the file holds); `num_classes` keeps the first N sorted labels.

`kinetics600_zeroshot/split{1,2,3}.csv` (packaged) are the three class splits of the
Kinetics-600 zero-shot protocol: see `zeroshot_split_file`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from clipaction.config import DatasetConfig
from clipaction.data.folder import absolute_path, is_video, walk_files
from clipaction.data.names import close_names, match_name, read_text
from clipaction.data.records import DatasetError, MissingVideo, VideoDataset, VideoRecord, finished_dataset
from clipaction.data.registry import DATASETS

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
HELD_OUT = frozenset({"validate", "val", "validation", "test"})
SUBSET_SPLITS = {"train": frozenset({"train"}), "test": HELD_OUT}
ZEROSHOT_FOLDER = "kinetics600_zeroshot"
_ROOT_HINT = "the folder of the downloaded clips (<youtube_id>_<start>_<end>.mp4), flat or one folder per label"
_CSV_HINT = "the official annotation CSV: label,youtube_id,time_start,time_end,split"


@dataclass(frozen=True)
class KineticsClip:
    """One annotation row: its 1-based `line`, label, YouTube id, start and end seconds, split."""

    line: int
    label: str
    youtube_id: str
    start: int
    end: int
    split: str = ""

    @property
    def name(self) -> str:
        """The clip's file name without extension: `<youtube_id>_<start:06d>_<end:06d>`."""
        return clip_name(self.youtube_id, self.start, self.end)


def clip_name(youtube_id: str, start: int, end: int) -> str:
    """`abc_000010_000020`: how the download tools name the clip of `youtube_id` from `start`
    to `end` seconds (without the extension)."""
    return f"{youtube_id}_{start:06d}_{end:06d}"


def _seconds(value: str, column: str, where: str) -> int:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise DatasetError(f"{where}: {column} must be a whole number of seconds >= 0; got {value!r}")
    return int(number)


def _header(cells: list[str], path: Path) -> dict[str, int]:
    columns = {cell.strip().casefold(): i for i, cell in reversed(list(enumerate(cells)))}
    absent = [c for c in REQUIRED_COLUMNS if c not in columns]
    if absent == ["label"]:
        raise DatasetError(f"{path}: no label column (an unlabelled test set cannot be evaluated)")
    if absent:
        raise DatasetError(f"{path} line 1: no {', '.join(absent)} column(s); expected {_CSV_HINT}")
    return columns


def read_annotations(path: str | Path) -> list[KineticsClip]:
    """The rows of a Kinetics annotation CSV, in file order (blank lines skipped). A row that
    is not a clip (too few cells, an empty label or id, times that are not whole seconds, an
    end before the start) raises DatasetError naming the file and line."""
    path = Path(path)
    text = read_text(path, "Kinetics annotation file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    clips: list[KineticsClip] = []
    columns: dict[str, int] | None = None
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                columns = _header(row, path)
                continue
            where = f"{path} line {reader.line_num}"
            if len(row) <= max(columns[c] for c in REQUIRED_COLUMNS):
                raise DatasetError(f"{where}: expected {len(columns)} cells, got {len(row)}")
            cell = {name: row[i].strip() if i < len(row) else "" for name, i in columns.items()}
            if not cell["label"] or not cell["youtube_id"]:
                raise DatasetError(f"{where}: empty label or youtube_id")
            start = _seconds(cell["time_start"], "time_start", where)
            end = _seconds(cell["time_end"], "time_end", where)
            if end <= start:
                raise DatasetError(f"{where}: time_end {end} is not after time_start {start}")
            split = cell.get("split", "").casefold()
            clips.append(KineticsClip(reader.line_num, cell["label"], cell["youtube_id"], start, end, split))
    except csv.Error as error:
        raise DatasetError(f"{path} line {reader.line_num}: {error}") from None
    if columns is None:
        raise DatasetError(f"{path}: empty (expected {_CSV_HINT})")
    return clips


def index_clips(root: Path) -> dict[str, list[Path]]:
    """File name without extension -> the video files of that name under `root` (any depth,
    sorted). Names are compared exactly: YouTube ids are case-sensitive."""
    index: dict[str, list[Path]] = {}
    for rel, absolute in walk_files(root):
        name = rel.rsplit("/", 1)[-1]
        if is_video(name):
            index.setdefault(name.rsplit(".", 1)[0], []).append(absolute)
    return index


def _folder_key(name: str) -> str:
    return name.replace("_", " ").casefold()


def _pick(candidates: list[Path], label: str) -> Path:
    """The file of a clip: the one in its label's folder when several share the name."""
    if len(candidates) > 1:
        in_label = [p for p in candidates if _folder_key(p.parent.name) == _folder_key(label)]
        if in_label:
            return in_label[0]
        log.debug("%d files named %s; using %s", len(candidates), candidates[0].name, candidates[0])
    return candidates[0]


def _check_inputs(config: DatasetConfig) -> tuple[Path, Path]:
    if config.root is None:
        raise DatasetError(f"kinetics needs a data root: {_ROOT_HINT}", setting="dataset.root")
    if config.manifest is None:
        raise DatasetError(f"kinetics needs its annotations: {_CSV_HINT}", setting="dataset.manifest")
    root, annotations = absolute_path(config.root), absolute_path(config.manifest)
    if not root.is_dir():
        raise DatasetError(f"data root not found: {root} (expected {_ROOT_HINT})", setting="dataset.root")
    if not annotations.is_file():
        raise DatasetError(
            f"annotation file not found: {annotations} (expected {_CSV_HINT})", setting="dataset.manifest"
        )
    return root, annotations


def _label_set(config: DatasetConfig, labels: Sequence[str], path: Path) -> tuple[str, ...]:
    """The classes: `config.classes` as given (names without rows allowed), else the first
    `num_classes` sorted labels of the file."""
    if not config.classes:
        return tuple(labels[: config.class_count] if config.class_count is not None else labels)
    classes = tuple(name.strip() for name in config.classes)
    repeated = sorted({name for name in classes if classes.count(name) > 1})
    if repeated:
        raise DatasetError(f"classes given twice: {', '.join(repeated)}", setting="dataset.classes")
    absent = [name for name in classes if match_name(name, labels) is None]
    if len(absent) == len(classes):
        close = close_names(absent[0], labels, n=3)
        hint = f"; closest to {absent[0]!r}: {', '.join(close)}" if close else ""
        raise DatasetError(f"no class given is a label of {path}{hint}", setting="dataset.classes")
    if absent:
        log.warning("%d of %d classes have no row in %s, e.g. %s", len(absent), len(classes), path, absent[0])
    return classes


@DATASETS.register("kinetics")
def load_kinetics(config: DatasetConfig) -> VideoDataset:
    """Kinetics clips of `config.subset` for the chosen classes (see the module docstring).
    Labels index the classes; duplicated rows (the same clip) are kept once."""
    root, annotations = _check_inputs(config)
    clips = read_annotations(annotations)
    labels = sorted({clip.label for clip in clips})
    classes = _label_set(config, labels, annotations)
    position = {label: i for i, label in enumerate(classes)}
    folded = {label.casefold(): i for i, label in reversed(list(enumerate(classes)))}
    wanted = SUBSET_SPLITS.get(config.subset)
    index = index_clips(root)
    records: list[VideoRecord] = []
    missing: list[MissingVideo] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    for clip in clips:
        if wanted is not None and clip.split and clip.split not in wanted:
            continue
        label = position.get(clip.label, folded.get(clip.label.casefold()))
        if label is None:
            continue
        if clip.name in seen:
            duplicates.append(clip.name)
            continue
        seen.add(clip.name)
        candidates = index.get(clip.name)
        if not candidates:
            missing.append(MissingVideo(clip.name, f"not found under the data root (annotations line {clip.line})"))
            continue
        records.append(VideoRecord(path=_pick(candidates, clip.label), label=label, class_name=classes[label]))
    return finished_dataset(config, classes, records, missing, duplicates)


# --- the Kinetics-600 zero-shot class splits --------------------------------------------------


@dataclass(frozen=True)
class ClassSplit:
    """One class split of the Kinetics-600 zero-shot protocol: where it was read and its names
    (in id order). `packaged` says it is the copy shipped with clipaction."""

    split: int
    path: str
    packaged: bool
    sha256: str
    names: tuple[str, ...]


def zeroshot_split(split: int, split_dir: str | Path | None = None) -> ClassSplit:
    """Split `split` (1, 2, 3) of the Kinetics-600 zero-shot protocol: the 160 of the 220 classes
    new in Kinetics-600 that X-CLIP, ViFi-CLIP, Open-VCLIP and FROSTER evaluate (from ER-ZSAR).
    `split_dir` replaces the packaged files with a folder holding `split{N}.csv` (`id,name`
    rows, ids 0, 1, ... in order, names unique)."""
    if split not in (1, 2, 3):
        raise DatasetError(f"must be 1, 2 or 3; got {split!r}", setting="splits")
    name = f"split{split}.csv"
    if split_dir is None:
        resource = resources.files("clipaction.data").joinpath(ZEROSHOT_FOLDER, name)
        data, where, packaged = resource.read_bytes(), str(resource), True
    else:
        path = absolute_path(split_dir) / name
        if not path.is_file():
            raise DatasetError(
                f"class split file not found: {path} (expected {name}: id,name rows)", setting="split_dir"
            )
        data, where, packaged = path.read_bytes(), str(path), False
    names = _split_names(data, where)
    return ClassSplit(split, where, packaged, hashlib.sha256(data).hexdigest(), names)


def _split_names(data: bytes, where: str) -> tuple[str, ...]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{where}: not UTF-8 text") from None
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in row)]
    if not rows or [c.strip().casefold() for c in rows[0]] != ["id", "name"]:
        raise DatasetError(f"{where}: expected a header 'id,name'")
    names: list[str] = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or row[0].strip() != str(len(names)) or not row[1].strip():
            raise DatasetError(f"{where} row {number}: expected '{len(names)},<class name>', got {','.join(row)!r}")
        names.append(row[1].strip())
    if not names:
        raise DatasetError(f"{where}: no classes")
    if len(set(names)) != len(names):
        raise DatasetError(f"{where}: a class name repeats")
    return tuple(names)
