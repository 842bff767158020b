"""What every transformers-backed family shares: where the model's files are, the fingerprint
computed from them without loading weights, reading single scalars (logit scale, bias) straight
from the weight file, devices, and precisions.

`name_or_path` is a hub id (files downloaded and cached by huggingface_hub on first use) or a
local folder written by `save_pretrained`; both go through the same calls.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from clipaction import hardware
from clipaction.config import ModelConfig
from clipaction.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:  # torch is imported where a model runs: a fully cached run needs none of it
    import numpy as np
    import torch

log = logging.getLogger(__name__)

#: Files that describe preprocessing; their bytes key the cache (transformers 5 writes
#: processor_config.json, older versions preprocessor_config.json).
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def resolve_device(device: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is an error."""
    import torch

    return torch.device(resolve_device_name(device))


def resolve_device_name(device: str) -> str:
    """`resolve_device` as text ("cpu", "cuda"), without importing torch where the answer is
    known without it: "cpu", or "auto" with a CPU-only build of torch installed (its version
    says "+cpu"), which cannot see a GPU."""
    if device == "cpu" or (device == "auto" and "torch" not in sys.modules and _cpu_only_torch()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("cuda was asked for but torch sees no CUDA device", setting="model.device")
    return device


def _cpu_only_torch() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch").endswith("+cpu")
    except PackageNotFoundError:
        return False


F = TypeVar("F", bound=Callable[..., Any])


def no_grad(function: F) -> F:
    """`@torch.no_grad()` without importing torch when the module is imported (the model's
    methods run torch anyway; a warm run never calls them)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


#: The devices each precision runs on (every family; `check_precision` enforces it).
PRECISION_DEVICES: dict[str, tuple[str, ...]] = {
    "fp32": ("cpu", "cuda"),
    "int8": ("cpu",),
    "bf16": ("cpu",),
    "fp16": ("cuda",),
}


def check_precision(config: ModelConfig, device: torch.device | str) -> None:
    """int8 and bf16 run on CPUs only (bf16 only on CPUs with bf16 units:
    `clipaction.hardware.check_bf16_cpu`), fp16 on GPUs only (on a CPU it is slower than fp32):
    see PRECISION_DEVICES. `device`: a torch device or its name ("cpu", "cuda")."""
    device_type = device if isinstance(device, str) else device.type
    if config.precision == "int8" and device_type != "cpu":
        raise ModelLoadError("int8 runs on the CPU only; use device cpu", setting="model.precision")
    if config.precision == "bf16":
        if device_type != "cpu":
            raise ModelLoadError("bf16 is a CPU path; on a GPU use fp16 (or device cpu)", setting="model.precision")
        hardware.check_bf16_cpu()
    if config.precision == "fp16" and device_type != "cuda":
        raise ModelLoadError(
            "fp16 is for GPUs (on a CPU it is slower than fp32); use device cuda", setting="model.precision"
        )


@contextlib.contextmanager
def tower_pass(precision: str, rows: int, unit: str = "frames") -> Iterator[None]:
    """Around one batch of `rows` frames (or clips: `unit`) through a torch image or video tower.

    bf16: the tower runs under CPU autocast to bfloat16 (weights stay fp32; matmuls and
    convolutions compute in bf16); callers turn its outputs to float32 after the block. A CUDA
    out-of-memory error becomes a one-line ConfigError naming the batch size: the fix is a
    smaller batch, and a traceback would hide that. The handling does not depend on the
    device, so it is tested on the CPU too."""
    import torch

    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    try:
        with autocast:
            yield
    except torch.cuda.OutOfMemoryError as error:
        raise ConfigError(
            f"the GPU ran out of memory encoding a batch of {rows} {unit}; use a smaller batch size "
            "(and close other programs using the GPU)",
            setting="model.batch_size",
        ) from error


class ModelSource:
    """The files of a model, local or on the hub, found without loading the weights."""

    def __init__(self, name_or_path: str, revision: str | None = None) -> None:
        self.name_or_path = name_or_path
        self.revision = revision
        local = Path(name_or_path).expanduser()
        if name_or_path.startswith(("/", "./", "../", "~")) and not local.is_dir():
            raise ModelLoadError(
                f"model folder not found: {local} (expected a folder saved with save_pretrained, or a hub id)",
                setting="model.name_or_path",
            )
        self.local_dir = local.resolve() if local.is_dir() else None
        #: hub files that could not be fetched for another reason than being absent from the
        #: repository (offline and not cached, no access): name -> first line of the error
        self.unreachable: dict[str, str] = {}
        #: what `from_pretrained` is given
        self.location = str(self.local_dir) if self.local_dir else name_or_path
        self.config = json.loads(self._read_text("config.json", required=True))

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    def file(self, name: str) -> Path | None:
        """The local path of one of the model's files (downloaded for a hub id), or None."""
        if self.local_dir is not None:
            path = self.local_dir / name
            return path if path.is_file() else None
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(self.name_or_path, name, revision=self.revision))
        except Exception as error:  # not in the repo, offline, unknown repo, no access
            if name != "config.json":  # optional files (processor configs, sharded weights)
                if not _absent_from_repo(error, self.name_or_path, name, self.revision):
                    self.unreachable[name] = str(error).splitlines()[0] if str(error) else type(error).__name__
                return None
            raise ModelLoadError(
                f"could not get {self.name_or_path!r}: {str(error).splitlines()[0]} "
                "(offline? give a local folder saved with save_pretrained)",
                setting="model.name_or_path",
            ) from error

    def _read_text(self, name: str, required: bool = False) -> str:
        path = self.file(name)
        if path is None:
            if required:
                raise ModelLoadError(
                    f"{self.name_or_path} has no {name}: not a transformers model folder",
                    setting="model.name_or_path",
                )
            return ""
        return path.read_text(encoding="utf-8")

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the weights and preprocessing without reading the weights: for a
        local folder the weight files' sizes and mtimes, for a hub id the resolved commit; and
        a hash of config.json and the processor files' bytes."""
        if self.local_dir is not None:
            files = sorted(p for p in self.local_dir.iterdir() if p.suffix in {".safetensors", ".bin"})
            weights: dict[str, Any] = {
                "path": str(self.local_dir),
                "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files],
            }
        else:
            commit = self.revision or "main"
            config_path = self.file("config.json")
            if config_path is not None and "snapshots" in config_path.parts:
                commit = config_path.parts[config_path.parts.index("snapshots") + 1]
            weights = {"hub_id": self.name_or_path, "commit": commit}
        digest = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        for name in PROCESSOR_FILES:
            digest.update(name.encode() + b"\0" + self._read_text(name).encode())
        return {"weights": weights, "config_and_preprocessing": digest.hexdigest()[:16]}

    def read_tensor(self, name: str) -> torch.Tensor | None:
        """One tensor of the checkpoint, read without building the model (None when the
        checkpoint is not safetensors or lacks it)."""
        import torch  # noqa: F401  (safetensors' "pt" framework reads into torch)
        from safetensors import safe_open

        path = self._weight_file(name)
        if path is None:
            return None
        with safe_open(str(path), framework="pt") as weights:
            return weights.get_tensor(name) if name in weights.keys() else None

    def read_array(self, name: str) -> np.ndarray | None:
        """`read_tensor` as a numpy array, without importing torch (a fully cached run reads
        the logit scale this way)."""
        from safetensors import safe_open

        path = self._weight_file(name)
        if path is None:
            return None
        with safe_open(str(path), framework="numpy") as weights:
            return weights.get_tensor(name) if name in weights.keys() else None

    def _weight_file(self, name: str) -> Path | None:
        """The safetensors file holding tensor `name` (None: not a safetensors checkpoint)."""
        index = self.file("model.safetensors.index.json")
        if index is not None:
            shard = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).get(name)
            path = self.file(shard) if shard else None
        else:
            path = self.file("model.safetensors")
        return path


