"""Command line: argument parsing only. Each command turns flags into configs and calls the
library. Exit codes: 0 all good; 1 finished, but some videos failed (results written);
2 bad input or usage, nothing written."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from clipaction import __version__
from clipaction.config import (
    DEFAULT_MODEL,
    DEFAULT_NUM_CLASSES,
    DatasetConfig,
    ModelConfig,
    PromptConfig,
    SamplerConfig,
    ZeroShotConfig,
)

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _add_dataset_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dataset")
    group.add_argument("--dataset", default="ucf101", help="ucf101, hmdb51 or folder (your own <root>/<label>/<video> tree)")
    group.add_argument("--data-root", help="UCF101: the UCF-101 folder with one folder per class; folder: the tree's root")
    group.add_argument(
        "--splits-dir",
        help="UCF101: the folder with classInd.txt, trainlist0N.txt, testlist0N.txt; "
        "HMDB51: the folder with <class>_test_split<N>.txt",
    )
    group.add_argument("--manifest", help="folder dataset: a CSV of path,label[,split] instead of a tree")
    group.add_argument("--split", type=int, default=1, choices=(1, 2, 3))
    group.add_argument("--subset", default="test", choices=("train", "test", "all"))
    selection = group.add_mutually_exclusive_group()
    selection.add_argument("--classes", help="comma-separated class names to evaluate")
    selection.add_argument(
        "--num-classes",
        help="the first N classes of the class list (classInd.txt order), or 'all' "
        "(default: the study's 15 for ucf101, all for folder)",
    )


def _add_sampler_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("frames")
    group.add_argument("--sampler", default="center-clip", choices=("middle", "center-clip", "uniform", "multi-clip"))
    group.add_argument("--frames", type=int, default=8, help="frames per video (center-clip, uniform)")
    group.add_argument("--window", type=float, default=3.0, help="center-clip/multi-clip window in seconds")
    group.add_argument("--clips", type=int, default=3, help="multi-clip: clips spread over the video (1/4, 1/2, 3/4 for 3)")


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=DEFAULT_MODEL, help="hub id or a local directory saved with save_pretrained")
    group.add_argument("--revision", help="hub revision (branch, tag or commit)")
    group.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    group.add_argument("--batch-size", type=int, default=32, help="frames per model batch")
    group.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "int8", "fp16"),
        help="int8: quantized image encoder, 2-3x faster on a CPU (cosine > 0.99 to fp32); fp16: for GPUs",
    )
    group.add_argument("--workers", type=int, default=2, help="decoding threads")
    group.add_argument("--cache-dir", help="embedding cache (default ~/.cache/clipaction or $CLIPACTION_CACHE)")
    group.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_prompt_args(parser: argparse.ArgumentParser, default_style: str = "raw") -> None:
    group = parser.add_argument_group("prompts")
    group.add_argument("--prompts", default="seed", help="seed, clip (CLIP's 48 UCF101 templates) or a file, one template per line with {}")
    group.add_argument("--name-style", default=default_style, choices=("raw", "spaced"), help="how class names become text")
    group.add_argument("--label-map", help="CSV (label,text) or JSON {label: text} overriding class texts")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipaction",
        description="Zero-shot human action recognition in videos with CLIP.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"clipaction {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    zeroshot = commands.add_parser(
        "zeroshot",
        help="evaluate zero-shot CLIP on a dataset and write results",
        description="Evaluate zero-shot CLIP on a labelled dataset (default: UCF101 split 1 test list, "
        "first 15 classes) and write results.json, predictions.csv and classification_report.txt.",
        formatter_class=_Formatter,
    )
    _add_dataset_args(zeroshot)
    _add_sampler_args(zeroshot)
    _add_model_args(zeroshot)
    _add_prompt_args(zeroshot)
    zeroshot.add_argument("--out", required=True, help="output directory")
    zeroshot.add_argument("--strict", action="store_true", help="exit non-zero before writing results if any video failed")
    zeroshot.set_defaults(handler=_cmd_zeroshot)

    extract = commands.add_parser(
        "extract",
        help="fill the embedding cache for a dataset",
        description="Decode, sample and encode every video of a dataset into the embedding cache; "
        "interrupted runs resume where they stopped.",
        formatter_class=_Formatter,
    )
    _add_dataset_args(extract)
    _add_sampler_args(extract)
    _add_model_args(extract)
    extract.set_defaults(handler=_cmd_extract)

    predict = commands.add_parser(
        "predict",
        help="rank your own labels for your own videos",
        description="Label arbitrary videos with arbitrary labels, e.g.\n"
        '  clipaction predict clip.mp4 --labels "juggling a soccer ball,riding a bike"',
        formatter_class=_Formatter,
    )
    predict.add_argument("videos", nargs="+", metavar="VIDEO")
    predict.add_argument("--labels", required=True, help="comma-separated labels, or @FILE with one label per line")
    predict.add_argument("--prompts", default="seed", help="seed, clip or a template file")
    predict.add_argument("--top", type=int, default=5, help="labels to print per video")
    predict.add_argument("--json", action="store_true", help="print a JSON list, one object per video")
    _add_sampler_args(predict)
    _add_model_args(predict)
    predict.set_defaults(handler=_cmd_predict)
    run = commands.add_parser(
        "run",
        help="run the whole study and write its report",
        description="Run the study end to end: zero-shot evaluation, single frame vs clip, few-shot "
        "fine-tuning of the projection, the full fine-tuning ablation, embedding pictures, and "
        "report.md/report.html/results.json in --out. Settings come from the built-in defaults "
        "(see --print-config), then --config FILE, then the flags below.",
        formatter_class=_Formatter,
    )
    run.add_argument("--config", help="a TOML study file (write one with --print-config)")
    run.add_argument("--print-config", action="store_true", help="print the effective settings as TOML and exit")
    overrides = run.add_argument_group("overrides (each replaces the value from the defaults/config file)")
    for flag, dest, help_text in _RUN_OVERRIDES:
        overrides.add_argument(flag, dest=dest, default=None, help=help_text)
    overrides.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=("temporal", "fewshot", "full-finetune", "adapt", "embeddings", "ablations"),
        help="switch a stage off (repeatable)",
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.set_defaults(handler=_cmd_run)

    report = commands.add_parser(
        "report",
        help="rebuild report.md/report.html from a run's results.json",
        description="Rebuild the report of a finished run from its results.json, without recomputing anything.",
        formatter_class=_Formatter,
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of a run")
    report.set_defaults(handler=_cmd_report)

    demo = commands.add_parser(
        "demo",
        help="the whole study offline on generated videos and a tiny random model",
        description="Generate a small labelled video set and a tiny random CLIP, and run the whole "
        "study on them (about a minute on two CPU cores, no network). The numbers mean nothing "
        "about real actions; the report says so.",
        formatter_class=_Formatter,
    )
    demo.add_argument("--out", default="runs/demo", help="output directory")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.set_defaults(handler=_cmd_demo)

    download = commands.add_parser(
        "download",
        help="download and unpack a dataset (ucf101)",
        description="Download the official UCF101 videos (about 6.5 GB, RAR) and split lists into DIR, "
        "resume an interrupted download, check and unpack them, then print the --data-root and "
        "--splits-dir to use. Unpacking the RAR needs unrar, unar, 7z or bsdtar on PATH.",
        formatter_class=_Formatter,
    )
    download.add_argument("dataset", choices=("ucf101",))
    download.add_argument("--to", required=True, metavar="DIR", help="folder to download and unpack into")
    download.add_argument("--keep-archives", action="store_true", help="keep the .rar/.zip after unpacking")
    download.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify TLS certificates (only for a mirror with a broken certificate)",
    )
    download.add_argument("--no-progress", action="store_true", help="hide progress bars")
    download.set_defaults(handler=_cmd_download)

    benchmark = commands.add_parser(
        "benchmark",
        help="zero-shot on UCF101 and HMDB51: all classes, splits 1-3, mean ± std",
        description="Zero-shot accuracy on the standard benchmarks as the literature reports it: for "
        "each dataset and split, top-1, top-5 and mean class accuracy on the test list with all "
        "classes, then the mean and standard deviation (ddof=0) over the splits. Writes results.json "
        "and benchmark.md into the config's out folder. Settings come from the built-in defaults, "
        "then --config FILE, then --out; start from --print-config.",
        formatter_class=_Formatter,
    )
    benchmark.add_argument("--config", help="a TOML benchmark file (write one with --print-config)")
    benchmark.add_argument("--print-config", action="store_true", help="print the effective settings as TOML and exit")
    benchmark.add_argument("--out", help="output directory (replaces the config's out)")
    benchmark.add_argument("--no-progress", action="store_true", help="hide progress bars")
    benchmark.set_defaults(handler=_cmd_benchmark)

    bench = commands.add_parser(
        "bench",
        help="measure extraction speed on generated videos",
        description="Generate UCF101-like videos and a full-size random ViT-B/32, then measure the "
        "image encoder alone, decoding alone, end-to-end extraction, text encoding, peak memory, and "
        "the same for the fast (int8) encoder. Prints one JSON object.",
        formatter_class=_Formatter,
    )
    bench.add_argument("--videos", type=int, default=24, help="number of generated videos")
    bench.add_argument("--model", help="a saved model directory instead of a random ViT-B/32")
    bench.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    bench.add_argument("--workers", type=int, default=2, help="decoding threads")
    bench.add_argument("--batch-sizes", default="16,32,64", help="batch sizes to try for the image encoder")
    bench.add_argument("--out", help="also write the JSON to this file")
    bench.set_defaults(handler=_cmd_bench)
    return parser


#: `run` flags -> dotted study-config paths (values are parsed by the config's own types).
_RUN_OVERRIDES = [
    ("--data-root", "dataset.root", "UCF-101 folder with one folder per class"),
    ("--splits-dir", "dataset.splits_dir", "folder with classInd.txt and the split lists"),
    ("--dataset", "dataset.name", "ucf101 or folder"),
    ("--split", "dataset.split", "1, 2 or 3"),
    ("--classes", "dataset.classes", "comma-separated class names"),
    ("--num-classes", "dataset.num_classes", "first N classes, or 'all'"),
    ("--model", "model.name_or_path", "hub id or local directory"),
    ("--device", "model.device", "auto, cpu or cuda"),
    ("--batch-size", "model.batch_size", "frames per model batch"),
    ("--precision", "model.precision", "fp32, int8 (a faster CPU image encoder) or fp16 (GPUs)"),
    ("--prompts", "prompts.templates", "seed, clip or a template file"),
    ("--name-style", "prompts.name_style", "raw or spaced"),
    ("--cache-dir", "cache_dir", "embedding cache"),
    ("--workers", "workers", "decoding threads"),
    ("--out", "out", "output directory"),
]
_INT_OVERRIDES = {"dataset.split", "model.batch_size", "workers"}
_SKIP_KEYS = {
    "temporal": "temporal",
    "fewshot": "fewshot",
    "full-finetune": "full_finetune",
    "adapt": "adapt",
    "embeddings": "embeddings",
    "ablations": "ablations",
}


def _study_config(args: argparse.Namespace):
    from clipaction.config import StudyConfig
    from clipaction.config_io import load_study_config, merge

    config = load_study_config(args.config) if args.config else StudyConfig()
    changes: dict = {}
    for _, dest, _ in _RUN_OVERRIDES:
        value = getattr(args, dest)
        if value is None:
            continue
        if dest in _INT_OVERRIDES:
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"--{dest.split('.')[-1].replace('_', '-')} must be a number; got {value!r}") from None
        elif dest == "dataset.classes":
            value = [name.strip() for name in value.split(",") if name.strip()]
        elif dest == "dataset.num_classes" and value != "all":
            value = int(value) if value.isdigit() else value
        changes[dest] = value
    for stage in args.skip:
        changes[f"{_SKIP_KEYS[stage]}.enabled"] = False
    return merge(config, changes) if changes else config


def _cmd_run(args: argparse.Namespace) -> int:
    from clipaction.config_io import study_config_to_toml

    config = _study_config(args)
    if args.print_config:
        print(study_config_to_toml(config), end="")
        return EXIT_OK
    from clipaction.study import run_study

    results = run_study(config, progress=not args.no_progress)
    _print_study_summary(results, Path(config.out))
    return _failures_exit(results["failures"])


def _print_study_summary(results: dict, out: Path) -> None:
    stages = results["stages"]
    zeroshot = stages["zeroshot"]["metrics"]
    print(f"zero-shot top-1 {_pct(zeroshot['top1'])}, top-5 {_pct(zeroshot['top5'])} on {results['dataset']['n_test']} test videos")
    for variant in stages.get("temporal", {}).get("variants", []):
        print(f"  {variant['name']}: top-1 {_pct(variant['metrics']['top1'])}")
    for key, title in (("fewshot", "few-shot (projection)"), ("full_finetune", "full fine-tuning")):
        if key in stages:
            after = stages[key]["finetuned_metrics"]["top1"]
            print(f"{title}: top-1 {_pct(stages[key]['zeroshot_metrics']['top1'])} -> {_pct(after)}")
    if results["failures"]:
        print(f"{len(results['failures'])} video(s) missing or unreadable: see results.json")
    print(f"report: {out / 'report.html'}")


def _cmd_report(args: argparse.Namespace) -> int:
    from clipaction.study import rebuild_report

    paths = rebuild_report(Path(args.run_dir))
    print(f"report: {paths['html']}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from clipaction.demo import run_demo

    print("clipaction demo: synthetic videos and a random tiny model; the numbers mean nothing about real actions.")
    results = run_demo(args.out, progress=not args.no_progress)
    _print_study_summary(results, Path(args.out).expanduser())
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    from clipaction.bench import BenchConfig, run_bench
    from clipaction.results import to_jsonable, write_text_atomic

    try:
        batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    except ValueError:
        raise ValueError(f"--batch-sizes must be comma-separated numbers; got {args.batch_sizes!r}") from None
    config = BenchConfig(
        videos=args.videos, model=args.model, device=args.device, workers=args.workers, batch_sizes=batch_sizes
    )
    text = json.dumps(to_jsonable(run_bench(config)), indent=2)
    print(text)
    if args.out:
        write_text_atomic(Path(args.out), text + "\n")
    return EXIT_OK


def _cmd_benchmark(args: argparse.Namespace) -> int:
    import dataclasses

    from clipaction.benchmark import BenchmarkConfig, benchmark_config_to_toml, load_benchmark_config, run_benchmark

    config = load_benchmark_config(args.config) if args.config else BenchmarkConfig()
    if args.out:
        config = dataclasses.replace(config, out=args.out)
    if args.print_config:
        print(benchmark_config_to_toml(config), end="")
        return EXIT_OK
    results = run_benchmark(config, progress=not args.no_progress)
    for dataset in results["datasets"]:
        top1, splits = dataset["summary"]["top1"], [str(s["split"]) for s in dataset["splits"]]
        print(f"{dataset['name']}: top-1 {_pct(top1['mean'])} ± {_pct(top1['std'])} over splits {', '.join(splits)}")
    failures = [f for d in results["datasets"] for s in d["splits"] for f in s["failures"]]
    if failures:
        print(f"{len(failures)} listed video(s) missing or unreadable: see results.json")
    print(f"table: {Path(config.out).expanduser() / 'benchmark.md'}")
    return _failures_exit(failures)


def _cmd_download(args: argparse.Namespace) -> int:
    from clipaction.data.download import download_ucf101

    data_root, splits_dir = download_ucf101(
        args.to, progress=not args.no_progress, insecure=args.insecure, keep_archives=args.keep_archives
    )
    print(f"UCF101 is ready; use: --data-root {data_root} --splits-dir {splits_dir}")
    return EXIT_OK


def _dataset_config(args: argparse.Namespace) -> DatasetConfig:
    classes = tuple(name.strip() for name in args.classes.split(",") if name.strip()) if args.classes else ()
    if args.num_classes is None:
        num_classes = DEFAULT_NUM_CLASSES if args.dataset == "ucf101" else None
    elif str(args.num_classes).lower() == "all":
        num_classes = None
    else:
        try:
            num_classes = int(args.num_classes)
        except ValueError:
            raise ValueError(f"--num-classes must be a number or 'all'; got {args.num_classes!r}") from None
    return DatasetConfig(
        name=args.dataset,
        root=args.data_root,
        splits_dir=args.splits_dir,
        split=args.split,
        subset=args.subset,
        classes=classes,
        num_classes=num_classes,
        manifest=args.manifest,
    )


def _sampler_config(args: argparse.Namespace) -> SamplerConfig:
    return SamplerConfig(
        name=args.sampler, frames=args.frames, window=args.window, clips=args.clips if args.sampler == "multi-clip" else 1
    )


def _model_config(args: argparse.Namespace) -> ModelConfig:
    return ModelConfig(
        name_or_path=args.model,
        revision=args.revision,
        device=args.device,
        batch_size=args.batch_size,
        precision=args.precision,
    )


def _zeroshot_config(args: argparse.Namespace) -> ZeroShotConfig:
    return ZeroShotConfig(
        dataset=_dataset_config(args),
        sampler=_sampler_config(args),
        model=_model_config(args),
        prompts=PromptConfig(templates=args.prompts, name_style=args.name_style, label_map=args.label_map),
        cache_dir=args.cache_dir,
        workers=args.workers,
        strict=args.strict,
    )


def _cmd_zeroshot(args: argparse.Namespace) -> int:
    from clipaction.pipeline import run_zeroshot, write_zeroshot_outputs

    config = _zeroshot_config(args)
    run = run_zeroshot(config, progress=not args.no_progress)
    if run.failures and config.strict:
        _error(f"{len(run.failures)} video(s) failed (--strict): first: {run.failures[0].path}: {run.failures[0].error}")
        return EXIT_USAGE
    paths = write_zeroshot_outputs(run, args.out)
    metrics = run.metrics
    print(
        f"{len(run.videos)} videos, {len(run.dataset.classes)} classes: top-1 {_pct(metrics['top1'])}, "
        f"top-5 {_pct(metrics['top5'])}, mean class accuracy {_pct(metrics['mean_class_accuracy'])}"
    )
    print(f"encoded {run.extraction.n_encoded}, from cache {run.extraction.n_cached}, failed {len(run.failures)}")
    print(f"results: {paths['results']}")
    return _failures_exit(run.failures)


def _cmd_extract(args: argparse.Namespace) -> int:
    from clipaction.data import load_dataset
    from clipaction.features.extract import extract_features
    from clipaction.models import load_backend
    from clipaction.pipeline import open_cache

    dataset = load_dataset(_dataset_config(args))
    sampler = _sampler_config(args)
    backend = load_backend(_model_config(args))
    cache = open_cache(args.cache_dir, backend)
    extraction = extract_features(
        [str(record.path) for record in dataset.records],
        backend,
        sampler,
        cache,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
        keep=False,
    )
    print(
        f"{len(dataset.records)} videos: encoded {extraction.n_encoded}, from cache {extraction.n_cached}, "
        f"failed {len(extraction.failures)}, missing {len(dataset.missing)}; cache: {cache.dir}"
    )
    return _failures_exit(extraction.failures or dataset.missing)


def _parse_labels(spec: str) -> list[str]:
    if spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        if not path.is_file():
            raise ValueError(f"label file not found: {path}")
        items = path.read_text(encoding="utf-8").splitlines()
    else:
        items = spec.split(",")
    labels = [item.strip() for item in items if item.strip()]
    if not labels:
        raise ValueError("--labels is empty: give comma-separated labels, e.g. --labels 'riding a bike,juggling'")
    return labels


def _cmd_predict(args: argparse.Namespace) -> int:
    from clipaction.models import load_backend
    from clipaction.pipeline import open_cache, predict_videos
    from clipaction.zeroshot import load_templates

    labels = _parse_labels(args.labels)
    templates = load_templates(args.prompts)
    sampler = _sampler_config(args)
    backend = load_backend(_model_config(args))
    predictions, failures = predict_videos(
        args.videos,
        labels,
        backend,
        sampler,
        templates=templates,
        cache=open_cache(args.cache_dir, backend),
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress and len(args.videos) > 1,
    )
    if args.json:
        payload = [
            {"video": p.video, "labels": [{"label": label, "probability": prob} for label, prob in p.labels]}
            for p in predictions
        ]
        print(json.dumps(payload, indent=2))
    else:
        for prediction in predictions:
            print(prediction.video)
            for label, probability in prediction.labels[: args.top]:
                print(f"  {probability:7.2%}  {label}")
    for failure in failures:
        _error(f"skipped {failure.path}: {failure.error}")
    return _failures_exit(failures)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{value:.2%}"


def _failures_exit(failures: Sequence) -> int:
    return EXIT_FAILURES if failures else EXIT_OK


def _error(message: str) -> None:
    print(f"clipaction: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # transformers' notices (e.g. about torchvision) are noise to users
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    from clipaction.data import DatasetError
    from clipaction.models.hf_clip import ModelLoadError

    try:
        return args.handler(args)
    except (DatasetError, ModelLoadError, ValueError, OSError) as error:
        _error(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted; finished videos are in the cache, run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
