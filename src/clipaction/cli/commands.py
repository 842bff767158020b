"""The commands: each turns parsed flags into configs, calls the library, prints a short
summary and returns its exit code (`clipaction.cli` lists them)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from clipaction.cli.parser import RUN_OVERRIDES, SKIP_KEYS
from clipaction.config import (
    DEFAULT_NUM_CLASSES,
    DatasetConfig,
    ModelConfig,
    PromptConfig,
    SamplerConfig,
    ZeroShotConfig,
)
from clipaction.errors import ConfigError, DataError

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 3

#: `run` overrides given as text that the config expects as numbers.
_INT_OVERRIDES = {"dataset.split", "model.batch_size", "workers", "engine.workers"}
_FLOAT_OVERRIDES = {"engine.gpus_per_worker", "engine.cpus_per_worker"}


def _number(dest: str, value: str, kind: type) -> int | float:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"must be a number; got {value!r}", setting=dest) from None


def engine_overrides(args: argparse.Namespace, items: Sequence | None = None) -> dict:
    """The engine flags (or the `items` of (flag, dest, help)) given to `run` or `benchmark`
    (text), as dotted config overrides."""
    from clipaction.cli.parser import ENGINE_OVERRIDES

    changes: dict = {}
    for _, dest, _ in ENGINE_OVERRIDES if items is None else items:
        value = getattr(args, dest, None)
        if value is not None:
            kind = int if dest in _INT_OVERRIDES else float if dest in _FLOAT_OVERRIDES else str
            changes[dest] = value if kind is str else _number(dest, value, kind)
    return changes


def _engine_config(args: argparse.Namespace):
    from clipaction.config import EngineConfig

    return EngineConfig(
        name=args.engine,
        ray_address=args.ray_address,
        workers=args.ray_workers,
        gpus_per_worker=args.ray_gpus_per_worker,
        cpus_per_worker=args.ray_cpus_per_worker,
    )


def _study_config(args: argparse.Namespace):
    from clipaction.config import StudyConfig
    from clipaction.config.toml import load_study_config, merge

    config = load_study_config(args.config) if args.config else StudyConfig()
    changes: dict = {}
    for _, dest, _ in RUN_OVERRIDES:
        value = getattr(args, dest)
        if value is None:
            continue
        if dest in _INT_OVERRIDES:
            value = _number(dest, value, int)
        elif dest in _FLOAT_OVERRIDES:
            value = _number(dest, value, float)
        elif dest == "dataset.classes":
            value = [name.strip() for name in value.split(",") if name.strip()]
        elif dest == "dataset.num_classes" and value != "all":
            value = int(value) if value.isdigit() else value
        changes[dest] = value
    for stage in args.skip:
        changes[f"{SKIP_KEYS[stage]}.enabled"] = False
    return merge(config, changes) if changes else config


def _cmd_run(args: argparse.Namespace) -> int:
    from clipaction.config.toml import study_config_to_toml

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
    print(
        f"zero-shot top-1 {_pct(zeroshot['top1'])}, top-5 {_pct(zeroshot['top5'])} on {results['dataset']['n_test']} test videos"
    )
    for variant in stages.get("temporal", {}).get("variants", []):
        print(f"  {variant['name']}: top-1 {_pct(variant['metrics']['top1'])}")
    for key, title in (("fewshot", "few-shot (projection)"), ("full_finetune", "full fine-tuning")):
        if key in stages:
            after = stages[key]["finetuned_metrics"]["top1"]
            print(f"{title}: top-1 {_pct(stages[key]['zeroshot_metrics']['top1'])} -> {_pct(after)}")
    if results["failures"]:
        print(f"{len(results['failures'])} video(s) missing or unreadable: see results.json")
    _print_partial(results.get("warnings") or [])
    print(f"report: {out / 'report.html'}")


def _print_partial(warnings: Sequence) -> None:
    if warnings:
        print(f"{len(warnings)} video(s) decoded only partly: see results.json")


def _cmd_report(args: argparse.Namespace) -> int:
    from clipaction.study import rebuild_report

    paths = rebuild_report(Path(args.run_dir))
    print(f"report: {paths['html']}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from clipaction.demo.run import run_demo

    if args.random or args.family != "clip":
        print(
            f"clipaction demo: synthetic videos and a random tiny {args.family} model; "
            "the numbers mean nothing about real actions."
        )
    else:
        print(
            "clipaction demo: a synthetic world of coloured shapes and a tiny CLIP trained on it; "
            "the numbers are about that world, not about real actions."
        )
    results = run_demo(
        args.out,
        progress=not args.no_progress,
        world=not args.random,
        model_cache=args.model_cache,
        family=args.family,
    )
    world = results.get("world")
    if world:
        print(
            f"zero-shot top-1 on compositions seen in training {_pct(world['seen_top1'])}, "
            f"never seen {_pct(world['unseen_top1'])} (chance {_pct(world['chance'])})"
        )
    _print_study_summary(results, Path(args.out).expanduser())
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    from clipaction.outputs import now_iso, to_jsonable, write_text_atomic
    from clipaction.speed.run import BenchConfig, machine_facts, run_bench

    try:
        batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    except ValueError:
        raise ConfigError(f"must be comma-separated numbers; got {args.batch_sizes!r}", setting="batch_sizes") from None
    config = BenchConfig(
        videos=args.videos,
        model=args.model,
        device=args.device,
        workers=args.workers,
        batch_sizes=batch_sizes,
        fast_precision=args.fast_precision,
    )
    if args.search:
        from clipaction.speed.search_bench import parse_sizes, run_search_bench

        results = run_search_bench(parse_sizes(args.search_sizes))
    elif args.families:
        from clipaction.speed.families import FAMILY_MODELS, bench_families

        families = (
            tuple(FAMILY_MODELS) if args.families == "all" else tuple(f.strip() for f in args.families.split(","))
        )
        unknown = [f for f in families if f not in FAMILY_MODELS]
        if unknown:
            raise ConfigError(
                f"must be 'all' or among {', '.join(FAMILY_MODELS)}; got {unknown[0]!r}", setting="families"
            )
        results = {"families": bench_families(families, config), "machine": machine_facts(), "created_at": now_iso()}
    else:
        results = run_bench(config)
    text = json.dumps(to_jsonable(results), indent=2)
    print(text)
    if "recommendation" in results:  # after the JSON, on stderr: stdout stays one JSON document
        print(results["recommendation"]["line"], file=sys.stderr)
    if args.out:
        write_text_atomic(Path(args.out), text + "\n")
    return EXIT_OK


def _cmd_benchmark(args: argparse.Namespace) -> int:
    import dataclasses

    from clipaction.benchmark.run import (
        BenchmarkConfig,
        benchmark_config_to_toml,
        load_benchmark_config,
        run_benchmark,
        with_protocols,
    )
    from clipaction.cli.parser import BENCHMARK_MODEL_OVERRIDES

    config = load_benchmark_config(args.config) if args.config else BenchmarkConfig()
    if args.out:
        config = dataclasses.replace(config, out=args.out)
    if args.models:
        config = dataclasses.replace(config, models=tuple(m.strip() for m in args.models.split(",") if m.strip()))
    names = [name.strip() for name in args.protocols.split(",") if name.strip()] if args.protocols is not None else None
    if names is not None or any(
        v is not None for v in (args.data_root, args.annotations, args.split_dir, args.name_style)
    ):
        config = with_protocols(
            config, names, root=args.data_root, annotations=args.annotations, split_dir=args.split_dir,
            name_style=args.name_style,
        )  # fmt: skip
    engine = {**engine_overrides(args), **engine_overrides(args, BENCHMARK_MODEL_OVERRIDES)}
    engine.update({key: getattr(args, key) for key in ("views", "crops") if getattr(args, key) is not None})
    if engine:
        from clipaction.config.toml import merge

        config = merge(config, engine)
    if args.print_config:
        print(benchmark_config_to_toml(config), end="")
        return EXIT_OK
    results = run_benchmark(config, progress=not args.no_progress)
    for run in results["models"]:
        prefix = f"{run['model']['name_or_path']}: " if len(results["models"]) > 1 else ""
        for dataset in run["datasets"]:
            top1, splits = dataset["summary"]["top1"], [str(s["split"]) for s in dataset["splits"]]
            print(
                f"{prefix}{dataset['name']}: top-1 {_pct(top1['mean'])} ± {_pct(top1['std'])} over splits {', '.join(splits)}"
            )
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
            raise ConfigError(
                f"must be a number or 'all'; got {args.num_classes!r}", setting="dataset.num_classes"
            ) from None
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
    frames = args.frames if args.frames is not None else SamplerConfig.frames
    return SamplerConfig(name=args.sampler, frames=frames, window=args.window, clips=args.clips)


def _check_frames_given(args: argparse.Namespace, backend) -> None:
    """A --frames the user gave that a clip model cannot take is an error (left out, the
    model's own count is used)."""
    from clipaction.features.clips import clip_length

    if args.frames is not None and backend.kind == "clip":
        clip_length(backend, _sampler_config(args))


def _model_config(args: argparse.Namespace) -> ModelConfig:
    return ModelConfig(
        name_or_path=args.model,
        revision=args.revision,
        device=args.device,
        batch_size=args.batch_size,
        precision=args.precision,
        runtime=args.runtime,
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
        engine=_engine_config(args),
    )


def _cmd_zeroshot(args: argparse.Namespace) -> int:
    from clipaction.classify.run import partial_videos, run_zeroshot, write_zeroshot_outputs
    from clipaction.models import load_backend
    from clipaction.outputs import check_output_folder

    config = _zeroshot_config(args)
    check_output_folder(args.out)  # a bad --out fails now, not after the encoding
    backend = None
    if args.frames is not None:  # a count a clip model cannot take fails before any work
        backend = load_backend(config.model)  # reads config files only: weights load when needed
        _check_frames_given(args, backend)
    run = run_zeroshot(config, backend=backend, progress=not args.no_progress)
    if run.failures and config.strict:
        error_line(
            f"{len(run.failures)} video(s) failed (--strict): first: {run.failures[0].path}: {run.failures[0].error}"
        )
        return EXIT_USAGE
    partial = partial_videos(run.extraction)
    if partial and config.strict:
        path, warning = next(iter(partial.items()))
        error_line(f"{len(partial)} video(s) decoded only partly (--strict): first: {path}: {warning}")
        return EXIT_USAGE
    paths = write_zeroshot_outputs(run, args.out)
    metrics = run.metrics
    print(
        f"{len(run.videos)} videos, {len(run.dataset.classes)} classes: top-1 {_pct(metrics['top1'])}, "
        f"top-5 {_pct(metrics['top5'])}, mean class accuracy {_pct(metrics['mean_class_accuracy'])}"
    )
    print(f"encoded {run.extraction.n_encoded}, from cache {run.extraction.n_cached}, failed {len(run.failures)}")
    _print_partial(list(partial))
    print(f"results: {paths['results']}")
    return _failures_exit(run.failures)


def _cmd_extract(args: argparse.Namespace) -> int:
    from clipaction.classify.run import open_cache
    from clipaction.data import load_dataset
    from clipaction.features.clips import sampler_for
    from clipaction.features.engines import extract
    from clipaction.features.shard import parse_shard, select_shard
    from clipaction.models import load_backend

    dataset = load_dataset(_dataset_config(args))
    backend = load_backend(_model_config(args))
    _check_frames_given(args, backend)
    sampler = sampler_for(backend, _sampler_config(args))
    engine = _engine_config(args)
    shard = parse_shard(args.shard) if args.shard else None
    cache = open_cache(args.cache_dir, backend)
    paths = [str(record.path) for record in dataset.records]
    if shard is not None:
        paths = select_shard(paths, shard.index, shard.count)
    extraction = extract(
        paths,
        backend,
        sampler,
        cache,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
        keep=False,
        engine=engine,
    )
    share = f" (shard {shard}: {len(paths)} of {len(dataset.records)})" if shard is not None else ""
    print(
        f"{len(dataset.records)} videos{share}: encoded {extraction.n_encoded}, from cache {extraction.n_cached}, "
        f"failed {len(extraction.failures)}, missing {len(dataset.missing)}; cache: {cache.dir}"
    )
    return _failures_exit(extraction.failures or dataset.missing)


def _parse_labels(spec: str) -> list[str]:
    """Comma-separated labels, or @FILE with one per line; checked by the library."""
    from clipaction.classify.run import check_labels

    if spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        if not path.is_file():
            raise DataError(f"label file not found: {path}", setting="labels")
        try:  # utf-8-sig: a byte-order mark would become part of the first label
            items = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as error:
            raise DataError(
                f"label file {path} is not UTF-8 text ({error.reason} at byte {error.start})", setting="labels"
            ) from None
    else:
        items = spec.split(",")
    return check_labels(items)


def _cmd_predict(args: argparse.Namespace) -> int:
    from clipaction.classify.run import open_cache, predict_videos
    from clipaction.classify.scoring import load_templates
    from clipaction.data.folder import video_files
    from clipaction.models import load_backend

    videos = video_files(args.videos)
    labels = _parse_labels(args.labels)
    templates = load_templates(args.prompts)
    sampler = _sampler_config(args)
    backend = load_backend(_model_config(args))
    _check_frames_given(args, backend)
    predictions, failures = predict_videos(
        videos,
        labels,
        backend,
        sampler,
        templates=templates,
        cache=open_cache(args.cache_dir, backend),
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress and len(videos) > 1,
    )
    if args.json:
        payload = [
            {
                "video": p.video,
                "score": p.score,  # "softmax": over the given labels; "sigmoid": independent
                "labels": [{"label": label, "probability": prob} for label, prob in p.labels],
            }
            for p in predictions
        ]
        print(json.dumps(payload, indent=2))
    else:
        for prediction in predictions:
            print(prediction.video)
            for label, probability in prediction.labels[: args.top]:
                print(f"  {probability:7.2%}  {label}")
    if failures:
        print(f"clipaction: skipped {len(failures)} of {len(videos)} video(s):", file=sys.stderr)
        for failure in failures:
            print(f"  {failure.path}: {failure.error}", file=sys.stderr)
    return _failures_exit(failures)


def _cmd_timeline(args: argparse.Namespace) -> int:
    from clipaction.data.folder import video_files
    from clipaction.outputs import check_output_folder
    from clipaction.timeline import TimelineConfig, label_videos
    from clipaction.timeline.tiou import parse_tiou

    videos = video_files(args.videos)
    if args.shard:
        from clipaction.features.shard import parse_shard, select_shard

        shard = parse_shard(args.shard)
        videos = select_shard(videos, shard.index, shard.count)
    config = TimelineConfig(
        labels=tuple(_parse_labels(args.labels)),
        fps=args.fps,
        window=args.window,
        stride=args.stride,
        threshold=args.threshold,
        min_segment=args.min_segment,
        background=args.background,
        ground_truth=args.ground_truth,
        tiou_thresholds=parse_tiou(args.tiou) if args.tiou else None,
        templates=args.prompts,
        model=_model_config(args),
        cache_dir=args.cache_dir,
        workers=args.workers,
    )
    check_output_folder(args.out)
    results = label_videos(videos, config, args.out, progress=not args.no_progress)
    for video in results["videos"]:
        per_label = ", ".join(f"{label} {seconds:.0f} s" for label, seconds in video["seconds_per_label"].items())
        print(
            f"{video['video']}: {video['duration']:.0f} s, {video['n_segments']} segment(s){': ' + per_label if per_label else ''}"
        )
    evaluation = results.get("evaluation")
    if evaluation:
        _print_evaluation(evaluation)
    if results["warnings"]:
        print(f"{len(results['warnings'])} warning(s) (skipped stretches): see results.json")
    for failure in results["failures"]:
        print(f"clipaction: skipped {failure['path']}: {failure['error']}", file=sys.stderr)
    print(f"results: {Path(args.out).expanduser() / 'results.json'}")
    return _failures_exit(results["failures"])


def _print_evaluation(evaluation: dict) -> None:
    maps = ", ".join(f"{t} {_pct(v)}" for t, v in evaluation["map"].items())
    print(
        f"detection mAP ({evaluation['benchmark']}) at tIoU {maps}; average over {evaluation['tiou']}: {_pct(evaluation['average_map'])}"
    )
    if evaluation["benchmark"] == "thumos14":
        print("  computed with ActivityNet's algorithm, not THUMOS14's MATLAB kit (see 'protocol' in results.json)")
    renamed = {video: gt for video, gt in evaluation["id_matching"].items() if video != gt}
    if renamed:
        shown = ", ".join(f"{video} -> {gt}" for video, gt in list(renamed.items())[:3])
        more = f" and {len(renamed) - 3} more" if len(renamed) > 3 else ""
        print(f"  segments.json names {len(renamed)} video(s) by their ground-truth ids: {shown}{more}")
    if evaluation["labels_not_in_ground_truth"]:
        unknown = ", ".join(evaluation["labels_not_in_ground_truth"])
        print(
            f"  warning: label(s) matching no ground-truth class, left out of the mAP (ActivityNet's evaluator stops on them): {unknown}"
        )


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{value:.2%}"


def _cmd_models(args: argparse.Namespace) -> int:
    from clipaction.models import list_backends
    from clipaction.models.catalog import catalog_json, catalog_text

    if args.check:
        from clipaction.models.check import check_model, check_text

        report = check_model(args.check)
        print(json.dumps(report, indent=2) if args.json else check_text(report))
        return EXIT_OK
    families = list_backends()
    print(json.dumps(catalog_json(families), indent=2) if args.json else catalog_text(families))
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from clipaction.serve import ServeConfig, start_page
    from clipaction.serve.auth import gather_accounts

    config = ServeConfig(
        host=args.host,
        port=args.port,
        videos_dir=args.videos,
        max_upload_mb=args.max_upload_mb,
        model=_model_config(args),
        sampler=_sampler_config(args),
        templates=args.prompts,
        cache_dir=args.cache_dir,
        workers=args.workers,
        index=args.index,
        auth=gather_accounts(args.auth or (), args.auth_file),
        no_auth=args.no_auth,
    )
    config.check_door()  # before the model loads or a port is bound
    import signal
    import threading

    # Before the server starts: a SIGTERM at any moment, start-up included, stops it cleanly.
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        page = start_page(config)
        print(f"clipaction serve: open {page.url} (Ctrl-C stops the server and deletes its files)", flush=True)
        page.wait(stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def _failures_exit(failures: Sequence) -> int:
    return EXIT_FAILURES if failures else EXIT_OK


def error_line(message: str) -> None:
    print(f"clipaction: error: {message}", file=sys.stderr)


def _cmd_index(args: argparse.Namespace) -> int:
    from clipaction.lookup.build import build_index
    from clipaction.lookup.store import MANIFEST, read_manifest

    built = Path(args.index).expanduser()
    name = args.model
    if name is None and (built / MANIFEST).is_file():
        name = read_manifest(built)["model"].get("name_or_path")
    model = ModelConfig(
        name_or_path=name or ModelConfig().name_or_path, revision=args.revision, device=args.device,
        batch_size=args.batch_size, precision=args.precision, runtime=args.runtime,
    )  # fmt: skip
    shard = None
    if args.shard:
        from clipaction.features.shard import parse_shard

        shard = parse_shard(args.shard)
    report = build_index(
        args.videos, args.index, model=model, fps=args.fps, window=args.window, stride=args.stride,
        cache_dir=args.cache_dir, workers=args.workers, shard=shard,
        engine=_engine_config(args) if args.engine != "local" else None, progress=not args.no_progress,
    )  # fmt: skip
    where = f"{report.index} (shard {report.shard})" if report.shard else str(report.index)
    print(
        f"{len(report.added)} new, {len(report.replaced)} changed, {report.unchanged} unchanged, "
        f"{len(report.dropped)} dropped, {len(report.skipped)} skipped; {report.rows} windows in {where}"
    )
    for path, reason in report.skipped.items():
        print(f"clipaction: skipped {path}: {reason}", file=sys.stderr)
    return _failures_exit(list(report.skipped))


def _cmd_search(args: argparse.Namespace) -> int:
    import csv

    from clipaction.lookup.query import search_index

    templates: Sequence[str] = ("{}",)
    if args.prompts:
        from clipaction.classify.scoring import load_templates

        templates = load_templates(args.prompts)
    model = None
    if args.model or args.device != "auto":
        from clipaction.lookup.store import read_manifest
        from clipaction.models import load_backend

        known = read_manifest(args.index)["model"].get("config") or {}
        name = args.model or known.get("name_or_path") or ModelConfig().name_or_path
        model = load_backend(ModelConfig(**{**known, "name_or_path": name, "device": args.device}))
    moments = search_index(
        args.index, args.query, like=args.like, top=args.top, where=args.where, model=model, templates=templates
    )
    rows = [moment.as_dict() for moment in moments]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.csv:
        fields = ["video", "start", "end", "score"] + (["probability"] if rows and "probability" in rows[0] else [])
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif not rows:
        print("no moments found")
    else:
        for row in rows:
            chance = f"  p {row['probability']:.3f}" if "probability" in row else ""
            print(f"{row['score']:.4f}{chance}  {row['start']:8.1f} - {row['end']:8.1f} s  {row['video']}")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "zeroshot": _cmd_zeroshot,
    "extract": _cmd_extract,
    "predict": _cmd_predict,
    "run": _cmd_run,
    "report": _cmd_report,
    "demo": _cmd_demo,
    "download": _cmd_download,
    "benchmark": _cmd_benchmark,
    "bench": _cmd_bench,
    "models": _cmd_models,
    "timeline": _cmd_timeline,
    "serve": _cmd_serve,
    "index": _cmd_index,
    "search": _cmd_search,
}
