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

SamplerName = Literal["middle", "center-clip", "uniform", "multi-clip"]
Subset = Literal["train", "test", "all"]
Device = Literal["auto", "cpu", "cuda"]
NameStyle = Literal["raw", "spaced"]
Precision = Literal["fp32", "int8", "fp16"]

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_NUM_CLASSES = 15


def check_choice(option: str, value: Any, literal: Any) -> None:
    """Raise ValueError naming the allowed values when `value` is not one of `literal`'s."""
    allowed = get_args(literal)
    if value not in allowed:
        raise ValueError(f"{option} must be one of {', '.join(map(str, allowed))}; got {value!r}")


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
        check_choice("subset", self.subset, Subset)
        if self.num_classes == "all":  # how TOML (which has no null) says "every class"
            object.__setattr__(self, "num_classes", None)
        if isinstance(self.num_classes, str) or isinstance(self.num_classes, bool):
            raise ValueError(f"num_classes must be a number or 'all'; got {self.num_classes!r}")
        if self.split not in (1, 2, 3):
            raise ValueError(f"split must be one of 1, 2, 3; got {self.split!r}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 or None (all); got {self.num_classes}")
        object.__setattr__(self, "classes", tuple(self.classes))


@dataclass(frozen=True)
class SamplerConfig:
    """How frames are picked from a video: see clipaction.video.sampling."""

    name: SamplerName = "center-clip"
    frames: int = 8
    window: float = 3.0
    clips: int = 1  # multi-clip only

    def __post_init__(self) -> None:
        check_choice("sampler", self.name, SamplerName)
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1; got {self.frames}")
        if self.clips < 1:
            raise ValueError(f"clips must be >= 1; got {self.clips}")
        if not self.window > 0:
            raise ValueError(f"window must be > 0 seconds; got {self.window}")

    def cache_fields(self) -> dict[str, Any]:
        """The fields that change which frames are taken (middle ignores frames and window)."""
        if self.name == "middle":
            return {"name": self.name}
        if self.name == "uniform":
            return {"name": self.name, "frames": self.frames}
        if self.name == "center-clip":
            return {"name": self.name, "frames": self.frames, "window": self.window}
        return dataclasses.asdict(self)

    @property
    def frames_per_video(self) -> int:
        """How many frames a video costs to encode with this sampler."""
        if self.name == "middle":
            return 1
        return self.frames * (self.clips if self.name == "multi-clip" else 1)


@dataclass(frozen=True)
class ModelConfig:
    """Which CLIP to load and how to run it. `name_or_path` is a hub id or a local directory."""

    name_or_path: str = DEFAULT_MODEL
    revision: str | None = None
    backend: str = "hf-clip"
    device: Device = "auto"
    batch_size: int = 32
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        check_choice("device", self.device, Device)
        check_choice("precision", self.precision, Precision)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")


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
        check_choice("name style", self.name_style, NameStyle)


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
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1; got {self.epochs}, {self.batch_size}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}")


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
        check_choice("select_on", self.select_on, SelectOn)
        check_choice("train_classes", self.train_classes, TrainClasses)
        if self.shots != "all" and not (isinstance(self.shots, int) and self.shots >= 1):
            raise ValueError(f"shots must be a positive integer or 'all'; got {self.shots!r}")
        if self.n_classes < 1:
            raise ValueError(f"n_classes must be >= 1; got {self.n_classes}")


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
                raise ValueError(f"{name} must list at least one value")
            object.__setattr__(self, name, values)
        if any(v < 0 for v in self.probe_weight_decays):
            raise ValueError(f"probe_weight_decays must be >= 0; got {self.probe_weight_decays}")
        if any(not 0 <= a <= 1 for a in (*self.wise_alphas, self.wise_alpha)):
            raise ValueError(f"wise-ft alphas must lie in [0, 1]; got {self.wise_alphas}, {self.wise_alpha}")
        if any(v < 0 for v in (*self.tip_alphas, *self.tip_betas, self.tip_alpha, self.tip_beta)):
            raise ValueError("tip-adapter alphas and betas must be >= 0")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must lie in (0, 1); got {self.holdout_fraction}")


AdaptMethod = Literal["projection", "linear-probe", "wise-ft", "tip-adapter", "tip-adapter-f"]


@dataclass(frozen=True)
class AdaptMethodsStage:
    """Few-shot methods side by side on the few-shot stage's shots and classes.

    `outside_classes` also measures, for methods that change CLIP's projection, the zero-shot
    accuracy of the dataset's classes outside the study (forgetting beyond the study), on up to
    `outside_videos_per_class` test videos of each ("all": every one; about 3,200 videos for
    UCF101, some 20 minutes of encoding on a CPU).
    """

    enabled: bool = True
    methods: tuple[AdaptMethod, ...] = ("projection", "linear-probe", "wise-ft", "tip-adapter", "tip-adapter-f")
    settings: MethodSettings = field(default_factory=MethodSettings)
    outside_classes: bool = True
    outside_videos_per_class: int | str = 5

    def __post_init__(self) -> None:
        for method in self.methods:
            check_choice("adapt.methods", method, AdaptMethod)
        count = self.outside_videos_per_class
        if count != "all" and not (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
            raise ValueError(f"outside_videos_per_class must be a positive integer or 'all'; got {count!r}")


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
