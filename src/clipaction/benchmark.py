"""Zero-shot on the standard benchmarks (UCF101, HMDB51; splits 1-3), reported as the literature
does: per split top-1, top-5 and mean class accuracy on the test list with all classes, then the
mean and standard deviation over the splits.

The standard deviation is numpy's with ddof=0 (population), over the splits listed. One backend is
loaded and reused for every dataset and split; the embedding cache makes a video that appears in
several test lists (HMDB51's lists overlap; UCF101's do not) cost one encoding.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from clipaction.config import (
    DatasetConfig,
    EngineConfig,
    ModelConfig,
    NameStyle,
    PromptConfig,
    SamplerConfig,
    ZeroShotConfig,
    check_choice,
)
from clipaction.errors import ConfigError
from clipaction.data import load_dataset
from clipaction.models import Backend, load_backend
from clipaction.pipeline import run_zeroshot
from clipaction.results import environment, now_iso, output_folder, write_json, write_text_atomic

log = logging.getLogger(__name__)

BenchmarkName = Literal["ucf101", "hmdb51"]
METRICS = ("top1", "top5", "mean_class_accuracy")


_ROOT_HELP = {
    "ucf101": "the UCF-101 folder holding one folder per class",
    "hmdb51": "the folder holding one folder of .avi files per class",
}
_SPLITS_HELP = {
    "ucf101": "the folder holding classInd.txt, trainlist0N.txt and testlist0N.txt",
    "hmdb51": "the folder holding <class>_test_split<N>.txt (testTrainMulti_7030_splits)",
}


@dataclass(frozen=True)
class BenchmarkDataset:
    """One benchmark dataset: where it is, which splits, how class names become text.

    `num_classes` None (or "all" in TOML) evaluates every class, as the benchmark is defined;
    a number takes the first N of the dataset's label order (for quick checks only).
    """

    name: BenchmarkName
    root: str | None = None
    splits_dir: str | None = None
    splits: tuple[int, ...] = (1, 2, 3)
    name_style: NameStyle = "spaced"
    num_classes: int | str | None = None

    def __post_init__(self) -> None:
        check_choice("benchmark dataset", self.name, BenchmarkName)
        check_choice("name style", self.name_style, NameStyle)
        for option, what in (("root", _ROOT_HELP), ("splits_dir", _SPLITS_HELP)):
            if not getattr(self, option):
                raise ConfigError(f"{self.name} needs {option}: {what[self.name]}")
        object.__setattr__(self, "splits", tuple(self.splits))
        if not self.splits:
            raise ConfigError(f"{self.name}: splits must list at least one of 1, 2, 3")
        bad = [s for s in self.splits if isinstance(s, bool) or s not in (1, 2, 3)]
        if bad:
            raise ConfigError(f"{self.name}: splits must be among 1, 2, 3; got {bad[0]!r}")
        if len(set(self.splits)) != len(self.splits):
            raise ConfigError(f"{self.name}: splits repeat: {list(self.splits)}")
        if self.num_classes == "all":  # how TOML (which has no null) says "every class"
            object.__setattr__(self, "num_classes", None)
        if isinstance(self.num_classes, (str, bool)) or (
            self.num_classes is not None and self.num_classes < 1
        ):
            raise ConfigError(f"num_classes must be a number >= 1 or 'all'; got {self.num_classes!r}")

    def dataset_config(self, split: int) -> DatasetConfig:
        """The test list of `split`, with num_classes passed explicitly (None = all), since
        DatasetConfig's own default is the UCF101 study's 15."""
        return DatasetConfig(
            name=self.name,
            root=self.root,
            splits_dir=self.splits_dir,
            split=split,
            subset="test",
            num_classes=self.num_classes,
        )


def _default_datasets() -> tuple[BenchmarkDataset, ...]:
    # The layouts `clipaction download ucf101` and the official HMDB51 archives unpack to.
    return (
        BenchmarkDataset("ucf101", "data/ucf101/UCF-101", "data/ucf101/ucfTrainTestlist"),
        BenchmarkDataset("hmdb51", "data/hmdb51/videos", "data/hmdb51/testTrainMulti_7030_splits"),
    )


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything `clipaction benchmark` needs.

    The sampler defaults to the single middle frame, the input of the published CLIP zero-shot
    numbers (ViT-B/32 about 64% top-1 on UCF101); `templates` defaults to CLIP's 48 prompts.
    """

    datasets: tuple[BenchmarkDataset, ...] = field(default_factory=_default_datasets)
    model: ModelConfig = field(default_factory=ModelConfig)
    #: Models compared on the same splits, frames and prompts; empty: `model` alone. Each is
    #: `model` with another name_or_path (device, batch size and precision shared).
    models: tuple[str, ...] = ()
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(name="middle"))
    templates: str = "clip"
    cache_dir: str | None = None
    workers: int = 2
    out: str = "runs/benchmark"
    engine: EngineConfig = field(default_factory=EngineConfig)  # where extraction runs

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        if not self.datasets:
            raise ConfigError("datasets must list at least one benchmark dataset")
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ConfigError(f"each dataset may appear once; got {', '.join(names)}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1; got {self.workers}")
        object.__setattr__(self, "models", tuple(self.models))
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"a model is listed twice: {', '.join(self.models)}", setting="models")

    def model_configs(self) -> tuple[ModelConfig, ...]:
        """The models to evaluate, in order."""
        if not self.models:
            return (self.model,)
        return tuple(dataclasses.replace(self.model, name_or_path=name) for name in self.models)

    def zeroshot_config(self, dataset: BenchmarkDataset, split: int) -> ZeroShotConfig:
        return ZeroShotConfig(
            dataset=dataset.dataset_config(split),
            sampler=self.sampler,
            model=self.model,
            prompts=PromptConfig(templates=self.templates, name_style=dataset.name_style),
            cache_dir=self.cache_dir,
            workers=self.workers,
            engine=self.engine,
        )


