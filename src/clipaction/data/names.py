"""Class names: picking classes by name, turning names into prompt text, label maps.

Name styles live in the `NAME_STYLES` registry (`raw`, `spaced`, `plain`); irregular names the splitting
rule gets wrong sit in the data file `name_exceptions.json` (raw name -> text), not in code.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path

from clipaction.data.records import DatasetError
from clipaction.registry import Registry

logger = logging.getLogger(__name__)

NameStyleFn = Callable[[str], str]

NAME_STYLES: Registry[NameStyleFn] = Registry("name style")


def list_name_styles(pattern: str = "*") -> list[str]:
    return NAME_STYLES.names(pattern)


@functools.lru_cache(maxsize=1)
def name_exceptions() -> dict[str, str]:
    """The packaged exceptions table (raw class name -> spaced text)."""
    text = resources.files("clipaction.data").joinpath("name_exceptions.json").read_text("utf-8")
    table = json.loads(text)
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in table.items()
    ):
        raise DatasetError("name_exceptions.json must map class names to non-empty strings")
    return dict(table)


@NAME_STYLES.register("raw")
def raw_name(name: str) -> str:
    """The name as the dataset spells it: "ApplyEyeMakeup", "brush_hair"."""
    return name


def split_words(name: str) -> list[str]:
    """Split a CamelCase / snake_case / kebab-case name into its words, case kept.

    Boundaries: any non-alphanumeric character; lower -> upper ("ApplyEye"); letter <-> digit
    ("Jump2"); and the last capital of an acronym run before a lowercase letter ("TVShow" ->
    "TV", "Show"). Combining marks stay with their letter ("Cafe\u0301" is one word), and only
    capitals that have a lowercase form count as capitals, so lowercased words never split again.
    """
    words: list[str] = []
    current = ""
    prev = ""  # the last base character of `current` (combining marks skipped)
    for i, ch in enumerate(name):
        if current and unicodedata.category(ch).startswith("M"):
            current += ch
            continue
        if not ch.isalnum():
            if current:
                words.append(current)
            current = ""
            continue
        if current:
            nxt = name[i + 1] if i + 1 < len(name) else ""
            boundary = (
                (prev.islower() and _is_capital(ch))
                or (prev.isdigit() != ch.isdigit())
                or (_is_capital(prev) and _is_capital(ch) and nxt.islower())
            )
            if boundary:
                words.append(current)
                current = ""
        current += ch
        prev = ch
    if current:
        words.append(current)
    return words


def _is_capital(ch: str) -> bool:
    # Letters such as the mathematical capitals are upper case yet have no lowercase form.
    return ch.isupper() and ch.lower() != ch


@NAME_STYLES.register("spaced")
def spaced_name(name: str) -> str:
    """Lowercase words: "ApplyEyeMakeup" -> "apply eye makeup", "brush_hair" -> "brush hair".

    Names in `name_exceptions.json` (matched exactly, then case-insensitively) win.
    """
    table = name_exceptions()
    known = list(table)
    index = match_name(name, known)
    if index is not None:
        return table[known[index]]
    words = split_words(name)
    # A name without letters or digits ("---") is kept, lowercased, so a prompt never goes empty.
    return " ".join(w.lower() for w in words) if words else name.lower()


_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)")


@NAME_STYLES.register("plain")
def plain_name(name: str) -> str:
    """The name without its parenthesised disambiguations, otherwise as spelled: Kinetics'
    "backflip (human)" -> "backflip", "curling (sport)" -> "curling". A name that is nothing
    but a parenthesis is kept whole, so a prompt never goes empty."""
    text, previous = name, None
    while text != previous:  # innermost first, so nested parentheses go too
        previous, text = text, _DISAMBIGUATION.sub("", text)
    text = " ".join(text.split())
    return text if text else name


def format_class_name(name: str, style: str) -> str:
    """`name` in the given style (`raw`, `spaced` or `plain`); ValueError lists the valid styles."""
    return NAME_STYLES.get(style)(name)


def close_names(name: str, valid: Iterable[str], n: int = 5) -> list[str]:
    """Up to `n` names of `valid` closest to `name`, compared case-insensitively."""
    by_fold: dict[str, str] = {}
    for v in valid:
        by_fold.setdefault(v.casefold(), v)
    matches = difflib.get_close_matches(name.casefold(), list(by_fold), n=n, cutoff=0.5)
    return [by_fold[m] for m in matches]


def _unknown_name_message(name: str, valid: Sequence[str], what: str) -> str:
    close = close_names(name, valid)
    if close:
        hint = f"closest: {', '.join(close)}"
    else:
        shown = ", ".join(valid[:10]) + (", ..." if len(valid) > 10 else "")
        hint = f"valid ({len(valid)}): {shown}"
    return f"unknown {what} {name!r}; {hint}"


def match_name(name: str, names: Sequence[str]) -> int | None:
    """Index of `name` in `names`: the exact spelling, else the first case-insensitive match."""
    if name in names:
        return names.index(name)
    folded = name.casefold()
    return next((i for i, n in enumerate(names) if n.casefold() == folded), None)


def select_classes(
    available: Sequence[str],
    wanted: Sequence[str] = (),
    num_classes: int | None = None,
    *,
    dataset: str = "dataset",
) -> list[int]:
    """Indices into `available` (ascending, so the dataset's own order) of the chosen classes.

    `wanted` names are matched case-insensitively (an exact spelling wins); an unknown one raises
    DatasetError naming the closest valid names. Without `wanted`, the first `num_classes`
    (None = all) are taken.
    """
    if not wanted:
        count = len(available) if num_classes is None else min(num_classes, len(available))
        return list(range(count))
    chosen: set[int] = set()
    for name in wanted:
        index = match_name(name, available)
        if index is None:
            raise DatasetError(_unknown_name_message(name, list(available), f"{dataset} class"))
        chosen.add(index)
    return sorted(chosen)


def read_text(path: str | Path, what: str) -> str:
    """A UTF-8 text file's contents (BOM dropped); DatasetError names `what`, the path and why."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{what} not found: {path}") from None
    except OSError as err:
        raise DatasetError(f"cannot read {what} {path}: {err.strerror or err}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DatasetError(f"{what} {path} line {line}: not UTF-8 text ({err.reason})") from None


def _label_map_from_json(path: Path, text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(f"label map {path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise DatasetError(f"label map {path}: expected a JSON object {{label: text}}, got {kind}")
    result: dict[str, str] = {}
    for label, value in data.items():
        if not isinstance(value, str):
            kind = type(value).__name__
            raise DatasetError(f"label map {path}: text for {label!r} must be a string, got {kind}")
        if not label.strip():
            raise DatasetError(f"label map {path}: empty label")
        if not value.strip():
            raise DatasetError(f"label map {path}: empty text for label {label!r}")
        result[label.strip()] = value.strip()
    return result


def _label_map_from_csv(path: Path, text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    first = True
    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if first and [c.casefold() for c in cells] == ["label", "text"]:
                first = False
                continue
            first = False
            if len(cells) != 2:
                raise DatasetError(
                    f"label map {path} line {line}: expected 2 columns label,text, got {len(cells)}"
                    " (quote text that contains commas)"
                )
            label, value = cells
            if not label:
                raise DatasetError(f"label map {path} line {line}: empty label")
            if not value:
                raise DatasetError(f"label map {path} line {line}: empty text for label {label!r}")
            if label in result:
                raise DatasetError(f"label map {path} line {line}: label {label!r} given twice")
            result[label] = value
    except csv.Error as err:
        raise DatasetError(f"label map {path} line {reader.line_num}: {err}") from None
    return result


def load_label_map(path: str | Path) -> dict[str, str]:
    """Read a label -> text map: CSV `label,text` (header optional) or a JSON object.

    JSON is chosen by a `.json` suffix or by text starting with `{`. Text values are stripped and
    must be non-empty strings; any problem raises DatasetError naming the path and the reason.
    """
    path = Path(path)
    text = read_text(path, "label map")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        result = _label_map_from_json(path, text)
    else:
        result = _label_map_from_csv(path, text)
    if not result:
        raise DatasetError(f"label map {path} is empty")
    return result


def prompt_names(classes: Sequence[str], style: str, label_map: dict[str, str] | None = None) -> list[str]:
    """The text that stands for each class in prompts, in `classes` order.

    A `label_map` entry (key matched to a class case-insensitively, an exact spelling first) wins
    over `style`. Keys for classes outside `classes` are allowed (one map may serve all of
    UCF101 while a run uses 15 classes), but a map none of whose keys match is a DatasetError:
    it is almost certainly the wrong file.
    """
    formatter = NAME_STYLES.get(style)
    texts = [formatter(name) for name in classes]
    if not label_map:
        return texts
    unmatched = []
    for key, value in label_map.items():
        index = match_name(key, classes)
        if index is None:
            unmatched.append(key)
        else:
            texts[index] = value
    if unmatched and len(unmatched) == len(label_map):
        close = close_names(unmatched[0], classes, n=3)
        hint = f" (closest to {unmatched[0]!r}: {', '.join(close)})" if close else ""
        raise DatasetError(f"no label map key matches a class{hint}; classes: {', '.join(classes)}")
    if unmatched:
        logger.info("label map keys not among the classes, ignored: %s", ", ".join(unmatched))
    return texts
