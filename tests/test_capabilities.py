"""Stages ask the backend for capabilities, never for its class: a model family without a
linear projection or a trainable image tower gets those stages reported as not applicable,
with the reason, in results.json and the report, and the rest of the study runs."""

from __future__ import annotations

import json

import pytest
import torch

from clipaction.config import (
    AblationStage,
    AdaptMethodsStage,
    DatasetConfig,
    EmbeddingStage,
    FewShotStage,
    ModelConfig,
    StudyConfig,
    TemporalStage,
    TrainSettings,
)
from clipaction.models import Capability, FrameFeatures, load_backend, missing
from clipaction.study import run_study
from clipaction.testing.videos import SyntheticVideo, make_ucf101_like


class EmbeddingsOnly:
    """The tiny CLIP seen as a family without a projection or a trainable tower: its `pooled`
    features are the unnormalised embeddings (as FrameFeatures documents for such families)."""

    family = "embeddings-only"
    capabilities = frozenset({Capability.EMBEDDINGS})

    def __init__(self, inner) -> None:
        self._inner = inner
        self.fingerprint = {**inner.fingerprint, "test": "embeddings-only"}

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        features = self._inner.encode_pixels(pixels)
        return FrameFeatures(pooled=features.embeds * 3.0, embeds=features.embeds)

    def projection_weight(self):
        raise AssertionError("a stage asked for a capability the backend does not list")

    image_tower = with_image_tower = projection_weight


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf-capabilities")
    classes = ["ApplyEyeMakeup", "Archery", "Basketball"]
    return make_ucf101_like(root, classes, train_groups=(8, 9), test_groups=(1,), clips_per_group=2,
                            spec=SyntheticVideo(num_frames=30))  # fmt: skip


@pytest.mark.slow
def test_missing_capabilities_are_reported_not_crashed(ucf, tiny_model_dir, tmp_path):
    backend = EmbeddingsOnly(load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu")))
    assert missing(backend, Capability.PROJECTION) and missing(backend, Capability.IMAGE_TOWER)
    data_root, splits_dir = ucf
    config = StudyConfig(
        dataset=DatasetConfig(root=str(data_root), splits_dir=str(splits_dir), num_classes=None),
        model=ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"),
        temporal=TemporalStage(enabled=False),
        ablations=AblationStage(enabled=False),
        embeddings=EmbeddingStage(perplexity=1.5),
        fewshot=FewShotStage(n_classes=2, shots=2, train=TrainSettings(epochs=1, batch_size=2)),
        adapt=AdaptMethodsStage(methods=("projection", "tip-adapter", "linear-probe"), outside_classes=False),
        out=str(tmp_path / "run"),
        cache_dir=str(tmp_path / "cache"),
    )
    results = run_study(config, backend=backend, progress=False)
    assert "fewshot" not in results["stages"] and "full_finetune" not in results["stages"]
    reasons = results["not_applicable"]
    assert "projection" in reasons["fewshot"] and "image tower" in reasons["full_finetune"]
    assert "projection" in reasons["adapt_methods.projection"]
    methods = results["stages"]["adapt_methods"]["methods"]
    assert set(methods) == {"tip-adapter", "linear-probe"}  # these run on any family's embeddings
    # Tip-Adapter leaves classes it was not trained on exactly at zero-shot
    assert methods["tip-adapter"]["after"]["others"] == methods["tip-adapter"]["before"]["others"]
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["not_applicable"] == reasons
    report = (tmp_path / "run" / "report.md").read_text()
    assert report.count("Not applicable to this model") == 2 and "not applicable: " in report
