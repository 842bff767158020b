"""`--runtime openvino`: the tiny CLIP's image tower compiled by OpenVINO, fp32 and NNCF int8.

Converted models go to a store under $CLIPACTION_CACHE, set here to one folder for the module:
the int8 model built (and calibrated) by the first int8 test is what the later ones reuse.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install -e '.[openvino]')")
pytest.importorskip("nncf", reason="NNCF is not installed (pip install -e '.[openvino]')")

from clipaction.classify.scoring import video_embedding  # noqa: E402
from clipaction.cli import main  # noqa: E402
from clipaction.config import ModelConfig, SamplerConfig, stable_hash  # noqa: E402
from clipaction.errors import ConfigError  # noqa: E402
from clipaction.features.extract import extract_features  # noqa: E402
from clipaction.models import load_backend  # noqa: E402
from clipaction.models.runtimes import openvino as openvino_runtime  # noqa: E402
from clipaction.testing.videos import SyntheticVideo, make_ucf101_like, write_video  # noqa: E402

# Converting and calibrating with OpenVINO/NNCF takes seconds per test.
pytestmark = [pytest.mark.openvino, pytest.mark.slow]

#: Measured on the tiny random CLIP: int8 video features have a cosine of 0.9999 or more to
#: torch fp32's (frame features 0.9998 or more); the bounds leave room for other CPUs' kernels.
INT8_VIDEO_COSINE = 0.999
INT8_FRAME_COSINE = 0.995


@pytest.fixture(scope="module", autouse=True)
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ov-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLIPACTION_CACHE", str(root))
        yield root / "openvino"


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("ov-videos")
    return [
        write_video(folder / f"v{i}.avi", SyntheticVideo(num_frames=40, pattern=i, seed=i, width=96, height=72))
        for i in range(6)
    ]


def _config(model_dir: Path, **changes) -> ModelConfig:
    return ModelConfig(name_or_path=str(model_dir), device="cpu", batch_size=8, **changes)


def _frames(count: int = 12) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, 72, 96, 3), dtype=np.uint8)


def test_fp32_features_equal_torch(tiny_model_dir, store):
    torch_backend = load_backend(_config(tiny_model_dir))
    backend = load_backend(_config(tiny_model_dir, runtime="openvino"))
    assert backend.fingerprint["runtime"]["name"] == "openvino"
    assert "runtime" not in torch_backend.fingerprint  # torch caches keep their keys
    expected, got = torch_backend.encode_frames(_frames()), backend.encode_frames(_frames())
    torch.testing.assert_close(got.pooled, expected.pooled, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.embeds, expected.embeds, atol=1e-4, rtol=0)
    assert (store / backend.runtime.key / "model.xml").is_file()
    assert backend.describe()["runtime"]["calibration"] is None


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_uint8_frames_are_normalised_in_the_graph_bit_for_bit(tiny_model_dir, tmp_path, monkeypatch, precision):
    """`preprocess` gives the runtime uint8 crops; the graph's lookup of the processor's values
    gives the features the float pixel values give (int8: calibrated on the first batch, in a
    store of its own)."""
    monkeypatch.setenv("CLIPACTION_CACHE", str(tmp_path))
    backend = load_backend(_config(tiny_model_dir, runtime="openvino", precision=precision))
    frames = _frames()
    crops, values = backend.preprocess(frames), backend.pixel_values(frames)
    assert backend.runtime.takes_bytes and crops.dtype == torch.uint8 and crops.shape == values.shape
    assert torch.equal(values, load_backend(_config(tiny_model_dir)).preprocess(frames))  # torch's input
    from_crops, from_values = backend.encode_pixels(crops), backend.encode_pixels(values)
    assert set(backend.runtime._compiled) == {"bytes", "values"}  # two graphs ran
    assert torch.equal(from_crops.pooled, from_values.pooled)
    assert torch.equal(from_crops.embeds, from_values.embeds)


def test_the_runtime_is_held_not_patched_on(tiny_model_dir):
    """OpenVINO is the backend's `runtime` object: no method of the class is shadowed on the
    instance, and the fine-tuned copy goes back to torch the same way."""
    from clipaction.models import TorchRuntime

    backend = load_backend(_config(tiny_model_dir, runtime="openvino"))
    assert isinstance(backend.runtime, openvino_runtime.OpenVINOImageEncoder)
    assert not {"encode_pixels", "prepare_extraction", "openvino"} & set(vars(backend))
    assert not [name for name, value in vars(backend).items() if callable(value) and hasattr(type(backend), name)]
    tuned = backend.with_image_tower(backend.image_tower(), "copy")
    assert isinstance(tuned.runtime, TorchRuntime) and "runtime" not in tuned.fingerprint
    assert not {"encode_pixels", "prepare_extraction", "openvino"} & set(vars(tuned))
    assert isinstance(backend.runtime, openvino_runtime.OpenVINOImageEncoder)  # the original keeps it
    torch_backend = load_backend(_config(tiny_model_dir))
    assert tuned.fingerprint == {**torch_backend.fingerprint, "vision": "copy"}
    backend.use_runtime(None)  # detached: torch's features and cache keys
    assert backend.fingerprint == torch_backend.fingerprint
    torch.testing.assert_close(backend.encode_frames(_frames()).embeds, torch_backend.encode_frames(_frames()).embeds)
    assert not set(vars(backend)) - set(vars(torch_backend))


def test_int8_calibrates_on_the_videos_being_extracted(tiny_model_dir, videos, store, monkeypatch):
    import clipaction.video.decode as decode

    read = []
    real = decode.read_sampled_frames
    monkeypatch.setattr(
        decode, "read_sampled_frames", lambda path, sampler, **kw: read.append(str(path)) or real(path, sampler, **kw)
    )
    backend = load_backend(_config(tiny_model_dir, runtime="openvino", precision="int8"))
    sampler = SamplerConfig(name="center-clip", frames=8, window=1.0)
    quantized = extract_features(videos, backend, sampler, None, batch_size=8, workers=1, progress=False)
    reference = extract_features(
        videos, load_backend(_config(tiny_model_dir)), sampler, None, batch_size=8, workers=1, progress=False
    )

    calibration = json.loads((store / backend.runtime.key / "info.json").read_text())["calibration"]
    # 6 videos x 8 sampled frames, topped up with uniformly spread frames of the same videos
    assert calibration["sampled_frames"] == 48 and calibration["videos"] == 6
    assert 48 < calibration["frames"] == 48 + calibration["top_up"]["frames"] <= 6 * 40
    assert calibration["videos_hash"] == stable_hash(sorted(str(p.resolve()) for p in videos))
    assert set(read) <= {str(p) for p in videos}
    assert backend.describe()["runtime"]["calibration"] == calibration

    frame_cos, video_cos = [], []
    for path in map(str, videos):
        a, b = quantized.features[path].embeds, reference.features[path].embeds
        frame_cos += (torch.from_numpy(a) * torch.from_numpy(b)).sum(-1).tolist()
        video_cos.append(float(video_embedding(a) @ video_embedding(b)))
    assert not np.allclose(
        quantized.features[str(videos[0])].embeds, reference.features[str(videos[0])].embeds, atol=1e-6
    )
    assert min(frame_cos) > INT8_FRAME_COSINE
    assert min(video_cos) > INT8_VIDEO_COSINE


def test_a_stored_model_is_reused_without_converting(tiny_model_dir, videos, monkeypatch):
    import nncf
    import openvino

    first = load_backend(_config(tiny_model_dir, runtime="openvino", precision="int8"))
    assert first.runtime.stored(), "the int8 test stores the model first"
    expected = first.encode_frames(_frames())

    def refuse(*args, **kwargs):
        raise AssertionError("converted or quantized again")

    monkeypatch.setattr(openvino, "convert_model", refuse)
    monkeypatch.setattr(nncf, "quantize", refuse)
    again = load_backend(_config(tiny_model_dir, runtime="openvino", precision="int8"))
    again.prepare_extraction([str(videos[0])], SamplerConfig())  # nothing to calibrate
    torch.testing.assert_close(again.encode_frames(_frames()).embeds, expected.embeds, atol=0, rtol=0)
    assert again.runtime.built_here is None


def test_few_frames_are_topped_up_from_the_same_videos(tiny_model_dir, tmp_path):
    backend = load_backend(_config(tiny_model_dir, runtime="openvino", precision="int8"))
    short = write_video(tmp_path / "short.avi", SyntheticVideo(num_frames=10, width=96, height=72))
    calibration = openvino_runtime.calibration_frames(
        backend, [str(short), str(tmp_path / "missing.avi")], SamplerConfig(name="middle")
    )
    assert calibration.source["sampled_frames"] == 1 and calibration.source["videos"] == 1
    assert len(calibration.pixels) == calibration.source["frames"] == 10  # every frame of the video, once
    assert calibration.source["top_up"]["frames"] == 9
    assert openvino_runtime.calibration_frames(backend, [str(tmp_path / "missing.avi")], SamplerConfig()) is None


def test_unsupported_combinations_name_the_setting(tiny_model_dir, tmp_path):
    for changes in ({"precision": "fp16"}, {"device": "cuda"}, {"runtime": "onnx"}):
        with pytest.raises(ConfigError) as error:
            ModelConfig(name_or_path=str(tiny_model_dir), **{"runtime": "openvino", **changes})
        assert error.value.setting == ("model.runtime")
    for model_type in ("xclip", "siglip2"):
        folder = tmp_path / model_type
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type, "vision_config": {}}))
        with pytest.raises(ConfigError, match="use runtime torch") as error:
            load_backend(ModelConfig(name_or_path=str(folder), device="cpu", runtime="openvino"))
        assert error.value.setting == "model.runtime"


@pytest.mark.subprocess
def test_importing_clipaction_does_not_import_openvino():
    code = "import sys, clipaction, clipaction.models, clipaction.cli; assert 'openvino' not in sys.modules and 'nncf' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_predict_with_openvino_int8(tiny_model_dir, videos, tmp_path, capsys):
    common = ["--labels", "juggling,riding a bike,archery", "--json", "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main(["predict", *map(str, videos[:3]), *common, "--cache-dir", str(tmp_path / "t")]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert main(["predict", *map(str, videos[:3]), *common, "--cache-dir", str(tmp_path / "o"),
                 "--runtime", "openvino", "--precision", "int8"]) == 0  # fmt: skip
    payload = json.loads(capsys.readouterr().out)  # stdout is only the JSON (NNCF's bars go to stderr)
    assert [item["video"] for item in payload] == [item["video"] for item in expected]
    # A logit scale of 100 turns int8's cosine change of about 1e-3 into 0.1 logits: a few points.
    for ours, theirs in zip(payload, expected):
        ours = {item["label"]: item["probability"] for item in ours["labels"]}
        for item in theirs["labels"]:
            assert ours[item["label"]] == pytest.approx(item["probability"], abs=0.05)


def test_run_with_openvino_int8_records_the_calibration(tiny_model_dir, tmp_path, caplog):
    data_root, splits_dir = make_ucf101_like(
        tmp_path / "ucf", ["Archery", "Basketball"], train_groups=(8,), test_groups=(1,), clips_per_group=2,
        spec=SyntheticVideo(num_frames=30),
    )  # fmt: skip
    out = tmp_path / "study"
    args = [
        "run", "--data-root", str(data_root), "--splits-dir", str(splits_dir), "--model", str(tiny_model_dir),
        "--device", "cpu", "--runtime", "openvino", "--precision", "int8", "--out", str(out),
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
        "--skip", "full-finetune", "--skip", "adapt", "--skip", "embeddings", "--skip", "ablations",
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["model"]["runtime"] == "openvino"
    runtime = results["model"]["runtime"]
    assert runtime["name"] == "openvino" and runtime["recipe"]["tool"] == "nncf.quantize"
    assert runtime["calibration"]["frames"] > 0 and runtime["calibration"]["source"]
