"""Writing results: results.json (schema-versioned, NaN as null), predictions.csv, report text."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import clipaction
from clipaction.errors import OutputError

SCHEMA_VERSION = 1


def to_jsonable(value: Any) -> Any:
    """Dataclasses, numpy values and paths -> plain JSON values; NaN and inf -> None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def environment(device: str) -> dict[str, str]:
    from importlib.metadata import version

    # From the installed metadata: importing torch or transformers costs seconds that a run
    # whose features are all cached need not pay. torch's threads only where torch ran.
    torch = sys.modules.get("torch")
    return {
        "clipaction": clipaction.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__ if torch is not None else version("torch"),
        "transformers": version("transformers"),
        "device": device,
        "torch_threads": str(torch.get_num_threads()) if torch is not None else "not used",
    }


def check_output_folder(path: str | Path) -> Path:
    """`path` (~ expanded) if it is, or can be created as, a folder this process can write;
    else ValueError. Creates nothing, so a command can check its --out before any work and
    still write nothing when the input turns out bad."""
    out = Path(path).expanduser()
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "it is a file" if existing == out else f"{existing} is a file"
        raise OutputError(f"cannot write results to {out}: {where}; give a folder you can write", setting="out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write results to {out}: {existing} is not writable; give a folder you can write", setting="out"
        )
    return out


def output_folder(path: str | Path) -> Path:
    """`path` checked (`check_output_folder`) and created if needed."""
    out = check_output_folder(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temp file + rename, so a crash never leaves half a results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps({"schema_version": SCHEMA_VERSION, **to_jsonable(data)}, indent=2, allow_nan=False)
    write_text_atomic(path, text + "\n")


def write_predictions_csv(
    path: Path,
    videos: Sequence[str],
    true_labels: Sequence[str],
    scores: np.ndarray,
    classes: Sequence[str],
    top: int = 5,
) -> None:
    """One row per video: video, true label, predicted label, then the top classes with scores."""
    top = min(top, len(classes))
    header = ["video", "true_label", "predicted_label"]
    for rank in range(1, top + 1):
        header += [f"top{rank}_label", f"top{rank}_score"]
    rows = []
    for video, truth, row in zip(videos, true_labels, np.asarray(scores)):
        order = np.argsort(-row, kind="stable")[:top]
        line = [video, truth, classes[order[0]]]
        for index in order:
            line += [classes[index], f"{row[index]:.6f}"]
        rows.append(line)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())
