"""The `folder` dataset: a user's own videos, from a folder tree or a CSV manifest.

Tree layouts (labels are the folder names directly under the root or split folder; videos may
sit deeper inside a label folder):

    <root>/<label>/<video>                       no split folders
    <root>/train/<label>/<video>, <root>/test/<label>/<video>

The split layout is used when the root's (non-hidden) folders are only `train` and/or `test`
(any case); subset `train`/`test` then reads that folder and `all` reads both. Without split
folders every video belongs to every subset. Videos are recognised by extension
(`VIDEO_EXTENSIONS`, case-insensitive); other files and hidden ones (`.name`) are ignored.
Symlinks are followed, with two rules that make link loops end and keep every video under its
own label: a linked folder inside the tree (or one that contains the tree, e.g. a link to `/`)
is not entered through the link, since it is listed where it really is; and a folder outside
the tree is entered once however many links lead to it.

Manifest (`manifest` option): CSV rows `path,label[,split]`, header optional. Relative paths
resolve against `root` when given, else the manifest's folder. With subset `train`/`test`, rows
whose split is another value are skipped; rows with an empty or absent split belong to every
subset. Files that do not exist go to `missing`.

Classes are the sorted unique labels over the whole dataset (all split folders / all manifest
rows, so train and test share one label numbering). Then `classes` picks by name
(case-insensitive), else `num_classes` keeps the first N sorted labels when it is smaller than
the number of labels (None or a larger value keeps all; a warning says when labels are cut).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipaction.config import DatasetConfig
from clipaction.data.names import select_classes
from clipaction.data.records import DatasetError, MissingVideo, VideoDataset, VideoRecord
from clipaction.data.registry import DATASETS

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv"})
SPLIT_FOLDERS = ("train", "test")
MANIFEST_SPLITS = ("train", "test", "")


def is_video(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def walk_files(top: str | Path) -> Iterator[tuple[str, Path]]:
    """Yield (relative POSIX path, absolute path) of every file under `top`, sorted by name.

    Symlinked files and folders are followed, except a linked folder whose real path lies inside
    `top`'s (it is listed at its own place; following the link would list it twice or under
    another name) or contains it (a link to an ancestor, e.g. `/`, would walk everything). A
    folder whose real path was already visited is skipped, so cycles outside the tree end too.
    Unreadable folders are logged and skipped. Hidden entries (name starting with `.`, e.g.
    `.git`, macOS `._clip.mp4`) are skipped.
    """
    top = Path(top)
    real_top = os.path.realpath(top)
    seen: set[str] = set()
    stack: list[tuple[Path, str]] = [(top, "")]
    while stack:
        folder, prefix = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            logger.debug("skipping %s: already visited as %s", folder, real)
            continue
        seen.add(real)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            logger.warning("cannot list %s: %s", folder, err.strerror or err)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{prefix}{entry.name}"
            try:
                if entry.is_dir():
                    if entry.is_symlink() and _loops_back(os.path.realpath(entry.path), real_top):
                        logger.debug("not following %s: it links into or above %s", entry.path, top)
                        continue
                    subdirs.append((Path(entry.path), rel + "/"))
                elif entry.is_file():
                    yield rel, Path(entry.path)
            except OSError:
                continue  # a broken entry: neither a file nor a folder we can read
        stack.extend(reversed(subdirs))


def video_files(paths: Sequence[str | Path]) -> list[Path]:
    """Each given path as is, except a folder, which becomes the video files under it (by
    extension, sorted, hidden files skipped). A folder with no video in it is a DatasetError;
    a path that does not exist is kept, for extraction to report it as a failure."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        videos = [file for rel, file in walk_files(path) if is_video(rel)]
        if not videos:
            raise DatasetError(f"no videos found in {path} (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
        found.extend(videos)
    return found


def _loops_back(target: str, real_top: str) -> bool:
    """Whether real path `target` lies inside `real_top` or contains it."""
    try:
        common = os.path.commonpath([target, real_top])
    except ValueError:  # different drives
        return False
    return common in (target, real_top)


def absolute_path(path: str | Path) -> Path:
    """`path` with ~ expanded, made absolute and normalised (symlinks kept)."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


@dataclass(frozen=True)
class _Item:
    """One video before class selection: `path` absolute, `listed` as the user wrote it."""

    listed: str
    path: Path
    label: str
    exists: bool = True


def _child_dirs(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError as err:
        raise DatasetError(f"cannot list data root {folder}: {err.strerror or err}") from None


def _tree_items(folder: Path) -> list[_Item]:
    items: list[_Item] = []
    stray = 0
    for rel, path in walk_files(folder):
        if not is_video(rel):
            continue
        label, sep, _ = rel.partition("/")
        if not sep:
            stray += 1
            continue
        items.append(_Item(listed=rel, path=path, label=label))
    if stray:
        logger.warning("ignored %d videos directly in %s (not inside a label folder)", stray, folder)
    return items


def _load_tree(root: Path, subset: str) -> tuple[list[_Item], list[_Item]]:
    """(items of the subset, items of the whole dataset)."""
    dirs = _child_dirs(root)
    split_dirs = {d.casefold(): d for d in dirs if d.casefold() in SPLIT_FOLDERS}
    if split_dirs and len(split_dirs) == len(dirs):
        per_split = {key: _tree_items(root / name) for key, name in split_dirs.items()}
        everything = [item for items in per_split.values() for item in items]
        if subset == "all":
            return everything, everything
        if subset not in per_split:
            raise DatasetError(f"no {subset}/ folder under {root} (found {', '.join(split_dirs.values())}/)")
        return per_split[subset], everything
    if split_dirs:
        logger.warning(
            "%s has %s/ beside other folders: treating every folder as a label",
            root,
            "/, ".join(split_dirs.values()),
        )
    items = _tree_items(root)
    if subset != "all":
        logger.info("%s has no train/ and test/ folders: every video belongs to subset %s", root, subset)
    return items, items


def _manifest_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        handle = open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise DatasetError(f"manifest not found: {path} (expected a CSV file path,label[,split])") from None
    except OSError as err:
        raise DatasetError(f"cannot read manifest {path}: {err.strerror or err}") from None
    with handle:
        reader = csv.reader(handle, strict=True)
        try:
            for row in reader:
                cells = [c.strip() for c in row]
                if any(cells):
                    yield reader.line_num, cells
        except (csv.Error, UnicodeDecodeError) as err:
            raise DatasetError(f"manifest {path} line {reader.line_num}: {err}") from None


def _load_manifest(manifest: Path, base: Path, subset: str) -> tuple[list[_Item], list[_Item]]:
    seen: dict[Path, tuple[int, str, str]] = {}
    everything: list[_Item] = []
    chosen: list[_Item] = []
    first = True
    for line, cells in _manifest_rows(manifest):
        where = f"manifest {manifest} line {line}"
        if first and [c.casefold() for c in cells[:2]] == ["path", "label"]:
            first = False
            if [c.casefold() for c in cells[2:]] not in ([], ["split"]):
                raise DatasetError(f"{where}: header must be path,label[,split]; got {','.join(cells)}")
            continue
        first = False
        if len(cells) not in (2, 3):
            raise DatasetError(f"{where}: expected 2 or 3 columns path,label[,split]; got {len(cells)}")
        listed, label = cells[0], cells[1]
        split = cells[2].casefold() if len(cells) == 3 else ""
        if not listed:
            raise DatasetError(f"{where}: empty path")
        if not label:
            raise DatasetError(f"{where}: empty label")
        if split not in MANIFEST_SPLITS:
            raise DatasetError(f"{where}: split must be train, test or empty; got {cells[2]!r}")
        path = absolute_path(base / os.path.expanduser(listed))
        if path in seen:
            prev_line, prev_label, prev_split = seen[path]
            if (prev_label, prev_split) != (label, split):
                raise DatasetError(f"{where}: {listed} is also on line {prev_line} with another label or split")
            logger.warning("%s: %s repeats line %d; kept once", where, listed, prev_line)
            continue
        seen[path] = (line, label, split)
        item = _Item(listed=listed, path=path, label=label, exists=path.is_file())
        everything.append(item)
        if subset == "all" or split in ("", subset):
            chosen.append(item)
    return chosen, everything


def _class_list(items: list[_Item]) -> list[str]:
    labels = sorted({item.label for item in items})
    folded: dict[str, str] = {}
    for label in labels:
        other = folded.setdefault(label.casefold(), label)
        if other != label:
            raise DatasetError(f"labels differ only in case: {other!r} and {label!r}; rename one")
    return labels


@DATASETS.register("folder")
def load_folder(config: DatasetConfig) -> VideoDataset:
    """Load a user's videos from a folder tree or a CSV manifest (see the module docstring)."""
    if config.manifest:
        manifest = absolute_path(config.manifest)
        base = absolute_path(config.root) if config.root else manifest.parent
        if config.root and not base.is_dir():
            raise DatasetError(f"data root not found: {base} (relative manifest paths resolve against it)")
        chosen, everything = _load_manifest(manifest, base, config.subset)
    else:
        if config.root is None:
            raise DatasetError("the folder dataset needs --data-root (a folder of <label>/<video>) or --manifest")
        root = absolute_path(config.root)
        if not root.is_dir():
            raise DatasetError(
                f"data root not found: {root} (expected a folder holding one folder per label, e.g. walking/clip1.mp4)"
            )
        chosen, everything = _load_tree(root, config.subset)
    labels = _class_list(everything)
    if not labels:
        source = config.manifest or config.root
        raise DatasetError(f"no videos found in {source} (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
    if not config.classes and config.class_count is not None and config.class_count < len(labels):
        logger.warning(
            "keeping the first %d of %d labels (num_classes); set num_classes to None for all",
            config.class_count,
            len(labels),
        )
    picked = select_classes(labels, config.classes, config.class_count, dataset="folder")
    classes = tuple(labels[i] for i in picked)
    index = {name: i for i, name in enumerate(classes)}
    records: list[VideoRecord] = []
    missing: list[MissingVideo] = []
    for item in chosen:
        if item.label not in index:
            continue
        if item.exists:
            label = index[item.label]
            records.append(VideoRecord(path=item.path, label=label, class_name=item.label))
        else:
            missing.append(MissingVideo(path=item.listed, error="not found"))
    records.sort(key=lambda r: (r.label, str(r.path)))
    if missing:
        logger.warning("%d listed videos not found, e.g. %s", len(missing), missing[0].path)
    return VideoDataset(
        name=config.name,
        classes=classes,
        records=tuple(records),
        missing=tuple(missing),
        split=None,
        subset=config.subset,
    )
