"""Frozen dataclasses for every setting that changes a number.

Dicts appear only at the edges (CLI flags, JSON, TOML); inside the library settings travel as
these objects, and their canonical JSON is what cache keys hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from clipaction.errors import ConfigError
from clipaction.video.sampling import list_samplers, sampler_spec  # imports no config at run time

Subset = Literal["train", "test", "all"]
Device = Literal["auto", "cpu", "cuda"]
NameStyle = Literal["raw", "spaced", "plain"]
Precision = Literal["fp32", "int8", "bf16", "fp16"]
Runtime = Literal["torch", "openvino"]
EngineName = Literal["local", "ray"]
#: Spatial crops per frame: 1, the model's own preprocessing (resize and centre crop, or a
#: squash for models without a crop); 3, the square at each end and the centre of the long
#: side, each then preprocessed the model's way (the papers' three-crop testing).
CropCount = Literal[1, 3]
CropPosition = Literal["left", "center", "right"]
#: How the clips of a multi-clip sampler and the crops become one score per class:
#: `features` pools every row into one video feature and scores it; `probabilities` scores
#: each clip x crop on its own and averages the probabilities (the papers' multi-view testing).
ViewPool = Literal["features", "probabilities"]

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_NUM_CLASSES = 15
#: The few-shot methods a study can compare, as `clipaction.adapt.methods` registers them (a test
#: keeps the two equal; named here so that checking a config needs no model code).
ADAPT_METHODS = ("projection", "linear-probe", "wise-ft", "tip-adapter", "tip-adapter-f")


def crop_positions(crops: int) -> tuple[CropPosition | None, ...]:
    """The crops a frame is cut into: (None,) for 1 (no crop of ours), left/center/right for 3."""
    check_choice("crops", crops, CropCount)
    return (None,) if crops == 1 else ("left", "center", "right")


def check_choice(setting: str, value: Any, literal: Any) -> None:
    """Raise ConfigError naming `setting` and the allowed values when `value` is not one of
    `literal`'s (a Literal type or a sequence of names)."""
    allowed = get_args(literal) or tuple(literal)
    if value not in allowed:
        raise ConfigError(f"must be one of {', '.join(map(str, allowed))}; got {value!r}", setting=setting)


@dataclass(frozen=True)
class DatasetConfig:
    """Which videos to evaluate.

    `classes` picks classes by name; when empty, `num_classes` takes the first N of the
    dataset's class list (classInd.txt order for UCF101), and None takes all of them.
    """

    name: str = "ucf101"
    root: str | None = None
    splits_dir: str | None = None
    split: int = 1
    subset: Subset = "test"
    classes: tuple[str, ...] = ()
    num_classes: int | str | None = DEFAULT_NUM_CLASSES
    manifest: str | None = None

    def __post_init__(self) -> None:
        check_choice("dataset.subset", self.subset, Subset)
        if self.num_classes == "all":  # how TOML (which has no null) says "every class"
            object.__setattr__(self, "num_classes", None)
        if isinstance(self.num_classes, str) or isinstance(self.num_classes, bool):
            raise ConfigError(f"must be a number or 'all'; got {self.num_classes!r}", setting="dataset.num_classes")
        if self.split not in (1, 2, 3):
            raise ConfigError(f"must be one of 1, 2, 3; got {self.split!r}", setting="dataset.split")
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError(f"must be >= 1 or 'all'; got {self.num_classes}", setting="dataset.num_classes")
        object.__setattr__(self, "classes", tuple(self.classes))

    @property
    def class_count(self) -> int | None:
        """`num_classes` as checked: a count, or None for every class ('all' is read as None)."""
        assert not isinstance(self.num_classes, str)  # __post_init__ turned 'all' into None
        return self.num_classes


