"""The command line's flags: argument parsing only, no work. `build_parser()` gives each
command's parser; `args.command` names the command for `clipaction.cli.commands.COMMANDS`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, get_args

from clipaction import __version__
from clipaction.config import (
    BenchConfig,
    Device,
    NameStyle,
    Precision,
    Runtime,
    Subset,
    ZeroShotConfig,
)

if TYPE_CHECKING:
    from clipaction.timeline.config import TimelineConfig

# Every default below comes from these (one source of truth); tests/test_cli_defaults.py walks
# every flag and compares. The one deliberate difference: --num-classes has no flag default
# because it depends on --dataset (ucf101: the study's DatasetConfig.num_classes; others: all),
# and --frames, whose default depends on the model (a clip model's own count; else SamplerConfig's).
_ZEROSHOT = ZeroShotConfig()
_DATASET, _SAMPLER, _MODEL, _PROMPTS = _ZEROSHOT.dataset, _ZEROSHOT.sampler, _ZEROSHOT.model, _ZEROSHOT.prompts

#: Config settings -> the flag that sets them, for error messages and the defaults test.
SETTING_FLAGS = {
    "dataset.name": "--dataset",
    "dataset.root": "--data-root",
    "dataset.splits_dir": "--splits-dir",
    "dataset.manifest": "--manifest",
    "dataset.split": "--split",
    "dataset.subset": "--subset",
    "dataset.classes": "--classes",
    "dataset.num_classes": "--num-classes",
    "sampler.name": "--sampler",
    "sampler.frames": "--frames",
    "sampler.window": "--window",
    "sampler.clips": "--clips",
    "model.name_or_path": "--model",
    "model.revision": "--revision",
    "model.device": "--device",
    "model.batch_size": "--batch-size",
    "model.precision": "--precision",
    "model.runtime": "--runtime",
    "prompts.templates": "--prompts",
    "prompts.name_style": "--name-style",
    "prompts.label_map": "--label-map",
    "cache_dir": "--cache-dir",
    "workers": "--workers",
    "out": "--out",
    "strict": "--strict",
    "labels": "--labels",
    "families": "--families",
    "batch_sizes": "--batch-sizes",
    "run_dir": "RUN_DIR",
    "timeline.fps": "--fps",
    "timeline.window": "--window",
    "timeline.stride": "--stride",
    "timeline.threshold": "--threshold",
    "timeline.min_segment": "--min-segment",
    "timeline.background": "--background",
    "timeline.ground_truth": "--ground-truth",
    "timeline.tiou_thresholds": "--tiou",
    "engine.name": "--engine",
    "engine.ray_address": "--ray-address",
    "engine.workers": "--ray-workers",
    "engine.gpus_per_worker": "--ray-gpus-per-worker",
    "engine.cpus_per_worker": "--ray-cpus-per-worker",
    "shard": "--shard",
    "videos_dir": "--videos",
    "port": "--port",
    "max_upload_mb": "--max-upload-mb",
    "auth": "--auth",
    "auth_file": "--auth-file",
    "no_auth": "--no-auth",
    "protocols": "--protocols",
    "annotations": "--annotations",
    "split_dir": "--split-dir",
    "views": "--views",
    "crops": "--crops",
    "index": "--index",
    "top": "--top",
    "like": "--like",
    "query": "QUERY",
    "search_sizes": "--search-sizes",
}


def flag_for(command: str, setting: str) -> str:
    """The flag of `command` that sets `setting`, or the setting itself (a TOML key) when the
    command has no such flag (e.g. `run`'s stage settings, which come from --config)."""
    if command == "models" and setting == "model.name_or_path":
        return "--check"
    flag = SETTING_FLAGS.get(setting)
    allowed = _BENCHMARK_FLAGS if command == "benchmark" else _RUN_FLAGS
    if flag is None or (command in ("run", "benchmark") and flag not in allowed):
        return setting
    return flag


#: `run` flags -> dotted study-config paths (values are parsed by the config's own types).
RUN_OVERRIDES = [
    ("--data-root", "dataset.root", "UCF-101 folder with one folder per class"),
    ("--splits-dir", "dataset.splits_dir", "folder with classInd.txt and the split lists"),
    ("--dataset", "dataset.name", "ucf101, hmdb51 or folder"),
    ("--split", "dataset.split", "1, 2 or 3"),
    ("--classes", "dataset.classes", "comma-separated class names"),
    ("--num-classes", "dataset.num_classes", "first N classes, or 'all'"),
    ("--model", "model.name_or_path", "hub id or local directory"),
    ("--device", "model.device", "auto, cpu or cuda"),
    ("--batch-size", "model.batch_size", "frames per model batch"),
    ("--precision", "model.precision", "fp32, int8 or bf16 (faster CPU image encoders) or fp16 (GPUs)"),
    ("--runtime", "model.runtime", "torch or openvino (the CPU image encoder compiled by OpenVINO)"),
    ("--prompts", "prompts.templates", "seed, clip or a template file"),
    ("--name-style", "prompts.name_style", "raw or spaced"),
    ("--cache-dir", "cache_dir", "embedding cache"),
    ("--workers", "workers", "decoding threads"),
    ("--out", "out", "output directory"),
    ("--engine", "engine.name", "local or ray: where extraction runs"),
    ("--ray-address", "engine.ray_address", "Ray cluster address (else $RAY_ADDRESS, else a local instance)"),
    (
        "--ray-workers",
        "engine.workers",
        "model actors; unset: one per GPU asked for, else one per cpus-per-worker + 1 CPUs",
    ),
    ("--ray-gpus-per-worker", "engine.gpus_per_worker", "GPUs per model actor"),
    ("--ray-cpus-per-worker", "engine.cpus_per_worker", "CPUs per model actor (also its torch threads)"),
]
#: Flags that set the extraction engine (`EngineConfig`), for the commands with a config file.
ENGINE_OVERRIDES = [item for item in RUN_OVERRIDES if item[1].startswith("engine.")]
_RUN_FLAGS = {flag for flag, _, _ in RUN_OVERRIDES} | {"RUN_DIR", "--out"}
#: `benchmark` flags for its model and compute: the same settings as `zeroshot`'s (and `run`'s)
BENCHMARK_MODEL_OVERRIDES = [
    item for item in RUN_OVERRIDES if item[0] in ("--device", "--batch-size", "--precision", "--runtime", "--cache-dir")
]
_BENCHMARK_FLAGS = _RUN_FLAGS | {"--protocols", "--annotations", "--split-dir", "--views", "--crops"}
SKIP_KEYS = {
    "temporal": "temporal",
    "fewshot": "fewshot",
    "full-finetune": "full_finetune",
    "adapt": "adapt",
    "embeddings": "embeddings",
    "ablations": "ablations",
}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _add_dataset_args(parser: argparse.ArgumentParser) -> None:
    from clipaction.data import list_datasets

    group = parser.add_argument_group("dataset")
    group.add_argument(
        "--dataset",
        default=_DATASET.name,
        choices=list_datasets(),
        help="ucf101, hmdb51, kinetics (an annotation CSV as --manifest) or folder (your own "
        "<root>/<label>/<video> tree or a CSV manifest)",
    )
    group.add_argument(
        "--data-root", help="UCF101: the UCF-101 folder with one folder per class; folder: the tree's root"
    )
    group.add_argument(
        "--splits-dir",
        help="UCF101: the folder with classInd.txt, trainlist0N.txt, testlist0N.txt; "
        "HMDB51: the folder with <class>_test_split<N>.txt",
    )
    group.add_argument(
        "--manifest",
        help="folder dataset: a CSV of path,label[,split] instead of a tree; kinetics: the official annotation "
        "CSV (label,youtube_id,time_start,time_end,split)",
    )
    group.add_argument("--split", type=int, default=_DATASET.split, choices=(1, 2, 3))
    group.add_argument("--subset", default=_DATASET.subset, choices=get_args(Subset))
    selection = group.add_mutually_exclusive_group()
    selection.add_argument("--classes", help="comma-separated class names to evaluate")
    selection.add_argument(
        "--num-classes",
        help="the first N classes of the class list (classInd.txt order), or 'all' "
        f"(default: the study's {_DATASET.num_classes} for ucf101, all for hmdb51 and folder)",
    )


def _add_sampler_args(parser: argparse.ArgumentParser) -> None:
    from clipaction.video.sampling import list_samplers, sampler_spec

    group = parser.add_argument_group("frames")
    samplers = "; ".join(f"{name}: {sampler_spec(name).summary}" for name in list_samplers())
    group.add_argument("--sampler", default=_SAMPLER.name, choices=list_samplers(), help=samplers.replace("%", "%%"))
    group.add_argument(
        "--frames",
        type=int,
        help=f"frames per video (default {_SAMPLER.frames}; for a clip model, e.g. X-CLIP, the count it was "
        "trained with, and a count it cannot take is an error)",
    )
    group.add_argument("--window", type=float, default=_SAMPLER.window, help="clip window in seconds")
    group.add_argument(
        "--clips",
        type=int,
        default=_SAMPLER.clips,
        help="multi-clip: clips spread over the video (1/4, 1/2, 3/4 for 3)",
    )


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=_MODEL.name_or_path,
        help="hub id or a local directory saved with save_pretrained; the family comes from its config.json",
    )
    group.add_argument("--revision", help="hub revision (branch, tag or commit)")
    group.add_argument("--device", default=_MODEL.device, choices=get_args(Device))
    group.add_argument("--batch-size", type=int, default=_MODEL.batch_size, help="frames per model batch")
    group.add_argument(
        "--precision",
        default=_MODEL.precision,
        choices=get_args(Precision),
        help="int8: quantized image encoder, 2-3x faster on a CPU (cosine > 0.99 to fp32); bf16: bfloat16 "
        "image encoder for CPUs with AMX or AVX512-BF16 (cosine > 0.999); fp16: for GPUs",
    )
    group.add_argument(
        "--runtime",
        default=_MODEL.runtime,
        choices=get_args(Runtime),
        help='openvino: the image encoder compiled for the CPU (pip install -e ".[openvino]"); with int8, '
        "quantized by NNCF calibrated on the first frames of your videos",
    )
    group.add_argument("--workers", type=int, default=_ZEROSHOT.workers, help="decoding threads")
    group.add_argument("--cache-dir", help="embedding cache (default ~/.cache/clipaction or $CLIPACTION_CACHE)")
    group.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_prompt_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("prompts")
    group.add_argument(
        "--prompts",
        default=_PROMPTS.templates,
        help="seed, clip (CLIP's 48 UCF101 templates) or a file, one template per line with {}",
    )
    group.add_argument(
        "--name-style", default=_PROMPTS.name_style, choices=get_args(NameStyle), help="how class names become text"
    )
    group.add_argument("--label-map", help="CSV (label,text) or JSON {label: text} overriding class texts")


