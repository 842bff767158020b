"""The report's content as a list of blocks, and its Markdown rendering.

`build_document` decides what the report says (sections, tables, figures, text) once; the
Markdown renderer here and the HTML renderer in html.py only differ in how they write blocks.
Text in blocks is plain (unescaped); each renderer escapes for its own format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from clipaction.report.caveats import (
    grid_tie_sentence,
    identical_prompt_groups,
    identical_prompt_sentences,
    method_grid_ties,
    selection_tie,
    selection_tie_sentence,
)
from clipaction.report.summary import (
    CONFUSED,
    METHODS,
    PROMPTS,
    TEMPORAL,
    ZEROSHOT,
    caveat_items,
    summary_items,
)
from clipaction.report.tables import (
    NA,
    Table,
    class_prompts_table,
    comparison_table,
    confused_pairs_table,
    examples_table,
    methods_table,
    number,
    pct,
    prompt_ablation_table,
    ranking_table,
    sampler_text,
    selection_table,
    settings_table,
    shots_table,
    similar_pairs,
    similarity_table,
    stage_confusions,
    summary_table,
    temporal_ablation_table,
    temporal_summary_table,
    temporal_table,
    training_table,
)

BANNER = "Synthetic demo"
# How many confused pairs the zero-shot stage stores and the report lists: one number for both,
# so the report never asks for more than results.json holds.
MOST_CONFUSED_PAIRS = 10
BANNER_TEXT = (
    ": the videos are generated and the model has random weights; these numbers say nothing about real actions."
)
TITLE = "clipaction study report"
MAX_FAILURES = 20
MAX_TEMPLATES = 10
LIMITATIONS = (
    "Averaging frame features is simple temporal modelling: it ignores the order of frames and motion.",
    "Zero-shot accuracy depends on the prompts: other templates or class-name wordings give other numbers.",
    "Naive full fine-tuning of the whole model on a few videos forgets what CLIP knew: "
    "compare its accuracy with the projection-only few-shot stage.",
)


@dataclass(frozen=True)
class Span:
    """Plain, bold or code text; a "link" span points at a heading: `target` is the heading's
    `key` while the document is built, its anchor ("#...") once `resolve_links` has run."""

    text: str
    style: Literal["", "bold", "code", "link"] = ""
    target: str = ""


Inline = tuple[Span, ...]


@dataclass(frozen=True)
class Heading:
    """`key` names a section for links (see summary.py); `anchor` is set by `resolve_links`:
    the GitHub-style slug of the text, so report.md's links work where Markdown is rendered."""

    level: int
    text: str
    key: str = ""
    anchor: str = ""


@dataclass(frozen=True)
class Paragraph:
    spans: Inline
    role: str = ""  # "banner" for the synthetic-data warning


@dataclass(frozen=True)
class Bullets:
    items: tuple[Inline, ...]


@dataclass(frozen=True)
class TableBlock:
    table: Table


@dataclass(frozen=True)
class Image:
    key: str
    path: str  # relative to the report's folder
    caption: str


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Paragraph | Bullets | TableBlock | Image | Code


def text(*parts: str | Span) -> Inline:
    return tuple(part if isinstance(part, Span) else Span(part) for part in parts)


def para(*parts: str | Span) -> Paragraph:
    return Paragraph(text(*parts))


# --- building the document ---------------------------------------------------------------------


