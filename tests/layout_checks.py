"""Test helper: a saved tiny model's processor files against its checkpoint's layout row.

Reads the JSON files directly (not through clipaction's own reader), so a wrong reader cannot
make a wrong folder pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clipaction.models.checkpoint_layouts import DIMENSION_KEYS, CheckpointLayout


def _json(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"{path.name} is missing from {path.parent}"
    return json.loads(path.read_text(encoding="utf-8"))


def _same_structure(saved: Any, expected: Any) -> bool:
    """A dimension key: the same kind of value (the same dict keys), any size."""
    if isinstance(expected, dict):
        return isinstance(saved, dict) and set(saved) == set(expected)
    return isinstance(saved, int) and isinstance(expected, int)


def assert_laid_out_as(folder: Path, layout: CheckpointLayout) -> None:
    """The folder has `layout`'s files, classes and keys (dimension keys may be smaller, but
    they must agree with the model's own config.json)."""
    folder = Path(folder)
    video = layout.video_processor_class is not None
    saved = _json(folder / ("video_preprocessor_config.json" if video else "preprocessor_config.json"))
    assert not (folder / "processor_config.json").exists(), "the hub's checkpoints have no processor_config.json"
    assert saved.get("processor_class") == layout.processor_class
    type_key = "video_processor_type" if video else "image_processor_type"
    assert saved.get(type_key) == layout.preprocessor_class
    for key, expected in layout.preprocessing.items():
        assert key in saved, f"{key} not saved"
        if key in DIMENSION_KEYS:
            assert _same_structure(saved[key], expected), (key, saved[key], expected)
        elif isinstance(expected, (float, list)):
            assert saved[key] == pytest.approx(expected, abs=1e-9), key
        else:
            assert saved[key] == expected, (key, saved[key], expected)

    tokenizer = _json(folder / "tokenizer_config.json")
    assert tokenizer.get("tokenizer_class") == layout.tokenizer_class
    if not video:  # ProcessorMixin.save_pretrained names the processor in the tokenizer config too
        assert tokenizer.get("processor_class") == layout.processor_class
    for key, expected in layout.tokenizer.items():
        assert tokenizer.get(key) == expected, (key, tokenizer.get(key), expected)

    vision = _json(folder / "config.json")["vision_config"]
    for key in ("size", "crop_size"):
        if isinstance(saved.get(key), dict):
            assert set(saved[key].values()) == {vision["image_size"]}, (key, saved[key], vision["image_size"])
    if "patch_size" in layout.preprocessing:
        assert saved["patch_size"] == vision["patch_size"]

    if not video:  # the classes transformers loads (a video processor needs torchvision)
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(folder)
        assert type(processor).__name__ == layout.processor_class
        assert type(processor.image_processor).__name__.removesuffix("Pil") == layout.image_processor_class
