"""`clipaction demo`: the whole study offline, on a synthetic action world and a tiny CLIP trained on it.

By default the videos come from `clipaction.demo.world` (coloured shapes doing motions;
a class is a sentence such as "a red square moving up") and the model is a tiny CLIP trained
on frames of that world (`clipaction.demo.training`, built once and cached), so the numbers
show the pipeline working: zero-shot far above chance, on compositions seen in training and on
held-out ones never seen. They are about that synthetic world only, never about real actions.

`run_demo(out, world=False)` keeps the older demo: UCF101-like generated videos and a tiny
random CLIP (every accuracy is chance; it is there for speed checks and installation checks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clipaction.config import (
    DatasetConfig,
    EmbeddingStage,
    FewShotStage,
    FullFinetuneStage,
    ModelConfig,
    PromptConfig,
    StudyConfig,
    TrainSettings,
)
from clipaction.demo.world import ActionWorld, WorldDataset, write_world_dataset
from clipaction.errors import ConfigError
from clipaction.study import run_study
from clipaction.testing.models import build_random_model
from clipaction.testing.videos import SyntheticVideo, make_ucf101_like

log = logging.getLogger(__name__)

#: The first 20 UCF101 classes: the study uses the first 15 (so the demo's report reads like the
#: real one) and the other 5 measure forgetting outside the study.
DEMO_CLASSES = (
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam",
    "BandMarching", "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress",
    "Biking", "Billiards", "BlowDryHair", "BlowingCandles", "BodyWeightSquats",
    "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke", "BrushingTeeth",
)  # fmt: skip

#: The first sentence of the world demo's report and of its observations.
WORLD_NOTE = (
    "the videos are a generated world of coloured shapes and the model is a tiny CLIP trained on it;"
    " these numbers are about that synthetic world, not about real actions."
)


def _stages(out: Path) -> dict[str, Any]:
    """The stage settings both demos share: sized for about a minute on two CPU cores."""
    return {
        "fewshot": FewShotStage(n_classes=5, shots=8, train=TrainSettings(lr=1e-3, epochs=30, batch_size=8)),
        "full_finetune": FullFinetuneStage(train=TrainSettings(lr=1e-3, epochs=5, batch_size=8)),
        "embeddings": EmbeddingStage(perplexity=10.0),
        "out": str(out),
        "cache_dir": str(out / "cache"),
        "synthetic": True,
    }


def demo_config(out: Path, data_root: Path, splits_dir: Path, model_dir: Path) -> StudyConfig:
    """The random-model demo's study config (UCF101-like videos), sized for a minute on two CPU cores."""
    return StudyConfig(
        dataset=DatasetConfig(root=str(data_root), splits_dir=str(splits_dir), num_classes=15),
        model=ModelConfig(name_or_path=str(model_dir), device="cpu", batch_size=32),
        **_stages(out),
    )


def world_demo_config(out: Path, data: WorldDataset, model_dir: Path) -> StudyConfig:
    """The world demo's study config: the `folder` dataset read from the world's manifest, the
    study's 15 classes picked by name (the 5 extra ones measure forgetting outside the study),
    and the class sentences as prompts (label map, template `{}`)."""
    return StudyConfig(
        dataset=DatasetConfig(
            name="folder", root=str(data.root), manifest=str(data.manifest), classes=data.classes, num_classes=None
        ),
        model=ModelConfig(name_or_path=str(model_dir), device="cpu", batch_size=64),
        prompts=PromptConfig(templates="name", label_map=str(data.label_map)),
        **_stages(out),
    )


def default_model_cache() -> Path:
    """Where the trained world model is kept between runs: `<clipaction cache>/world-models`."""
    from clipaction.paths import default_cache_dir

    return default_cache_dir() / "world-models"


def run_demo(
    out: str | Path,
    *,
    progress: bool = True,
    world: bool = True,
    model_cache: str | Path | None = None,
    family: str = "clip",
) -> dict[str, Any]:
    """Generate videos (and a model) under `out`, run the study there, return its results.

    world=True: the action world and its trained tiny CLIP (trained once, then reused from
    `model_cache`, default `default_model_cache()`); results gain a "world" entry with the
    zero-shot top-1 on seen and unseen compositions. world=False: the random-model demo.
    `family` other than "clip" runs the random-model demo with a tiny random model of that
    family (only CLIP is trained on the world: the others would take too long to train here).
    """
    out = Path(out).expanduser()
    if family != "clip" or not world:
        return _run_random_demo(out, progress, family)
    from clipaction.demo.training import trained_world_model

    spec = ActionWorld()
    started = time.perf_counter()
    data = write_world_dataset(out / "data", spec)
    written = time.perf_counter()
    model_dir = trained_world_model(model_cache if model_cache is not None else default_model_cache(), spec)
    trained = time.perf_counter()
    seconds = {"videos": written - started, "model": trained - written}
    return run_world_study(out, data, model_dir, progress=progress, seconds=seconds)