def build_document(results: Mapping[str, Any], figures: Mapping[str, str], observations: Sequence[str]) -> list[Block]:
    """Every block of the report, in order. `figures` maps figure keys to relative paths."""
    stages = results.get("stages") or {}
    classes = list((results.get("dataset") or {}).get("classes") or [])
    blocks: list[Block] = []
    if results.get("synthetic"):
        # a run may say what its synthetic data are (the world demo's trained model); else the
        # random-model wording
        note = f": {results['synthetic_note']}" if results.get("synthetic_note") else BANNER_TEXT
        blocks.append(Paragraph(text(Span(BANNER, "bold"), note), role="banner"))
    blocks.append(Heading(1, TITLE))
    if results.get("created_at"):
        blocks.append(para(f"Created {results['created_at']}."))
    blocks += summary_section(results)
    blocks += model_section(results)
    blocks += setup_section(results)
    blocks += zeroshot_section(stages.get("zeroshot"), figures)
    not_applicable = results.get("not_applicable") or {}
    for key, title in (("fewshot", "Few-shot fine-tuning"), ("full_finetune", "Full fine-tuning ablation")):
        if key in not_applicable:
            blocks += [Heading(2, title, key=key), para(f"Not applicable to this model: {not_applicable[key]}.")]
            continue
        blocks += finetune_section(stages.get(key), classes, figures, key, title)
    if "adapt" in not_applicable:
        blocks += [
            Heading(2, "Few-shot methods compared", key=METHODS),
            para(f"Not applicable to this model: {not_applicable['adapt']}."),
        ]
    else:
        blocks += methods_section(stages.get("adapt_methods"), figures)
    blocks += embeddings_section(stages.get("embeddings"), classes, figures)
    blocks += temporal_section(stages.get("temporal"), figures)
    label_map = ((results.get("config") or {}).get("prompts") or {}).get("label_map")
    blocks += ablations_section(stages.get("ablations"), label_map)
    blocks.append(Heading(2, "Observations"))
    if observations:
        blocks.append(Bullets(tuple(text(sentence) for sentence in observations)))
    else:
        blocks.append(para("No stage gave numbers to observe."))
    blocks.append(Heading(2, "Limitations"))
    blocks.append(Bullets(tuple(text(line) for line in LIMITATIONS)))
    return resolve_links(blocks)


def summary_section(results: Mapping[str, Any]) -> list[Block]:
    """What the run found, before any setting: one line per stage, each linking to its section,
    then the ties and inert settings the numbers cannot carry."""

    def item(subject: str, key: str, rest: str) -> Inline:
        return (Span(subject, "link", key), Span(": " + rest))

    blocks: list[Block] = [
        Heading(2, "Summary", key="summary"),
        Bullets(tuple(item(*entry) for entry in summary_items(results))),
    ]
    caveats = caveat_items(results)
    if caveats:
        blocks.append(para("Ties and settings that had no effect, which the numbers alone do not show:"))
        blocks.append(Bullets(tuple(item(*entry) for entry in caveats)))
    blocks.append(para("The settings of the run follow; then each stage in full."))
    return blocks