def _add_engine_args(parser: argparse.ArgumentParser, shard: bool = False) -> None:
    from clipaction.config import EngineName

    engine = _ZEROSHOT.engine
    group = parser.add_argument_group("engine (where extraction runs; every engine writes the same cache)")
    group.add_argument(
        "--engine",
        default=engine.name,
        choices=get_args(EngineName),
        help='ray: decoding as Ray tasks and the model in Ray actors, on a cluster (pip install -e ".[ray]"); '
        "the cache folder must be on storage every node sees",
    )
    group.add_argument(
        "--ray-address",
        default=engine.ray_address,
        help="the cluster to join (default $RAY_ADDRESS, else a local Ray instance)",
    )
    group.add_argument(
        "--ray-workers",
        type=int,
        default=engine.workers,
        help="model actors; unset: one per GPU asked for, else one per cpus-per-worker + 1 CPUs",
    )
    group.add_argument("--ray-gpus-per-worker", type=float, default=engine.gpus_per_worker, help="GPUs per model actor")
    group.add_argument(
        "--ray-cpus-per-worker",
        type=float,
        default=engine.cpus_per_worker,
        help="CPUs per model actor (also its torch threads)",
    )
    if shard:
        group.add_argument(
            "--shard",
            metavar="I/N",
            help="only the I-th of N shares of the videos, chosen by content, e.g. 2/8 in a SLURM array; "
            "N shards into one cache folder give the cache one run gives",
        )


