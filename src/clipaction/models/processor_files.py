"""A model's processor files, read without loading anything, and checked against what its
family can run.

A model folder describes its preprocessing in one of the layouts transformers writes or reads:

- `preprocessor_config.json`: the image processor's keys, flat, with `image_processor_type`
  (or a legacy `feature_extractor_type`) and `processor_class` (how the hub's checkpoints ship);
- `processor_config.json`: what transformers 5's `Processor.save_pretrained` writes, the image
  (or video) processor nested under `image_processor` / `video_processor`;
- `video_preprocessor_config.json`: a video processor's keys (`video_processor_type`);
- `tokenizer_config.json`: `tokenizer_class`, `model_max_length`, special tokens.

Each family says which classes it runs (`ProcessorSpec`, a class attribute of its backend). A
folder with a processor of another kind, or none where one is needed, is a `ModelLoadError`
naming the file and what was expected, raised when the backend is constructed: one line, never
a traceback half-way through the videos.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from clipaction.errors import ModelLoadError

_SETTING = "model.name_or_path"
_PROCESSOR_NAMES = (
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "tokenizer_config.json",
    "tokenizer.json",
)


def canonical_class(name: str | None) -> str | None:
    """The base class a saved class name loads as: "CLIPImageProcessorPil",
    "CLIPImageProcessorFast" and the legacy "CLIPFeatureExtractor" -> "CLIPImageProcessor";
    "CLIPTokenizerFast" -> "CLIPTokenizer"."""
    if not name:
        return None
    for suffix in ("Pil", "Fast"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    if name.endswith("FeatureExtractor"):
        name = name[: -len("FeatureExtractor")] + "ImageProcessor"
    return name


@dataclass(frozen=True)
class ProcessorFiles:
    """What a model's processor files say (classes canonical, see `canonical_class`).

    image / video: the saved keys of the image / video processor ({} when there is none);
    tokenizer: tokenizer_config.json's keys; files: the names of the files found.
    """

    processor_class: str | None = None
    image_processor_class: str | None = None
    video_processor_class: str | None = None
    tokenizer_class: str | None = None
    image: dict[str, Any] = field(default_factory=dict)
    video: dict[str, Any] = field(default_factory=dict)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    @property
    def has_tokenizer(self) -> bool:
        return "tokenizer_config.json" in self.files or "tokenizer.json" in self.files

    def to_json(self) -> dict[str, Any]:
        return {
            "processor_class": self.processor_class,
            "image_processor_class": self.image_processor_class,
            "video_processor_class": self.video_processor_class,
            "tokenizer_class": self.tokenizer_class,
            "files": list(self.files),
        }


def _read_json(source: Any, name: str) -> dict[str, Any] | None:
    path = source.file(name)
    if path is None:
        return None
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        message = f"{source.name_or_path}: {name} is not readable JSON ({error})"
        raise ModelLoadError(message, setting=_SETTING) from error
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"{source.name_or_path}: {name} is not a JSON object", setting=_SETTING)
    return loaded


def read_processor_files(source: Any) -> ProcessorFiles:
    """The processor files of a `hf_common.ModelSource` (local folder or hub id; a hub id's
    files are downloaded, never its weights). When both processor_config.json and
    preprocessor_config.json exist, transformers reads the first: so does this."""
    found: list[str] = []
    image: dict[str, Any] = {}
    video: dict[str, Any] = {}
    processor_class = None
    unified = _read_json(source, "processor_config.json")
    if unified is not None:
        found.append("processor_config.json")
        processor_class = unified.get("processor_class")
        image = dict(unified.get("image_processor") or {})
        video = dict(unified.get("video_processor") or {})
    flat = _read_json(source, "preprocessor_config.json")
    if flat is not None:
        found.append("preprocessor_config.json")
        processor_class = processor_class or flat.get("processor_class")
        image = image or flat
    saved_video = _read_json(source, "video_preprocessor_config.json")
    if saved_video is not None:
        found.append("video_preprocessor_config.json")
        processor_class = processor_class or saved_video.get("processor_class")
        video = video or saved_video
    tokenizer = _read_json(source, "tokenizer_config.json")
    if tokenizer is not None:
        found.append("tokenizer_config.json")
        processor_class = processor_class or tokenizer.get("processor_class")
    elif source.file("tokenizer.json") is not None:  # fetched only when there is no tokenizer_config.json
        found.append("tokenizer.json")
    return ProcessorFiles(
        processor_class=canonical_class(processor_class),
        image_processor_class=canonical_class(image.get("image_processor_type") or image.get("feature_extractor_type")),
        video_processor_class=canonical_class(video.get("video_processor_type")),
        tokenizer_class=canonical_class((tokenizer or {}).get("tokenizer_class")),
        image=image,
        video=video,
        tokenizer=dict(tokenizer or {}),
        files=tuple(found),
    )


@dataclass(frozen=True)
class ProcessorSpec:
    """The processors a family runs. Empty `image_processors` and `video_processors` mean the
    family reads no image processor (`video_optional`: a missing video processor config falls
    back to the family's documented defaults)."""

    processors: tuple[str, ...]
    image_processors: tuple[str, ...] = ()
    video_processors: tuple[str, ...] = ()
    video_optional: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "processors": list(self.processors),
            "image_processors": list(self.image_processors),
            "video_processors": list(self.video_processors),
        }


