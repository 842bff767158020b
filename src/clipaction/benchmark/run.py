"""Zero-shot on the standard benchmarks, reported as the literature does: per split top-1, top-5
and mean class accuracy with all classes, then the mean and standard deviation over the splits.

Protocols: `ucf101` and `hmdb51` (the official test lists of splits 1-3, all classes; settings in
`datasets`), and the Kinetics ones (settings in `protocols`, on the `kinetics` dataset):
`k600-zs`, the Kinetics-600 zero-shot protocol (three splits of 160 of the 220 classes new in
Kinetics-600, each split's names the labels, `clipaction.data.kinetics.zeroshot_split`), and
`k400`/`k700`, closed-set zero-shot on every class of an annotation file (one "split").

Views and crops: `views` > 1 takes that many clips (the multi-clip sampler) and `crops` 3 the
left, centre and right squares of each frame; then each clip x crop is scored on its own and
the probabilities are averaged, as the papers' multi-view testing does. 1 x 1 (the default)
scores the one video feature, as before.

The standard deviation is numpy's with ddof=0 (population), over the splits listed. One backend is
loaded and reused for every dataset and split; the embedding cache makes a video that appears in
several test lists (HMDB51's lists overlap, and so do the K600 splits' classes) cost one encoding.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from clipaction.benchmark.table import TABLE_HEADER, benchmark_markdown, models_table, published_figure
from clipaction.classify.run import ZeroShotRun, run_zeroshot
from clipaction.config import (
    CropCount,
    DatasetConfig,
    EngineConfig,
    ModelConfig,
    NameStyle,
    PromptConfig,
    SamplerConfig,
    ViewPool,
    ZeroShotConfig,
    check_choice,
)
from clipaction.config.toml import config_from_toml, config_to_toml, load_config
from clipaction.data import load_dataset
from clipaction.errors import ConfigError
from clipaction.features.clips import sampler_for
from clipaction.models import Backend, load_backend
from clipaction.outputs import environment, now_iso, output_folder, write_json, write_predictions_csv, write_text_atomic

__all__ = [
    "BenchmarkConfig", "BenchmarkDataset", "KineticsProtocol", "TABLE_HEADER", "benchmark_config_from_toml",
    "benchmark_config_to_toml", "benchmark_markdown", "load_benchmark_config", "models_table", "run_benchmark",
    "summarize", "with_protocols",
]  # fmt: skip

log = logging.getLogger(__name__)

BenchmarkName = Literal["ucf101", "hmdb51"]
KineticsName = Literal["k600-zs", "k400", "k700"]
ProtocolName = Literal["ucf101", "hmdb51", "k600-zs", "k400", "k700"]
METRICS = ("top1", "top5", "mean_class_accuracy")


_ROOT_HELP = {
    "ucf101": "the UCF-101 folder holding one folder per class",
    "hmdb51": "the folder holding one folder of .avi files per class",
}
_SPLITS_HELP = {
    "ucf101": "the folder holding classInd.txt, trainlist0N.txt and testlist0N.txt",
    "hmdb51": "the folder holding <class>_test_split<N>.txt (testTrainMulti_7030_splits)",
}
_KINETICS_HELP = {
    "root": "the folder of the clips (<youtube_id>_<start:06d>_<end:06d>.mp4, flat or one folder per label)",
    "annotations": "the official annotation CSV (label,youtube_id,time_start,time_end,split), e.g. validate.csv",
}


def _check_splits(name: str, splits: tuple[int, ...]) -> None:
    if not splits:
        raise ConfigError(f"{name}: splits must list at least one of 1, 2, 3")
    bad = [s for s in splits if isinstance(s, bool) or s not in (1, 2, 3)]
    if bad:
        raise ConfigError(f"{name}: splits must be among 1, 2, 3; got {bad[0]!r}")
    if len(set(splits)) != len(splits):
        raise ConfigError(f"{name}: splits repeat: {list(splits)}")


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
        _check_splits(self.name, self.splits)
        if self.num_classes == "all":  # how TOML (which has no null) says "every class"
            object.__setattr__(self, "num_classes", None)
        if isinstance(self.num_classes, (str, bool)) or (self.num_classes is not None and self.num_classes < 1):
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

    def split_info(self, split: int) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class KineticsProtocol:
    """A Kinetics protocol on the `kinetics` dataset: the clips under `root`, the rows of the
    annotation file `annotations` (every row: the file is the evaluation set).

    `k600-zs`: for each of `splits`, the videos of that split's 160 classes scored against those
    160 names; the class splits are the packaged ones unless `split_dir` holds other
    `split{N}.csv` files. `k400`/`k700`: every class of the file at once, one "split" (1).
    `name_style` defaults to `raw`: Kinetics names are already words ("backflip (human)");
    `plain` drops the parenthesised disambiguation.
    """

    name: KineticsName
    root: str | None = None
    annotations: str | None = None
    split_dir: str | None = None
    #: k600-zs: which class splits (default all three); k400/k700: (1,), the whole file
    splits: tuple[int, ...] | None = None
    name_style: NameStyle = "raw"

    def __post_init__(self) -> None:
        check_choice("protocol", self.name, KineticsName)
        check_choice("name style", self.name_style, NameStyle)
        for option in ("root", "annotations"):
            if not getattr(self, option):
                raise ConfigError(f"{self.name} needs {option}: {_KINETICS_HELP[option]}")
        zero_shot = self.name == "k600-zs"
        splits = tuple(self.splits) if self.splits is not None else ((1, 2, 3) if zero_shot else (1,))
        object.__setattr__(self, "splits", splits)
        _check_splits(self.name, splits)
        if not zero_shot and (splits != (1,) or self.split_dir is not None):
            raise ConfigError(f"{self.name} evaluates every class of its file at once: no splits or split_dir")

    def dataset_config(self, split: int) -> DatasetConfig:
        """The `kinetics` dataset settings of `split` (k600-zs: that split's classes)."""
        classes = self.class_split(split).names if self.name == "k600-zs" else ()
        return DatasetConfig(
            name="kinetics", root=self.root, manifest=self.annotations, split=split, subset="all",
            classes=classes, num_classes=None,
        )  # fmt: skip

    def class_split(self, split: int):
        from clipaction.data.kinetics import zeroshot_split

        return zeroshot_split(split, self.split_dir)

    def split_info(self, split: int) -> dict[str, Any]:
        """What results.json records about the files behind `split`."""
        info: dict[str, Any] = {"annotations": str(Path(self.annotations).expanduser().resolve())}
        if self.name == "k600-zs":
            chosen = self.class_split(split)
            info["class_split"] = {
                "file": chosen.path, "packaged": chosen.packaged, "sha256": chosen.sha256, "n_classes": len(chosen.names),
            }  # fmt: skip
        return info


Evaluation = BenchmarkDataset | KineticsProtocol


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
    `datasets` (UCF101, HMDB51) and `protocols` (Kinetics) are evaluated in that order.
    `views` > 1: that many clips of `sampler.frames` frames over `sampler.window` seconds (the
    multi-clip sampler); `crops` 3: three square crops per frame. With more than one view or
    crop the probabilities of each view x crop are averaged.
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
    protocols: tuple[KineticsProtocol, ...] = ()
    views: int = 1
    crops: CropCount = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        object.__setattr__(self, "protocols", tuple(self.protocols))
        if not self.datasets and not self.protocols:
            raise ConfigError("datasets must list at least one benchmark dataset (or protocols a Kinetics protocol)")
        names = [d.name for d in self.evaluations()]
        if len(set(names)) != len(names):
            raise ConfigError(f"each dataset may appear once; got {', '.join(names)}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1; got {self.workers}")
        object.__setattr__(self, "models", tuple(self.models))
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"a model is listed twice: {', '.join(self.models)}", setting="models")
        if isinstance(self.views, bool) or not isinstance(self.views, int) or self.views < 1:
            raise ConfigError(f"must be an integer >= 1; got {self.views!r}", setting="views")
        if isinstance(self.crops, bool):
            raise ConfigError(f"must be 1 or 3; got {self.crops!r}", setting="crops")
        check_choice("crops", self.crops, CropCount)

    def evaluations(self) -> tuple[Evaluation, ...]:
        """Every dataset and protocol, in the order they run."""
        return (*self.datasets, *self.protocols)

    @property
    def pool(self) -> ViewPool:
        """How views and crops combine: one feature for 1 x 1, else averaged probabilities."""
        return "probabilities" if self.views > 1 or self.crops > 1 else "features"

    def view_sampler(self) -> SamplerConfig:
        """The sampler the views ask for: `sampler` itself for one view, else the multi-clip
        sampler with `views` clips of `sampler`'s frames and window."""
        if self.views == 1:
            return self.sampler
        return dataclasses.replace(self.sampler, name="multi-clip", clips=self.views)

    def model_configs(self) -> tuple[ModelConfig, ...]:
        """The models to evaluate, in order."""
        if not self.models:
            return (self.model,)
        return tuple(dataclasses.replace(self.model, name_or_path=name) for name in self.models)

    def zeroshot_config(self, dataset: Evaluation, split: int) -> ZeroShotConfig:
        return ZeroShotConfig(
            dataset=dataset.dataset_config(split),
            sampler=self.view_sampler(),
            model=self.model,
            prompts=PromptConfig(templates=self.templates, name_style=dataset.name_style),
            cache_dir=self.cache_dir,
            workers=self.workers,
            engine=self.engine,
            crops=self.crops,
            pool=self.pool,
        )