def build_parser() -> argparse.ArgumentParser:
    """The `clipaction` parser: global flags, then one subcommand per `_add_*` below (the order
    of `clipaction --help`)."""
    parser = argparse.ArgumentParser(
        prog="clipaction",
        description="Zero-shot human action recognition in videos with CLIP and its successors (see `clipaction models`).",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"clipaction {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_zeroshot,
        _add_extract,
        _add_predict,
        _add_run,
        _add_report,
        _add_demo,
        _add_download,
        _add_benchmark,
        _add_bench,
        _add_models,
        _add_serve,
        _add_timeline,
        _add_index,
        _add_search,
    ):
        add(commands)
    return parser


def _add_no_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_overrides(group: argparse._ArgumentGroup, overrides: list[tuple[str, str, str]]) -> None:
    """One flag per (flag, dotted config path, help): default None, so only a flag given replaces
    the config's value."""
    for flag, dest, help_text in overrides:
        metavar = flag.lstrip("-").replace("-", "_").upper()
        group.add_argument(flag, dest=dest, default=None, metavar=metavar, help=help_text)


def _add_zeroshot(commands: argparse._SubParsersAction) -> None:
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
    _add_engine_args(zeroshot)
    zeroshot.add_argument("--out", required=True, help="output directory")
    zeroshot.add_argument(
        "--strict", action="store_true", help="exit 2 before writing results if any video failed or decoded only partly"
    )


