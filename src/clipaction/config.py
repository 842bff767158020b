"""Frozen dataclasses for every setting that changes a number.

Dicts appear only at the edges (CLI flags, JSON, TOML); inside the library settings travel as
these objects, and their canonical JSON is what cache keys hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

SamplerName = Literal["middle", "center-clip", "uniform"]
Subset = Literal["train", "test", "all"]
Device = Literal["auto", "cpu", "cuda"]
NameStyle = Literal["raw", "spaced"]
Precision = Literal["fp32"]

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_NUM_CLASSES = 15


def check_choice(option: str, value: Any, literal: Any) -> None:
    """Raise ValueError naming the allowed values when `value` is not one of `literal`'s."""
    allowed = get_args(literal)
    if value not in allowed:
        raise ValueError(f"{option} must be one of {', '.join(map(str, allowed))}; got {value!r}")


@dataclass(frozen=True)
class DatasetConfig:
    """Which videos to evaluate.

    `classes` picks classes by name; when empty, `num_classes` takes the first N of the
    dataset's class list (classInd.txt order for UCF101), and None takes all of them.
    """

    name: str = "ucf101"
    root: str | None = None
    splits_dir: str | None = None
    split: int = 1
    subset: Subset = "test"
    classes: tuple[str, ...] = ()
    num_classes: int | None = DEFAULT_NUM_CLASSES
    manifest: str | None = None

    def __post_init__(self) -> None:
        check_choice("subset", self.subset, Subset)
        if self.split not in (1, 2, 3):
            raise ValueError(f"split must be one of 1, 2, 3; got {self.split!r}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 or None (all); got {self.num_classes}")
        object.__setattr__(self, "classes", tuple(self.classes))


@dataclass(frozen=True)
class SamplerConfig:
    """How frames are picked from a video: see clipaction.video.sampling."""

    name: SamplerName = "center-clip"
    frames: int = 8
    window: float = 3.0

    def __post_init__(self) -> None:
        check_choice("sampler", self.name, SamplerName)
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1; got {self.frames}")
        if not self.window > 0:
            raise ValueError(f"window must be > 0 seconds; got {self.window}")

    def cache_fields(self) -> dict[str, Any]:
        """The fields that change which frames are taken (middle ignores frames and window)."""
        if self.name == "middle":
            return {"name": self.name}
        if self.name == "uniform":
            return {"name": self.name, "frames": self.frames}
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelConfig:
    """Which CLIP to load and how to run it. `name_or_path` is a hub id or a local directory."""

    name_or_path: str = DEFAULT_MODEL
    revision: str | None = None
    backend: str = "hf-clip"
    device: Device = "auto"
    batch_size: int = 32
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        check_choice("device", self.device, Device)
        check_choice("precision", self.precision, Precision)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")


@dataclass(frozen=True)
class PromptConfig:
    """How class names become text features.

    `templates` is `seed`, `clip` or the path of a file with one template per line ({} marks the
    class name). `label_map` is an optional CSV/JSON file mapping a label to its text.
    """

    templates: str = "seed"
    name_style: NameStyle = "raw"
    label_map: str | None = None

    def __post_init__(self) -> None:
        check_choice("name style", self.name_style, NameStyle)


@dataclass(frozen=True)
class ZeroShotConfig:
    """Everything `clipaction zeroshot` needs."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    cache_dir: str | None = None
    workers: int = 2
    strict: bool = False


def canonical_json(value: Any) -> str:
    """Stable JSON text of dataclasses/dicts/lists, used for hashing."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(value: Any, length: int = 16) -> str:
    """Hex digest of `canonical_json(value)`."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]
