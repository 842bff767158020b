"""Facts about each model family, for `clipaction models` and the README's "Models" table.

This is data, not code: recommended hub ids, the frames and input size each takes, how it
scores, and published zero-shot UCF101/HMDB51 top-1 with where it was published. Only numbers
with a citable source go in; where none is published the field stays None and the CLI prints
"not published" (never a number measured here with random weights).

How to add a family: append one `Family(...)` to `FAMILIES` below, with `family` equal to the
`model_type` its backend registers (`@BACKENDS.register("<model_type>")`), one `HubModel` per
recommended checkpoint, and a `Published` only where a paper or model card gives the number
(say which in `source`, and under which protocol in `protocol`). `clipaction models` lists every
registered family, and tells when a registered one has no entry here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Published:
    """Zero-shot top-1 (percent) reported by the model's authors or a cited paper."""

    ucf101: float | None
    hmdb51: float | None
    #: paper or model card the numbers come from
    source: str
    #: how they were measured (frames, classes, splits), as the source says
    protocol: str = ""
    #: standard deviations over the three splits, where the source gives them
    ucf101_std: float | None = None
    hmdb51_std: float | None = None
    #: Kinetics-600 zero-shot (`benchmark --protocols k600-zs`: 3 splits of 160 of the 220 new
    #: classes, mean ± std), with how and where it was measured when that differs from above
    k600: float | None = None
    k600_std: float | None = None
    k600_protocol: str = ""
    k600_source: str = ""


@dataclass(frozen=True)
class HubModel:
    hub_id: str
    #: side of the square model input in pixels, or a description for variable-size models
    input_size: int | str
    #: frames per video: "any" for frame models (frames are encoded one by one and pooled),
    #: the count(s) the model takes for clip models
    frames: str = "any"
    published: Published | None = None
    note: str = ""


@dataclass(frozen=True)
class Family:
    #: the `model_type` in config.json, as registered in `models.registry.BACKENDS`
    family: str
    title: str
    transformers_class: str
    kind: Literal["frame", "clip"]
    #: how scores become probabilities, in words
    scores: str
    models: tuple[HubModel, ...]
    #: which to pick for what, and why
    pick: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_CLIP_PAPER = "CLIP paper (Radford et al. 2021), zero-shot results"
_CLIP_PROTOCOL = "single middle frame, all 101 classes; rounded"