def _add_extract(commands: argparse._SubParsersAction) -> None:
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
    _add_engine_args(extract, shard=True)


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="rank your own labels for your own videos",
        description="Label arbitrary videos with arbitrary labels, e.g.\n"
        '  clipaction predict clip.mp4 --labels "juggling a soccer ball,riding a bike"',
        formatter_class=_Formatter,
    )
    predict.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, or folders to search for videos")
    predict.add_argument("--labels", required=True, help="comma-separated labels, or @FILE with one label per line")
    predict.add_argument("--prompts", default=_PROMPTS.templates, help="seed, clip or a template file")
    predict.add_argument("--top", type=int, default=5, help="labels to print per video")
    predict.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list, one object per video, with each label's probability and whether "
        "the probabilities are a softmax over the labels or independent sigmoids",
    )
    _add_sampler_args(predict)
    _add_model_args(predict)


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run",
        help="run the whole study and write its report",
        description="Run the study end to end: zero-shot evaluation, single frame vs clip, few-shot "
        "fine-tuning of the projection, the full fine-tuning ablation, few-shot methods compared, "
        "embedding pictures, prompt and temporal ablations, and report.md/report.html/results.json "
        "in --out. Settings come from the built-in defaults "
        "(see --print-config), then --config FILE, then the flags below.",
        formatter_class=_Formatter,
    )
    run.add_argument("--config", help="a TOML study file (write one with --print-config)")
    run.add_argument("--print-config", action="store_true", help="print the effective settings as TOML and exit")
    overrides = run.add_argument_group("overrides (each replaces the value from the defaults/config file)")
    _add_overrides(overrides, RUN_OVERRIDES)
    overrides.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=tuple(SKIP_KEYS),
        help="switch a stage off (repeatable)",
    )
    _add_no_progress(run)