def with_protocols(
    config: BenchmarkConfig,
    names: Sequence[str] | None = None,
    *,
    root: str | None = None,
    annotations: str | None = None,
    split_dir: str | None = None,
    name_style: str | None = None,
) -> BenchmarkConfig:
    """`config` keeping only the protocols `names` (None: all it has), in that order. ucf101 and
    hmdb51 come from `config.datasets` (else their default entry); a Kinetics protocol from
    `config.protocols`, else a new one. `root`, `annotations` and `split_dir` replace those of
    every Kinetics protocol kept; `name_style` that of every dataset and protocol kept."""
    if names is not None:
        names = list(names)
        for name in names:
            check_choice("protocols", name, ProtocolName)
        if not names or len(set(names)) != len(names):
            raise ConfigError(
                f"list each protocol once, at least one; got {', '.join(names) or 'none'}", setting="protocols"
            )
        datasets = {d.name: d for d in (*_default_datasets(), *config.datasets)}
        known = {p.name: p for p in config.protocols}
        chosen_datasets = tuple(datasets[n] for n in names if n in get_args(BenchmarkName))
        kinetics = [n for n in names if n in get_args(KineticsName)]
        if kinetics and (root is None or annotations is None) and any(n not in known for n in kinetics):
            _need_files(next(n for n in kinetics if n not in known), root, annotations)
        chosen = tuple(
            known[n] if n in known else KineticsProtocol(n, root=root, annotations=annotations) for n in kinetics
        )
        config = dataclasses.replace(config, datasets=chosen_datasets, protocols=chosen)
    if (root, annotations, split_dir) != (None, None, None):
        if not config.protocols:
            raise ConfigError(
                "a data root, annotations or class splits are a Kinetics protocol's: name one (k600-zs, k400, k700)",
                setting="protocols",
            )
        changes = {
            k: v for k, v in (("root", root), ("annotations", annotations), ("split_dir", split_dir)) if v is not None
        }
        config = dataclasses.replace(
            config, protocols=tuple(dataclasses.replace(p, **changes) for p in config.protocols)
        )
    if name_style is not None:
        config = dataclasses.replace(
            config,
            datasets=tuple(dataclasses.replace(d, name_style=name_style) for d in config.datasets),
            protocols=tuple(dataclasses.replace(p, name_style=name_style) for p in config.protocols),
        )
    return config


