"""Clip-level families (X-CLIP, VideoPrism): clipaction's label probabilities on frames it
decoded equal the transformers model's own forward pass (X-CLIP with the VideoMAE image
processor its hub checkpoints ship, saved as on the hub and as save_pretrained writes it, and
with a CLIP image processor); clip features are cached by their frame indices; frame counts the
model cannot take are one-line errors; short videos warn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from clipaction.classify.scoring import class_text_features, video_scores
from clipaction.config import ModelConfig, SamplerConfig
from clipaction.errors import ConfigError
from clipaction.features.cache import FeatureCache
from clipaction.features.clips import clip_sampler
from clipaction.features.extract import cache_space, extract_features
from clipaction.models import Capability, load_backend
from clipaction.testing.tiny_video import build_random_video_model
from clipaction.testing.videos import SyntheticVideo, write_video
from clipaction.video.decode import read_sampled_frames

LABELS = ["biking", "archery", "bench press", "blowing candles", "basketball dunk"]
TEMPLATE = "a video of a person {}."
SAMPLER = SamplerConfig(name="center-clip", frames=4, window=3.0)  # the tiny models take 4
FAMILIES = ["xclip", "videoprism"]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("video-models")
    return {family: build_random_video_model(root / family, family, seed=0) for family in FAMILIES}


@pytest.fixture(scope="module")
def backends(model_dirs):
    return {
        family: load_backend(ModelConfig(name_or_path=str(path), device="cpu")) for family, path in model_dirs.items()
    }


#: X-CLIP folders with the same weights: "hub" as the hub's checkpoints are laid out (VideoMAE
#: image processor, flat preprocessor_config.json), "saved" the same processor written by
#: XCLIPProcessor.save_pretrained (processor_config.json), "clip-images" a CLIP image processor.
XCLIP_VARIANTS = ["hub", "saved", "clip-images"]
#: The image processor each variant must load with (so each test runs what it claims to).
XCLIP_IMAGE_PROCESSORS = {
    "hub": "VideoMAEImageProcessor",
    "saved": "VideoMAEImageProcessor",
    "clip-images": "CLIPImageProcessor",
}


@pytest.fixture(scope="module")
def xclip_dirs(model_dirs, tmp_path_factory) -> dict[str, Path]:
    from transformers import AutoProcessor, CLIPImageProcessorPil, XCLIPProcessor

    hub = model_dirs["xclip"]
    processor = AutoProcessor.from_pretrained(hub)
    side = processor.image_processor.crop_size["height"]
    dirs = {"hub": hub}
    for name, image_processor in [
        ("saved", processor.image_processor),
        ("clip-images", CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})),
    ]:
        folder = tmp_path_factory.mktemp(f"xclip-{name}")
        for file in ("config.json", "model.safetensors"):
            shutil.copy(hub / file, folder / file)
        XCLIPProcessor(image_processor=image_processor, tokenizer=processor.tokenizer).save_pretrained(folder)
        dirs[name] = folder
    assert (dirs["saved"] / "processor_config.json").is_file()
    assert not (dirs["saved"] / "preprocessor_config.json").exists()
    return dirs


@pytest.fixture(scope="module")
def xclip_backends(xclip_dirs):
    return {name: load_backend(ModelConfig(name_or_path=str(path), device="cpu")) for name, path in xclip_dirs.items()}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        "a": write_video(root / "a.avi", SyntheticVideo(num_frames=40, pattern=1, seed=1)),
        "b": write_video(root / "b.mp4", SyntheticVideo(codec="h264", num_frames=30, pattern=2, seed=2)),
        "short": write_video(root / "short.avi", SyntheticVideo(num_frames=3, pattern=3, seed=3)),
    }


def _prompts() -> list[str]:
    return [TEMPLATE.format(label) for label in LABELS]


def _clipaction_probabilities(backend, path: Path, cache: FeatureCache | None) -> tuple[torch.Tensor, object]:
    extraction = extract_features([path], backend, SAMPLER, cache, progress=False)
    text = class_text_features(backend, LABELS, (TEMPLATE,))
    videos, logits = video_scores(backend, extraction, [str(path)], text)
    assert videos == [str(path)]
    return backend.scoring().probabilities(logits)[0], extraction


def _reference_xclip_inputs(model_dir: Path, frames: np.ndarray) -> dict:
    """What a user's own transformers code gives XCLIPModel for one clip: the folder's processor
    (AutoProcessor) on the clip's frames as one video, as transformers' X-CLIP example calls it."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    inputs = processor(videos=list(frames), text=_prompts(), return_tensors="pt", padding=True)
    name = type(processor.image_processor).__name__
    if inputs["pixel_values"].ndim == 4:
        # a CLIP image processor returns the frames as images (F, 3, S, S); the model takes
        # videos (1, F, 3, S, S): the one line a user of such a folder adds
        assert name.startswith("CLIPImageProcessor"), name
        inputs["pixel_values"] = inputs["pixel_values"].unsqueeze(0)
    else:  # the VideoMAE image processor already returns one video
        assert name.startswith("VideoMAEImageProcessor") and inputs["pixel_values"].shape[:2] == (1, len(frames)), name
    return inputs