@dataclass(frozen=True)
class SamplerConfig:
    """How frames are picked from a video: `name` is a registered sampler (see
    `clipaction.video.sampling.list_samplers()`); each reads only the fields it uses."""

    name: str = "center-clip"
    frames: int = 8
    window: float = 3.0
    clips: int = 3

    def __post_init__(self) -> None:
        check_choice("sampler.name", self.name, list_samplers())
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise ConfigError(f"must be an integer >= 1; got {self.frames!r}", setting="sampler.frames")
        if isinstance(self.clips, bool) or not isinstance(self.clips, int) or self.clips < 1:
            raise ConfigError(f"must be an integer >= 1; got {self.clips!r}", setting="sampler.clips")
        if not self.window > 0:
            raise ConfigError(f"must be > 0 seconds; got {self.window}", setting="sampler.window")

    def cache_fields(self) -> dict[str, Any]:
        """The name and the fields that change which frames are taken (the sampler's own)."""
        return {"name": self.name, **{f: getattr(self, f) for f in sampler_spec(self.name).uses}}

    @property
    def frames_per_video(self) -> int:
        """How many frames a video costs to encode with this sampler."""
        uses = sampler_spec(self.name).uses
        if "frames" not in uses:
            return 1
        return self.frames * (self.clips if "clips" in uses else 1)

    @property
    def label(self) -> str:
        """A short name: `middle`, `uniform-16`, `center-clip-8x3s`, `multi-clip-3x8x3s`."""
        fields = self.cache_fields()
        parts = [
            f"{fields['clips']}" if "clips" in fields else "",
            f"{fields['frames']}" if "frames" in fields else "",
            f"{fields['window']:g}s" if "window" in fields else "",
        ]
        parts = [p for p in parts if p]
        return f"{self.name}-{'x'.join(parts)}" if parts else self.name


@dataclass(frozen=True)
class ModelConfig:
    """Which CLIP to load and how to run it. `name_or_path` is a hub id or a local directory."""

    name_or_path: str = DEFAULT_MODEL
    revision: str | None = None
    backend: str = "auto"  # "auto": the family named by config.json's model_type
    device: Device = "auto"
    batch_size: int = 32
    precision: Precision = "fp32"
    #: what runs the image encoder: torch (the reference), or OpenVINO on the CPU (fp32, int8, bf16)
    runtime: Runtime = "torch"

    def __post_init__(self) -> None:
        check_choice("model.device", self.device, Device)
        check_choice("model.precision", self.precision, Precision)
        check_choice("model.runtime", self.runtime, Runtime)
        if self.runtime == "openvino" and (self.precision == "fp16" or self.device == "cuda"):
            raise ConfigError(
                "openvino runs fp32, int8 or bf16 on the CPU; fp16 and cuda are torch's: use runtime torch",
                setting="model.runtime",
            )
        if self.batch_size < 1:
            raise ConfigError(f"must be >= 1; got {self.batch_size}", setting="model.batch_size")


@dataclass(frozen=True)
class PromptConfig:
    """How class names become text features.

    `templates` is `seed`, `clip` or the path of a file with one template per line ({} marks the
    class name). `label_map` is an optional CSV/JSON file mapping a label to its text.
    """

    templates: str = "seed"
    name_style: NameStyle = "raw"
    label_map: str | None = None

    def __post_init__(self) -> None:
        check_choice("prompts.name_style", self.name_style, NameStyle)


@dataclass(frozen=True)
class ZeroShotConfig:
    """Everything `clipaction zeroshot` needs."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    cache_dir: str | None = None
    workers: int = 2
    strict: bool = False
    engine: EngineConfig = field(default_factory=lambda: EngineConfig())
    #: spatial crops per frame (`CropCount`); each crop has its own cache entries
    crops: CropCount = 1
    #: how clips (multi-clip) and crops combine (`ViewPool`)
    pool: ViewPool = "features"

    def __post_init__(self) -> None:
        if isinstance(self.crops, bool):
            raise ConfigError(f"must be 1 or 3; got {self.crops!r}", setting="crops")
        check_choice("crops", self.crops, CropCount)
        check_choice("pool", self.pool, ViewPool)


def canonical_json(value: Any) -> str:
    """Stable JSON text of dataclasses/dicts/lists, used for hashing."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(value: Any, length: int = 16) -> str:
    """Hex digest of `canonical_json(value)`."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class TrainSettings:
    """AdamW settings for a fine-tuning stage."""

    lr: float = 1e-4
    epochs: int = 20
    weight_decay: float = 0.01
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0; got {self.lr}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1; got {self.epochs}, {self.batch_size}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0; got {self.weight_decay}")


def _default_temporal_variants() -> tuple[SamplerConfig, ...]:
    return (SamplerConfig(name="middle"), SamplerConfig(name="center-clip", frames=8, window=3.0))


@dataclass(frozen=True)
class TemporalStage:
    """Single middle frame vs a short clip (more variants may be listed)."""

    enabled: bool = True
    variants: tuple[SamplerConfig, ...] = field(default_factory=_default_temporal_variants)


SelectOn = Literal["train", "test"]
TrainClasses = Literal["chosen", "all"]


@dataclass(frozen=True)
class FewShotStage:
    """Projection-only fine-tuning on the `n_classes` weakest classes.

    `shots` training videos per chosen class (an int, or "all"); the weakest classes are picked
    by zero-shot accuracy on the `select_on` list (train by default, so no test label is read).
    """

    enabled: bool = True
    n_classes: int = 5
    shots: int | str = 16
    select_on: SelectOn = "train"
    train_classes: TrainClasses = "chosen"
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        check_choice("fewshot.select_on", self.select_on, SelectOn)
        check_choice("fewshot.train_classes", self.train_classes, TrainClasses)
        if self.shots != "all" and not (isinstance(self.shots, int) and self.shots >= 1):
            raise ConfigError(f"must be a positive integer or 'all'; got {self.shots!r}", setting="fewshot.shots")
        if self.n_classes < 1:
            raise ConfigError(f"must be >= 1; got {self.n_classes}", setting="fewshot.n_classes")


@dataclass(frozen=True)
class FullFinetuneStage:
    """The ablation: the whole image tower trained on the few-shot stage's data."""

    enabled: bool = True
    train: TrainSettings = field(
        default_factory=lambda: TrainSettings(lr=1e-5, epochs=10, weight_decay=0.01, batch_size=8)
    )


