"""`clipaction models --check`: what clipaction will do with a model, read from its config and
processor files only (never its weights).

`check_model(name_or_path)` constructs the model's backend the way every command does (which
reads config.json and the processor files and refuses a processor its family cannot run), adds
the facts a user picks settings from, and returns them JSON-ready; when clipaction cannot run
the model it raises the same one-line `ModelLoadError` a command would.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from clipaction import hardware
from clipaction.config import ModelConfig
from clipaction.errors import ModelLoadError
from clipaction.models.catalog import family_info
from clipaction.models.hf_common import PRECISION_DEVICES

#: Files that hold a model's weights (any one is enough).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _runtimes(backend: Any) -> dict[str, dict[str, Any]]:
    """Each runtime: the precisions it runs this model at, and why not where it cannot."""
    from clipaction.models.runtimes.openvino import INFERENCE_PRECISION, unsupported_reason

    runtimes: dict[str, dict[str, Any]] = {"torch": {"precisions": list(PRECISION_DEVICES), "note": None}}
    reason = unsupported_reason(backend)
    if reason is not None:
        runtimes["openvino"] = {"precisions": [], "note": reason}
    else:
        missing = importlib.util.find_spec("openvino") is None
        note = "CPU only; needs pip install 'clipaction[openvino]'" if missing else "CPU only"
        runtimes["openvino"] = {"precisions": list(INFERENCE_PRECISION), "note": note}
    return runtimes


def check_model(name_or_path: str, revision: str | None = None) -> dict[str, Any]:
    """What clipaction will do with the model `name_or_path` (hub id or local folder), as a
    JSON-ready dict; a one-line ModelLoadError (setting model.name_or_path) when it cannot run
    it. Loads no weights."""
    from clipaction.models.registry import load_backend

    backend = load_backend(ModelConfig(name_or_path=name_or_path, revision=revision, device="cpu"))
    source = backend.source
    if source.local_dir is not None and not any((source.local_dir / name).is_file() for name in WEIGHT_FILES):
        raise ModelLoadError(
            f"{name_or_path} has no weights (none of {', '.join(WEIGHT_FILES)}): save the model with save_pretrained",
            setting="model.name_or_path",
        )
    entry = family_info(backend.family)
    files = backend.processor_files
    report: dict[str, Any] = {
        "model": name_or_path,
        "family": backend.family,
        "title": entry.title if entry else None,
        "model_class": backend.model_class,
        "kind": backend.kind,
        "frames": "any" if backend.kind == "frame" else list(backend.frame_counts),
        "input_size": backend.input_size,
        "processor": files.processor_class,
        "image_processor": files.image_processor_class,
        "video_processor": files.video_processor_class,
        "tokenizer": files.tokenizer_class,
        "processor_files": list(files.files),
        "score": backend.score_kind,
        "scores": entry.scores if entry else None,
        "capabilities": sorted(capability.value for capability in backend.capabilities),
        "precisions": {precision: list(devices) for precision, devices in PRECISION_DEVICES.items()},
        # bf16 runs only on CPUs with bf16 units (clipaction.hardware): say whether this one has them
        "native_bf16": hardware.native_bf16(),
        "runtimes": _runtimes(backend),
    }
    if backend.kind == "frame" and backend.naflex:
        report["max_num_patches"] = backend.max_num_patches
        report["patch_size"] = backend.patch_size
    return report


def check_text(report: dict[str, Any]) -> str:
    """`check_model`'s report as lines for a terminal."""
    title = f" ({report['title']}, {report['model_class']})" if report["title"] else f" ({report['model_class']})"
    if report["kind"] == "frame":
        kind = "frame model: frames are encoded one by one and pooled; any number of frames"
    else:
        counts = ", ".join(str(count) for count in report["frames"])
        kind = f"clip model: the frames of a clip are encoded together; frames per clip: {counts}"
    size = f"{report['input_size']} px"
    if "max_num_patches" in report:
        size = f"native aspect ratio, up to {report['max_num_patches']} patches of {report['patch_size']} px"
    processors = [f"processor {report['processor'] or 'not named'}"]
    if report["image_processor"]:
        processors.append(f"image processor {report['image_processor']}")
    if report["video_processor"]:
        processors.append(f"video processor {report['video_processor']}")
    processors.append(f"tokenizer {report['tokenizer'] or 'not named'}")
    notes = {"bf16": "; this CPU has bf16 units" if report["native_bf16"] else "; needs AMX or AVX512-BF16: not here"}
    precisions = ", ".join(
        f"{name} ({', '.join(devices)}{notes.get(name, '')})" for name, devices in report["precisions"].items()
    )
    runtimes = []
    for name, runtime in report["runtimes"].items():
        if runtime["precisions"]:
            note = f"; {runtime['note']}" if runtime["note"] else ""
            runtimes.append(f"{name} ({', '.join(runtime['precisions'])}{note})")
        else:
            runtimes.append(f"{name}: no ({runtime['note']})")
    lines = [
        f"model: {report['model']}",
        f"family: {report['family']}{title}",
        f"kind: {kind}",
        f"input: {size}",
        f"preprocessing: {'; '.join(processors)} (files: {', '.join(report['processor_files']) or 'none'})",
        f"scores: {report['score']}" + (f" ({report['scores']})" if report["scores"] else ""),
        f"capabilities: {', '.join(report['capabilities']) or 'none'}",
        f"precisions: {precisions}",
        f"runtimes: {'; '.join(runtimes)}",
    ]
    return "\n".join(lines)
