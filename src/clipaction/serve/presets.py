"""Label presets and the page's label text (no Gradio here).

Presets are data files of the package (`clipaction/data/*_classes.txt`, one dataset class name
per line, in the dataset's order) turned into the words CLIP reads ("ApplyEyeMakeup" ->
"apply eye makeup", the `spaced` name style).
"""

from __future__ import annotations

from importlib import resources

from clipaction.classify.run import check_labels
from clipaction.config import DEFAULT_NUM_CLASSES
from clipaction.data.names import format_class_name
from clipaction.errors import ConfigError


def _class_file(name: str) -> list[str]:
    text = resources.files("clipaction.data").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _spaced(names: list[str]) -> list[str]:
    return [format_class_name(name, "spaced") for name in names]


#: preset name -> a function giving its labels
PRESETS = {
    f"The study's {DEFAULT_NUM_CLASSES} UCF101 classes": lambda: _spaced(
        _class_file("ucf101_classes.txt")[:DEFAULT_NUM_CLASSES]
    ),
    "UCF101 (101 classes)": lambda: _spaced(_class_file("ucf101_classes.txt")),
    "HMDB51 (51 classes)": lambda: _spaced(_class_file("hmdb51_classes.txt")),
}


def list_presets() -> list[str]:
    return list(PRESETS)


def preset_labels(name: str) -> list[str]:
    """The labels of preset `name`, one per class."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}", setting="labels")
    return PRESETS[name]()


def parse_labels(text: str | None) -> list[str]:
    """Labels typed on the page: one per line, or comma-separated on a single line (a label
    that contains a comma therefore needs the one-per-line form). Refused when there is none
    or one is given twice (`pipeline.check_labels`)."""
    text = (text or "").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    items = lines if len(lines) > 1 else text.split(",")
    return check_labels(items)