# --- TOML ------------------------------------------------------------------------------------


def benchmark_config_from_toml(text: str, where: str = "config") -> BenchmarkConfig:
    """Parse TOML text into a BenchmarkConfig; ConfigError (a ValueError) names the problem."""
    from clipaction.config_io import ConfigError, from_dict

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    try:
        return from_dict(BenchmarkConfig, data)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def load_benchmark_config(path: str | Path) -> BenchmarkConfig:
    """Read a benchmark TOML file; a missing file or bad TOML is a ConfigError naming the file."""
    from clipaction.config_io import ConfigError

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text: {error}") from None
    return benchmark_config_from_toml(text, str(path))


def benchmark_config_to_toml(config: BenchmarkConfig) -> str:
    """TOML text that reads back to `config`. Unset optional values (None) are left out, since
    TOML has no null; "every class" is written as num_classes = "all"."""
    from clipaction.config_io import to_dict, toml_text

    data = to_dict(config)
    for dataset in data["datasets"]:
        if dataset["num_classes"] is None:
            dataset["num_classes"] = "all"
    return toml_text(data)


# --- running ---------------------------------------------------------------------------------


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean and population standard deviation (numpy, ddof=0) of per-split values; a NaN value
    (a split without videos) makes both NaN rather than hiding the split."""
    array = np.asarray(values, dtype=np.float64)
    if not len(array):
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(array.mean()), "std": float(array.std(ddof=0))}


def run_benchmark(
    config: BenchmarkConfig, *, backend: Backend | None = None, progress: bool = True
) -> dict[str, Any]:
    """Zero-shot on every dataset and split of `config`, for each of its models; writes
    results.json and benchmark.md into `config.out` and returns the content of results.json.
    The top-level `model` and `datasets` are the first model's; `models` lists every model's.

    Every dataset and split is listed and `out` checked first (cheap), so a wrong path fails
    before a model loads. `backend` (tests, notebooks) stands for the first model.
    """
    for dataset in config.datasets:
        for split in dataset.splits:
            listed = load_dataset(dataset.dataset_config(split))
            log.info("benchmark: %s split %d lists %d test videos", dataset.name, split, len(listed.records))
    out = output_folder(config.out)
    runs = []
    for index, model in enumerate(config.model_configs()):
        model_backend = backend if (backend is not None and index == 0) else load_backend(model)
        runs.append(_benchmark_model(config, model, model_backend, progress))
        del model_backend  # one model in memory at a time
    first = runs[0]
    results = {
        "task": "benchmark",
        "std": "numpy std over the splits, ddof=0 (population)",
        "model": first["model"],
        "sampler": dataclasses.asdict(config.sampler),
        "prompts": {"templates": config.templates},
        "datasets": first["datasets"],
        "models": runs,
        "env": environment(first["model"]["device"]),
        "created_at": now_iso(),
    }
    write_json(out / "results.json", results)
    write_text_atomic(out / "benchmark.md", benchmark_markdown(results))
    return results


def _benchmark_model(config: BenchmarkConfig, model: ModelConfig, backend: Backend, progress: bool) -> dict[str, Any]:
    """Every dataset and split of `config` with one model."""
    model_config = dataclasses.replace(config, model=model, models=())
    datasets = []
    for dataset in config.datasets:
        splits = []
        for split in dataset.splits:
            log.info("benchmark: %s, %s split %d", model.name_or_path, dataset.name, split)
            result = _evaluate_split(model_config, dataset, split, backend, progress)
            log.info(
                "benchmark: %s split %d: top-1 %.4f on %d videos (%d encoded, %d failed)",
                dataset.name, split, result["metrics"]["top1"], result["n_videos"],
                result["cache"]["encoded"], result["n_failures"],
            )
            splits.append(result)
        datasets.append(
            {
                "name": dataset.name,
                "settings": dataclasses.asdict(dataset),
                "splits": splits,
                "summary": {m: summarize([s["metrics"][m] for s in splits]) for m in METRICS},
            }
        )
    from clipaction.features.clips import sampler_for

    description = backend.describe()
    return {
        "model": {**dataclasses.asdict(model), **description, "device": str(backend.device)},
        # the sampler as this model takes it (a clip model's own frame count)
        "sampler": dataclasses.asdict(sampler_for(backend, config.sampler)),
        "datasets": datasets,
    }


def _evaluate_split(
    config: BenchmarkConfig, dataset: BenchmarkDataset, split: int, backend: Backend, progress: bool
) -> dict[str, Any]:
    run = run_zeroshot(config.zeroshot_config(dataset, split), backend=backend, progress=progress)
    return {
        "split": split,
        "n_classes": len(run.dataset.classes),
        "n_listed": len(run.dataset.records) + len(run.dataset.missing),
        "n_videos": len(run.videos),
        "n_failures": len(run.failures),
        "metrics": {m: run.metrics[m] for m in METRICS},
        "cache": {"cached": run.extraction.n_cached, "encoded": run.extraction.n_encoded},
        "failures": [dataclasses.asdict(f) for f in run.failures],
    }


# --- the table -------------------------------------------------------------------------------

TABLE_HEADER = ("Dataset", "Split", "Top-1 (%)", "Top-5 (%)", "Mean class acc. (%)", "Videos", "Failed")


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.2f}"


def _pm(summary: dict[str, float | None]) -> str:
    mean, std = summary["mean"], summary["std"]
    if mean is None or std is None or mean != mean:
        return "n/a"
    return f"{_pct(mean)} ± {_pct(std)}"


def benchmark_markdown(results: dict[str, Any]) -> str:
    """benchmark.md: the settings, then one row per dataset and split and a mean ± std row per
    dataset (percentages with two decimals)."""
    model, sampler = results["model"], results["sampler"]
    frames = "" if sampler["name"] == "middle" else f", {sampler['frames']} frames"
    window = f" over {sampler['window']:g} s" if sampler["name"] == "center-clip" else ""
    lines = [
        "# Zero-shot benchmark",
        "",
        f"- Model: `{model['name_or_path']}` ({model['precision']}, {model['device']})"
        + (f"; {len(results['models'])} models compared below" if len(results.get("models") or []) > 1 else ""),
        f"- Frames: {sampler['name']}{frames}{window}; video feature = mean of normalised frame features",
        f"- Prompts: `{results['prompts']['templates']}` templates",
    ]
    for dataset in results["datasets"]:
        settings = dataset["settings"]
        classes = "all classes" if settings["num_classes"] is None else f"first {settings['num_classes']} classes"
        lines.append(
            f"- {dataset['name']}: {classes}, `{settings['name_style']}` class names, "
            f"test lists of splits {', '.join(map(str, settings['splits']))}"
        )
    lines += [
        "- Mean ± standard deviation over the splits (numpy, ddof=0).",
        "",
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(TABLE_HEADER) - 2)) + "|",
    ]
    for dataset in results["datasets"]:
        for split in dataset["splits"]:
            metrics = split["metrics"]
            cells = [dataset["name"], str(split["split"])]
            cells += [_pct(metrics[m]) for m in METRICS]
            cells += [str(split["n_videos"]), str(split["n_failures"])]
            lines.append("| " + " | ".join(cells) + " |")
        summary = dataset["summary"]
        cells = [dataset["name"], "mean ± std"] + [_pm(summary[m]) for m in METRICS] + ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    runs = results.get("models") or []
    if len(runs) > 1:
        lines += ["", "## Models compared", "", *models_table(runs)]
    failed = sum(s["n_failures"] for d in results["datasets"] for s in d["splits"])
    if failed:
        lines += ["", f"{failed} listed video(s) were missing or unreadable; see results.json."]
    return "\n".join(lines) + "\n"


def models_table(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines: one row per model, top-1 mean ± std over the splits per dataset."""
    names = [d["name"] for d in runs[0]["datasets"]]
    header = ["Model", "Family", "Scores", "Frames", *(f"{name} top-1 (%)" for name in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (1 + len(names))) + "|"]
    for run in runs:
        model, sampler = run["model"], run.get("sampler") or {}
        frames = "1" if sampler.get("name") == "middle" else str(sampler.get("frames", ""))
        cells = [f"`{model['name_or_path']}`", str(model.get("family", "")), str(model.get("score", "")), frames]
        cells += [_pm(d["summary"]["top1"]) for d in run["datasets"]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