def slug(value: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", value.strip().lower()).replace(" ", "-")


def resolve_links(blocks: Sequence[Block]) -> list[Block]:
    """Give every heading its anchor (GitHub's slug, "-1", "-2" for repeats, as GitHub numbers
    them) and point link spans at the first heading with their key; a link whose section is not
    in the document becomes plain text."""
    seen: dict[str, int] = {}
    anchors: dict[str, str] = {}
    out: list[Block] = []
    for block in blocks:
        if isinstance(block, Heading):
            base = slug(block.text)
            count = seen.get(base, 0)
            seen[base] = count + 1
            anchor = base if count == 0 else f"{base}-{count}"
            if block.key:
                anchors.setdefault(block.key, anchor)
            block = Heading(block.level, block.text, block.key, anchor)
        out.append(block)

    def link(span: Span) -> Span:
        if span.style != "link":
            return span
        anchor = anchors.get(span.target)
        return Span(span.text, "link", "#" + anchor) if anchor else Span(span.text)

    for i, block in enumerate(out):
        if isinstance(block, Paragraph):
            out[i] = Paragraph(tuple(map(link, block.spans)), block.role)
        elif isinstance(block, Bullets):
            out[i] = Bullets(tuple(tuple(map(link, item)) for item in block.items))
    return out


def _image(figures: Mapping[str, str], key: str, caption: str) -> list[Block]:
    return [Image(key, figures[key], caption)] if key in figures else []


def _not_run() -> list[Block]:
    return [para("This stage was not run.")]


def model_section(results: Mapping[str, Any]) -> list[Block]:
    model = results.get("model") or {}
    env = results.get("env") or {}
    rows = [
        ("Model", model.get("name_or_path")),
        ("Revision", model.get("revision") or "default"),
        ("Device", model.get("device")),
        ("Precision", model.get("precision")),
        ("Family", model.get("family")),
        ("Scores", _score_text(model.get("score"))),
        ("Logit scale", number(model.get("logit_scale")) if model.get("logit_scale") is not None else None),
        ("Logit bias", number(model.get("logit_bias")) if model.get("logit_bias") else None),
        ("Image feature size", model.get("feature_dim")),
        ("Embedding size", model.get("embed_dim")),
    ]
    if env:
        rows.append(("Software", ", ".join(f"{key} {value}" for key, value in sorted(env.items()))))
    return [Heading(2, "Model"), TableBlock(settings_table(rows))]


def _score_text(kind: str | None) -> str | None:
    return {
        "softmax": "softmax over the classes of scale x cosine",
        "sigmoid": "independent sigmoid per class of scale x cosine + bias",
    }.get(kind or "", kind)


def setup_section(results: Mapping[str, Any]) -> list[Block]:
    dataset = results.get("dataset") or {}
    classes = list(dataset.get("classes") or [])
    failures = list(results.get("failures") or [])
    zeroshot = (results.get("stages") or {}).get("zeroshot") or {}
    prompts = results.get("prompts") or {}
    rows = [
        ("Dataset", dataset.get("name")),
        ("Split", dataset.get("split")),
        ("Classes", len(classes)),
        ("Test videos", dataset.get("n_test")),
        ("Train videos", dataset.get("n_train")),
        ("Missing or unreadable videos", len(failures)),
        ("Frames (zero-shot)", sampler_text(zeroshot["sampler"]) if zeroshot.get("sampler") else None),
        ("Class-name style", prompts.get("name_style")),
        ("Prompt templates", len(prompts.get("templates") or [])),
        ("Dataset root", dataset.get("root")),
    ]
    blocks: list[Block] = [Heading(2, "Setup"), TableBlock(settings_table(rows))]
    if classes:
        blocks.append(para("Classes: " + ", ".join(classes) + "."))
    if failures:
        blocks.append(para(f"{len(failures)} videos could not be used:"))
        items = [
            text(Span(str(failure.get("path", NA)), "code"), f": {failure.get('error', NA)}")
            for failure in failures[:MAX_FAILURES]
        ]
        if len(failures) > MAX_FAILURES:
            items.append(text(f"... and {len(failures) - MAX_FAILURES} more (listed in results.json)."))
        blocks.append(Bullets(tuple(items)))
    blocks += partial_videos_blocks(results.get("warnings") or [])
    templates = list(prompts.get("templates") or [])
    if templates:
        blocks.append(para(f"Prompt templates ({{}} stands for the class name), {len(templates)} in all:"))
        items = [text(Span(template, "code")) for template in templates[:MAX_TEMPLATES]]
        if len(templates) > MAX_TEMPLATES:
            items.append(text(f"... and {len(templates) - MAX_TEMPLATES} more."))
        blocks.append(Bullets(tuple(items)))
    if prompts.get("class_prompts") and classes:
        blocks.append(para("One prompt per class, as the text encoder reads it:"))
        blocks.append(TableBlock(class_prompts_table(classes, prompts["class_prompts"])))
    return blocks


def partial_videos_blocks(warnings: Sequence[Mapping[str, Any]]) -> list[Block]:
    """Videos used although they decoded only partly (results.json `warnings`: path, warning)."""
    if not warnings:
        return []
    items = [
        text(Span(str(item.get("path", NA)), "code"), f": {item.get('warning', NA)}")
        for item in warnings[:MAX_FAILURES]
    ]
    if len(warnings) > MAX_FAILURES:
        items.append(text(f"... and {len(warnings) - MAX_FAILURES} more (listed in results.json)."))
    return [
        Heading(3, "Videos that decoded only partly"),
        para(
            f"{len(warnings)} video(s) were used although their stream ends before its declared length"
            " or their frames had to be repeated to fill the sampler's count:"
        ),
        Bullets(tuple(items)),
    ]


def zeroshot_section(stage: Mapping[str, Any] | None, figures: Mapping[str, str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Zero-shot accuracy and example outputs", key=ZEROSHOT)]
    if not stage:
        return blocks + _not_run()
    metrics = stage.get("metrics") or {}
    if stage.get("sampler"):
        blocks.append(para(f"Frames: {sampler_text(stage['sampler'])}."))
    blocks.append(TableBlock(summary_table(metrics)))
    blocks += _image(figures, "zeroshot_confusion", "Zero-shot confusion matrix (rows: true class)")
    if stage.get("classification_report"):
        blocks += [Heading(3, "Classification report"), Code(stage["classification_report"].rstrip("\n"))]
    blocks += [Heading(3, "Per-class accuracy, best to worst"), TableBlock(ranking_table(metrics))]
    blocks += _image(figures, "zeroshot_per_class", "Zero-shot accuracy per class")
    pairs = stage_confusions(stage, MOST_CONFUSED_PAIRS)
    blocks.append(Heading(3, "Most confused pairs", key=CONFUSED))
    if pairs:
        blocks.append(TableBlock(confused_pairs_table(pairs, metrics)))
    else:
        blocks.append(para("No test video was misclassified."))
    if stage.get("examples"):
        blocks += [Heading(3, "Example predictions"), TableBlock(examples_table(stage["examples"]))]
    return blocks


def finetune_section(
    stage: Mapping[str, Any] | None, classes: Sequence[str], figures: Mapping[str, str], key: str, title: str
) -> list[Block]:
    blocks: list[Block] = [Heading(2, title, key=key)]
    if not stage:
        return blocks + _not_run()
    chosen = list(stage.get("chosen_classes") or [])
    trained_part = (stage.get("training") or {}).get("trained")
    if "select_on" in stage:
        trained_part = trained_part or "visual projection"
        sentence = (
            f"The {len(chosen)} classes with the lowest zero-shot accuracy on the {stage['select_on']} list "
            f"were chosen: {', '.join(chosen)}. Trained: the {trained_part}; the rest of CLIP stays frozen."
        )
        if stage["select_on"] == "test":
            sentence += " The choice read test labels, so the gains on these classes are optimistic."
        blocks.append(para(sentence))
        tie = selection_tie(stage)
        if tie:
            blocks.append(Paragraph(text(Span("Tie at the cut. ", "bold"), selection_tie_sentence(tie))))
        if stage.get("selection_accuracy"):
            blocks.append(TableBlock(selection_table(stage)))
    else:
        trained_part = trained_part or "whole image tower"
        blocks.append(para(f"Trained: the {trained_part}, on the chosen classes: {', '.join(chosen)}."))
    blocks.append(Heading(3, "Training data and settings"))
    trained = list(stage.get("train_classes") or chosen)
    sentence = f"Shots per class asked: {stage.get('shots', NA)}. Trained classes: {', '.join(trained)}."
    if stage.get("n_train_videos") is not None:
        sentence += f" Training videos: {stage['n_train_videos']}."
    short = list(stage.get("short_classes") or [])
    if short:
        counts = stage.get("shots_per_class") or {}
        listed = ", ".join(f"{name} ({counts.get(name, NA)})" for name in short)
        sentence += f" Fewer training videos than asked: {listed}."
    blocks.append(para(sentence))
    if stage.get("shots_per_class"):
        blocks.append(TableBlock(shots_table(stage)))
    blocks.append(TableBlock(training_table(stage.get("training") or {})))
    chosen_metrics = stage.get("chosen_metrics") or {}
    blocks.append(Heading(3, "Accuracy on the chosen classes"))
    if chosen_metrics:
        blocks.append(para(f"Top-1 among the chosen classes only: {pct(chosen_metrics.get('top1'))}."))
        blocks.append(TableBlock(ranking_table(chosen_metrics)))
    blocks += _image(figures, f"{key}_confusion", "Confusion matrix of the chosen classes after training")
    blocks.append(Heading(3, "Zero-shot vs fine-tuned, all classes"))
    blocks.append(TableBlock(comparison_table(stage, classes)))
    caption = "Accuracy per class before and after training (* = trained)"
    blocks += _image(figures, f"{key}_comparison", caption)
    blocks += _image(figures, f"{key}_confusion_all", "Confusion matrix over all classes after training")
    return blocks


def embeddings_section(
    stage: Mapping[str, Any] | None, classes: Sequence[str], figures: Mapping[str, str]
) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Embeddings")]
    if not stage:
        return blocks + _not_run()
    tsne = stage.get("tsne") or {}
    if tsne:
        settings = f"perplexity {tsne.get('perplexity', NA)}, seed {tsne.get('seed', NA)}"
        blocks.append(para(f"t-SNE of the test videos' embeddings, {settings}."))
    blocks += _image(figures, "tsne", "t-SNE of the video embeddings, coloured by true class")
    blocks += _image(figures, "text_similarity", "Cosine similarity between the classes' text features")
    pairs = similar_pairs(stage.get("text_similarity") or [], classes, 5)
    if pairs:
        blocks += [para("The most similar class prompts:"), TableBlock(similarity_table(pairs))]
    return blocks


def temporal_section(stage: Mapping[str, Any] | None, figures: Mapping[str, str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Temporal input", key=TEMPORAL)]
    if not stage:
        return blocks + _not_run()
    blocks.append(TableBlock(temporal_summary_table(stage)))
    blocks += _image(figures, "temporal_confusion", "Confusion matrices of the temporal variants")
    if stage.get("per_class"):
        blocks += [Heading(3, "Correct videos per class"), TableBlock(temporal_table(stage))]
    return blocks


def methods_section(stage: Mapping[str, Any] | None, figures: Mapping[str, str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Few-shot methods compared", key=METHODS)]
    if not stage:
        return blocks + _not_run()
    outside = stage.get("outside")
    blocks.append(
        para(
            f"Every method trains on the same {stage.get('n_train_videos', 'n/a')} videos of "
            f"{', '.join(stage.get('chosen_classes') or [])}. Accuracy on the test list after each "
            "method, with the change from zero-shot in points."
            + (
                f" Classes outside the study: zero-shot top-1 among the {len(outside['classes'])} other "
                f"classes of the dataset on {outside['n_videos']} of their test videos, through the adapted "
                "projection (unchanged for methods that keep CLIP's)."
                if outside
                else ""
            )
        )
    )
    blocks.append(TableBlock(methods_table(stage)))
    ties = method_grid_ties(stage)
    if ties:
        blocks.append(para("Ties in the held-out searches:"))
        blocks.append(Bullets(tuple(text(grid_tie_sentence(name, tie)) for name, tie in ties)))
    blocks += _image(figures, "adapt_tradeoff", "Accuracy on trained vs other classes per method")
    return blocks


def ablations_section(stage: Mapping[str, Any] | None, label_map: Any = None) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Ablations")]
    if not stage:
        return blocks + _not_run()
    if stage.get("prompts"):
        groups = identical_prompt_groups(stage, label_map)
        blocks += [
            Heading(3, "Prompts", key=PROMPTS),
            para("Zero-shot accuracy on the test list for each way of writing the class texts."),
            TableBlock(prompt_ablation_table(stage["prompts"], groups)),
        ]
        blocks += [para(sentence) for sentence in identical_prompt_sentences(stage, label_map)]
    if stage.get("temporal"):
        blocks += [
            Heading(3, "Temporal input"),
            para("Zero-shot accuracy for each choice of frames (frame features averaged)."),
            TableBlock(temporal_ablation_table(stage["temporal"])),
        ]
    return blocks


# --- Markdown rendering ------------------------------------------------------------------------

# ">" only quotes at a line start, which no escaped text reaches; "<" is escaped, so no autolinks.
_SPECIAL = re.compile(r"([\\`*\[\]<|&])")


def escape(value: str) -> str:
    """Backslash-escape the characters that Markdown (CommonMark/GFM) would read as markup."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(value).splitlines()))


def _code_span(value: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def inline_markdown(spans: Inline) -> str:
    out = []
    for span in spans:
        if span.style == "bold":
            out.append(f"**{escape(span.text)}**")
        elif span.style == "code":
            out.append(_code_span(" ".join(span.text.splitlines())))
        elif span.style == "link" and span.target.startswith("#"):
            out.append(f"[{escape(span.text)}]({span.target})")
        else:
            out.append(escape(span.text))
    return "".join(out)


def table_markdown(table: Table) -> str:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(escape(cell) for cell in cells) + " |"

    rule = "| " + " | ".join("---:" if a == "r" else "---" for a in table.align) + " |"
    return "\n".join([row(table.header), rule, *(row(cells) for cells in table.rows)])


def block_markdown(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + escape(block.text)
    if isinstance(block, Paragraph):
        return inline_markdown(block.spans)
    if isinstance(block, Bullets):
        return "\n".join("- " + inline_markdown(item) for item in block.items)
    if isinstance(block, TableBlock):
        return table_markdown(block.table)
    if isinstance(block, Image):
        return f"![{escape(block.caption)}]({block.path})"
    if isinstance(block, Code):
        longest = max((len(run) for run in re.findall(r"`{3,}", block.text)), default=2)
        fence = "`" * (longest + 1)
        return f"{fence}text\n{block.text}\n{fence}"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_markdown(blocks: Sequence[Block]) -> str:
    return "\n\n".join(block_markdown(block) for block in blocks) + "\n"