def _add_report(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report",
        help="rebuild report.md/report.html from a run's results.json",
        description="Rebuild the report of a finished run from its results.json, without recomputing anything.",
        formatter_class=_Formatter,
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of a run")


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="the whole study offline on a synthetic action world and a tiny CLIP trained on it",
        description="Generate a synthetic world of coloured shapes doing motions (a class is a sentence, "
        "e.g. 'a red square moving up'), train a tiny CLIP on it once (cached; some colour-shape pairs "
        "held out), and run the whole study on it: zero-shot on seen and never-seen compositions, single "
        "frame vs clip, few-shot and full fine-tuning, embeddings (about a minute or two on two CPU cores, "
        "no network). The numbers are about that synthetic world, not about real actions. --random runs the "
        "older demo: UCF101-like videos and a random tiny CLIP, whose accuracies are chance.",
        formatter_class=_Formatter,
    )
    demo.add_argument("--out", default="runs/demo", help="output directory")
    demo.add_argument(
        "--family",
        default="clip",
        help="the model family (see `clipaction models`): clip runs the trained world demo; any other family runs the "
        "random-model demo with a tiny random model of that family (training each family on the "
        "world would take too long here)",
    )
    demo.add_argument(
        "--random",
        action="store_true",
        help="UCF101-like videos and a random tiny CLIP instead (fast; every accuracy is chance)",
    )
    demo.add_argument(
        "--model-cache",
        metavar="DIR",
        help="where the trained world model is kept between runs (default <cache>/world-models, "
        "<cache> being ~/.cache/clipaction or $CLIPACTION_CACHE)",
    )
    _add_no_progress(demo)


def _add_download(commands: argparse._SubParsersAction) -> None:
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
    _add_no_progress(download)


def _add_benchmark(commands: argparse._SubParsersAction) -> None:
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
    benchmark.add_argument(
        "--models",
        help="comma-separated hub ids or folders to compare on the same splits, frames and prompts "
        "(replaces the config's models; each may be of any family)",
    )
    _add_benchmark_protocol_args(benchmark)
    _add_overrides(benchmark.add_argument_group("engine (each replaces the config's)"), ENGINE_OVERRIDES)
    _add_no_progress(benchmark)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure extraction speed on generated videos",
        description="Generate UCF101-like videos and a full-size random ViT-B/32, then measure each "
        "path (torch fp32, the fast precision, bf16 where the CPU has it, OpenVINO when installed): "
        "end-to-end extraction and the image encoder alone in interleaved rounds (their ratio is the "
        "efficiency), the encoders side by side (speed-ups over fp32), cosines to fp32 and peak memory; "
        "also decoding alone, text encoding, the timeline's real-time factor and memory, and the Ray "
        "engine when installed. Prints one JSON object, then the fastest path here on stderr.",
        formatter_class=_Formatter,
    )
    bench_defaults = BenchConfig()
    bench.add_argument("--videos", type=int, default=bench_defaults.videos, help="number of generated videos")
    bench.add_argument("--model", help="a saved model directory instead of a random ViT-B/32")
    bench.add_argument("--device", default=bench_defaults.device, choices=get_args(Device))
    bench.add_argument(
        "--fast-precision",
        default=bench_defaults.fast_precision,
        choices=("auto", "int8", "fp16", "bf16"),
        help="the precision of the fast row, against fp32 (auto: int8 on a CPU, fp16 on a GPU)",
    )
    bench.add_argument("--workers", type=int, default=bench_defaults.workers, help="decoding threads")
    bench.add_argument(
        "--batch-sizes",
        default=",".join(map(str, bench_defaults.batch_sizes)),
        help="batch sizes to try for the image encoder",
    )
    bench.add_argument("--out", help="also write the JSON to this file")
    bench.add_argument(
        "--search",
        action="store_true",
        help="instead: footage search at scale on generated clustered vectors (latency p50/p99, recall@10, "
        "bytes per window, index build time; needs the search extra)",
    )
    bench.add_argument(
        "--search-sizes", default="100000,1000000", metavar="N1,N2", help="windows per table for --search"
    )
    bench.add_argument(
        "--families",
        metavar="all|F1,F2",
        help="instead: every model family (or those listed: clip, metaclip_2, siglip2, xclip, videoprism) at "
        "its real image-tower size, fp32 and int8, one row each (several minutes)",
    )