def run_world_study(
    out: Path, data: WorldDataset, model_dir: Path, *, progress: bool = True, seconds: dict[str, float] | None = None
) -> dict[str, Any]:
    """The study on a written world dataset with a trained world model; results gain "world"
    (see `world_summary`) and the report opens with the world's sentences."""
    started = time.perf_counter()
    results = run_study(world_demo_config(Path(out), data, model_dir), progress=progress)
    seconds = {**(seconds or {}), "study": time.perf_counter() - started}
    results["world"] = world_summary(results, data, model_dir, seconds)
    write_world_outputs(results, Path(out))
    return results


def build_demo_model(family: str, out_dir: Path) -> Path:
    """A tiny random model of `family` (a registered model_type) for the random-model demo."""
    from clipaction.models import list_backends

    if family not in list_backends():
        raise ConfigError(f"must be one of {', '.join(list_backends())}; got {family!r}", setting="family")
    return build_random_model(out_dir, family, logit_scale=100.0 if family == "clip" else None)


def _run_random_demo(out: Path, progress: bool, family: str = "clip") -> dict[str, Any]:
    data_root, splits_dir = make_ucf101_like(
        out / "data",
        DEMO_CLASSES,
        train_groups=(8, 9, 10, 11),
        test_groups=(1, 2),
        clips_per_group=2,
        spec=SyntheticVideo(width=96, height=72, num_frames=100, gop=12),
    )
    model_dir = build_demo_model(family, out / f"model-{family}")
    return run_study(demo_config(out, data_root, splits_dir, model_dir), progress=progress)


def split_top1(metrics: dict[str, Any], names: Sequence[str]) -> float | None:
    """Top-1 over the videos of `names` only (per-class accuracy weighted by support), from a
    stage's metrics; None without videos."""
    per_class = metrics["per_class"]
    support = sum(per_class[n]["support"] for n in names)
    if not support:
        return None
    return sum(per_class[n]["accuracy"] * per_class[n]["support"] for n in names) / support


def world_summary(
    results: dict[str, Any], data: WorldDataset, model_dir: Path, seconds: dict[str, float]
) -> dict[str, Any]:
    """The world demo's own numbers: zero-shot top-1 on seen and unseen compositions (main
    sampler and each temporal variant), which classes are unseen, and how long each part took."""
    import json

    classes = list(results["dataset"]["classes"])
    unseen = [c for c in classes if c in data.unseen]
    seen = [c for c in classes if c not in data.unseen]
    stages = results["stages"]
    zeroshot = stages["zeroshot"]["metrics"]
    training = json.loads((model_dir / "training.json").read_text(encoding="utf-8"))
    return {
        "note": WORLD_NOTE,
        "seen_top1": split_top1(zeroshot, seen),
        "unseen_top1": split_top1(zeroshot, unseen),
        "top1": zeroshot["top1"],
        "chance": 1 / len(classes),
        "seen_classes": seen,
        "unseen_classes": unseen,
        "held_out_pairs": [" ".join(pair) for pair in training["held_out"]],
        "temporal": {
            variant["name"]: {
                "top1": variant["metrics"]["top1"],
                "seen_top1": split_top1(variant["metrics"], seen),
                "unseen_top1": split_top1(variant["metrics"], unseen),
            }
            for variant in (stages.get("temporal") or {}).get("variants", [])
        },
        "model": {
            "path": str(model_dir),
            "training_compositions": len(training["training_compositions"]),
            "training_frames": training["n_frames"],
            "training_seconds": training["seconds"]["total"],
        },
        "seconds": {key: round(value, 2) for key, value in seconds.items()},
    }


def world_sentences(world: dict[str, Any]) -> list[str]:
    """The observations that open the world demo's report."""
    sentences = [
        "Synthetic world: " + WORLD_NOTE,
        f"Zero-shot top-1 on compositions seen in training: {_pct(world['seen_top1'])} "
        f"({len(world['seen_classes'])} classes); on compositions never seen in training "
        f"({', '.join(world['unseen_classes'])}; held-out colour-shape pairs: {', '.join(world['held_out_pairs'])}): "
        f"{_pct(world['unseen_top1'])}; chance is {_pct(world['chance'])}.",
    ]
    for name, variant in world["temporal"].items():
        sentences.append(
            f"With the {name} input, top-1 is {_pct(variant['seen_top1'])} on seen and "
            f"{_pct(variant['unseen_top1'])} on unseen compositions."
        )
    return sentences


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def write_world_outputs(results: dict[str, Any], out: Path) -> None:
    """Write results.json and the report again, with the world's sentences first among the
    observations and the report's banner saying what this demo is."""
    from clipaction.outputs import to_jsonable, write_json
    from clipaction.report import observations, write_report

    jsonable = to_jsonable(results)
    jsonable["observations"] = world_sentences(jsonable["world"]) + observations(jsonable)
    jsonable["synthetic_note"] = WORLD_NOTE  # the report's banner: a trained model, not a random one
    write_json(out / "results.json", jsonable)
    write_report(jsonable, out)