def _need_files(name: str, root: str | None, annotations: str | None) -> None:
    option = "root" if root is None else "annotations"
    raise ConfigError(
        f"{name} needs {option}: {_KINETICS_HELP[option]}", setting="dataset.root" if root is None else "annotations"
    )


# --- TOML ------------------------------------------------------------------------------------


def benchmark_config_from_toml(text: str, where: str = "config") -> BenchmarkConfig:
    """Parse TOML text into a BenchmarkConfig; ConfigError (a ValueError) names the problem."""
    return config_from_toml(BenchmarkConfig, text, where)


def load_benchmark_config(path: str | Path) -> BenchmarkConfig:
    """Read a benchmark TOML file; a missing file or bad TOML is a ConfigError naming the file."""
    return load_config(BenchmarkConfig, path)


def benchmark_config_to_toml(config: BenchmarkConfig) -> str:
    """TOML text that reads back to `config` (see `clipaction.config.toml.config_to_toml`)."""
    return config_to_toml(config)


# --- running ---------------------------------------------------------------------------------


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean and population standard deviation (numpy, ddof=0) of per-split values; a NaN value
    (a split without videos) makes both NaN rather than hiding the split."""
    array = np.asarray(values, dtype=np.float64)
    if not len(array):
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(array.mean()), "std": float(array.std(ddof=0))}


def run_benchmark(config: BenchmarkConfig, *, backend: Backend | None = None, progress: bool = True) -> dict[str, Any]:
    """Zero-shot on every dataset, protocol and split of `config`, for each of its models;
    writes results.json, benchmark.md and per split a predictions CSV (`predictions/`) into
    `config.out` and returns the content of results.json. The top-level `model` and `datasets`
    are the first model's; `models` lists every model's.

    Every dataset and split is listed, `out` checked and every model's sampler resolved first
    (cheap), so a wrong path or a sampler a model cannot take fails before a model loads.
    `backend` (tests, notebooks) stands for the first model.
    """
    for dataset in config.evaluations():
        for split in dataset.splits:
            listed = load_dataset(dataset.dataset_config(split))
            log.info("benchmark: %s split %d lists %d test videos", dataset.name, split, len(listed.records))
    out = output_folder(config.out)
    # constructing a backend reads config.json only (weights load on first use), so a sampler
    # that one of the models cannot take fails here, before any model runs
    models = config.model_configs()
    backends: list[Backend | None] = [
        backend if (backend is not None and index == 0) else load_backend(model) for index, model in enumerate(models)
    ]
    for model_backend in backends:
        sampler_for(model_backend, config.view_sampler())
    runs = []
    for index, model in enumerate(models):
        model_backend, backends[index] = backends[index], None  # one model's weights in memory at a time
        runs.append(_benchmark_model(config, model, model_backend, progress, out, _model_tag(index, model)))
        del model_backend
    first = runs[0]
    results = {
        "task": "benchmark",
        "std": "numpy std over the splits, ddof=0 (population)",
        "model": first["model"],
        "sampler": dataclasses.asdict(config.view_sampler()),
        "views": {
            "views": config.views,
            "crops": config.crops,
            "pool": config.pool,
            "averaged": "probabilities over views x crops" if config.pool == "probabilities" else "one video feature",
        },
        "prompts": {"templates": config.templates},
        "datasets": first["datasets"],
        "models": runs,
        "env": environment(first["model"]["device"]),
        "created_at": now_iso(),
    }
    write_json(out / "results.json", results)
    write_text_atomic(out / "benchmark.md", benchmark_markdown(results))
    return results


def _model_tag(index: int, model: ModelConfig) -> str:
    """A folder name for the model's predictions: its position and a file-safe name."""
    name = Path(model.name_or_path.rstrip("/\\")).name or "model"
    return f"{index + 1}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}"


