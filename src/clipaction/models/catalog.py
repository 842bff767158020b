"""The catalog of model families, for `clipaction models` and the docs' "Models" table: the
entries live next to each backend class (models/families/*.py) and register here.

This is data, not code: recommended hub ids, the frames and input size each takes, how it
scores, and published zero-shot UCF101/HMDB51 top-1 with where it was published. Only numbers
with a citable source go in; where none is published the field stays None and the CLI prints
"not published" (never a number measured here with random weights).

How to add a family: in its module under `models/families/`, next to the backend class, register
one `Family(...)` with `register_family`, with `family` equal to the `model_type` its backend
registers (`@BACKENDS.register("<model_type>")`), one `HubModel` per
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


#: Each family module registers its entry next to its backend class (`register_family`).
_FAMILIES: dict[str, Family] = {}


def register_family(entry: Family) -> Family:
    """Add a family's facts to the catalog (called by its module under models/families/)."""
    if entry.family in _FAMILIES:
        raise ValueError(f"family {entry.family!r} has two catalog entries")
    _FAMILIES[entry.family] = entry
    return entry


def families() -> list[Family]:
    """Every family's entry, in the order `clipaction.models` registers the families."""
    import clipaction.models  # noqa: F401  (each family module registers its entry on import)

    return list(_FAMILIES.values())


def family_info(family: str) -> Family | None:
    """The catalog entry of a registered family (`model_type`), or None."""
    return next((entry for entry in families() if entry.family == family), None)


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
