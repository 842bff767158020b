"""MetaCLIP 2, SigLIP and SigLIP 2 give transformers' own answer, through the same loading path as
a hub id: tiny random models of each family, saved with save_pretrained and loaded by path."""

from __future__ import annotations

import filecmp
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoProcessor

from clipaction.classify.scoring import class_text_features, score
from clipaction.config import ModelConfig
from clipaction.errors import CapabilityError
from clipaction.models import Capability, load_backend
from clipaction.models.families.siglip import pack_naflex, unpack_naflex
from clipaction.testing.tiny_families import NAFLEX_MAX_PATCHES, TINY_VARIANTS, VARIANT_FAMILY, build_random_model

LABELS = ["juggling a soccer ball", "shooting a basketball", "riding a bike", "archery"]


@dataclass(frozen=True)
class Expect:
    family: str  # the registered backend the folder must load as
    model_class: str
    kind: str  # softmax | sigmoid


EXPECT = {
    "metaclip_2": Expect("metaclip_2", "MetaClip2Model", "softmax"),
    "siglip": Expect("siglip", "SiglipModel", "sigmoid"),
    "siglip2-fixed": Expect("siglip", "SiglipModel", "sigmoid"),  # fixed-resolution SigLIP 2, as on the hub
    "siglip2-naflex": Expect("siglip2", "Siglip2Model", "sigmoid"),
}
SIGLIPS = ["siglip", "siglip2-fixed", "siglip2-naflex"]


