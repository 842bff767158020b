"""Shared fixtures: a tiny random CLIP saved like a downloaded one, and the shared/ folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Tiers (markers registered in pyproject.toml). Marked here by fixture rather than test by test,
# so a new test that asks for one of these fixtures lands in its tier by itself.
_FIXTURE_MARKS = {
    "world_model_dir": ("slow",),  # trains the tiny CLIP on the action world once (~70 s uncached)
    "world_data": ("slow",),  # renders and encodes the world's videos (~20 s uncached)
    "ray_cluster": ("slow", "ray"),  # starts a local Ray instance (tests/test_engines.py)
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & _FIXTURE_MARKS.keys():
            for name in _FIXTURE_MARKS[fixture]:
                item.add_marker(name)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random tiny CLIPModel + processor written by save_pretrained (logit scale 100, as
    OpenAI's weights have)."""
    from clipaction.testing.tiny_clip import build_random_clip

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
    """The tiny CLIP trained on the synthetic action world (clipaction.demo.training).

    Trained once and kept in pytest's cache folder (keyed by a hash of the world, the training
    settings and the library versions), so later sessions reuse it; without the cache plugin it
    is trained into a temporary folder."""
    from clipaction.demo.training import trained_world_model

    cache = getattr(request.config, "cache", None)
    root = (
        Path(cache.mkdir("clipaction-world-models")) if cache is not None else tmp_path_factory.mktemp("world-models")
    )
    return trained_world_model(root)


@pytest.fixture(scope="session")
def world_data(request, tmp_path_factory):
    """The demo's action-world dataset (clipaction.demo.world.write_world_dataset), as the
    demo writes it: same world, same videos.

    Tests only read it, so it is written once (~20 s) and kept in pytest's cache folder, keyed by
    a hash of the module that renders and encodes it (it imports no other clipaction module) and
    of PyAV's and numpy's versions; without the cache plugin it goes to a temporary folder."""
    import dataclasses
    import hashlib
    import json
    import shutil
    import tempfile

    import av
    import numpy as np

    from clipaction.demo import world as action_world

    cache = getattr(request.config, "cache", None)
    if cache is None:
        return action_world.write_world_dataset(tmp_path_factory.mktemp("world-data"))
    digest = hashlib.sha256(Path(action_world.__file__).read_bytes())
    digest.update(f"av {av.__version__} numpy {np.__version__}".encode())
    root = Path(cache.mkdir("clipaction-world-data"))
    final = root / f"world-data-{digest.hexdigest()[:16]}"
    if not (final / "fixture.json").is_file():
        scratch = Path(tempfile.mkdtemp(prefix=".world-data-", dir=root))
        try:
            written = action_world.write_world_dataset(scratch)
            fields = {
                f.name: (str(v.relative_to(scratch)) if isinstance(v, Path) else list(v))
                for f in dataclasses.fields(written)
                for v in [getattr(written, f.name)]
            }
            (scratch / "fixture.json").write_text(json.dumps(fields))  # last: marks it complete
            try:
                scratch.rename(final)
            except OSError:
                if not (final / "fixture.json").is_file():  # not a concurrent session that won
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    fields = json.loads((final / "fixture.json").read_text())
    return action_world.WorldDataset(**{k: (final / v if isinstance(v, str) else tuple(v)) for k, v in fields.items()})
