"""The CUDA path: per family, CUDA fp32 features equal the CPU's and `--precision fp16` stays
close to them; a batch too large for the GPU is one line naming the batch size.

Tests marked `gpu` skip without a CUDA device (the project's CI machines have none):
benchmarks/gpu_check.sh runs them on a GPU machine. The out-of-memory handling itself does not
depend on the device, so it is also tested here on the CPU, with the tower made to raise
torch.cuda.OutOfMemoryError.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clipaction.cli import main
from clipaction.config import ModelConfig
from clipaction.errors import ConfigError
from clipaction.models import load_backend
from clipaction.testing.models import VARIANT_FAMILY

HAVE_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAVE_CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")

#: CUDA fp32 against CPU fp32: the same math, other kernels (TF32 is off by default for
#: matmuls in torch); fp16 against CPU fp32: half precision in the tower, float32 after it.
FP32_COSINE = 0.9999
FP16_COSINE = 0.999
#: Every family's tiny model (the SigLIP 2 kinds apart): a new family is tested here at once.
VARIANTS = list(VARIANT_FAMILY)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """One tiny random model per family (and per SigLIP 2 kind), built once for the module."""
    from clipaction.testing.models import build_random_model

    root = tmp_path_factory.mktemp("gpu-models")
    return {variant: build_random_model(root / variant, variant, seed=0) for variant in VARIANTS}


def _pixels(backend) -> torch.Tensor:
    """8 frames (N, 3, S, S) for a frame model; two clips (2, F, 3, S, S) for a clip model."""
    frames = np.random.default_rng(5).integers(0, 256, size=(8, 48, 64, 3), dtype=np.uint8)
    if backend.kind == "frame":
        return backend.preprocess(frames)
    count = backend.clip_frames
    return torch.stack([backend.preprocess(frames[:count]), backend.preprocess(frames[-count:])])


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("variant", VARIANTS)
def test_cuda_features_match_the_cpu(variant, model_dirs):
    path = str(model_dirs[variant])
    cpu = load_backend(ModelConfig(name_or_path=path, device="cpu"))
    pixels = _pixels(cpu)
    expected = cpu.encode_pixels(pixels)
    texts = ["riding a bike", "archery"]
    for precision, bound in (("fp32", FP32_COSINE), ("fp16", FP16_COSINE)):
        cuda = load_backend(ModelConfig(name_or_path=path, device="cuda", precision=precision))
        assert cuda.device.type == "cuda"
        got = cuda.encode_pixels(pixels)
        for name in ("pooled", "embeds"):
            ours, theirs = getattr(got, name), getattr(expected, name)
            assert ours.device.type == "cpu" and ours.dtype == torch.float32 and ours.shape == theirs.shape
            assert _cosines(ours, theirs).min() >= bound, (precision, name)
        # the text tower runs in fp32 on the GPU whatever the image precision
        assert _cosines(cuda.encode_texts(texts), cpu.encode_texts(texts)).min() >= FP32_COSINE
        del cuda
        torch.cuda.empty_cache()


@pytest.mark.gpu
@needs_cuda
def test_a_batch_too_large_for_the_gpu_is_one_line(model_dirs):
    """A real CUDA out-of-memory: the process may use only ~256 MB of the GPU, and the batch
    alone needs more than that."""
    backend = load_backend(ModelConfig(name_or_path=str(model_dirs["clip"]), device="cuda"))
    backend.encode_pixels(_pixels(backend))  # the weights are on the GPU before the limit is set
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(256 * 2**20 / total)
    try:
        side = backend.input_size
        frames = (512 * 2**20) // (3 * side * side * 4)  # 512 MB of float32 pixels
        with pytest.raises(ConfigError) as error:
            backend.encode_pixels(torch.zeros(frames, 3, side, side))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert error.value.setting == "model.batch_size"
    assert "\n" not in str(error.value) and f"batch of {frames} frames" in str(error.value)


# -- the same handling, forced on the CPU -------------------------------------------------------


def _raise_oom(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_in_the_image_tower_is_one_line(tiny_model_dir, monkeypatch):
    backend = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", batch_size=8))
    pixels = torch.zeros(5, 3, backend.input_size, backend.input_size)
    monkeypatch.setattr(backend.model.vision_model, "forward", _raise_oom)
    with pytest.raises(ConfigError) as error:
        backend.encode_pixels(pixels)
    assert error.value.setting == "model.batch_size"
    assert "\n" not in str(error.value) and "batch of 5 frames" in str(error.value)
    assert isinstance(error.value.__cause__, torch.cuda.OutOfMemoryError)


@pytest.mark.slow  # generates a video and goes through the CLI
def test_cli_names_batch_size_on_out_of_memory(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from transformers.models.clip import modeling_clip

    from clipaction.testing.videos import SyntheticVideo, write_video

    video = write_video(tmp_path / "a.avi", SyntheticVideo(num_frames=24, pattern=1))
    monkeypatch.setattr(modeling_clip.CLIPVisionModel, "forward", _raise_oom)
    args = ["predict", str(video), "--labels", "a,b", "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main([*args, "--cache-dir", str(tmp_path / "cache"), "--batch-size", "4"]) == 2
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.startswith("clipaction: error:")]
    assert "Traceback" not in stderr
    assert len(lines) == 1 and "--batch-size" in lines[0] and "out of memory" in lines[0], lines
