"""Time `clipaction run` on a warm cache at the study's scale (issue: the study on a warm cache).

Generates 15 classes of small UCF101-like videos in the study's proportions (about 525 test and
1,350 train videos), a full-size random ViT-B/32, fills the cache with one cold run, then times
a second run of the default study without the full fine-tuning stage. Only the warm time is the
figure of interest: with every embedding cached, it is cache reads, text encoding, training the
projection, t-SNE and figures; the videos' size does not enter it.

    python benchmarks/warm_study.py --root /tmp/warm-study
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from clipaction.config import DatasetConfig, FullFinetuneStage, ModelConfig, StudyConfig
from clipaction.speed.run import STUDY_CLASSES
from clipaction.study import run_study
from clipaction.testing.tiny_clip import build_random_clip
from clipaction.testing.videos import SyntheticVideo, make_ucf101_like


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="working folder (kept, so the cache stays warm)")
    parser.add_argument("--architecture", default="vit-b-32", choices=("vit-b-32", "tiny"))
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "int8"),
        help="int8 fills the cache ~3x faster; the warm run then also loads and quantizes the model",
    )
    args = parser.parse_args()
    root = Path(args.root)
    if not (root / "data" / "ucfTrainTestlist").is_dir():
        make_ucf101_like(
            root / "data",
            STUDY_CLASSES,
            train_groups=tuple(range(8, 26)),
            test_groups=tuple(range(1, 8)),
            clips_per_group=5,
            spec=SyntheticVideo(width=64, height=48, num_frames=100),
        )
    model = root / f"model-{args.architecture}"
    if not (model / "model.safetensors").exists():
        build_random_clip(model, args.architecture, logit_scale=100.0)
    config = StudyConfig(
        dataset=DatasetConfig(root=str(root / "data" / "UCF-101"), splits_dir=str(root / "data" / "ucfTrainTestlist")),
        model=ModelConfig(name_or_path=str(model), device="cpu", precision=args.precision),
        full_finetune=FullFinetuneStage(enabled=False),
        out=str(root / "study"),
        cache_dir=str(root / "cache"),
    )
    times = {}
    for run in ("cold", "warm"):
        start = time.perf_counter()
        results = run_study(config, progress=run == "cold")
        times[f"{run}_seconds"] = round(time.perf_counter() - start, 2)
    times["precision"] = args.precision
    times["n_test"] = results["dataset"]["n_test"]
    times["n_train"] = results["dataset"]["n_train"]
    print(json.dumps(times, indent=2))


if __name__ == "__main__":
    main()