FAMILIES: list[Family] = [
    Family(
        family="clip",
        title="CLIP",
        transformers_class="CLIPModel",
        kind="frame",
        scores="softmax(scale·cos) over the labels",
        models=(
            HubModel(
                "openai/clip-vit-base-patch32",
                224,
                published=Published(64.0, None, _CLIP_PAPER, _CLIP_PROTOCOL),
            ),
            HubModel(
                "openai/clip-vit-base-patch16",
                224,
                published=Published(
                    68.5,
                    None,
                    _CLIP_PAPER,
                    _CLIP_PROTOCOL,
                    k600=68.1,
                    k600_std=1.1,
                    k600_protocol="frozen CLIP B/16 as FROSTER evaluated it: 8 frames x 3 views, frame features averaged",
                    k600_source="FROSTER README, cross-dataset table (Huang et al., ICLR 2024; their implementation)",
                ),
            ),
            HubModel(
                "openai/clip-vit-large-patch14",
                224,
                published=Published(76.0, None, _CLIP_PAPER, _CLIP_PROTOCOL),
            ),
        ),
        pick="The reference point: the study this tool reproduces uses ViT-B/32. Projection "
        "fine-tuning, WiSE-FT and full fine-tuning all apply.",
    ),
    Family(
        family="metaclip_2",
        title="MetaCLIP 2",
        transformers_class="MetaClip2Model",
        kind="frame",
        scores="softmax(scale·cos) over the labels",
        models=(HubModel("facebook/metaclip-2-worldwide-huge-quickgelu", 224),),
        pick="CLIP's architecture trained on worldwide (multilingual) data: labels in other "
        "languages than English; same capabilities as CLIP. No published UCF101/HMDB51 figure.",
        notes=(
            "Its end-of-text token id differs from OpenAI CLIP's: loading it as CLIP pools the text at the wrong token.",
        ),
    ),
    Family(
        family="siglip",
        title="SigLIP, and SigLIP 2 at a fixed resolution",
        transformers_class="SiglipModel",
        kind="frame",
        scores="sigmoid(scale·cos + bias), independent per label",
        models=(
            HubModel("google/siglip-base-patch16-224", 224),
            HubModel(
                "google/siglip2-base-patch16-224",
                224,
                note="SigLIP 2 at a fixed resolution: the hub ships it as a SiglipModel (model_type "
                "'siglip') with a Gemma tokenizer, so it loads as this family",
            ),
        ),
        pick="Independent per-label probabilities: a video may match none or several labels "
        "(sorting your own footage with labels that need not cover everything). SigLIP 2 is "
        "about ten points above CLIP ViT-B/16 on ImageNet zero-shot at the same size (SigLIP 2 "
        "paper, Tschannen et al. 2025): the first to try. No visual projection, so projection "
        "fine-tuning and WiSE-FT do not apply.",
    ),
    Family(
        family="siglip2",
        title="SigLIP 2 NaFlex",
        transformers_class="Siglip2Model",
        kind="frame",
        scores="sigmoid(scale·cos + bias), independent per label",
        models=(
            HubModel(
                "google/siglip2-base-patch16-naflex",
                "native aspect ratio, up to max_num_patches (saved with the model) patches of 16 px",
            ),
        ),
        pick="SigLIP 2 that keeps each frame's aspect ratio instead of squashing it to a square "
        "(320x240 UCF101 frames, wide footage). The checkpoint's saved max_num_patches is used, "
        "not the processor's default. No visual projection.",
    ),
    Family(
        family="xclip",
        title="X-CLIP",
        transformers_class="XCLIPModel",
        kind="clip",
        scores="softmax(scale·cos) over the labels, the text conditioned on the video by the prompt generator",
        models=(
            HubModel("microsoft/xclip-base-patch32", 224, frames="8", note="trained on Kinetics-400"),
            HubModel(
                "microsoft/xclip-base-patch16-zero-shot",
                224,
                frames="32",
                published=Published(
                    72.0,
                    44.6,
                    "microsoft/VideoX README (X-CLIP zero-shot table); ± std over the splits from the "
                    "X-CLIP paper (Ni et al., ECCV 2022), as FROSTER's table repeats them",
                    "X-CLIP B/16, 32 frames, trained on Kinetics-400; mean ± std over the 3 splits",
                    ucf101_std=2.3,
                    hmdb51_std=5.2,
                    k600=65.2,
                    k600_std=0.4,
                    k600_protocol="X-CLIP B/16, 32 frames, trained on Kinetics-400; 3 splits of 160 classes, mean ± std",
                ),
            ),
        ),
        pick="Trained on video with text: its zero-shot figure (72.0 on UCF101 with B/16) is above "
        "CLIP B/16's single frame. The frames of a clip are encoded together, so a model takes "
        "exactly the frame count it was trained with. Text features depend on the video (the "
        "prompt generator runs per video at scoring time): scoring many labels costs more than "
        "with CLIP. No visual projection over pooled features, no frame tower.",
    ),
    Family(
        family="videoprism",
        title="VideoPrism (video-text)",
        transformers_class="VideoPrismClipModel",
        kind="clip",
        scores="softmax(cos) over the labels (no learned scale; the model's forward applies no temperature)",
        models=(HubModel("google/videoprism-lvt-base-f16r288", 288, frames="16"),),
        pick="A video foundation encoder (factorised space-time transformer) with a text tower: "
        "clips of 16 frames at 288 px. No published UCF101/HMDB51 zero-shot figure here. Its "
        "probabilities are flat (cosines without a temperature) but the ranking, and so the "
        "accuracy, is the model's. No visual projection, no frame tower.",
    ),
]


def family_info(family: str) -> Family | None:
    """The catalog entry of a registered family (`model_type`), or None."""
    return next((entry for entry in FAMILIES if entry.family == family), None)


def _top1(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "not published"
    return f"{value:.1f} ± {std:.1f}" if std is not None else f"{value:.1f}"


def catalog_json(registered: list[str]) -> list[dict[str, Any]]:
    """One JSON object per registered family (its catalog entry, or a note that it has none)."""
    out: list[dict[str, Any]] = []
    for name in registered:
        entry = family_info(name)
        out.append(entry.to_json() if entry else {"family": name, "note": "no catalog entry"})
    return out


def catalog_text(registered: list[str]) -> str:
    """The catalog as text for `clipaction models`: a block per registered family."""
    blocks = []
    for name in registered:
        entry = family_info(name)
        if entry is None:
            blocks.append(f"{name}\n  (registered; no catalog entry yet)")
            continue
        lines = [
            f"{entry.family}: {entry.title} ({entry.transformers_class}), {entry.kind} model, scores {entry.scores}"
        ]
        for model in entry.models:
            published = model.published
            top1 = (
                f"UCF101 {_top1(published.ucf101, published.ucf101_std)}, "
                f"HMDB51 {_top1(published.hmdb51, published.hmdb51_std)}, "
                f"K600 {_top1(published.k600, published.k600_std)}"
                if published
                else "UCF101 not published, HMDB51 not published, K600 not published"
            )
            lines.append(f"  {model.hub_id}")
            lines.append(f"    frames: {model.frames}; input: {model.input_size}; zero-shot top-1: {top1}")
            if published:
                protocol = f" ({published.protocol})" if published.protocol else ""
                lines.append(f"    source: {published.source}{protocol}")
                if published.k600 is not None and (published.k600_source or published.k600_protocol):
                    k600_protocol = f" ({published.k600_protocol})" if published.k600_protocol else ""
                    lines.append(f"    K600 source: {published.k600_source or published.source}{k600_protocol}")
            if model.note:
                lines.append(f"    note: {model.note}")
        if entry.pick:
            lines.append(f"  pick it for: {entry.pick}")
        lines.extend(f"  note: {note}" for note in entry.notes)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