def _reference_xclip(model_dir: Path, frames: np.ndarray) -> torch.Tensor:
    """XCLIPModel's own softmaxed logits_per_video (AutoModel from the folder) -> (C,)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir).eval()
    assert type(model).__name__ == "XCLIPModel"
    with torch.no_grad():
        return model(**_reference_xclip_inputs(model_dir, frames)).logits_per_video.softmax(dim=-1)[0]


def _pil_videoprism_pixels(frames: np.ndarray, size: int) -> torch.Tensor:
    """VideoPrism's documented video transform re-implemented with PIL: bicubic resize to the
    model's size, then x / 255 (no normalisation). transformers' own processor needs
    torchvision, which cannot be installed here."""
    from PIL import Image

    resized = [np.asarray(Image.fromarray(frame).resize((size, size), Image.BICUBIC)) for frame in frames]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("variant", XCLIP_VARIANTS)
def test_xclip_probabilities_equal_transformers(variant, xclip_backends, xclip_dirs, videos, tmp_path):
    backend = xclip_backends[variant]
    assert type(backend.processor.image_processor).__name__.startswith(XCLIP_IMAGE_PROCESSORS[variant])
    got, extraction = _clipaction_probabilities(backend, videos["a"], FeatureCache(tmp_path, cache_space(backend)))
    frames = read_sampled_frames(videos["a"], SAMPLER).frames
    expected = _reference_xclip(xclip_dirs[variant], frames)
    assert expected.max() - expected.min() > 1e-3, "the reference must not be uniform"
    difference = float((got - expected).abs().max())
    print(f"xclip[{variant}] max |p - p_transformers| = {difference:.2e}")
    assert difference <= 1e-5
    assert extraction.features[str(videos["a"])].embeds.shape[0] == 1  # one clip, one row


@pytest.mark.parametrize("variant", XCLIP_VARIANTS)
def test_xclip_preprocessing_equals_its_processor(variant, xclip_backends, xclip_dirs, videos):
    frames = read_sampled_frames(videos["a"], SAMPLER).frames
    expected = _reference_xclip_inputs(xclip_dirs[variant], frames)["pixel_values"][0]
    got = xclip_backends[variant].preprocess(frames)
    assert got.shape == (len(frames), 3, 32, 32) and torch.equal(got, expected)


def test_xclip_processors_differ_so_the_variants_test_different_inputs(xclip_backends, videos):
    """The VideoMAE processor (bilinear, the checkpoint's mean/std) and CLIP's (bicubic, CLIP's
    mean/std) give other pixels: a backend ignoring the folder's processor fails one variant."""
    frames = read_sampled_frames(videos["a"], SAMPLER).frames
    videomae, clip = xclip_backends["hub"].preprocess(frames), xclip_backends["clip-images"].preprocess(frames)
    assert torch.equal(videomae, xclip_backends["saved"].preprocess(frames))
    assert float((videomae - clip).abs().max()) > 0.1


def test_xclip_predict_on_a_hub_layout_folder(model_dirs, videos, tmp_path, capsys):
    """Issue 19: `clipaction predict` on an X-CLIP folder laid out as microsoft/xclip-base-patch32
    exits 0 with XCLIPModel's own probabilities (it used to exit 3 on every video)."""
    from clipaction.cli import main

    templates = tmp_path / "template.txt"
    templates.write_text(TEMPLATE + "\n", encoding="utf-8")
    code = main([
        "predict", str(videos["a"]), "--labels", ",".join(LABELS), "--json", "--model", str(model_dirs["xclip"]),
        "--device", "cpu", "--sampler", SAMPLER.name, "--frames", str(SAMPLER.frames), "--window", str(SAMPLER.window),
        "--prompts", str(templates), "--cache-dir", str(tmp_path / "cache"),
    ])  # fmt: skip
    assert code == 0
    ranked = json.loads(capsys.readouterr().out)[0]["labels"]
    got = {item["label"]: item["probability"] for item in ranked}
    expected = _reference_xclip(model_dirs["xclip"], read_sampled_frames(videos["a"], SAMPLER).frames)
    assert max(abs(got[label] - p) for label, p in zip(LABELS, expected.tolist())) <= 1e-5


def test_videoprism_probabilities_equal_transformers(backends, model_dirs, videos, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    backend = backends["videoprism"]
    got, extraction = _clipaction_probabilities(backend, videos["a"], FeatureCache(tmp_path, cache_space(backend)))
    frames = read_sampled_frames(videos["a"], SAMPLER).frames
    model = AutoModel.from_pretrained(model_dirs["videoprism"]).eval()
    assert type(model).__name__ == "VideoPrismClipModel"
    tokens = AutoTokenizer.from_pretrained(model_dirs["videoprism"])(
        _prompts(), padding="max_length", max_length=64, truncation=True, return_tensors="pt"
    )
    # The pixels are clipaction's preprocessing (checked against PIL below: the processor
    # itself cannot run without torchvision).
    with torch.no_grad():
        out = model(pixel_values_videos=backend.preprocess(frames).unsqueeze(0), **tokens)
    # For one video logits_per_video is all ones (normalised over the videos of the batch);
    # logits_per_text is the softmax over the texts, per video.
    assert torch.allclose(out.logits_per_video, torch.ones(1, len(LABELS)))
    expected = out.logits_per_text[:, 0]
    assert expected.max() - expected.min() > 1e-4, "the reference must not be uniform"
    print(f"videoprism max |p - p_transformers| = {float((got - expected).abs().max()):.2e}")
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    cached = torch.from_numpy(extraction.features[str(videos["a"])].embeds)
    assert cached.shape == out.video_embeds.shape and torch.allclose(cached, out.video_embeds, atol=1e-5)
    assert torch.allclose(backend.encode_texts(_prompts()), out.text_embeds, atol=1e-5)


def test_videoprism_preprocessing_equals_pil_transform(backends, videos):
    backend = backends["videoprism"]
    frames = read_sampled_frames(videos["a"], SAMPLER).frames
    got = backend.preprocess(frames)
    expected = _pil_videoprism_pixels(frames, backend.input_size)
    assert got.shape == expected.shape == (4, 3, 32, 32) and got.dtype == torch.float32
    assert 0.0 <= float(got.min()) and float(got.max()) <= 1.0
    # uint8 in and out of the resize, like PIL: at most one grey level apart, almost all equal
    assert (got - expected).abs().max() <= 1 / 255 + 1e-6
    assert float(((got - expected).abs() > 1e-6).float().mean()) < 0.05


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_is_laid_out_as_its_checkpoint(family, model_dirs):
    from clipaction.models.checkpoint_layouts import layout_for
    from clipaction.testing.tiny_video import HUB_LAYOUTS
    from layout_checks import assert_laid_out_as

    assert_laid_out_as(model_dirs[family], layout_for(HUB_LAYOUTS[family]))


@pytest.mark.parametrize("family", FAMILIES)
def test_rerun_encodes_nothing_and_batches_agree(family, backends, videos, tmp_path):
    backend = backends[family]
    cache = FeatureCache(tmp_path, cache_space(backend))
    paths = [videos["a"], videos["b"]]
    first = extract_features(paths, backend, SAMPLER, cache, batch_size=64, progress=False)
    assert first.n_encoded == 2
    again = extract_features(paths, backend, SAMPLER, cache, progress=False)
    assert (again.n_encoded, again.n_cached, again.n_frames_encoded) == (0, 2, 0)
    one_by_one = extract_features(paths, backend, SAMPLER, None, batch_size=1, progress=False)
    for path in map(str, paths):
        assert np.array_equal(again.features[path].embeds, first.features[path].embeds)
        assert np.allclose(one_by_one.features[path].embeds, first.features[path].embeds, atol=1e-5)
        assert list(again.features[path].indices) == list(first.features[path].indices)
    # entries are keyed by the frame indices: a sampler taking the same ones (uniform over a
    # video shorter than the window) reuses them; other indices are encoded once, then cached
    assert (
        extract_features(paths, backend, SamplerConfig(name="uniform", frames=4), cache, progress=False).n_encoded == 0
    )
    narrow = SamplerConfig(name="center-clip", frames=4, window=0.5)
    assert extract_features(paths, backend, narrow, cache, progress=False).n_encoded == 2
    assert extract_features(paths, backend, SAMPLER, cache, progress=False).n_encoded == 0
    assert extract_features(paths, backend, narrow, cache, progress=False).n_encoded == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_frame_count_the_model_cannot_take_is_one_line(family, backends, videos):
    with pytest.raises(ConfigError) as caught:
        extract_features([videos["a"]], backends[family], SamplerConfig(frames=5), None, progress=False)
    assert caught.value.setting == "sampler.frames"
    message = str(caught.value)
    assert "\n" not in message and "4" in message and "5" in message
    with pytest.raises(ConfigError) as caught:
        extract_features([videos["a"]], backends[family], SamplerConfig(name="middle"), None, progress=False)
    assert caught.value.setting == "sampler.name"


@pytest.mark.parametrize("family", FAMILIES)
def test_frames_come_from_the_config_unless_given(family, backends):
    backend = backends[family]
    assert backend.clip_frames == 4 and backend.frame_counts == (4,)
    assert clip_sampler(backend, SamplerConfig(frames=8), frames_given=False).frames == 4
    assert clip_sampler(backend, SamplerConfig(frames=8), frames_given=True).frames == 8
    assert not backend.capabilities & {Capability.PROJECTION, Capability.IMAGE_TOWER}


@pytest.mark.parametrize("family", FAMILIES)
def test_short_video_warns_also_from_the_cache(family, backends, videos, tmp_path):
    backend = backends[family]
    cache = FeatureCache(tmp_path, cache_space(backend))
    for expected_encoded in (1, 0):
        extraction = extract_features([videos["short"]], backend, SAMPLER, cache, progress=False)
        assert extraction.n_encoded == expected_encoded
        assert [w.path for w in extraction.warnings] == [str(videos["short"])]
        assert "repeated" in extraction.warnings[0].warning
        assert len(extraction.features[str(videos["short"])].indices) == 4


def test_multi_clip_gives_a_row_per_clip(backends, videos):
    sampler = SamplerConfig(name="multi-clip", frames=4, window=0.5, clips=2)
    for family in FAMILIES:
        backend = backends[family]
        extraction = extract_features([videos["a"]], backend, sampler, None, progress=False)
        rows = torch.from_numpy(extraction.features[str(videos["a"])].embeds)
        assert rows.shape[0] == 2
        text = class_text_features(backend, LABELS, (TEMPLATE,))
        _, logits = video_scores(backend, extraction, [str(videos["a"])], text)
        assert logits.shape == (1, len(LABELS)) and torch.isfinite(logits).all()