def _add_models(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser(
        "models",
        help="list the model families, their checkpoints and published zero-shot results",
        description="List the supported model families (any of them goes to --model as a hub id or a "
        "saved folder; the family is read from its config.json): recommended hub ids, frames per "
        "video, input size, how scores become probabilities, and the published zero-shot UCF101/HMDB51 "
        "top-1 with its source ('not published' where none is).",
        formatter_class=_Formatter,
    )
    models.add_argument("--json", action="store_true", help="print the catalog (or the --check report) as JSON")
    models.add_argument(
        "--check",
        metavar="DIR_OR_ID",
        help="instead: what clipaction will do with this model (family, frames, processor classes, input size, "
        "score kind, precisions and runtimes), read from its config and processor files without loading the "
        "weights; exit 2 with the reason when it cannot run it",
    )


def _add_serve(commands: argparse._SubParsersAction) -> None:
    from clipaction.serve.settings import ServeConfig

    serve_defaults = ServeConfig()
    serve = commands.add_parser(
        "serve",
        help="a web page: drop a video, type labels, see the ranking",
        description='Serve a web page (Gradio; needs pip install -e ".[ui]") where a video, uploaded or '
        "picked from --videos DIR, and your labels give the ranked labels, the video with its labels "
        "as subtitles and files to download. The model loads once; frame features are cached, so new "
        "labels on the same video are fast. Listens on this machine only unless --host says otherwise; on "
        "any other address it needs a login (--auth, --auth-file) or an explicit --no-auth. With --index IDX "
        "the page has a Search tab: a sentence finds the moments of the indexed videos, a click plays one.",
        formatter_class=_Formatter,
    )
    serve.add_argument(
        "--host",
        default=serve_defaults.host,
        help="address to listen on; any other than 127.0.0.1 needs --auth/--auth-file (or --no-auth)",
    )
    serve.add_argument(
        "--auth",
        action="append",
        metavar="USER:PASSWORD",
        help="an account for the page's login (repeatable); every request but the login needs one",
    )
    serve.add_argument(
        "--auth-file",
        metavar="FILE",
        help="accounts for the login, one user:password a line (blank lines and # comments ignored)",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="serve on a --host beyond this machine without a login (anyone who reaches the port may use it)",
    )
    serve.add_argument(
        "--index",
        metavar="IDX",
        help="a search index (clipaction index): adds a Search tab that plays only the indexed videos",
    )
    serve.add_argument("--port", type=int, default=serve_defaults.port, help="port to listen on")
    serve.add_argument(
        "--videos", metavar="DIR", help="a folder whose videos the page offers (the page cannot leave it)"
    )
    serve.add_argument(
        "--max-upload-mb", type=float, default=serve_defaults.max_upload_mb, help="largest upload accepted, in MB"
    )
    serve.add_argument("--prompts", default=serve_defaults.templates, help="seed, clip or a template file")
    _add_sampler_args(serve)
    _add_model_args(serve)


def _add_benchmark_protocol_args(benchmark: argparse.ArgumentParser) -> None:
    from clipaction.config import CropCount

    benchmark.add_argument(
        "--protocols",
        metavar="P1,P2",
        help="which to run, comma-separated: ucf101, hmdb51 (their folders from the config), k600-zs "
        "(Kinetics-600 zero-shot: 3 splits of 160 of the classes new in K600, mean ± std), k400, k700 "
        "(every class of the annotation file); default: the config's datasets and protocols",
    )
    kinetics = benchmark.add_argument_group("Kinetics protocols (each replaces the config's)")
    kinetics.add_argument(
        "--data-root",
        help="the folder of the clips, <youtube_id>_<start:06d>_<end:06d>.mp4, flat or one folder per label",
    )
    kinetics.add_argument(
        "--annotations",
        metavar="CSV",
        help="the official annotation file (label,youtube_id,time_start,time_end,split), e.g. Kinetics-600's validate.csv",
    )
    kinetics.add_argument(
        "--split-dir", help="k600-zs: a folder of split1.csv-split3.csv (id,name) instead of the packaged class splits"
    )
    views = benchmark.add_argument_group("class names, views and crops (each replaces the config's)")
    views.add_argument(
        "--name-style",
        choices=get_args(NameStyle),
        help="for every dataset and protocol (config default: spaced for ucf101/hmdb51, raw for Kinetics); "
        "plain drops a parenthesised disambiguation: 'backflip (human)' -> 'backflip'",
    )
    views.add_argument(
        "--views", type=int, help="temporal views: N clips (the multi-clip sampler), each scored (config default 1)"
    )
    views.add_argument(
        "--crops",
        type=int,
        choices=get_args(CropCount),
        help="3: the left, centre and right squares of every frame, each scored; probabilities are averaged "
        f"over views x crops (config default {_ZEROSHOT.crops})",
    )
    model = benchmark.add_argument_group("model and compute, as for zeroshot (each replaces the config's)")
    for flag, dest, help_text in BENCHMARK_MODEL_OVERRIDES:
        value = getattr(_MODEL, dest.split(".", 1)[1]) if dest.startswith("model.") else getattr(_ZEROSHOT, dest)
        default = value if value is not None else "~/.cache/clipaction or $CLIPACTION_CACHE"
        model.add_argument(
            flag, dest=dest, default=None, metavar=flag.lstrip("-").replace("-", "_").upper(),
            help=f"{help_text} (config default {default})",
        )  # fmt: skip


def _add_timeline(commands: argparse._SubParsersAction) -> None:
    from clipaction.timeline.config import TimelineConfig

    defaults = TimelineConfig()
    timeline = commands.add_parser(
        "timeline",
        help="label long videos over time: segments, subtitles, a figure, mAP",
        description="Label untrimmed videos over time: windows of --window seconds every --stride "
        "seconds are scored against your labels from frames sampled at --fps; neighbouring windows "
        "with the same top label merge into segments. Per video, in OUT/<video>/: windows.csv, "
        "segments.csv, segments.json (ActivityNet format), <video>.vtt (subtitles), timeline.png; "
        "OUT/results.json holds the settings, a summary per video, warnings and, with "
        "--ground-truth, the detection mAP (ActivityNet's algorithm, at the benchmark's tIoU "
        "thresholds), segments.json then naming videos by their ground-truth ids. Frame features "
        "are cached by time, so a rerun with other labels, window or threshold encodes no frame. e.g.\n"
        "  clipaction timeline match.mp4 --labels @labels.txt --out runs/match",
        formatter_class=_Formatter,
    )
    timeline.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, or folders to search for videos")
    timeline.add_argument("--labels", required=True, help="comma-separated labels, or @FILE with one label per line")
    timeline.add_argument("--out", required=True, help="output directory")
    _add_timeline_args(timeline, defaults)
    timeline.add_argument("--prompts", default=defaults.templates, help="seed, clip or a template file")
    _add_model_args(timeline)
    timeline.add_argument(
        "--shard",
        metavar="I/N",
        help="only the I-th of N shares of the videos, chosen by content, e.g. 2/8 in a SLURM array "
        "(give each shard its own --out: results.json and the mAP cover the shard's videos)",
    )


def _add_timeline_args(timeline: argparse.ArgumentParser, defaults: TimelineConfig) -> None:
    """The "timeline" group: sampling, windows, segments and the mAP (defaults: `TimelineConfig`)."""
    group = timeline.add_argument_group("timeline")
    group.add_argument("--fps", type=float, default=defaults.fps, help="frames sampled per second")
    group.add_argument(
        "--window",
        type=float,
        default=defaults.window,
        help="seconds scored together (frame models: mean of the frames; clip models: one clip)",
    )
    group.add_argument("--stride", type=float, default=defaults.stride, help="seconds between window starts")
    group.add_argument(
        "--threshold",
        type=float,
        default=defaults.threshold,
        help="a window's top label counts only with at least this probability",
    )
    group.add_argument(
        "--min-segment", type=float, default=defaults.min_segment, help="drop segments shorter than this (seconds)"
    )
    group.add_argument(
        "--background",
        default=defaults.background,
        metavar="LABEL",
        help="a label meaning 'none of these' (e.g. 'a person standing still'): scored, never a segment",
    )
    group.add_argument(
        "--ground-truth",
        default=defaults.ground_truth,
        metavar="FILE",
        help="ActivityNet JSON, or THUMOS14 annotation .txt files (a file or their folder): report detection mAP",
    )
    group.add_argument(
        "--tiou",
        default=defaults.tiou_thresholds,
        metavar="THRESHOLDS",
        help="tIoU thresholds of the mAP: START:STEP:STOP or a comma list (default: the benchmark's own, "
        "ActivityNet 0.5:0.05:0.95, THUMOS14 0.3:0.1:0.7; a THUMOS14 JSON is known by its video ids)",
    )


def _add_index(commands: argparse._SubParsersAction) -> None:
    from clipaction.lookup.config import IndexConfig

    defaults = IndexConfig()
    index = commands.add_parser(
        "index",
        help="index a footage library for text search (clipaction search)",
        description="Sample every video by time as `timeline` does (windows of --window seconds every "
        "--stride seconds, frames at --fps), encode each window and store it in a LanceDB table under "
        '--index (pip install -e ".[search]"). A second run adds new or changed files and drops '
        "deleted ones; a stopped run resumes; unreadable files are skipped and listed in IDX/index.json. "
        "One index holds one model's embeddings. e.g.\n"
        "  clipaction index footage/ --index footage.idx",
        formatter_class=_Formatter,
    )
    index.add_argument("videos", nargs="+", metavar="DIR_OR_FILE", help="video files, or folders to search for videos")
    index.add_argument("--index", required=True, metavar="IDX", help="the index folder (created when new)")
    group = index.add_argument_group("windows (default: the index's own; a new index's below)")
    group.add_argument("--fps", type=float, help=f"frames sampled per second (new index: {defaults.fps:g})")
    group.add_argument("--window", type=float, help=f"seconds per window (new index: {defaults.window:g})")
    group.add_argument("--stride", type=float, help=f"seconds between window starts (new index: {defaults.stride:g})")
    _add_model_args(index)
    index.set_defaults(model=None)  # the index's own model, else the default
    _add_engine_args(index, shard=True)


def _add_search(commands: argparse._SubParsersAction) -> None:
    search = commands.add_parser(
        "search",
        help="find moments in an index by a sentence (or like another moment)",
        description="Encode the sentence with the index's model, find the nearest windows (exact below "
        "10,000 windows, else the index's IVF_SQ index), merge neighbouring hits of a video into "
        "moments and print the best: score (cosine; SigLIP models also a probability), start, end, video. e.g.\n"
        '  clipaction search "someone falling off a bike" --index footage.idx --top 5',
        formatter_class=_Formatter,
    )
    search.add_argument("query", nargs="?", metavar="QUERY", help="what to look for, in words")
    search.add_argument("--index", required=True, metavar="IDX", help="an index folder written by clipaction index")
    search.add_argument("--top", type=int, default=10, help="moments to print")
    form = search.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help='print [{"video", "start", "end", "score"}], best first')
    form.add_argument("--csv", action="store_true", help="print CSV: video,start,end,score")
    search.add_argument(
        "--where", metavar="GLOB", help="only videos whose path matches (a glob without / matches the file name)"
    )
    search.add_argument("--like", metavar="VIDEO@SECONDS", help="instead of a sentence: moments like this one")
    search.add_argument("--prompts", help="seed, clip or a template file (unset: the sentence as typed)")
    search.add_argument("--model", help="the index's model (unset: read from the index)")
    search.add_argument("--device", default=_MODEL.device, choices=get_args(Device))