def _benchmark_model(
    config: BenchmarkConfig, model: ModelConfig, backend: Backend, progress: bool, out: Path, tag: str
) -> dict[str, Any]:
    """Every dataset, protocol and split of `config` with one model."""
    model_config = dataclasses.replace(config, model=model, models=())
    datasets = []
    for dataset in config.evaluations():
        splits = []
        for split in dataset.splits:
            log.info("benchmark: %s, %s split %d", model.name_or_path, dataset.name, split)
            predictions = Path("predictions") / tag / f"{dataset.name}-split{split}.csv"
            result = _evaluate_split(model_config, dataset, split, backend, progress, out, predictions)
            log.info(
                "benchmark: %s split %d: top-1 %.4f on %d videos (%d encoded, %d failed)",
                dataset.name,
                split,
                result["metrics"]["top1"],
                result["n_videos"],
                result["cache"]["encoded"],
                result["n_failures"],
            )
            splits.append(result)
        datasets.append(
            {
                "name": dataset.name,
                "settings": dataclasses.asdict(dataset),
                "splits": splits,
                "summary": {m: summarize([s["metrics"][m] for s in splits]) for m in METRICS},
                "published": published_figure(model.name_or_path, dataset.name),
            }
        )

    description = backend.describe()
    return {
        "model": {**dataclasses.asdict(model), **description, "device": str(backend.device)},
        # the sampler as this model takes it (a clip model's own frame count)
        "sampler": dataclasses.asdict(sampler_for(backend, config.view_sampler())),
        "datasets": datasets,
    }


def _evaluate_split(
    config: BenchmarkConfig, dataset: Evaluation, split: int, backend: Backend, progress: bool,
    out: Path, predictions: Path,
) -> dict[str, Any]:  # fmt: skip
    run = run_zeroshot(config.zeroshot_config(dataset, split), backend=backend, progress=progress)
    _write_predictions(run, out / predictions)
    return {
        "split": split,
        **dataset.split_info(split),
        "n_classes": len(run.dataset.classes),
        "n_listed": len(run.dataset.records) + len(run.dataset.missing),
        "n_videos": len(run.videos),
        "n_failures": len(run.failures),
        "metrics": {m: run.metrics[m] for m in METRICS},
        "cache": {"cached": run.extraction.n_cached, "encoded": run.extraction.n_encoded},
        "failures": [dataclasses.asdict(f) for f in run.failures],
        "predictions": predictions.as_posix(),
        "scores": run.score_kind,
    }


def _write_predictions(run: ZeroShotRun, path: Path) -> None:
    """Per video: the true label, the predicted one and the top 5 with their scores."""
    classes = list(run.dataset.classes)
    write_predictions_csv(path, run.videos, [classes[i] for i in run.labels], run.scores, classes)
