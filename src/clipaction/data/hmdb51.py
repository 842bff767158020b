"""HMDB51 from the official split files (`testTrainMulti_7030_splits`).

`root` holds one folder per class (`brush_hair/`, `cartwheel/`, ...) with the `.avi` files
directly inside; `splits_dir` holds `<class>_test_split<N>.txt` for N = 1, 2, 3, one line per
video of the class: `<video file name> <0|1|2>` (1 = train, 2 = test, 0 = unused in that split).

Label order: the class names taken from the split file names, sorted by Python string order.
On the official files that is plain alphabetical order (0 brush_hair, 1 cartwheel, ... 50 wave),
the order torchvision's HMDB51 and the common label lists use. Each official split lists every
one of the 6,766 videos: per class 70 train, 30 test and the rest unused.

Conventions shared with the UCF101 loader: LF/CRLF, blank lines and trailing spaces are
accepted; files are matched case-insensitively (an exact spelling wins); listed videos that are
absent, or entries that are not a plain file name (they could leave the class folder), go to
`missing`; a malformed line raises DatasetError naming the file and line.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from clipaction.config import DatasetConfig
from clipaction.data.folder import absolute_path
from clipaction.data.names import read_text, select_classes
from clipaction.data.records import DatasetError, MissingVideo, VideoDataset, VideoRecord, finished_dataset
from clipaction.data.registry import DATASETS

logger = logging.getLogger(__name__)

SPLIT_FILE = re.compile(r"(?P<cls>.+)_test_split(?P<split>[0-9]+)\.txt", re.IGNORECASE)
SUBSET_IDS = {"train": frozenset({1}), "test": frozenset({2}), "all": frozenset({1, 2})}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SPLITS_HINT = (
    "the folder holding <class>_test_split<N>.txt, e.g. brush_hair_test_split1.txt "
    "(testTrainMulti_7030_splits from test_train_splits.rar)"
)
_ROOT_HINT = "the folder holding one folder of .avi files per class, e.g. brush_hair/"


def split_file_name(class_name: str, split: int) -> str:
    return f"{class_name}_test_split{split}.txt"


def read_split_file(path: str | Path) -> list[tuple[int, str, int]]:
    """(1-based line number, video file name, 0|1|2) of each non-blank line of a split file.

    LF, CRLF, blank lines and trailing spaces are accepted; any other line raises DatasetError
    with the file and line number.
    """
    text = read_text(path, "HMDB51 split file")
    entries = []
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DatasetError(
                f"{path} line {number}: expected '<video file> <0|1|2>' "
                f"(1 train, 2 test, 0 unused), got {' '.join(fields)!r}"
            )
        entries.append((number, fields[0], int(fields[1])))
    if not entries:
        raise DatasetError(f"{path}: no entries (expected '<video file> <0|1|2>' lines)")
    return entries


def read_class_names(splits_dir: str | Path) -> list[str]:
    """The classes named by the split files in `splits_dir`, sorted (the label order).

    Any split number counts, so every split of one folder gives the same class list. Names that
    differ only in case are refused: they would share a folder on case-insensitive disks.
    """
    splits_dir = Path(splits_dir)
    try:
        names = sorted({m["cls"] for p in splits_dir.iterdir() if (m := SPLIT_FILE.fullmatch(p.name))})
    except OSError as err:
        raise DatasetError(f"cannot list splits dir {splits_dir}: {err.strerror or err}") from None
    if not names:
        nested = sorted(p.parent for p in splits_dir.glob("*/*_test_split1.txt"))
        hint = f"; found them in {nested[0]}: pass that as --splits-dir" if nested else ""
        raise DatasetError(f"no HMDB51 split files in {splits_dir} (expected {_SPLITS_HINT}){hint}")
    folded: dict[str, str] = {}
    for name in names:
        if name.casefold() in folded:
            raise DatasetError(
                f"{splits_dir}: split files for {folded[name.casefold()]!r} and {name!r} name "
                "classes that differ only in case"
            )
        folded[name.casefold()] = name
    return names


def _check_dirs(config: DatasetConfig) -> tuple[Path, Path]:
    if config.root is None:
        raise DatasetError(f"hmdb51 needs --data-root: {_ROOT_HINT}")
    if config.splits_dir is None:
        raise DatasetError(f"hmdb51 needs --splits-dir: {_SPLITS_HINT}")
    root, splits = absolute_path(config.root), absolute_path(config.splits_dir)
    if not root.is_dir():
        raise DatasetError(f"data root not found: {root} (expected {_ROOT_HINT})")
    if not splits.is_dir():
        raise DatasetError(f"splits dir not found: {splits} (expected {_SPLITS_HINT})")
    return root, splits


def _class_folders(root: Path, classes: list[str]) -> dict[str, Path]:
    """Class name -> its folder under `root` (case-insensitive; exact spelling wins)."""
    try:
        folders = [p for p in sorted(root.iterdir()) if p.is_dir()]
    except OSError as err:
        raise DatasetError(f"cannot list data root {root}: {err.strerror or err}") from None
    by_fold: dict[str, Path] = {}
    for folder in folders:
        by_fold.setdefault(folder.name.casefold(), folder)
    exact = {folder.name: folder for folder in folders}
    found = {}
    for name in classes:
        match = exact.get(name) or by_fold.get(name.casefold())
        if match is not None:
            found[name] = match
    if not found:
        nested = sorted(p.parent for p in root.glob(f"*/{classes[0]}/"))
        hint = f"; did you mean {nested[0]}?" if nested else ""
        raise DatasetError(f"no class folders found under data root {root} (expected {_ROOT_HINT}){hint}")
    absent = [c for c in classes if c not in found]
    if absent:
        logger.warning("%d class folders not found under %s, e.g. %s", len(absent), root, absent[0])
    return found


def _index_folder(folder: Path) -> dict[str, list[str]]:
    """Case-folded file name -> actual names of the files directly in `folder`."""
    index: dict[str, list[str]] = {}
    try:
        children = sorted(folder.iterdir())
    except OSError as err:
        raise DatasetError(f"cannot list class folder {folder}: {err.strerror or err}") from None
    for child in children:
        if child.is_file():
            index.setdefault(child.name.casefold(), []).append(child.name)
    return index


def _resolve(video: str, index: dict[str, list[str]]) -> tuple[str | None, str]:
    if "/" in video or "\\" in video or video in (".", "..") or re.match(r"[A-Za-z]:", video):
        return None, "refused: expected a file name inside the class folder"
    candidates = index.get(video.casefold(), [])
    if video in candidates or len(candidates) == 1:
        return (video if video in candidates else candidates[0]), ""
    if candidates:
        return None, f"ambiguous: matches {', '.join(candidates)}"
    return None, "not found"


@DATASETS.register("hmdb51")
def load_hmdb51(config: DatasetConfig) -> VideoDataset:
    """HMDB51 videos of `config.split`/`config.subset` for the selected classes.

    Subset `train` takes lines marked 1, `test` those marked 2, `all` both. Labels index the
    selected classes in sorted class-name order. `num_classes` counts from the start of that
    order; pass None for all 51 (DatasetConfig's default, 15, is the UCF101 study's).
    """
    root, splits = _check_dirs(config)
    all_classes = read_class_names(splits)
    picked = select_classes(all_classes, config.classes, config.class_count, dataset="hmdb51")
    classes = tuple(all_classes[i] for i in picked)
    files = {}
    for name in classes:
        path = splits / split_file_name(name, config.split)
        if not path.is_file():
            raise DatasetError(f"split file not found: {path} (split {config.split} of class {name!r})")
        files[name] = path
    folders = _class_folders(root, list(classes))
    wanted = SUBSET_IDS[config.subset]

    records: list[VideoRecord] = []
    missing: list[MissingVideo] = []
    duplicates: list[str] = []
    for label, name in enumerate(classes):
        folder = folders.get(name)
        index = _index_folder(folder) if folder is not None else {}
        seen: set[str] = set()
        for _, video, kind in read_split_file(files[name]):
            if kind not in wanted:
                continue
            listed = f"{name}/{video}"
            if video.casefold() in seen:
                duplicates.append(listed)
                continue
            seen.add(video.casefold())
            if folder is None:
                missing.append(MissingVideo(listed, "not found: no class folder"))
                continue
            actual, reason = _resolve(video, index)
            if actual is None:
                missing.append(MissingVideo(listed, reason))
                continue
            records.append(VideoRecord(path=folder / actual, label=label, class_name=name))
    return finished_dataset(config, classes, records, missing, duplicates)
