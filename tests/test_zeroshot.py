"""Prompt templates and the text/video feature arithmetic."""

from __future__ import annotations

import pytest
import torch

from clipaction.classify.scoring import (
    CLIP_TEMPLATES,
    PromptError,
    class_text_features,
    load_templates,
    video_embedding,
)


def test_clip_templates_are_the_48_ucf101_ones():
    assert len(CLIP_TEMPLATES) == 48 == len(set(CLIP_TEMPLATES))
    assert "a photo of a person {}." in CLIP_TEMPLATES
    assert "a demonstration of the person practicing {}." in CLIP_TEMPLATES
    assert "a video of a person during {}." in CLIP_TEMPLATES
    assert all(t.count("{}") == 1 for t in CLIP_TEMPLATES)


def test_named_and_file_templates(tmp_path):
    assert load_templates("seed") == ("a photo of a person {}.",)
    path = tmp_path / "templates.txt"
    path.write_text("a clip of {}.\n\n  someone {} here  \n", encoding="utf-8")
    assert load_templates(str(path)) == ("a clip of {}.", "someone {} here")


def test_bad_templates_are_refused(tmp_path):
    with pytest.raises(PromptError, match="seed, clip"):
        load_templates("nonsense")
    path = tmp_path / "t.txt"
    path.write_text("no placeholder\n", encoding="utf-8")
    with pytest.raises(PromptError, match=r"t.txt:1"):
        load_templates(str(path))


def test_class_feature_is_the_normalised_mean_of_template_features(tiny_backend):
    templates = ["a photo of {}.", "a video of {}."]
    features = class_text_features(tiny_backend, ["archery", "biking"], templates)
    per_template = tiny_backend.encode_texts(["a photo of biking.", "a video of biking."])
    mean = per_template.mean(0)
    torch.testing.assert_close(features[1], mean / mean.norm(), atol=1e-6, rtol=0)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(2))


def test_video_embedding_is_the_normalised_mean_of_normalised_frames():
    frames = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    # normalised frames (1,0) and (0,1): their mean (0.5, 0.5), normalised
    torch.testing.assert_close(video_embedding(frames), torch.tensor([2**-0.5, 2**-0.5]))
