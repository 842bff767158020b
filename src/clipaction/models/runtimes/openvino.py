"""`model.runtime = "openvino"`: a frame model's image tower compiled by OpenVINO for the CPU.

What runs: the backend's fp32 image tower (pixels (N, 3, S, S) -> pre-projection features and,
for families with a linear projection, the projected embedding) converted with
`openvino.convert_model` (batch dimension dynamic) and compiled for the CPU with the LATENCY hint
and torch's thread count, so one synchronous request uses every core (the THROUGHPUT hint splits
the cores into streams that a single request leaves idle). The text encoder, scoring and every
trainable path (full fine-tuning) stay on torch.

What it takes: the frames resized and cropped, as uint8 (N, 3, S, S) (`takes_bytes`; the
backend's `preprocess` gives these). The graph compiled from the stored model starts with a
Gather of the image processor's own rescaled and normalised value per byte and channel
(`bytes_input`, `fast_preprocess.value_table`), so its features equal those from the float
pixel values bit for bit, while the decoding threads skip the lookup and the batches move a
quarter of the bytes. Float pixel values (a processor the table cannot stand for) run a
second graph without that front, compiled when first needed.

- fp32 runs at inference precision f32. On CPUs with bf16 units OpenVINO's default is bf16,
  which moves features by about 1e-2; with f32 they equal torch's to about 1e-6.
- bf16 runs the same fp32 model (no calibration) at inference precision bf16, OpenVINO's own
  bf16 path on CPUs with bf16 units (AMX or AVX512-BF16; `clipaction.hardware` refuses bf16
  elsewhere); it is stored and cached under its own key.
- int8: NNCF post-training quantization of the converted model (model type transformer:
  SmoothQuant on the matmul inputs, alpha 0.95, the mixed preset, fast bias correction). The
  calibration set is real frames: the first CALIBRATION_FRAMES frames the sampler picks from the
  videos about to be extracted, decoded and preprocessed exactly as extraction does
  (`prepare_extraction`, called by `extract_features` before it decodes). With fewer frames than
  that (few or short videos, one middle frame each), uniformly spread frames of the same videos
  top it up, at most MAX_TOP_UP_PER_VIDEO each; below MIN_CALIBRATION_FRAMES a warning says the
  ranges rest on few frames. Without any video (the backend used outside extraction) the first
  batch given to `encode_pixels` calibrates, with a warning.
- The converted (and quantized) model is stored under `<cache>/openvino/<key>/` (model.xml,
  model.bin, info.json; `<cache>` is $CLIPACTION_CACHE or ~/.cache/clipaction), key = the
  model's fingerprint + precision + OpenVINO and NNCF versions + the quantization recipe,
  written into a temporary folder and renamed, so only the first run pays. For int8 the first
  calibration of a key is kept: later runs reuse it whatever their videos, and results.json says
  what calibrated it (`model.runtime.calibration`). Delete the folder to calibrate again (and
  the features cached with it, which share its cache key).

Families: CLIP, MetaCLIP 2 and SigLIP / fixed-resolution SigLIP 2 (their towers map square
pixels to pooled features). Not converted: SigLIP 2 NaFlex (each frame has its own patch grid,
passed as packed patches with a mask), and the clip-level X-CLIP and VideoPrism.

`import openvino` happens only here and only when a model is built or loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipaction.config import SamplerConfig, stable_hash
from clipaction.errors import ConfigError, ModelLoadError
from clipaction.models.base import FrameFeatures
from clipaction.models.fast_preprocess import to_pixel_values, value_table

log = logging.getLogger(__name__)

CALIBRATION_FRAMES = 300
MIN_CALIBRATION_FRAMES = 64
MAX_TOP_UP_PER_VIDEO = 32
#: Everything about int8 quantization that changes the numbers (part of the store key).
RECIPE = {
    "tool": "nncf.quantize",
    "model_type": "transformer",
    "preset": "mixed",
    "smooth_quant_matmul_alpha": 0.95,
    "fast_bias_correction": True,
    "calibration_frames": CALIBRATION_FRAMES,
    "calibration_batch": 16,  # NNCF still takes statistics per frame (batchwise statistics)
}
#: What the CPU computes in. fp32: f32, never the bf16 OpenVINO picks on CPUs with bf16 units.
#: int8: the quantized matmuls in int8, the rest in f32 as well. bf16: the fp32 model run in bf16.
INFERENCE_PRECISION = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}
FAMILIES = "clip, metaclip_2, siglip"


def store_root() -> Path:
    """Where converted models live: `<cache>/openvino` ($CLIPACTION_CACHE or ~/.cache/clipaction)."""
    from clipaction.paths import default_cache_dir

    return default_cache_dir() / "openvino"


def versions(precision: str) -> dict[str, str | None]:
    """OpenVINO's (and for int8 NNCF's) installed version, read without importing them."""

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {"openvino": version("openvino"), "nncf": version("nncf") if precision == "int8" else None}


def unsupported_reason(backend: Any) -> str | None:
    """Why this runtime cannot run `backend`'s model family (a backend or its class), or None
    when it can; reads only class attributes."""
    if backend.kind != "frame" or backend.naflex:
        return (
            f"openvino converts the image towers of fixed-size frame models ({FAMILIES}), not the "
            f"{backend.family} family; use runtime torch"
        )
    return None


def check_supported(backend: Any) -> None:
    """One-line errors for what this runtime cannot do, and for a missing install."""
    config = backend.config
    if config.precision not in INFERENCE_PRECISION:
        raise ConfigError(
            "openvino runs fp32, int8 or bf16 on the CPU; fp16 is torch's GPU path", setting="model.runtime"
        )
    reason = unsupported_reason(backend)
    if reason:
        raise ConfigError(reason, setting="model.runtime")
    if backend.device.type != "cpu":
        raise ConfigError(
            f"openvino runs on the CPU; device {backend.device.type} is torch's: use runtime torch",
            setting="model.runtime",
        )
    needed = ["openvino"] + (["nncf"] if config.precision == "int8" else [])
    absent = [name for name in needed if importlib.util.find_spec(name) is None]
    if absent:
        raise ModelLoadError(
            f"runtime openvino needs {' and '.join(absent)}: pip install 'clipaction[openvino]'",
            setting="model.runtime",
        )


def openvino_runtime(backend: Any) -> OpenVINOImageEncoder:
    """The OpenVINO runtime for a frame backend (an `HFClipBackend` or subclass), to give to
    its `use_runtime`: then its `encode_pixels` runs the compiled tower, its
    `prepare_extraction` calibrates int8 on the videos about to be extracted, and its
    fingerprint names the runtime, so features are cached apart from torch's. One-line errors
    for what this runtime cannot do (`check_supported`)."""
    check_supported(backend)
    return OpenVINOImageEncoder(backend)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Preprocessed calibration frames (K, 3, S, S) and what they are (for info.json)."""

    pixels: torch.Tensor
    source: dict[str, Any]


