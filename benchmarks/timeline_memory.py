"""Peak RSS of `clipaction timeline` against the video's length (issue 21, item 4).

Generates H.264 footage (clipaction.testing.footage.write_scenes, 25 fps, a keyframe every
10 s) of each length and runs the timeline on it in a fresh subprocess, so the peak resident
set (VmHWM) is that run's own, with an empty feature cache (every frame is decoded and
encoded). Prints one JSON object: peak RSS (MB) per length and the ratio of the longest to the
shortest.

    .venv/bin/python benchmarks/timeline_memory.py --minutes 1 10 30 --size 320x240
    .venv/bin/python benchmarks/timeline_memory.py --model vit-b-32 --runtime openvino --precision int8

`--tracemalloc` makes each child also report the Python heap's peak and its largest lines
(Python objects kept for the run vs native growth); `--env MALLOC_ARENA_MAX=2` and the like
go to the children (to tell allocator fragmentation from objects kept); `--per-frame-scaler`
converts frames to RGB as before the fix (a new scaler per frame), for a before/after in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time, tracemalloc
args = json.loads(sys.argv[1])
if args["tracemalloc"]:
    tracemalloc.start(8)
if args["per_frame_scaler"]:  # the conversion before the fix: a new scaler (and thread pool) per frame
    import clipaction.video.timed as timed
    from clipaction.video.frames import _orient
    timed.to_rgb = lambda frame, max_short_side=None: _orient(frame.to_ndarray(format="rgb24"), frame)
from clipaction.cli import main
start = time.perf_counter()
argv = ["timeline", args["video"], "--labels", "walking,running,jumping", "--out", args["out"], "--model",
        args["model"], "--runtime", args["runtime"], "--precision", args["precision"], "--no-progress",
        "--cache-dir", args["out"] + "/cache"]
code = main(argv)
wall = time.perf_counter() - start
status = {}
with open("/proc/self/status") as handle:
    for line in handle:
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            status[key] = int(value.split()[0]) / 1024
out = {"code": code, "wall_s": wall, "peak_rss_mb": status["VmHWM"], "end_rss_mb": status["VmRSS"]}
if args["tracemalloc"]:
    current, peak = tracemalloc.get_traced_memory()
    out["py_current_mb"], out["py_peak_mb"] = current / 2**20, peak / 2**20
    top = tracemalloc.take_snapshot().statistics("lineno")[:8]
    out["py_top"] = [f"{s.size / 2**20:.2f} MB x{s.count} {s.traceback[0]}" for s in top]
print("RESULT " + json.dumps(out))
"""


def footage(directory: Path, minutes: float, width: int, height: int) -> Path:
    """H.264 footage of `minutes` at 25 fps in three scenes (made once, kept in `directory`)."""
    from clipaction.testing.footage import Scene, write_scenes

    path = directory / f"footage-{minutes:g}min-{width}x{height}.mp4"
    if not path.exists():
        partial = path.with_suffix(".part.mp4")
        scenes = [Scene(minutes * 60 / 3, pattern) for pattern in range(3)]
        write_scenes(partial, scenes, fps=25, width=width, height=height, gop=250)
        partial.rename(path)
    return path


def model_dir(directory: Path, architecture: str) -> Path:
    from clipaction.testing.tiny_clip import build_random_clip

    path = directory / f"clip-{architecture}"
    if not (path / "config.json").exists():
        build_random_clip(path, architecture)
    return path


def run_child(video: Path, model: Path, out: Path, options: argparse.Namespace) -> dict:
    """One timeline run in a fresh interpreter: its peak RSS (MB) and what it reports."""
    args = {
        "video": str(video),
        "out": str(out),
        "model": str(model),
        "runtime": options.runtime,
        "precision": options.precision,
        "tracemalloc": options.tracemalloc,
        "per_frame_scaler": options.per_frame_scaler,
    }
    # converted OpenVINO models are kept here (a warm-up run builds them: see `main`)
    env = {**os.environ, "CLIPACTION_CACHE": str(options.store), **dict(item.split("=", 1) for item in options.env)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, env=env, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"the timeline child failed ({done.returncode}): {done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 30])
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the footage")
    parser.add_argument("--model", default="tiny", help="tiny or vit-b-32 (random weights)")
    parser.add_argument("--runtime", default="torch", choices=["torch", "openvino"])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument(
        "--per-frame-scaler",
        action="store_true",
        help="convert to RGB as before the fix (frame.to_ndarray: a new scaler per frame; frames no larger than 720p)",
    )
    parser.add_argument("--env", nargs="*", default=[], help="NAME=VALUE for the children")
    parser.add_argument("--work", default=None, help="where footage and models are kept (default: a temp dir)")
    options = parser.parse_args(argv)
    width, height = (int(v) for v in options.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as temp:
        work = Path(options.work or temp)
        work.mkdir(parents=True, exist_ok=True)
        model = model_dir(work, options.model)
        options.store = work / "store"
        runs = {}
        if options.runtime == "openvino":  # conversion and calibration once, outside the measured runs
            run_child(footage(work, min(options.minutes), width, height), model, Path(temp) / "warm-up", options)
        for minutes in options.minutes:
            video = footage(work, minutes, width, height)
            runs[f"{minutes:g}"] = run_child(video, model, Path(temp) / f"out-{minutes:g}", options)
    peaks = {minutes: run["peak_rss_mb"] for minutes, run in runs.items()}
    first, last = next(iter(peaks.values())), list(peaks.values())[-1]
    result = {
        "size": options.size,
        "model": options.model,
        "runtime": options.runtime,
        "precision": options.precision,
        "env": options.env,
        "per_frame_scaler": options.per_frame_scaler,
        "peak_rss_mb": peaks,
        "ratio_longest_to_shortest": last / first,
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
