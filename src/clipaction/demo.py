"""`clipaction demo`: the whole study offline, on generated videos and a tiny random CLIP.

It exists to show what the study produces and to check an installation; its numbers say
nothing about real actions (the report says so in its first line).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from clipaction.config import (
    DatasetConfig,
    EmbeddingStage,
    FewShotStage,
    FullFinetuneStage,
    ModelConfig,
    StudyConfig,
    TrainSettings,
)
from clipaction.data.synthetic import SyntheticVideo, make_ucf101_like
from clipaction.models.tiny import build_random_clip
from clipaction.study import run_study

log = logging.getLogger(__name__)

#: The first 20 UCF101 classes: the study uses the first 15 (so the demo's report reads like the
#: real one) and the other 5 measure forgetting outside the study.
DEMO_CLASSES = (
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam",
    "BandMarching", "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress",
    "Biking", "Billiards", "BlowDryHair", "BlowingCandles", "BodyWeightSquats",
    "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke", "BrushingTeeth",
)  # fmt: skip


def demo_config(out: Path, data_root: Path, splits_dir: Path, model_dir: Path) -> StudyConfig:
    """A study config sized for a minute on two CPU cores."""
    return StudyConfig(
        dataset=DatasetConfig(root=str(data_root), splits_dir=str(splits_dir), num_classes=15),
        model=ModelConfig(name_or_path=str(model_dir), device="cpu", batch_size=32),
        fewshot=FewShotStage(n_classes=5, shots=8, train=TrainSettings(lr=1e-3, epochs=30, batch_size=8)),
        full_finetune=FullFinetuneStage(train=TrainSettings(lr=1e-3, epochs=5, batch_size=8)),
        embeddings=EmbeddingStage(perplexity=10.0),
        out=str(out),
        cache_dir=str(out / "cache"),
        synthetic=True,
    )


def run_demo(out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Generate videos and a model under `out`, run the study there, return its results."""
    out = Path(out).expanduser()
    data_root, splits_dir = make_ucf101_like(
        out / "data",
        DEMO_CLASSES,
        train_groups=(8, 9, 10, 11),
        test_groups=(1, 2),
        clips_per_group=2,
        spec=SyntheticVideo(width=96, height=72, num_frames=100, gop=12),
    )
    model_dir = build_random_clip(out / "model", "tiny", seed=0, logit_scale=100.0)
    return run_study(demo_config(out, data_root, splits_dir, model_dir), progress=progress)
