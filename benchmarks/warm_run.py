"""Time `clipaction zeroshot` and `clipaction predict` on a warm cache (issue 21, item 6).

Generates 60 small UCF101-like videos (15 classes x 4 test clips) and a random CLIP (tiny by
default), runs each command once cold to fill the feature and text caches, then times the warm
run as a subprocess of the installed `clipaction` script, best of 3. With everything cached the
work is cache reads, scoring and writing outputs, so what else the wall time holds is import
cost: one more warm run under `python -X importtime` lists the most expensive imports and the
heavy libraries that were imported at all.

    python benchmarks/warm_run.py --root /tmp/warm-run

Prints JSON: seconds per command (cold once, warm best of 3 and all 3), the top imports by
cumulative time (top-level packages only) and the heavy libraries each warm run imported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from clipaction.speed.run import STUDY_CLASSES
from clipaction.testing.tiny_clip import build_random_clip
from clipaction.testing.videos import SyntheticVideo, make_ucf101_like

HEAVY = ("torch", "transformers", "sklearn", "scipy", "matplotlib", "av", "ray", "tqdm", "PIL", "pandas")
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|\s+(\S+)")


def clipaction_script() -> str:
    """The `clipaction` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("clipaction")
    return str(script) if script.exists() else "clipaction"


def commands(root: Path, model: Path) -> dict[str, list[str]]:
    """The two warm commands' arguments (without the program name)."""
    common = ["--model", str(model), "--device", "cpu", "--cache-dir", str(root / "cache"), "--no-progress"]
    return {
        "zeroshot": [
            "zeroshot", "--data-root", str(root / "data" / "UCF-101"),
            "--splits-dir", str(root / "data" / "ucfTrainTestlist"), "--out", str(root / "zeroshot"), *common,
        ],
        "predict": [
            "predict", str(root / "data" / "UCF-101"), "--labels", ",".join(STUDY_CLASSES), "--json", *common,
        ],
    }  # fmt: skip


def timed(argv: list[str]) -> float:
    """Wall seconds of one run of `argv` (must exit 0)."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def import_profile(args: list[str], top: int) -> dict:
    """One run under `-X importtime`: the `top` packages (top-level names, wherever imported
    first) by cumulative seconds, and which heavy libraries were imported at all."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "clipaction.cli", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    top_level: list[tuple[float, str]] = []
    imported: set[str] = set()
    for line in done.stderr.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        cumulative, name = int(match.group(2)), match.group(3)
        imported.add(name.split(".")[0])
        if "." not in name:  # a package's first import, with what it imported first
            top_level.append((cumulative / 1e6, name))
    top_level.sort(reverse=True)
    return {
        "top_packages_s": {name: round(seconds, 3) for seconds, name in top_level[:top]},
        "heavy_imported": sorted(imported & set(HEAVY)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="working folder (kept, so the cache stays warm)")
    parser.add_argument("--architecture", default="tiny", choices=("tiny", "vit-b-32"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=12, help="how many imports to list")
    args = parser.parse_args()
    root = Path(args.root)
    if not (root / "data" / "ucfTrainTestlist").is_dir():
        make_ucf101_like(
            root / "data",
            STUDY_CLASSES,
            train_groups=(),
            test_groups=(1, 2),
            clips_per_group=2,
            spec=SyntheticVideo(width=64, height=48, num_frames=50),
        )
    model = root / f"model-{args.architecture}"
    if not (model / "model.safetensors").exists():
        build_random_clip(model, args.architecture, logit_scale=100.0)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    program = clipaction_script()
    report: dict = {"videos": len(list((root / "data" / "UCF-101").rglob("*.avi"))), "architecture": args.architecture}
    for name, argv in commands(root, model).items():
        first = timed([program, *argv])
        warm = [timed([program, *argv]) for _ in range(args.repeats)]
        report[name] = {
            "first_s": round(first, 2),  # cold unless the cache was already filled
            "warm_best_s": round(min(warm), 2),
            "warm_s": [round(s, 2) for s in warm],
            **import_profile(argv, args.top),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