@dataclass(frozen=True)
class EmbeddingStage:
    """t-SNE of the test videos' embeddings and the text-prompt similarity heatmap."""

    enabled: bool = True
    perplexity: float = 30.0
    seed: int = 0


def _default_wise_alphas() -> tuple[float, ...]:
    return tuple(i / 10 for i in range(11))


@dataclass(frozen=True)
class MethodSettings:
    """Every setting of every method (each reads its own). Grids are searched on a seeded,
    stratified `holdout_fraction` of the shots (`seed`); without a held-out shot (every class
    has a single shot) the fallback value named beside each grid is used and recorded."""

    projection: TrainSettings = field(default_factory=TrainSettings)  # projection, wise-ft
    probe: TrainSettings = field(
        default_factory=lambda: TrainSettings(lr=1e-3, epochs=50, weight_decay=0.01, batch_size=32)
    )  # linear-probe; its weight_decay is the fallback
    probe_weight_decays: tuple[float, ...] = (0.0, 0.01, 0.1, 1.0)
    wise_alphas: tuple[float, ...] = field(default_factory=_default_wise_alphas)
    wise_alpha: float = 0.5  # fallback
    tip_alphas: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0, 3.0)
    tip_betas: tuple[float, ...] = (0.5, 1.0, 2.0, 3.5, 5.5, 7.0)
    tip_alpha: float = 1.0  # fallback, and tip-adapter-f's value while training (the paper's init)
    tip_beta: float = 1.0
    tip_f: TrainSettings = field(
        default_factory=lambda: TrainSettings(lr=1e-3, epochs=20, weight_decay=0.01, batch_size=32)
    )
    holdout_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("probe_weight_decays", "wise_alphas", "tip_alphas", "tip_betas"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values:
                raise ConfigError(f"{name} must list at least one value")
            object.__setattr__(self, name, values)
        if any(v < 0 for v in self.probe_weight_decays):
            raise ConfigError(f"probe_weight_decays must be >= 0; got {self.probe_weight_decays}")
        if any(not 0 <= a <= 1 for a in (*self.wise_alphas, self.wise_alpha)):
            raise ConfigError(f"wise-ft alphas must lie in [0, 1]; got {self.wise_alphas}, {self.wise_alpha}")
        if any(v < 0 for v in (*self.tip_alphas, *self.tip_betas, self.tip_alpha, self.tip_beta)):
            raise ConfigError("tip-adapter alphas and betas must be >= 0")
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError(f"holdout_fraction must lie in (0, 1); got {self.holdout_fraction}")


@dataclass(frozen=True)
class AdaptMethodsStage:
    """Few-shot methods side by side on the few-shot stage's shots and classes.

    `outside_classes` also measures, for methods that change CLIP's projection, the zero-shot
    accuracy of the dataset's classes outside the study (forgetting beyond the study), on up to
    `outside_videos_per_class` test videos of each ("all": every one; about 3,200 videos for
    UCF101, some 20 minutes of encoding on a CPU).
    """

    enabled: bool = True
    methods: tuple[str, ...] = ADAPT_METHODS
    settings: MethodSettings = field(default_factory=MethodSettings)
    outside_classes: bool = True
    outside_videos_per_class: int | str = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        for method in self.methods:
            check_choice("adapt.methods", method, sorted(ADAPT_METHODS))
        count = self.outside_videos_per_class
        if count != "all" and not (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
            raise ConfigError(
                f"must be a positive integer or 'all'; got {count!r}", setting="adapt.outside_videos_per_class"
            )


def _default_ablation_samplers() -> tuple[SamplerConfig, ...]:
    return (
        SamplerConfig(name="middle"),
        SamplerConfig(name="center-clip", frames=8, window=3.0),
        SamplerConfig(name="uniform", frames=16),
        SamplerConfig(name="multi-clip", frames=8, window=3.0, clips=3),
    )


@dataclass(frozen=True)
class AblationStage:
    """Zero-shot top-1 over prompt choices (class-name style x template set) and over temporal
    inputs; all from cached frame features (frames shared between samplers are encoded once)."""

    enabled: bool = True
    name_styles: tuple[NameStyle, ...] = ("raw", "spaced")
    template_sets: tuple[str, ...] = ("name", "seed", "clip")
    samplers: tuple[SamplerConfig, ...] = field(default_factory=_default_ablation_samplers)


@dataclass(frozen=True)
class BenchConfig:
    """What `clipaction bench` generates and measures."""

    videos: int = 24
    seconds: float = 7.0
    gop: int = 12
    architecture: str = "vit-b-32"
    model: str | None = None  # a saved model directory instead of a random one
    batch_sizes: tuple[int, ...] = (16, 32, 64)
    workers: int = 2
    device: str = "auto"
    #: the fast row's precision: "auto" is int8 on a CPU and fp16 on a GPU
    fast_precision: str = "auto"
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    #: the image encoder alone: picking its batch size (a round of min_seconds / ROUNDS per size), and
    #: each round of the encoders side by side (`encoder_speedups`)
    min_seconds: float = 3.0


@dataclass(frozen=True)
class StudyConfig:
    """Everything `clipaction run` needs; `sampler` is the main zero-shot evaluation's."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    temporal: TemporalStage = field(default_factory=TemporalStage)
    fewshot: FewShotStage = field(default_factory=FewShotStage)
    full_finetune: FullFinetuneStage = field(default_factory=FullFinetuneStage)
    embeddings: EmbeddingStage = field(default_factory=EmbeddingStage)
    ablations: AblationStage = field(default_factory=AblationStage)
    adapt: AdaptMethodsStage = field(default_factory=AdaptMethodsStage)
    out: str = "runs/study"
    cache_dir: str | None = None
    workers: int = 2
    synthetic: bool = False
    engine: EngineConfig = field(default_factory=lambda: EngineConfig())


@dataclass(frozen=True)
class EngineConfig:
    """Where extraction runs; it changes no number (every engine writes the same cache entries).

    `local`: in this process, with decoding threads. `ray`: on a Ray cluster
    (`clipaction.features.engines.ray_engine`; `pip install "clipaction[ray]"`): decoding as
    CPU tasks, the model in `workers` actors with `gpus_per_worker` GPUs and `cpus_per_worker`
    CPUs each (torch threads: `threads_per_worker`, by default the CPUs rounded, at least 1).
    `ray_address` None: $RAY_ADDRESS, else a local Ray instance is started. `workers` None: one
    actor per `gpus_per_worker` GPUs of the cluster, or without GPUs one per
    `cpus_per_worker` + 1 CPUs (the one for decoding).
    """

    name: EngineName = "local"
    ray_address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    threads_per_worker: int | None = None

    def __post_init__(self) -> None:
        check_choice("engine.name", self.name, EngineName)
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise ConfigError(f"must be >= 1; got {self.workers!r}", setting="engine.workers")
        if not self.gpus_per_worker >= 0:
            raise ConfigError(f"must be >= 0; got {self.gpus_per_worker!r}", setting="engine.gpus_per_worker")
        if not self.cpus_per_worker > 0:
            raise ConfigError(f"must be > 0; got {self.cpus_per_worker!r}", setting="engine.cpus_per_worker")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ConfigError(f"must be >= 1; got {self.threads_per_worker!r}", setting="engine.threads_per_worker")