def _absent_from_repo(error: Exception, repo_id: str, name: str, revision: str | None) -> bool:
    """True when the file is known not to be in the repository: the hub said so, or (offline)
    the local cache remembers that it said so; False when it is only out of reach."""
    from huggingface_hub import _CACHED_NO_EXIST, try_to_load_from_cache  # as huggingface_hub's docs use them
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    if isinstance(error, EntryNotFoundError) and not isinstance(error, LocalEntryNotFoundError):
        return True
    try:
        return try_to_load_from_cache(repo_id, name, revision=revision) is _CACHED_NO_EXIST
    except Exception:  # an id the cache cannot even name
        return False


def load_pretrained(loader: Any, source: ModelSource, what: str) -> Any:
    """`loader.from_pretrained(source)` with a one-line ModelLoadError on failure."""
    try:
        return loader.from_pretrained(source.location, revision=source.revision)
    except (OSError, ValueError, KeyError) as error:
        raise ModelLoadError(
            f"could not load the {what} of {source.name_or_path!r}: {str(error).splitlines()[0]} "
            "(offline? give a local folder saved with save_pretrained)",
            setting="model.name_or_path",
        ) from error


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations quantized on
    the fly): about twice the fp32 speed of ViT-B/32 on a CPU, cosine > 0.99 to fp32 features.

    torch.ao's dynamic quantization is marked deprecated in favour of torchao, but it ships with
    torch, needs no other package, and is what this CPU path needs; its warnings are silenced.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def read_model_type(config: ModelConfig) -> str:
    """The `model_type` in the model's config.json (a hub id or a local folder)."""
    return ModelSource(config.name_or_path, config.revision).model_type