def _one_of(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else "one of " + ", ".join(names)


def processor_problems(
    family: str, spec: ProcessorSpec, files: ProcessorFiles, input_size: int | None = None
) -> list[str]:
    """Why a model of `family` with these processor files cannot run (empty when it can).
    `input_size`: the side of the square input the model takes, when it takes one."""
    problems = []
    if files.processor_class and files.processor_class not in spec.processors:
        problems.append(
            f"its processor is {files.processor_class}; the {family} family runs {_one_of(spec.processors)}"
        )
    if spec.image_processors:
        if files.image_processor_class is None:
            problems.append(
                "it has no image processor (no preprocessor_config.json or processor_config.json naming one); the "
                f"{family} family needs {_one_of(spec.image_processors)}: save it with "
                f"{spec.processors[0]}(...).save_pretrained(folder)"
            )
        elif files.image_processor_class not in spec.image_processors:
            problems.append(
                f"its image processor is {files.image_processor_class}; the {family} family runs "
                f"{_one_of(spec.image_processors)}"
            )
        else:
            side = processor_input_side(files.image)
            if side is not None and input_size is not None and side != input_size:
                problems.append(f"its image processor makes {side} px inputs; the model takes {input_size} px")
    if spec.video_processors:
        if files.video_processor_class is None and not spec.video_optional:
            problems.append(f"it has no video processor; the {family} family needs {_one_of(spec.video_processors)}")
        elif files.video_processor_class and files.video_processor_class not in spec.video_processors:
            problems.append(
                f"its video processor is {files.video_processor_class}; the {family} family runs "
                f"{_one_of(spec.video_processors)}"
            )
    if not files.has_tokenizer:
        problems.append("it has no tokenizer (no tokenizer_config.json or tokenizer.json)")
    return problems


def check_processor_files(
    family: str, spec: ProcessorSpec, source: Any, input_size: int | None = None
) -> ProcessorFiles:
    """The model's `ProcessorFiles`; a one-line ModelLoadError when its family cannot run them
    (or, for a hub id, when its processor files could not be fetched)."""
    files = read_processor_files(source)
    problems = processor_problems(family, spec, files, input_size)
    unreachable = {name: why for name, why in getattr(source, "unreachable", {}).items() if name in _PROCESSOR_NAMES}
    if problems and unreachable:  # what looks missing may only be out of reach
        names = ", ".join(sorted(unreachable))
        raise ModelLoadError(
            f"could not get {names} of {source.name_or_path!r}: {next(iter(unreachable.values()))} "
            "(offline? give a local folder saved with save_pretrained)",
            setting=_SETTING,
        )
    if problems:
        raise ModelLoadError(f"{source.name_or_path} (model_type {family}): " + "; ".join(problems), setting=_SETTING)
    return files


def processor_input_side(settings: dict[str, Any]) -> int | None:
    """The side of the square pixels an image processor makes, from its saved keys (a crop, or
    a fixed height x width resize); None when it is not a fixed square (NaFlex, shortest edge
    without a crop) or not said. Legacy files give `crop_size` / `size` as one int."""

    def square(value: Any) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, dict) and value.get("height") and value.get("height") == value.get("width"):
            return int(value["height"])
        return None

    if settings.get("do_center_crop") and settings.get("crop_size") is not None:
        return square(settings["crop_size"])
    size = settings.get("size")
    if isinstance(size, dict) and "height" in size:
        return square(size)
    return None
