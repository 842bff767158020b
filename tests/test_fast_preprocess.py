"""`preprocess_frames` equals the model's own image processor bit for bit, or hands over to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipaction.models.fast_preprocess import _plan, preprocess_frames, to_pixel_values, value_table

SHAPES = [(240, 320), (320, 240), (72, 96), (31, 45), (224, 224), (225, 301), (720, 1280), (360, 641), (1080, 1920)]


def _processor(path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(path).image_processor


@pytest.fixture(scope="module", params=["clip", "metaclip_2", "siglip"])
def processor(request, tiny_model_dir, tmp_path_factory):
    if request.param == "clip":
        return _processor(tiny_model_dir)
    from clipaction.testing.tiny_families import build_random_model

    return _processor(build_random_model(tmp_path_factory.mktemp(request.param), request.param))


@pytest.mark.parametrize("shape", SHAPES)
def test_frames_preprocess_exactly_as_the_processor_does(processor, shape):
    frames = np.random.default_rng(sum(shape)).integers(0, 256, (3, *shape, 3), dtype=np.uint8)
    assert _plan(processor, list(frames)) is not None, "the fast path applies"
    expected = processor(images=list(frames), return_tensors="pt")["pixel_values"]
    assert torch.equal(preprocess_frames(processor, frames), expected)


@pytest.mark.parametrize("shape", [(240, 320), (720, 1280)])
def test_the_bytes_are_the_crops_the_pixel_values_come_from(processor, shape):
    """What a runtime that normalises in its graph gets: uint8, mapped by the value table to
    the processor's pixel values exactly."""
    frames = np.random.default_rng(sum(shape)).integers(0, 256, (3, *shape, 3), dtype=np.uint8)
    crops = preprocess_frames(processor, frames, as_bytes=True)
    expected = processor(images=list(frames), return_tensors="pt")["pixel_values"]
    assert crops.dtype == torch.uint8 and crops.shape == expected.shape
    assert torch.equal(to_pixel_values(crops, value_table(processor)), expected)


def test_what_it_cannot_reproduce_goes_to_the_processor(tiny_model_dir):
    processor = _processor(tiny_model_dir)
    mixed = [np.zeros((40, 50, 3), np.uint8), np.zeros((50, 40, 3), np.uint8)]
    floats = np.random.default_rng(0).random((2, 40, 50, 3)).astype(np.float32)
    for frames in (mixed, list(floats)):
        assert _plan(processor, [np.asarray(f) for f in frames]) is None
        expected = processor(images=list(frames), return_tensors="pt")["pixel_values"]
        assert torch.equal(preprocess_frames(processor, frames), expected)
        assert torch.equal(preprocess_frames(processor, frames, as_bytes=True), expected)  # values, not bytes