def _frames(count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-families")
    return {name: build_random_model(root / name, name, seed=0) for name in TINY_VARIANTS}


@pytest.fixture(scope="session")
def backends(family_dirs):
    return {name: load_backend(ModelConfig(name_or_path=str(path), device="cpu")) for name, path in family_dirs.items()}


def _reference(model_dir: Path, variant: str, frames: np.ndarray) -> torch.Tensor:
    """The transformers model's own forward pass on the processor's inputs, as its model card
    says to call it, turned into probabilities the family's way."""
    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    images = list(frames)
    if variant == "metaclip_2":
        inputs = processor(text=LABELS, images=images, padding=True, return_tensors="pt")
    elif variant == "siglip2-naflex":
        saved = processor.image_processor  # the checkpoint's own patch budget and patch size
        inputs = processor(
            text=LABELS,
            images=images,
            max_num_patches=saved.max_num_patches,
            patch_size=saved.patch_size,
            return_tensors="pt",
        )
    elif variant == "siglip2-fixed":  # its model card: "the model was trained with" max_length 64
        inputs = processor(text=LABELS, images=images, padding="max_length", max_length=64, return_tensors="pt")
    else:  # SigLIP's tokenizer config says model_max_length 64
        inputs = processor(text=LABELS, images=images, padding="max_length", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    return logits.softmax(-1) if EXPECT[variant].kind == "softmax" else logits.sigmoid()


def _ours(backend, frames: np.ndarray) -> torch.Tensor:
    image = backend.encode_frames(frames).embeds
    text = class_text_features(backend, LABELS, ["{}"])
    return backend.scoring().probabilities(score(backend, image, text))


@pytest.mark.parametrize("variant", TINY_VARIANTS)
def test_probabilities_equal_transformers(variant, family_dirs, backends):
    frames = _frames(5)
    backend = backends[variant]
    expected = _reference(family_dirs[variant], variant, frames)
    ours = _ours(backend, frames)
    assert backend.family == EXPECT[variant].family == VARIANT_FAMILY[variant]  # detected from config.json
    assert type(backend.model).__name__ == EXPECT[variant].model_class
    assert backend.scoring().kind == EXPECT[variant].kind
    assert ours.shape == expected.shape == (5, len(LABELS))
    difference = float((ours - expected).abs().max())
    print(f"{variant} max |p - p_transformers| = {difference:.2e}")
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    # the check is not vacuous: the reference does not give uniform probabilities
    assert float(expected.max() - expected.min()) > 0.05


@pytest.mark.parametrize("variant", TINY_VARIANTS)
def test_tiny_model_is_laid_out_as_its_checkpoint(variant, family_dirs):
    """Same processor, image processor and tokenizer classes and the same preprocessing and
    tokenizer keys as the hub checkpoint the tiny model stands for; only dimensions differ."""
    from clipaction.models.checkpoint_layouts import layout_for
    from clipaction.testing.tiny_families import HUB_LAYOUTS
    from layout_checks import assert_laid_out_as

    assert_laid_out_as(family_dirs[variant], layout_for(HUB_LAYOUTS[variant]))


def test_metaclip_2_does_not_load_as_clip(family_dirs, backends):
    """Detected as MetaCLIP 2; forced through CLIP's backend the same folder gives other
    probabilities (CLIP pools the text at the highest token id when eos is 2)."""
    from clipaction.models.families.clip import HFClipBackend
    from clipaction.models.families.metaclip2 import MetaClip2Backend

    backend = backends["metaclip_2"]
    assert isinstance(backend, MetaClip2Backend) and backend.family == "metaclip_2"
    assert backend.processor.tokenizer.eos_token_id == 2 == backend.model.config.text_config.eos_token_id
    as_clip = load_backend(ModelConfig(name_or_path=str(family_dirs["metaclip_2"]), device="cpu", backend="clip"))
    assert type(as_clip) is HFClipBackend
    frames = _frames(3)
    wrong, right = _ours(as_clip, frames), _ours(backend, frames)
    assert float((wrong - right).abs().max()) > 0.01


@pytest.mark.parametrize("variant", TINY_VARIANTS)
def test_describe_reports_the_score_kind(variant, backends):
    described = backends[variant].describe()
    assert described["family"] == EXPECT[variant].family
    assert described["score"] == EXPECT[variant].kind
    if EXPECT[variant].kind == "sigmoid":
        assert described["logit_bias"] == pytest.approx(-1.0) and described["logit_scale"] == pytest.approx(10.0)


def test_fingerprints_differ_between_families(backends, tiny_backend):
    fingerprints = [backend.fingerprint for backend in backends.values()] + [tiny_backend.fingerprint]
    keys = {repr(sorted((k, repr(v)) for k, v in fp.items())) for fp in fingerprints}
    assert len(keys) == len(fingerprints)
    assert {fp["backend"] for fp in fingerprints} == {"clip", "metaclip_2", "siglip", "siglip2"}


@pytest.mark.parametrize("variant", TINY_VARIANTS)
def test_int8_is_close_to_fp32(variant, family_dirs, backends):
    fast = load_backend(ModelConfig(name_or_path=str(family_dirs[variant]), device="cpu", precision="int8"))
    assert fast.fingerprint != backends[variant].fingerprint
    frames = _frames(4)
    quantized, full = fast.encode_frames(frames).embeds, backends[variant].encode_frames(frames).embeds
    assert not torch.equal(quantized, full)  # the int8 path ran
    assert float((quantized * full).sum(-1).min()) > 0.99  # cosine of normalised embeddings
    torch.testing.assert_close(fast.encode_texts(LABELS), backends[variant].encode_texts(LABELS))


@pytest.mark.parametrize("variant", SIGLIPS)
def test_sigmoid_scale_and_bias_read_without_loading_the_model(variant, family_dirs):
    backend = load_backend(ModelConfig(name_or_path=str(family_dirs[variant]), device="cpu"))
    scoring = backend.scoring()
    assert backend._model is None
    assert scoring.scale == pytest.approx(float(backend.model.logit_scale.detach().exp()), rel=1e-6)
    assert scoring.bias == pytest.approx(float(backend.model.logit_bias.detach()), rel=1e-6)


@pytest.mark.parametrize("variant", SIGLIPS)
def test_siglip_text_is_padded_to_full_length(variant, backends):
    """SigLIP pools the last position: padding to the longest text instead gives other features,
    so the full-length padding the model was trained with is what the backend must use."""
    backend = backends[variant]
    tokenizer, model = backend.processor.tokenizer, backend.model
    short = tokenizer(LABELS, padding=True, return_tensors="pt")
    with torch.no_grad():
        padded_short = model.text_model(**short).pooler_output
    padded_short = padded_short / padded_short.norm(dim=-1, keepdim=True)
    assert float((padded_short - backend.encode_texts(LABELS)).abs().max()) > 1e-3


@pytest.mark.parametrize("variant", SIGLIPS)
def test_siglip_has_no_projection_and_pooled_is_the_embedding(variant, backends):
    backend = backends[variant]
    assert Capability.PROJECTION not in backend.capabilities
    features = backend.encode_frames(_frames(3))
    torch.testing.assert_close(features.pooled / features.pooled.norm(dim=-1, keepdim=True), features.embeds)
    with pytest.raises(CapabilityError, match="linear visual projection"):
        backend.projection_weight()


@pytest.mark.parametrize("variant", SIGLIPS)
def test_image_tower_maps_pixels_to_the_embeddings(variant, backends):
    backend = backends[variant]
    assert Capability.IMAGE_TOWER in backend.capabilities
    frames = _frames(3)
    tower = backend.image_tower()
    assert all(p.dtype == torch.float32 for p in tower.parameters())
    with torch.no_grad():
        embeds = tower(backend.preprocess(frames))
    torch.testing.assert_close(embeds / embeds.norm(dim=-1, keepdim=True), backend.encode_frames(frames).embeds)
    tuned = backend.with_image_tower(tower, "test")
    assert tuned.fingerprint != backend.fingerprint
    torch.testing.assert_close(tuned.encode_frames(frames).embeds, backend.encode_frames(frames).embeds)


def test_naflex_uses_the_saved_patch_budget(family_dirs, backends):
    """Siglip2Processor's own defaults (256 patches of 16 px) are not what this checkpoint saved
    (16 patches of 8 px); the backend uses the saved values."""
    backend = backends["siglip2-naflex"]
    frames = _frames(2)
    pixel_values, mask, shapes = unpack_naflex(backend.preprocess(frames))
    assert pixel_values.shape == (2, NAFLEX_MAX_PATCHES, 3 * 8 * 8)
    # 48x64 frames keep their aspect ratio: a 3x4 grid of 8-px patches, the rest padding
    assert shapes.tolist() == [[3, 4], [3, 4]] and mask.sum(-1).tolist() == [12, 12]
    by_default = AutoProcessor.from_pretrained(family_dirs["siglip2-naflex"])(images=list(frames), return_tensors="pt")
    assert by_default["pixel_values"].shape[1:] == (256, 3 * 16 * 16)
    described = backend.describe()
    assert described["max_num_patches"] == NAFLEX_MAX_PATCHES and described["input_size"] == 32


def test_naflex_packing_round_trips_and_concatenates():
    values = torch.randn(2, 6, 12)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    shapes = torch.tensor([[2, 2], [2, 3]])
    packed = torch.cat([pack_naflex(values[:1], mask[:1], shapes[:1]), pack_naflex(values[1:], mask[1:], shapes[1:])])
    got_values, got_mask, got_shapes = unpack_naflex(packed)
    assert torch.equal(got_values, values) and torch.equal(got_mask, mask.int()) and torch.equal(got_shapes, shapes)


def test_tiny_builds_are_identical(tmp_path, family_dirs):
    for name in TINY_VARIANTS:
        again = build_random_model(tmp_path / name, name, seed=0)
        names = sorted(p.name for p in family_dirs[name].iterdir())
        assert names == sorted(p.name for p in again.iterdir())
        _, mismatch, errors = filecmp.cmpfiles(family_dirs[name], again, names, shallow=False)
        assert not mismatch and not errors, (name, mismatch)


def test_unknown_tiny_variant_is_refused(tmp_path):
    with pytest.raises(ValueError, match="variant must be one of"):
        build_random_model(tmp_path / "x", "flava")


def test_models_command_lists_every_registered_family(capsys):
    import json

    from clipaction.cli import main
    from clipaction.models import list_backends
    from clipaction.models.catalog import families

    assert {entry.family for entry in families()} <= set(list_backends())  # no entry for a family we lack
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    for family in list_backends():
        assert family in text
    assert "google/siglip2-base-patch16-naflex" in text and "not published" in text
    # the literature's three zero-shot columns, each with its spread over the splits
    xclip_line = next(
        line
        for line in text.splitlines()[text.splitlines().index("  microsoft/xclip-base-patch16-zero-shot") :]
        if "top-1" in line
    )
    assert "UCF101 72.0 ± 2.3" in xclip_line and "HMDB51 44.6 ± 5.2" in xclip_line and "K600 65.2 ± 0.4" in xclip_line
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [item["family"] for item in listed] == list_backends()
    siglip = next(item for item in listed if item["family"] == "siglip")
    assert siglip["scores"].startswith("sigmoid") and siglip["models"][0]["published"] is None