class _TowerOutputs(torch.nn.Module):
    """pixels (N, 3, S, S) -> pooled (N, D) and, when the tower has one, its projection (N, E)."""

    def __init__(self, tower: torch.nn.Module) -> None:
        super().__init__()
        self.tower = tower
        self.projection = getattr(tower, "visual_projection", None)

    def forward(self, pixels: torch.Tensor) -> Any:
        pooled = self.tower.pooled(pixels)
        return pooled if self.projection is None else (pooled, self.projection(pooled))


class OpenVINOImageEncoder:
    """The compiled image tower of one backend, built or loaded on first use (thread-safe): a
    `clipaction.models.base.Runtime` the backend holds (`backend.runtime`)."""

    name = "openvino"

    def __init__(self, backend: Any, root: str | Path | None = None) -> None:
        self.backend = backend
        self.precision = backend.config.precision
        model = {k: v for k, v in backend.fingerprint.items() if k not in ("precision", "runtime")}
        self.fingerprint = {
            "name": "openvino",
            **versions(self.precision),
            "recipe": RECIPE if self.precision == "int8" else None,
            "inference_precision": INFERENCE_PRECISION[self.precision],
        }
        self.key = stable_hash({"model": model, "precision": self.precision, **self.fingerprint}, 20)
        self.folder = Path(root or store_root()) / self.key
        self._compiled: dict[str, Any] = {}  # by input: "bytes" (uint8) or "values" (float32)
        self._table: tuple[np.ndarray | None] | None = None  # (the table or None) once looked up
        self._lock = threading.RLock()
        #: what building took in this process (None when the model came from disk)
        self.built_here: dict[str, float] | None = None

    # -- use ----------------------------------------------------------------------------------

    @property
    def takes_bytes(self) -> bool:
        """Whether the processor's rescale and normalize are one value per byte and channel
        (then `preprocess` gives uint8 frames and the graph looks their values up)."""
        return self.table is not None

    @property
    def table(self) -> np.ndarray | None:
        """The image processor's (3, 256) pixel value per channel and byte, or None."""
        with self._lock:
            if self._table is None:
                self._table = (value_table(self.backend.processor.image_processor),)
            return self._table[0]

    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        """Preprocessed frames (N, 3, S, S), uint8 from `preprocess` or float32 pixel values ->
        FrameFeatures (pooled as the torch tower's, embeds L2-normalised), on the CPU."""
        as_bytes = pixels.dtype == torch.uint8
        compiled = self._ensure("bytes" if as_bytes else "values", pixels)
        inputs = np.ascontiguousarray(pixels.detach().cpu().numpy(), dtype=np.uint8 if as_bytes else np.float32)
        with self._lock:  # one infer request, reused between calls
            outputs = compiled(inputs)
        pooled = torch.from_numpy(np.array(outputs[0], dtype=np.float32))
        embeds = torch.from_numpy(np.array(outputs[1], dtype=np.float32)) if len(outputs) > 1 else pooled
        return FrameFeatures(pooled=pooled, embeds=embeds / embeds.norm(dim=-1, keepdim=True))

    def prepare_extraction(self, paths: Sequence[str], sampler: SamplerConfig) -> None:
        """Before `paths` are extracted with `sampler`: build the model when none is stored
        (int8: calibrated on their first sampled frames). A stored one loads on first use."""
        with self._lock:
            if self.stored():
                return
            if self.precision != "int8":
                self._build(None)
                return
            calibration = calibration_frames(self.backend, paths, sampler)
            if calibration is None:  # no readable video: extraction will say so
                return
            if len(calibration.pixels) < MIN_CALIBRATION_FRAMES:
                log.warning(
                    "openvino int8 is calibrated on only %d frames of %d video(s): activation ranges may be too "
                    "narrow for other footage. The model is kept and reused: to calibrate again on more videos "
                    "delete %s (and the features cached with it), or use precision fp32",
                    len(calibration.pixels),
                    calibration.source["videos"],
                    self.folder,
                )
            self._build(calibration)

    def stored(self) -> bool:
        return (self.folder / "info.json").is_file()

    def info(self) -> dict[str, Any] | None:
        """The stored model's info.json (None before it is built)."""
        try:
            return json.loads((self.folder / "info.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def describe(self) -> dict[str, Any]:
        """For results.json: runtime, versions, where the model is, and (int8) its calibration."""
        info = self.info() or {}
        return {
            **self.fingerprint,
            "model_dir": str(self.folder),
            "built": info.get("built"),
            "conversion_seconds": info.get("conversion_seconds"),
            "calibration_seconds": info.get("calibration_seconds"),
            "calibration": info.get("calibration"),
        }

    # -- building -----------------------------------------------------------------------------

    def _ensure(self, inputs: str, pixels: torch.Tensor) -> Any:
        """The compiled model for `inputs` ("bytes" or "values"), built from the stored model
        (stored first when there is none: int8 then calibrates on `pixels`)."""
        with self._lock:
            if inputs not in self._compiled:
                if not self.stored():
                    calibration = None
                    if self.precision == "int8":
                        log.warning(
                            "openvino int8: no videos were given to calibrate on (the backend is used outside "
                            "extraction); calibrating on the %d frames of this first batch",
                            len(pixels),
                        )
                        calibration = Calibration(
                            self._values(pixels.detach().cpu()),
                            {"frames": len(pixels), "source": "the first batch given to encode_pixels"},
                        )
                    self._build(calibration)
                model = self._read()
                if inputs == "bytes":
                    assert self.table is not None, "uint8 input for a processor without a value table"
                    model = bytes_input(model, self.table)
                self._compiled[inputs] = self._compile(model)
            return self._compiled[inputs]

    def _values(self, pixels: torch.Tensor) -> torch.Tensor:
        """Float32 pixel values, from `preprocess`'s uint8 frames through the processor's table."""
        if pixels.dtype == torch.uint8:
            assert self.table is not None
            return to_pixel_values(pixels, self.table)
        return pixels.float()

    def _build(self, calibration: Calibration | None) -> None:
        """Convert (and quantize) and store atomically (compiled when first used)."""
        start = time.perf_counter()
        model = convert(self.backend)
        converted = time.perf_counter()
        if self.precision == "int8":
            assert calibration is not None
            model = quantize(model, calibration.pixels)
        done = time.perf_counter()
        self.built_here = {"conversion_seconds": converted - start, "calibration_seconds": done - converted}
        info = {
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "precision": self.precision,
            **self.fingerprint,
            "model": {k: v for k, v in self.backend.fingerprint.items() if k != "runtime"},
            "conversion_seconds": round(converted - start, 3),
            "calibration_seconds": round(done - converted, 3) if calibration else None,
            "calibration": calibration.source if calibration else None,
        }
        self._save(model, info)

    def _save(self, model: Any, info: dict[str, Any]) -> None:
        import openvino as ov

        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{self.key}-", dir=self.folder.parent))
        try:
            # compress_to_fp16 would round the fp32 weights: keep them as they are.
            ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
            (tmp / "info.json").write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
            try:
                os.rename(tmp, self.folder)
            except OSError:
                if not self.stored():  # not another process winning the race: a real failure
                    raise
                log.info("another process stored %s first; using its model", self.folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("stored the openvino %s image tower in %s", self.precision, self.folder)

    def _read(self) -> Any:
        import openvino as ov

        return ov.Core().read_model(str(self.folder / "model.xml"))

    def _compile(self, model: Any) -> Any:
        import openvino as ov

        return ov.Core().compile_model(
            model,
            "CPU",
            {
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": torch.get_num_threads(),
                "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[self.precision],
            },
        )


def convert(backend: Any) -> Any:
    """The backend's image tower in fp32 as an `openvino.Model` with a dynamic batch dimension.

    Converted from a fresh fp32 torch copy of the family's own tower (the backend's may be
    quantized by torch or fine-tuned)."""
    import openvino as ov

    config = dataclasses.replace(backend.config, runtime="torch", precision="fp32", device="cpu")
    reference = type(backend)(config, backend.source)
    module = _TowerOutputs(reference.tower).eval()
    example = reference.pixel_values(np.zeros((2, 240, 320, 3), dtype=np.uint8))
    with torch.no_grad():
        return ov.convert_model(module, example_input=example, input=[(-1, *example.shape[1:])])


def bytes_input(model: Any, table: np.ndarray) -> Any:
    """`model` (float32 pixel values (N, 3, S, S) in) taking uint8 (N, 3, S, S) instead: byte v
    of channel c becomes `table[c, v]`, gathered from the processor's own values, so the
    features equal those of the float input bit for bit."""
    import openvino as ov
    import openvino.opset13 as ops

    values = model.get_parameters()[0]
    raw = ops.parameter(values.get_partial_shape(), ov.Type.u8, name="pixel_bytes")
    offsets = (np.arange(3, dtype=np.int32) * 256).reshape(1, 3, 1, 1)  # channel c's table starts at 256 c
    index = ops.add(ops.convert(raw, ov.Type.i32), ops.constant(offsets))
    gathered = ops.gather(ops.constant(np.ascontiguousarray(table, dtype=np.float32).reshape(-1)), index, 0)
    for target in list(values.output(0).get_target_inputs()):
        target.replace_source_output(gathered.output(0))
    return ov.Model(model.get_results(), [raw], model.get_friendly_name())


def quantize(model: Any, pixels: torch.Tensor) -> Any:
    """NNCF int8 post-training quantization of `model` calibrated on `pixels` (K, 3, S, S) (RECIPE)."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    nncf.set_log_level(logging.ERROR)
    step = RECIPE["calibration_batch"]
    items = [pixels[i : i + step].numpy() for i in range(0, len(pixels), step)]
    # NNCF's progress bars print to stdout, which belongs to the CLI (predict --json): stderr.
    with contextlib.redirect_stdout(sys.stderr):
        return nncf.quantize(
            model,
            nncf.Dataset(items),
            preset=nncf.QuantizationPreset.MIXED,
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(pixels),
            fast_bias_correction=RECIPE["fast_bias_correction"],
            advanced_parameters=AdvancedQuantizationParameters(
                batchwise_statistics=True,
                smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=RECIPE["smooth_quant_matmul_alpha"]),
            ),
        )


def calibration_frames(
    backend: Any, paths: Sequence[str], sampler: SamplerConfig, count: int = CALIBRATION_FRAMES
) -> Calibration | None:
    """The first `count` frames `sampler` picks from `paths` (in order), decoded and
    preprocessed as extraction does (as float32 pixel values); topped up with uniformly spread
    frames of the same videos when they give fewer. None when no video can be read."""
    from clipaction.video import decode

    def read(path: str, chosen: SamplerConfig) -> Any:
        try:
            return decode.read_sampled_frames(path, chosen)
        except (decode.VideoDecodeError, OSError, ValueError, RuntimeError) as error:  # extraction reports it
            log.debug("calibration skips %s: %s", path, error)
            return None

    chunks: list[torch.Tensor] = []
    taken: dict[str, set[int]] = {}
    for path in paths:
        if sum(map(len, chunks)) >= count:
            break
        sampled = read(str(path), sampler)
        if sampled is None:
            continue
        keep = _new_frames(sampled.indices, taken.setdefault(str(path), set()), count - sum(map(len, chunks)))
        chunks.append(backend.pixel_values(sampled.frames[keep]))
    sampled_count = sum(map(len, chunks))
    top_up = None
    if 0 < sampled_count < count:
        per_video = min(MAX_TOP_UP_PER_VIDEO, math.ceil((count - sampled_count) / len(taken)) + 1)
        top_up = SamplerConfig(name="uniform", frames=per_video)
        for path, have in taken.items():
            missing = count - sum(map(len, chunks))
            sampled = read(path, top_up) if missing > 0 else None
            if sampled is None:
                continue
            keep = _new_frames(sampled.indices, have, missing)
            if keep:
                chunks.append(backend.pixel_values(sampled.frames[keep]))
    if not chunks:
        return None
    pixels = torch.cat(chunks)
    source = {
        "source": "the first frames the sampler picks from the videos being extracted",
        "frames": len(pixels),
        "videos": len(taken),
        "sampler": sampler.label,
        "sampled_frames": sampled_count,
        "top_up": None if top_up is None else {"sampler": top_up.label, "frames": len(pixels) - sampled_count},
        "videos_hash": stable_hash(sorted(str(Path(p).resolve()) for p in taken)),
    }
    return Calibration(pixels, source)


def _new_frames(indices: Sequence[int], have: set[int], limit: int) -> list[int]:
    """Positions of up to `limit` frames whose index is not in `have` (added to it); a frame
    a sampler repeats (a short video) counts once."""
    keep = []
    for position, index in enumerate(indices):
        if len(keep) < limit and index not in have:
            have.add(index)
            keep.append(position)
    return keep
