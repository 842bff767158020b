"""UCF101 from the official split lists (classInd.txt, trainlist0N.txt, testlist0N.txt).

`root` is the `UCF-101` folder holding one folder per class; `splits_dir` holds the lists.
Labels follow classInd.txt order (not sorted folder order: HammerThrow/Hammering and
JumpRope/JumpingJack differ). Files are matched case-insensitively because the lists say
`HandstandPushups` where the archive says `HandStandPushups`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from clipaction.config import DatasetConfig
from clipaction.data.folder import absolute_path, walk_files
from clipaction.data.names import read_text, select_classes
from clipaction.data.records import DatasetError, MissingVideo, VideoDataset, VideoRecord, finished_dataset
from clipaction.data.registry import DATASETS

logger = logging.getLogger(__name__)

CLASS_INDEX = "classInd.txt"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LABEL = re.compile(r"[0-9]+", re.ASCII)
_DRIVE = re.compile(r"[A-Za-z]:")


def _lines(path: str | Path, what: str) -> list[tuple[int, list[str]]]:
    """(1-based line number, whitespace-split fields) of each non-blank line of a text file."""
    text = read_text(path, what)
    out = []
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        fields = line.split()
        if fields:
            out.append((number, fields))
    return out


def read_class_index(path: str | Path) -> list[str]:
    """Class names of classInd.txt (`1 ApplyEyeMakeup` per line), in label order.

    Labels must run 1..N in file order and names must be unique (case-insensitively); otherwise
    DatasetError names the file and line.
    """
    names: list[str] = []
    seen: dict[str, int] = {}
    for number, fields in _lines(path, "class index"):
        where = f"{path} line {number}"
        if len(fields) != 2 or not _LABEL.fullmatch(fields[0]):
            raise DatasetError(f"{where}: expected '<label> <ClassName>', got {' '.join(fields)!r}")
        label, name = int(fields[0]), fields[1]
        if label != len(names) + 1:
            raise DatasetError(f"{where}: expected label {len(names) + 1}, got {label} (labels run 1..N in order)")
        if name.casefold() in seen:
            raise DatasetError(f"{where}: class {name!r} repeats line {seen[name.casefold()]}")
        seen[name.casefold()] = number
        names.append(name)
    if not names:
        raise DatasetError(f"{path}: no classes")
    return names


@dataclass(frozen=True)
class SplitEntry:
    """One list line: `path` as written, its 1-based `label` (None in test lists), its line."""

    line: int
    path: str
    label: int | None


def read_split_entries(path: str | Path) -> list[SplitEntry]:
    """The entries of a trainlist (`Class/v_x.avi 1`) or testlist (`Class/v_x.avi`) file."""
    entries = []
    for number, fields in _lines(path, "split list"):
        if len(fields) > 2 or (len(fields) == 2 and not _LABEL.fullmatch(fields[1])):
            raise DatasetError(f"{path} line {number}: expected '<Class>/<video> [label]', got {' '.join(fields)!r}")
        label = int(fields[1]) if len(fields) == 2 else None
        if label == 0:
            raise DatasetError(f"{path} line {number}: labels start at 1, got 0")
        entries.append(SplitEntry(number, fields[0], label))
    return entries


def read_split_list(path: str | Path) -> list[tuple[str, int | None]]:
    """(path, 1-based label or None) of each entry of a split list, in file order.

    LF, CRLF, blank lines and trailing spaces are accepted; a line that is not
    `<path>` or `<path> <label>` raises DatasetError with the file and line number.
    """
    return [(e.path, e.label) for e in read_split_entries(path)]


def _entry_parts(listed: str) -> tuple[list[str] | None, str]:
    """The entry's path components, or None and why it is refused."""
    text = listed.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        return None, "refused: absolute path (entries must be relative to the data root)"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "refused: '..' would leave the data root"
    if len(parts) < 2:
        return None, "refused: expected <Class>/<video>"
    return parts, ""


def _check_dirs(config: DatasetConfig) -> tuple[Path, Path]:
    if config.root is None:
        raise DatasetError("ucf101 needs --data-root: the UCF-101 folder holding one folder per class")
    if config.splits_dir is None:
        raise DatasetError(
            "ucf101 needs --splits-dir: the folder holding classInd.txt, trainlist01.txt, testlist01.txt"
        )
    root, splits = absolute_path(config.root), absolute_path(config.splits_dir)
    if not root.is_dir():
        raise DatasetError(
            f"data root not found: {root} (expected the UCF-101 folder holding one folder per class, "
            "e.g. ApplyEyeMakeup/)"
        )
    if not splits.is_dir():
        raise DatasetError(
            f"splits dir not found: {splits} (expected the folder holding classInd.txt, "
            "trainlist0{1,2,3}.txt and testlist0{1,2,3}.txt from "
            "UCF101TrainTestSplits-RecognitionTask.zip)"
        )
    return root, splits


