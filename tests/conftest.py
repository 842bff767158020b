"""Shared fixtures: a tiny random CLIP saved like a downloaded one, and the shared/ folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random tiny CLIPModel + processor written by save_pretrained (logit scale 100, as
    OpenAI's weights have)."""
    from clipaction.models.tiny import build_random_clip

    return build_random_clip(tmp_path_factory.mktemp("tiny-clip"), "tiny", seed=0, logit_scale=100.0)


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    from clipaction.config import ModelConfig
    from clipaction.models import load_backend

    return load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", batch_size=8))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "ucf101_splits").is_dir():
        pytest.skip("../shared with the official split lists is not beside the repository")
    return SHARED


@pytest.fixture(scope="session")
def world_model_dir(request, tmp_path_factory) -> Path:
    """The tiny CLIP trained on the synthetic action world (clipaction.models.train_tiny).

    Trained once and kept in pytest's cache folder (keyed by a hash of the world, the training
    settings and the library versions), so later sessions reuse it; without the cache plugin it
    is trained into a temporary folder."""
    from clipaction.models.train_tiny import trained_world_model

    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("clipaction-world-models")) if cache is not None else tmp_path_factory.mktemp("world-models")
    return trained_world_model(root)


@pytest.fixture(scope="session")
def world_data(tmp_path_factory):
    """The demo's action-world dataset (clipaction.data.action_world.write_world_dataset), as the
    demo writes it: same world, same videos."""
    from clipaction.data.action_world import write_world_dataset

    return write_world_dataset(tmp_path_factory.mktemp("world-data"))
