"""`--precision bf16`: the image/video tower under CPU bf16 autocast (torch) or OpenVINO's bf16
inference precision, refused on CPUs without bf16 units (`clipaction.hardware`) unless
CLIPACTION_ALLOW_SLOW_BF16=1; features close to fp32 for every family and cached apart.

The CPU's features are injected (monkeypatching `clipaction.hardware.cpu_features`), so what
is tested does not depend on the machine: torch computes the same bf16 numbers with or without
bf16 units, only slower without them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from clipaction import hardware
from clipaction.cli import main
from clipaction.config import ModelConfig, SamplerConfig
from clipaction.errors import ConfigError, ModelLoadError
from clipaction.features.cache import FeatureCache
from clipaction.features.extract import cache_space, extract_features
from clipaction.models import load_backend
from clipaction.models.hf_common import check_precision
from clipaction.testing.models import VARIANT_FAMILY
from clipaction.testing.videos import SyntheticVideo, write_video

#: Measured on the tiny random models (AMD EPYC with AVX512-BF16, torch 2.13; two draws of 8
#: random frames): the lowest cosine of a bf16 frame (clip) feature to its fp32 one was 0.99981
#: (SigLIP 2 fixed), then 0.99991 (NaFlex), 0.99994 (SigLIP), 0.99997 (VideoPrism) and 0.99999
#: (CLIP, MetaCLIP 2, X-CLIP); 0.999 leaves room for other CPUs' kernels. The full-size
#: ViT-B/32 measures 0.99999 (docs/performance.md).
BF16_COSINE = 0.999
#: Every family's tiny model (the SigLIP 2 kinds apart): a new family is tested here at once.
VARIANTS = list(VARIANT_FAMILY)
#: What this machine really has (read before any test injects features).
REAL_NATIVE_BF16 = hardware.native_bf16()
#: The real reader (the autouse fixture below replaces `hardware.cpu_features`).
read_cpu_features = hardware.cpu_features
NATIVE = {"avx512_bf16": True}
NONE = dict.fromkeys(hardware.FLAGS, False)


@pytest.fixture(autouse=True)
def native_cpu(monkeypatch):
    """Every test runs as on a CPU with bf16 units unless it injects other features."""
    monkeypatch.setattr(hardware, "cpu_features", lambda: dict(NATIVE))
    monkeypatch.delenv(hardware.ALLOW_SLOW_BF16, raising=False)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """One tiny random model per family (and per SigLIP 2 kind), built once for the module."""
    from clipaction.testing.models import build_random_model

    root = tmp_path_factory.mktemp("bf16-models")
    return {variant: build_random_model(root / variant, variant, seed=0) for variant in VARIANTS}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("bf16-video") / "a.avi", SyntheticVideo(num_frames=24, pattern=2))


def _frames(count: int = 8) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(count, 48, 64, 3), dtype=np.uint8)


def _pixels(backend) -> torch.Tensor:
    """8 frames (N, 3, S, S) for a frame model; two clips (2, F, 3, S, S) for a clip model."""
    frames = _frames()
    if backend.kind == "frame":
        return backend.preprocess(frames)
    count = backend.clip_frames
    return torch.stack([backend.preprocess(frames[:count]), backend.preprocess(frames[-count:])])


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)


# -- reading the CPU's features ----------------------------------------------------------------


def test_cpu_features_read_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16\n"
    )
    features = read_cpu_features(cpuinfo)
    assert set(features) == set(hardware.FLAGS)
    assert [flag for flag, present in features.items() if present] == ["avx512_bf16", "avx512_vnni", "avx512f", "avx2"]
    assert hardware.native_bf16(features)


def test_cpu_features_without_cpuinfo_are_all_false(tmp_path):
    features = read_cpu_features(tmp_path / "absent")
    assert features == NONE and not hardware.native_bf16(features)


@pytest.mark.parametrize(
    ("present", "native"),
    [
        (["amx_bf16", "amx_tile", "amx_int8", "avx512_fp16"], True),  # Sapphire Rapids class
        (["avx512_bf16", "avx512_vnni", "avx512f"], True),  # AMD Zen 4
        (["avx512_vnni", "avx512f", "avx2", "avx_vnni", "amx_int8"], False),  # int8 units, no bf16
        ([], False),
    ],
)
def test_native_bf16_needs_amx_bf16_or_avx512_bf16(present, native):
    assert hardware.native_bf16({flag: flag in present for flag in hardware.FLAGS}) is native


# -- the refusal and its override ---------------------------------------------------------------


def test_bf16_is_refused_in_one_line_without_bf16_units(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_features", lambda: dict(NONE))
    with pytest.raises(ConfigError) as error:
        load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", precision="bf16"))
    assert error.value.setting == "model.precision"
    message = str(error.value)
    assert "\n" not in message and "AMX or AVX512-BF16" in message and hardware.ALLOW_SLOW_BF16 in message
    # the other precisions do not ask the CPU
    load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", precision="fp32"))


@pytest.mark.slow  # the CLI's imports
def test_cli_refusal_names_the_flag(tiny_model_dir, video, monkeypatch, capsys):
    monkeypatch.setattr(hardware, "cpu_features", lambda: dict(NONE))
    args = ["predict", str(video), "--labels", "a,b", "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main([*args, "--precision", "bf16"]) == 2
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.startswith("clipaction: error:")]
    assert "Traceback" not in stderr
    assert len(lines) == 1 and "--precision" in lines[0] and "AMX or AVX512-BF16" in lines[0], lines


def test_override_warns_and_runs(tiny_model_dir, tiny_backend, monkeypatch, caplog):
    monkeypatch.setattr(hardware, "cpu_features", lambda: dict(NONE))
    monkeypatch.setenv(hardware.ALLOW_SLOW_BF16, "1")
    with caplog.at_level(logging.WARNING, logger="clipaction.hardware"):
        backend = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", precision="bf16"))
    assert any(hardware.ALLOW_SLOW_BF16 in record.getMessage() for record in caplog.records)
    pixels = backend.preprocess(_frames())
    assert _cosines(backend.encode_pixels(pixels).embeds, tiny_backend.encode_pixels(pixels).embeds).min() >= (
        BF16_COSINE
    )


@pytest.mark.parametrize(
    ("features", "says"), [(NATIVE, "this CPU has bf16 units"), (NONE, "needs AMX or AVX512-BF16: not here")]
)
def test_model_check_lists_bf16_and_this_cpu(tiny_model_dir, monkeypatch, features, says):
    from clipaction.models.check import check_model, check_text

    monkeypatch.setattr(hardware, "cpu_features", lambda: dict(features))
    report = check_model(str(tiny_model_dir))
    assert report["precisions"]["bf16"] == ["cpu"] and report["native_bf16"] is (features is NATIVE)
    assert "bf16" in report["runtimes"]["torch"]["precisions"]
    assert f"bf16 (cpu; {says}" in check_text(report)


def test_bf16_runs_on_the_cpu_only():
    with pytest.raises(ModelLoadError, match="fp16"):
        check_precision(ModelConfig(precision="bf16"), torch.device("cuda"))


def test_openvino_accepts_bf16_and_still_refuses_fp16():
    assert ModelConfig(runtime="openvino", precision="bf16", device="cpu").precision == "bf16"
    with pytest.raises(ConfigError, match="bf16"):
        ModelConfig(runtime="openvino", precision="fp16", device="cpu")


# -- fidelity and caching -----------------------------------------------------------------------


def test_clip_bf16_is_close_to_fp32_and_cached_apart(tiny_model_dir, tiny_backend, video, tmp_path):
    bf16 = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", precision="bf16"))
    assert bf16.fingerprint["precision"] == "bf16" and tiny_backend.fingerprint["precision"] == "fp32"
    assert FeatureCache(tmp_path, cache_space(bf16)).dir != FeatureCache(tmp_path, cache_space(tiny_backend)).dir
    sampler = SamplerConfig(name="uniform", frames=4)
    fp32 = extract_features([video], tiny_backend, sampler, FeatureCache(tmp_path, cache_space(tiny_backend)))
    ours = extract_features([video], bf16, sampler, FeatureCache(tmp_path, cache_space(bf16)))
    assert ours.n_encoded == 1  # fp32's entry in the same cache folder is not reused
    again = extract_features([video], bf16, sampler, FeatureCache(tmp_path, cache_space(bf16)))
    assert (again.n_encoded, again.n_cached) == (0, 1)
    a, b = fp32.features[str(video)].embeds, ours.features[str(video)].embeds
    cosines = _cosines(torch.as_tensor(a), torch.as_tensor(b))
    assert cosines.min() >= BF16_COSINE
    assert not np.array_equal(a, b)  # bf16 really ran: fp32 would give the same bits


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_features_are_close_to_fp32(variant, model_dirs):
    path = str(model_dirs[variant])
    fp32 = load_backend(ModelConfig(name_or_path=path, device="cpu"))
    bf16 = load_backend(ModelConfig(name_or_path=path, device="cpu", precision="bf16"))
    pixels = _pixels(fp32)
    expected, got = fp32.encode_pixels(pixels), bf16.encode_pixels(pixels)
    for name in ("pooled", "embeds"):
        ours, theirs = getattr(got, name), getattr(expected, name)
        assert ours.dtype == torch.float32 and ours.shape == theirs.shape
        assert _cosines(ours, theirs).min() >= BF16_COSINE, name  # per frame (frame models) or clip
    assert not torch.equal(got.embeds, expected.embeds)  # bf16 really ran
    if variant != "xclip":  # X-CLIP's rows pack the video embedding with its patch features
        assert torch.allclose(got.embeds.norm(dim=-1), torch.ones(len(got.embeds)), atol=1e-5)
    # the text tower stays fp32: the same text features
    texts = ["riding a bike", "archery"]
    assert torch.equal(bf16.encode_texts(texts), fp32.encode_texts(texts))


@pytest.mark.slow
def test_results_json_records_bf16(tiny_model_dir, tmp_path):
    from clipaction.testing.videos import make_ucf101_like

    data_root, splits_dir = make_ucf101_like(
        tmp_path / "ucf", ["Archery", "Basketball"], train_groups=(8,), test_groups=(1,), clips_per_group=2,
        spec=SyntheticVideo(num_frames=30),
    )  # fmt: skip
    out = tmp_path / "study"
    args = [
        "run", "--data-root", str(data_root), "--splits-dir", str(splits_dir), "--model", str(tiny_model_dir),
        "--device", "cpu", "--precision", "bf16", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        "--no-progress", "--skip", "full-finetune", "--skip", "adapt", "--skip", "embeddings", "--skip", "ablations",
    ]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["precision"] == "bf16" and results["config"]["model"]["precision"] == "bf16"


# -- OpenVINO's bf16 inference precision ----------------------------------------------------------


@pytest.mark.openvino
@pytest.mark.slow
@pytest.mark.skipif(not REAL_NATIVE_BF16, reason="OpenVINO computes bf16 only on CPUs with AMX or AVX512-BF16")
def test_openvino_bf16_is_close_to_torch_fp32(tiny_model_dir, tiny_backend, tmp_path, monkeypatch):
    openvino = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install -e '.[openvino]')")

    monkeypatch.setenv("CLIPACTION_CACHE", str(tmp_path / "cache"))
    config = ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", runtime="openvino", precision="bf16")
    backend = load_backend(config)
    f32 = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", runtime="openvino"))
    assert backend.runtime.key != f32.runtime.key  # stored apart from the f32 model
    assert FeatureCache(tmp_path, cache_space(backend)).dir != FeatureCache(tmp_path, cache_space(f32)).dir
    ours, theirs = backend.encode_frames(_frames()), tiny_backend.encode_frames(_frames())
    assert backend.runtime._compiled["bytes"].get_property("INFERENCE_PRECISION_HINT") == openvino.Type.bf16
    assert _cosines(ours.embeds, theirs.embeds).min() >= BF16_COSINE
    assert _cosines(ours.pooled, theirs.pooled).min() >= BF16_COSINE
    assert backend.describe()["runtime"]["inference_precision"] == "bf16"
