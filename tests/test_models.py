"""The CLIP backend gives transformers' own answer, through the same loading path as a hub id."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoProcessor, CLIPModel

from clipaction.classify.scoring import class_text_features, score
from clipaction.config import ModelConfig
from clipaction.errors import ModelLoadError
from clipaction.models import Capability, list_backends, load_backend

LABELS = ["juggling a soccer ball", "shooting a basketball", "riding a bike", "archery"]


def _frames(count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 48, 64, 3), dtype=np.uint8)


def _reference_probabilities(model_dir, frames, texts) -> torch.Tensor:
    """CLIP's own softmaxed logits_per_image, loaded as a user's transformers code would."""
    model = AutoModel.from_pretrained(model_dir).eval()
    assert isinstance(model, CLIPModel)
    processor = AutoProcessor.from_pretrained(model_dir)
    inputs = processor(text=texts, images=list(frames), padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits_per_image.softmax(-1)


def test_probabilities_equal_transformers_clip(tiny_model_dir, tiny_backend):
    frames = _frames(5)
    expected = _reference_probabilities(tiny_model_dir, frames, LABELS)
    image = tiny_backend.encode_frames(frames).embeds
    text = class_text_features(tiny_backend, LABELS, ["{}"])
    scoring = tiny_backend.scoring()
    ours = scoring.probabilities(score(tiny_backend, image, text))
    assert scoring.kind == "softmax"
    assert ours.shape == expected.shape == (5, len(LABELS))
    print(f"clip max |p - p_transformers| = {float((ours - expected).abs().max()):.2e}")
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    # the check is not vacuous: the reference does not give uniform probabilities
    assert float(expected.max() - expected.min()) > 0.05


def test_tiny_clip_is_laid_out_as_its_checkpoint(tiny_model_dir):
    from clipaction.models.checkpoint_layouts import layout_for
    from clipaction.testing.tiny_clip import HUB_LAYOUT
    from layout_checks import assert_laid_out_as

    assert_laid_out_as(tiny_model_dir, layout_for(HUB_LAYOUT))


def test_encode_frames_shapes_and_normalisation(tiny_backend):
    features = tiny_backend.encode_frames(_frames(3))
    assert features.pooled.shape == (3, tiny_backend.projection_weight().shape[1])
    assert features.embeds.shape == (3, tiny_backend.embed_dim)
    torch.testing.assert_close(features.embeds.norm(dim=-1), torch.ones(3))


def test_projection_maps_pooled_features_to_the_embeddings(tiny_backend):
    assert Capability.PROJECTION in tiny_backend.capabilities
    features = tiny_backend.encode_frames(_frames(4))
    projected = features.pooled @ tiny_backend.projection_weight().T
    torch.testing.assert_close(projected / projected.norm(dim=-1, keepdim=True), features.embeds, atol=1e-6, rtol=0)


def test_text_features_do_not_depend_on_padding_length(tiny_backend):
    tokenizer, model = tiny_backend.processor.tokenizer, tiny_backend.model
    texts = ["a", "a photo of a person doing something rather long for a prompt."]
    tokens = tokenizer(texts, padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        full = model.text_projection(model.text_model(**tokens).pooler_output)
    full = full / full.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(tiny_backend.encode_texts(texts), full, atol=1e-5, rtol=0)


def test_logit_scale_is_the_models_own(tiny_model_dir):
    backend = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"))
    # read from the weight file without loading the model...
    assert backend.scoring().scale == pytest.approx(100.0, rel=1e-5)
    assert backend._model is None
    # ...and equal to what the loaded model holds
    assert float(backend.model.logit_scale.detach().exp()) == pytest.approx(backend.scoring().scale, rel=1e-6)


def test_constructing_a_backend_loads_no_weights(tiny_model_dir):
    backend = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"))
    assert backend._model is None and backend._processor is None
    assert backend.family == "clip" and backend.fingerprint["precision"] == "fp32"


def test_fingerprint_changes_with_the_weights(tmp_path, tiny_backend):
    from clipaction.testing.tiny_clip import build_random_clip

    other = build_random_clip(tmp_path / "other", "tiny", seed=1, logit_scale=100.0)
    backend = load_backend(ModelConfig(name_or_path=str(other), device="cpu"))
    assert backend.fingerprint != tiny_backend.fingerprint


def test_unknown_model_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="model folder not found: .*no-such-model"):
        load_backend(ModelConfig(name_or_path=str(tmp_path / "no-such-model"), device="cpu"))
    (tmp_path / "empty").mkdir()  # a folder, but no model in it
    with pytest.raises(ModelLoadError, match="no config.json") as error:
        load_backend(ModelConfig(name_or_path=str(tmp_path / "empty"), device="cpu"))
    assert error.value.setting == "model.name_or_path"


def test_unsupported_family_lists_the_supported_ones(tmp_path, tiny_model_dir):
    import json
    import shutil

    other = tmp_path / "other-family"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "flava"}))
    assert "clip" in list_backends()
    with pytest.raises(ModelLoadError, match="'flava' model; supported families: .*clip"):
        load_backend(ModelConfig(name_or_path=str(other), device="cpu"))
    with pytest.raises(ModelLoadError, match="'nope'"):
        load_backend(ModelConfig(name_or_path=str(tiny_model_dir), backend="nope"))


def test_int8_backend_is_close_to_fp32_and_cached_apart(tiny_model_dir, tiny_backend):
    fast = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", precision="int8"))
    assert fast.fingerprint != tiny_backend.fingerprint and fast.fingerprint["precision"] == "int8"
    frames = _frames(4)
    quantized, full = fast.encode_frames(frames).embeds, tiny_backend.encode_frames(frames).embeds
    assert not torch.equal(quantized, full)  # the int8 path ran: its numbers are not fp32's
    assert float((quantized * full).sum(-1).min()) > 0.99  # cosine of normalised embeddings
    # the text tower stays fp32: class features are identical
    torch.testing.assert_close(fast.encode_texts(LABELS), tiny_backend.encode_texts(LABELS))


def test_int8_refuses_cuda(tiny_model_dir, monkeypatch):
    # Pretend there is a GPU, so that on a CPU-only machine too the device is accepted and the
    # precision check is what refuses, before anything touches the (absent) GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ModelLoadError, match="int8 runs on the CPU only") as error:
        load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cuda", precision="int8"))
    assert error.value.setting == "model.precision"


def test_cuda_without_a_gpu_is_refused(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="CUDA") as error:
        load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cuda"))
    assert error.value.setting == "model.device"


@pytest.mark.slow
@pytest.mark.subprocess
def test_tiny_model_builds_are_identical_across_processes(tmp_path):
    """The demo and the tests rely on it: the same model and tokenizer, byte for byte, however
    often and in whichever process they are built (a trained BPE tokenizer was not)."""
    import subprocess
    import sys

    builds = [  # both at once: each is mostly interpreter and torch start-up
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from clipaction.testing.tiny_clip import build_random_clip; build_random_clip({str(tmp_path / name)!r})",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in ("a", "b")
    ]
    for build in builds:
        _, err = build.communicate(timeout=300)
        assert build.returncode == 0, err
    files = sorted(path.name for path in (tmp_path / "a").iterdir())
    assert "tokenizer.json" in files and "model.safetensors" in files
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