def _split_file(splits: Path, name: str) -> Path:
    path = splits / name
    if not path.is_file():
        nested = [p.parent for p in splits.glob(f"*/{name}")]
        hint = f"; found one in {nested[0]}: pass that as --splits-dir" if nested else ""
        raise DatasetError(f"split file not found: {path} (expected {name} in --splits-dir{hint})")
    return path


def _index_files(root: Path, class_names: list[str]) -> dict[str, list[str]]:
    """Case-folded relative path -> actual relative paths, for the folders of `class_names`."""
    wanted = {name.casefold() for name in class_names}
    index: dict[str, list[str]] = {}
    try:
        children = sorted(root.iterdir())
    except OSError as err:
        raise DatasetError(f"cannot list data root {root}: {err.strerror or err}") from None
    folders = [p for p in children if p.name.casefold() in wanted and p.is_dir()]
    found = {p.name.casefold() for p in folders}
    absent = [name for name in class_names if name.casefold() not in found]
    if folders and absent:
        logger.warning("%d class folders not found under %s, e.g. %s", len(absent), root, absent[0])
    if not folders:
        nested = root / "UCF-101"
        hint = f"; did you mean {nested}?" if nested.is_dir() else ""
        raise DatasetError(
            f"no class folders found under data root {root} (expected the UCF-101 folder holding "
            f"one folder per class, e.g. {class_names[0]}/){hint}"
        )
    for folder in folders:
        for rel, _ in walk_files(folder):
            actual = f"{folder.name}/{rel}"
            index.setdefault(actual.casefold(), []).append(actual)
    return index


def _resolve(parts: list[str], index: dict[str, list[str]]) -> tuple[str | None, str]:
    joined = "/".join(parts)
    candidates = index.get(joined.casefold(), [])
    if joined in candidates or len(candidates) == 1:
        return (joined if joined in candidates else candidates[0]), ""
    if candidates:
        return None, f"ambiguous: matches {', '.join(candidates)}"
    return None, "not found"


@DATASETS.register("ucf101")
def load_ucf101(config: DatasetConfig) -> VideoDataset:
    """UCF101 videos of `config.split`/`config.subset` for the selected classes.

    Labels index the selected classes in classInd.txt order. Entries whose file is absent, or
    that would leave the data root, go to `missing`; duplicated entries are kept once.
    """
    root, splits = _check_dirs(config)
    class_file = _split_file(splits, CLASS_INDEX)
    all_classes = read_class_index(class_file)
    picked = select_classes(all_classes, config.classes, config.class_count, dataset="ucf101")
    classes = tuple(all_classes[i] for i in picked)
    position = {ci: new for new, ci in enumerate(picked)}
    by_folder = {name.casefold(): i for i, name in enumerate(all_classes)}
    lists = {"train": ["train"], "test": ["test"], "all": ["train", "test"]}[config.subset]
    files = [_split_file(splits, f"{kind}list0{config.split}.txt") for kind in lists]
    index = _index_files(root, list(classes))

    records: list[VideoRecord] = []
    missing: list[MissingVideo] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for path in files:
        for entry in read_split_entries(path):
            parts, reason = _entry_parts(entry.path)
            if parts is None:
                missing.append(MissingVideo(entry.path, reason))
                continue
            folder = parts[0]
            class_index = by_folder.get(folder.casefold())
            if class_index is None:
                raise DatasetError(f"{path} line {entry.line}: class folder {folder!r} is not in {class_file}")
            if entry.label is not None and entry.label != class_index + 1:
                raise DatasetError(
                    f"{path} line {entry.line}: label {entry.label} disagrees with class folder "
                    f"{folder!r} (label {class_index + 1} in {CLASS_INDEX})"
                )
            if class_index not in position:
                continue
            key = "/".join(parts).casefold()
            if key in seen:
                duplicates.append(entry.path)
                continue
            seen.add(key)
            actual, reason = _resolve(parts, index)
            if actual is None:
                missing.append(MissingVideo(entry.path, reason))
                continue
            label = position[class_index]
            records.append(VideoRecord(path=root / actual, label=label, class_name=classes[label]))
    return finished_dataset(config, classes, records, missing, duplicates)
