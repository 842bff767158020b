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
