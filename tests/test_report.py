"""The report renders a fabricated results dict: figures, report.md, report.html, observations.

The expected numbers are computed here from the fabricated predictions, not read back from the
report code.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from PIL import Image

from clipaction.adapt.base import pick_best
from clipaction.adapt.selection import weakest_classes
from clipaction.classify.metrics import classification_report_text, compute_metrics
from clipaction.report import observations, write_figures, write_report
from clipaction.report.markdown import BANNER, BANNER_TEXT, build_document, render_markdown
from clipaction.report.tables import pct, points, sampler_text
from clipaction.study.adaptation import SELECTION_TIE_BREAK
from clipaction.study.evaluation import most_confused

CLASSES = ["Archery", "Basketball", "BasketballDunk", "Biking", "Jump<b>&Roll", "Billiards"]
C = len(CLASSES)
PER_CLASS = 20
B, D = 1, 2  # planted: Basketball (B) predicted as BasketballDunk (D) for 9 of its 20 videos
PLANTED = 9
BANNER_LINE = f"**{BANNER}**{BANNER_TEXT}"
SECTIONS = [
    "## Model",
    "## Setup",
    "## Zero-shot accuracy and example outputs",
    "## Few-shot fine-tuning",
    "## Full fine-tuning ablation",
    "## Few-shot methods compared",
    "## Embeddings",
    "## Temporal input",
    "## Ablations",
    "## Observations",
    "## Limitations",
]
ALL_FIGURES = {
    "zeroshot_confusion",
    "zeroshot_per_class",
    "temporal_confusion",
    "fewshot_confusion",
    "fewshot_confusion_all",
    "fewshot_comparison",
    "full_finetune_confusion",
    "full_finetune_confusion_all",
    "full_finetune_comparison",
    "tsne",
    "text_similarity",
}


def predictions(rng: np.random.Generator, labels: np.ndarray, correct: float) -> np.ndarray:
    """Each video right with probability `correct`, else a random other class."""
    predicted = labels.copy()
    for i, label in enumerate(labels):
        if rng.random() >= correct:
            predicted[i] = rng.choice([c for c in range(C) if c != label])
    return predicted


def scores_for(rng: np.random.Generator, predicted: np.ndarray, n_classes: int = C) -> np.ndarray:
    scores = rng.normal(0.0, 0.1, size=(len(predicted), n_classes))
    scores[np.arange(len(predicted)), predicted] += 5.0
    return scores


def stage_metrics(labels: np.ndarray, predicted: np.ndarray, classes=CLASSES) -> dict:
    rng = np.random.default_rng(99)
    return compute_metrics(scores_for(rng, predicted, len(classes)), labels, classes)


def comparison(before: dict, after: dict) -> list[dict]:
    return [
        {
            "class": name,
            "zeroshot": before["per_class"][name]["accuracy"],
            "finetuned": after["per_class"][name]["accuracy"],
            "delta": after["per_class"][name]["accuracy"] - before["per_class"][name]["accuracy"],
        }
        for name in CLASSES
    ]


def fabricate(synthetic: bool = True) -> tuple[dict, dict]:
    """A results dict with every stage, and the facts the tests check against."""
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(C), PER_CLASS)
    zs_pred = predictions(rng, labels, 0.75)
    basketball = np.flatnonzero(labels == B)
    zs_pred[basketball] = [D] * PLANTED + [B] * 8 + [0, 3, 5]
    zs_scores = scores_for(rng, zs_pred)
    zs = compute_metrics(zs_scores, labels, CLASSES)
    matrix = np.array(zs["confusion_matrix"])
    off = matrix - np.diag(np.diag(matrix))
    assert off.max() == PLANTED and (off == PLANTED).sum() == 1  # the planted pair is the top one
    # More confused pairs than the report lists, so a stage storing fewer than it shows is caught.
    assert np.count_nonzero(off) >= 12

    middle_pred = predictions(rng, labels, 0.55)
    middle = stage_metrics(labels, middle_pred)
    per_class_temporal = []
    for i, name in enumerate(CLASSES):
        rows = labels == i
        correct = {"middle": int((middle_pred[rows] == i).sum()), "center-clip": int((zs_pred[rows] == i).sum())}
        mistakes = {k: PER_CLASS - v for k, v in correct.items()}
        per_class_temporal.append(
            {
                "class": name,
                "correct": correct,
                "mistakes": mistakes,
                "difference": correct["center-clip"] - correct["middle"],
            }
        )

    accuracy = {name: zs["per_class"][name]["accuracy"] for name in CLASSES}
    chosen = sorted(CLASSES, key=lambda n: (accuracy[n], CLASSES.index(n)))[:2]
    chosen = [n for n in CLASSES if n in chosen]
    chosen_ids = [CLASSES.index(n) for n in chosen]
    ft_pred = zs_pred.copy()
    for index in chosen_ids:  # trained classes become perfect
        ft_pred[labels == index] = index
    untouched = next(i for i in range(C) if i not in chosen_ids)
    forgot = np.flatnonzero((labels == untouched) & (ft_pred == untouched))[:3]
    ft_pred[forgot] = chosen_ids[0]  # mild forgetting in one untouched class
    finetuned = stage_metrics(labels, ft_pred)
    mask = np.isin(labels, chosen_ids)
    chosen_labels = np.array([chosen_ids.index(x) for x in labels[mask]])
    chosen_metrics = stage_metrics(chosen_labels, chosen_labels.copy(), chosen)

    collapse_pred = np.where(rng.random(len(labels)) < 0.85, 3, 4)  # Biking and Jump<b>&Roll
    collapsed = stage_metrics(labels, collapse_pred)
    collapsed_chosen = stage_metrics(chosen_labels, np.zeros_like(chosen_labels), chosen)
    training = {
        "lr": 1e-4,
        "epochs": 3,
        "weight_decay": 0.01,
        "seed": 0,
        "batch_size": 8,
        "loss_curve": [1.9, 1.2, 0.7],
    }
    few_training = {**training, "trained": "visual projection"}
    full_training = {**training, "trained": "whole image tower"}

    similarity = rng.uniform(0.5, 0.8, size=(C, C))
    similarity = (similarity + similarity.T) / 2
    similarity[B, D] = similarity[D, B] = 0.95
    np.fill_diagonal(similarity, 1.0)
    centres = rng.normal(0, 10, size=(C, 2))
    centres[D] = centres[B] + 0.5

    results = {
        "schema_version": 1,
        "task": "study",
        "synthetic": synthetic,
        "created_at": "2025-01-01T00:00:00+00:00",
        "env": {"python": "3.11", "clipaction": "0.1.0"},
        "model": {
            "name_or_path": "tiny-random-clip",
            "revision": None,
            "device": "cpu",
            "precision": "fp32",
            "logit_scale": 100.0,
            "feature_dim": 64,
            "embed_dim": 32,
        },
        "dataset": {
            "name": "ucf101",
            "split": 1,
            "classes": CLASSES,
            "n_test": len(labels),
            "n_train": 300,
            "root": "/data/UCF-101",
        },
        "failures": [
            {"path": f"/data/UCF-101/Jump<b>&Roll/v_{i:02d}.avi", "error": "moov atom not found"} for i in range(23)
        ],
        "prompts": {
            "templates": ["a photo of a person {}."],
            "name_style": "raw",
            "class_prompts": [f"a photo of a person {name}." for name in CLASSES],
        },
        "stages": {
            "zeroshot": {
                "sampler": {"name": "center-clip", "frames": 8, "window": 3.0},
                "metrics": zs,
                "classification_report": classification_report_text(zs_scores, labels, CLASSES),
                "most_confused": most_confused(zs),  # what the zero-shot stage stores
                "examples": [
                    {
                        "video": "/data/UCF-101/Basketball/v_Basketball_g01_c01.avi",
                        "true": "Basketball",
                        "predicted": "BasketballDunk",
                        "top5": [["BasketballDunk", 0.6], ["Basketball", 0.3], ["Archery", 0.1]],
                    }
                ],
            },
            "temporal": {
                "variants": [
                    {
                        "name": "middle",
                        "sampler": {"name": "middle", "frames": 1, "window": 3.0},
                        "frames_per_video": 1,
                        "metrics": middle,
                    },
                    {
                        "name": "center-clip",
                        "sampler": {"name": "center-clip", "frames": 8, "window": 3.0},
                        "frames_per_video": 8,
                        "metrics": zs,
                    },
                ],
                "per_class": per_class_temporal,
            },
            "fewshot": {
                "select_on": "train",
                "selection_accuracy": accuracy,
                "chosen_classes": chosen,
                "shots": 16,
                "shots_per_class": {chosen[0]: 16, chosen[1]: 10},
                "short_classes": [chosen[1]],
                "train_classes": chosen,
                "training": few_training,
                "chosen_metrics": chosen_metrics,
                "zeroshot_metrics": zs,
                "finetuned_metrics": finetuned,
                "comparison": comparison(zs, finetuned),
            },
            "full_finetune": {
                "chosen_classes": chosen,
                "shots": 16,
                "shots_per_class": {chosen[0]: 16, chosen[1]: 10},
                "short_classes": [chosen[1]],
                "train_classes": chosen,
                "training": full_training,
                "chosen_metrics": collapsed_chosen,
                "zeroshot_metrics": zs,
                "finetuned_metrics": collapsed,
                "comparison": comparison(zs, collapsed),
            },
            "embeddings": {
                "tsne": {
                    "points": (centres[labels] + rng.normal(0, 1, size=(len(labels), 2))).tolist(),
                    "labels": labels.tolist(),
                    "perplexity": 30.0,
                    "seed": 0,
                },
                "text_similarity": similarity.tolist(),
            },
            "ablations": {
                "prompts": [
                    {
                        "name_style": "raw",
                        "templates": "seed",
                        "n_templates": 1,
                        "top1": 0.40,
                        "top5": 0.8,
                        "mean_class_accuracy": 0.4,
                    },
                    {
                        "name_style": "spaced",
                        "templates": "clip",
                        "n_templates": 48,
                        "top1": 0.55,
                        "top5": 0.9,
                        "mean_class_accuracy": 0.5,
                    },
                ],
                "temporal": [
                    {
                        "name": "middle",
                        "sampler": {"name": "middle", "frames": 8, "window": 3.0},
                        "frames_per_video": 1,
                        "n_videos": 60,
                        "top1": 0.30,
                        "top5": 0.7,
                        "mean_class_accuracy": 0.3,
                    },
                    {
                        "name": "uniform-16",
                        "sampler": {"name": "uniform", "frames": 16, "window": 3.0},
                        "frames_per_video": 16,
                        "n_videos": 60,
                        "top1": 0.45,
                        "top5": 0.8,
                        "mean_class_accuracy": 0.45,
                    },
                ],
            },
        },
    }
    facts = {
        "top1": float(np.mean(zs_pred == labels)),
        "middle_top1": float(np.mean(middle_pred == labels)),
        "finetuned_top1": float(np.mean(ft_pred == labels)),
        "collapsed_top1": float(np.mean(collapse_pred == labels)),
        "collapse_share1": float(np.mean(collapse_pred == 3)),
        "collapse_share2": float(np.mean(np.isin(collapse_pred, [3, 4]))),
        "chosen": chosen,
        "forgot": CLASSES[untouched],
        "confused": confused_cells(matrix),
    }
    return results, facts


def confused_cells(matrix: np.ndarray) -> list[tuple[str, str, int]]:
    """Every off-diagonal cell with a video, largest first; ties in row-major order."""
    off = matrix - np.diag(np.diag(matrix))
    order = np.argsort(-off.ravel(), kind="stable")
    cells = [divmod(int(k), len(matrix)) for k in order if off.flat[k] > 0]
    return [(CLASSES[i], CLASSES[j], int(off[i, j])) for i, j in cells]


@pytest.fixture(scope="module")
def study():
    return fabricate()


@pytest.fixture(scope="module")
def report(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    paths = write_report(study[0], out)
    return out, paths


def test_every_figure_is_a_valid_png(report):
    out, paths = report
    figures = {key.split(":", 1)[1] for key in paths if key.startswith("figure:")}
    assert figures == ALL_FIGURES
    for key in ALL_FIGURES:
        path = out / "figures" / f"{key}.png"
        assert path.stat().st_size > 5_000
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 250


def test_markdown_has_sections_in_order_and_the_numbers(study, report):
    results, facts = study
    out, _ = report
    text = (out / "report.md").read_text()
    positions = [text.index(heading + "\n") for heading in SECTIONS]
    assert positions == sorted(positions)
    assert f"| Top-1 accuracy | {100 * facts['top1']:.1f}% |" in text
    assert f"{100 * facts['middle_top1']:.1f}%" in text
    assert f"{100 * facts['finetuned_top1']:.1f}%" in text
    assert f"| Basketball | BasketballDunk | {PLANTED} of {PER_CLASS} | {100 * PLANTED / PER_CLASS:.1f}% |" in text
    assert "](figures/zeroshot_confusion.png)" in text
    assert "```text\n" in text and "precision" in text  # the classification report
    assert "Jump\\<b>\\&Roll" in text  # escaped for Markdown
    assert "... and 3 more" in text  # 23 failures, first 20 listed
    assert "Trained: the visual projection;" in text and "Trained: the whole image tower," in text
    assert facts["chosen"][1] in text.split("Fewer training videos than asked:")[1].splitlines()[0]


def test_report_lists_the_ten_most_confused_pairs(study, report):
    results, facts = study
    out, _ = report
    text = (out / "report.md").read_text()
    section = text.split("### Most confused pairs\n")[1].split("\n#")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]  # no header
    listed = [tuple(cell.strip() for cell in row.strip("|").split("|")[:3]) for row in rows]
    expected = [(true, predicted, f"{count} of {PER_CLASS}") for true, predicted, count in facts["confused"][:10]]
    assert len(facts["confused"]) > 10
    assert [(t.replace("\\", ""), p.replace("\\", ""), v) for t, p, v in listed] == expected


def test_html_is_self_contained_and_escaped(report):
    out, paths = report
    page = (out / "report.html").read_text()
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == len(ALL_FIGURES)
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    assert page.count("<table>") >= 10
    assert "Jump&lt;b&gt;&amp;Roll" in page
    assert "<b>&" not in page
    assert '<p class="banner"><strong>Synthetic demo</strong>' in page


def test_banner_is_the_first_line_only_when_synthetic(study, report, tmp_path):
    out, _ = report
    assert (out / "report.md").read_text().splitlines()[0] == BANNER_LINE
    real = copy.deepcopy(study[0])
    real["synthetic"] = False
    real["stages"] = {"zeroshot": real["stages"]["zeroshot"]}
    write_report(real, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert BANNER not in text and "Synthetic" not in (tmp_path / "report.html").read_text()
    assert text.startswith("# ")


def test_observations_read_the_numbers(study):
    results, facts = study
    sentences = observations(results)
    joined = "\n".join(sentences)
    assert f"Basketball was predicted as BasketballDunk for {PLANTED} of {PER_CLASS} test videos (45.0%)" in joined
    gain = points(facts["top1"] - facts["middle_top1"]).lstrip("+")
    assert f"top-1 {pct(facts['top1'])} against {pct(facts['middle_top1'])} for middle" in joined
    assert f"a gain of {gain} points" in joined
    assert f"went from {pct(facts['top1'])} to {pct(facts['finetuned_top1'])}" in joined
    trained = next(s for s in sentences if "few-shot" in s and "trained classes that gained" in s)
    assert all(name in trained for name in facts["chosen"])
    lost = next(s for s in sentences if "few-shot" in s and "untouched classes that lost" in s)
    assert facts["forgot"] in lost
    collapse = next(s for s in sentences if s.startswith("Full fine-tuning collapsed"))
    assert (
        f"{pct(facts['collapse_share1'])} of the {C * PER_CLASS} test predictions went to Biking and "
        f"{pct(facts['collapse_share2'])} to Biking and Jump<b>&Roll"
    ) in collapse
    assert f"chance level of {pct(1 / C)}" in collapse
    assert "Basketball / BasketballDunk (cosine 0.95)" in joined


def test_stored_observations_are_used(study, tmp_path):
    results = copy.deepcopy(study[0])
    results["stages"] = {"zeroshot": results["stages"]["zeroshot"]}
    results["observations"] = ["A sentence stored by the study."]
    write_report(results, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "- A sentence stored by the study." in text
    assert "was predicted as" not in text.split("## Observations")[1]


def test_zeroshot_only_results_render_without_other_figures(study, tmp_path):
    results = copy.deepcopy(study[0])
    results["stages"] = {"zeroshot": results["stages"]["zeroshot"]}
    paths = write_report(results, tmp_path)
    written = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert written == ["zeroshot_confusion.png", "zeroshot_per_class.png"]
    assert set(paths) == {"markdown", "html", "figure:zeroshot_confusion", "figure:zeroshot_per_class"}
    text = paths["markdown"].read_text()
    assert all(heading + "\n" in text for heading in SECTIONS)
    assert text.count("This stage was not run.") == 6
    sentences = observations(results)
    assert sentences and not any("fine-tuning" in s or "t-SNE" in s or "middle" in s for s in sentences)


def test_nothing_but_the_dataset_still_renders(study, tmp_path):
    results = {key: value for key, value in study[0].items() if key != "stages"}
    assert write_figures(results, tmp_path) == {}
    paths = write_report(results, tmp_path)
    assert "No stage gave numbers to observe." in paths["markdown"].read_text()


def test_writing_twice_gives_the_same_report(study, report, tmp_path):
    out, _ = report
    write_report(study[0], tmp_path)
    assert (tmp_path / "report.md").read_text() == (out / "report.md").read_text()
    assert (tmp_path / "report.html").read_text() == (out / "report.html").read_text()


def test_results_json_round_trip_renders(study, tmp_path):
    """What `clipaction report DIR` reads: results.json with NaN written as null."""
    import json

    from clipaction.outputs import write_json

    results = copy.deepcopy(study[0])
    results["stages"] = {"zeroshot": results["stages"]["zeroshot"]}
    results["stages"]["zeroshot"]["metrics"]["per_class"]["Archery"]["accuracy"] = float("nan")
    write_json(tmp_path / "results.json", results)
    loaded = json.loads((tmp_path / "results.json").read_text())
    text = write_report(loaded, tmp_path)["markdown"].read_text()
    assert re.search(r"\| \d+ \| Archery \| n/a \|", text)


def test_formatting():
    assert pct(0.6321) == "63.2%" and pct(None) == "n/a" and pct(float("nan")) == "n/a"
    assert points(0.05) == "+5.0" and points(-0.1234) == "-12.3" and points(-0.0001) == "0.0"


def test_ablation_tables_and_observations(study):
    results, _ = study
    sentences = observations(results)
    assert any(
        "spaced class names with the clip templates scored best (55.0% top-1)" in s and "+15.0 points" in s
        for s in sentences
    )
    assert any(
        "uniform-16 (16 frames per video) scored best (45.0% top-1), +15.0 points over middle (1 frame)" in s
        for s in sentences
    )


@pytest.mark.parametrize(
    ("sampler", "words"),
    [
        ({"name": "middle"}, ["middle frame"]),
        ({"name": "center-clip", "frames": 8, "window": 3.0}, ["8 frames", "3.0 s"]),
        ({"name": "uniform", "frames": 16}, ["16 frames", "whole video"]),
        ({"name": "multi-clip", "frames": 8, "window": 3.0, "clips": 3}, ["3 clips", "8 frames", "3.0 s"]),
    ],
)
def test_sampler_descriptions_name_their_parameters(sampler, words):
    text = sampler_text(sampler)
    assert text.startswith(sampler["name"] + ":")
    for word in words:
        assert word in text


# --- the summary first, and the ties and inert settings named (issue 20, item 7) ---------------


def markdown_of(results: dict) -> str:
    """report.md's text without figures (fast: nothing is drawn)."""
    return render_markdown(build_document(results, {}, observations(results)))


def summary_of(text: str) -> str:
    return text.split("## Summary\n", 1)[1].split("\n## ", 1)[0]


def group_top1(metrics: dict, names: list[str]) -> float:
    """Correct / videos over the true classes `names`, from the confusion matrix."""
    matrix = np.array(metrics["confusion_matrix"])
    rows = [metrics["classes"].index(name) for name in names]
    return float(sum(matrix[i, i] for i in rows) / matrix[rows].sum())


def test_summary_comes_before_the_settings_with_the_results_numbers(study, report):
    results, facts = study
    out, _ = report
    text = (out / "report.md").read_text()
    assert text.index("## Summary\n") < text.index("## Model\n") < text.index("## Setup\n")
    page = (out / "report.html").read_text()
    assert page.index('<h2 id="summary">') < page.index('<h2 id="model">') < page.index('<h2 id="setup">')
    assert page.index('<h2 id="summary">') < page.index("<table>")  # no setup table above the findings

    summary = summary_of(text)
    stages = results["stages"]
    zs = stages["zeroshot"]["metrics"]
    assert zs["top1"] == facts["top1"]
    assert (
        f"top-1 {pct(zs['top1'])}, top-5 {pct(zs['top5'])} on {C * PER_CLASS} test videos of {C} classes "
        f"(chance: {pct(1 / C)} top-1, {pct(5 / C)} top-5)"
    ) in summary
    middle = stages["temporal"]["variants"][0]["metrics"]["top1"]
    assert f"middle (1 frame) {pct(middle)}, center-clip (8 frames) {pct(zs['top1'])}" in summary
    assert f"{points(zs['top1'] - middle)} points from middle to center-clip" in summary

    few = stages["fewshot"]
    chosen, others = facts["chosen"], [n for n in CLASSES if n not in facts["chosen"]]
    before, after = few["zeroshot_metrics"], few["finetuned_metrics"]
    assert group_top1(after, chosen) == 1.0  # the fabricated trained classes became perfect
    assert f"from {pct(group_top1(before, chosen))} to 100.0% correct" in summary
    lost = sum(1 for row in few["comparison"] if row["class"] in others and row["delta"] < 0)
    assert lost >= 1
    assert (
        f"the other {len(others)} classes went from {pct(group_top1(before, others))} to "
        f"{pct(group_top1(after, others))} ({points(group_top1(after, others) - group_top1(before, others))} points), "
        f"{lost} of them lost accuracy"
    ) in summary
    full = stages["full_finetune"]["finetuned_metrics"]
    assert f"from {pct(zs['top1'])} to {pct(full['top1'])}" in summary and pct(facts["collapsed_top1"]) in summary
    assert f"{pct(facts['collapse_share1'])} of the test predictions went to Biking" in summary
    assert f"Basketball predicted as BasketballDunk ({PLANTED} of {PER_CLASS}, {pct(PLANTED / PER_CLASS)})" in summary

    # each line links to its section, and every link in the page lands on a heading
    assert "[Zero-shot](#zero-shot-accuracy-and-example-outputs)" in summary
    assert "[Most confused pairs](#most-confused-pairs)" in summary
    assert "[Full fine-tuning](#full-fine-tuning-ablation)" in summary
    targets = re.findall(r'href="#([^"]+)"', page)
    ids = set(re.findall(r' id="([^"]+)"', page))
    assert len(targets) >= 6 and set(targets) <= ids
    assert len(re.findall(r"<h\d id=", page)) == len(set(re.findall(r'<h\d id="([^"]+)"', page)))  # unique


def test_summary_says_when_a_stage_did_not_run_or_does_not_apply(study):
    results = copy.deepcopy(study[0])
    results["stages"] = {"zeroshot": results["stages"]["zeroshot"]}
    results["not_applicable"] = {"full_finetune": "this family has no trainable image tower"}
    summary = summary_of(markdown_of(results))
    assert "[Single frame vs clip](#temporal-input): not run." in summary
    assert "[Few-shot fine-tuning](#few-shot-fine-tuning): not run." in summary
    assert "[Full fine-tuning](#full-fine-tuning-ablation): not applicable to this model." in summary
    bare = {key: value for key, value in study[0].items() if key != "stages"}
    assert "Zero-shot](#zero-shot-accuracy-and-example-outputs): not run." in summary_of(markdown_of(bare))


def test_a_tie_at_the_selection_cut_is_reported_with_the_tied_classes(study):
    results = copy.deepcopy(study[0])
    accuracy = dict(zip(CLASSES, [0.0, 0.125, 0.125, 0.125, 0.5, 0.75], strict=True))
    chosen = weakest_classes(accuracy, 2, CLASSES)  # what the study itself picks
    assert chosen == ["Archery", "Basketball"]  # the tie went to the first in class order, as the report says
    few = results["stages"]["fewshot"]
    few.update(
        selection_accuracy=accuracy,
        selection_support={name: 8 for name in CLASSES},
        chosen_classes=chosen,
        train_classes=chosen,
        selection_tie_break=SELECTION_TIE_BREAK,
    )
    text = markdown_of(results)
    sentence = (
        "The choice cut through a 3-way tie: Basketball, BasketballDunk and Biking all had 12.5% zero-shot accuracy "
        "on the train list (1 of 8 videos each); Basketball was taken and BasketballDunk and Biking were not. "
        "Tie broken by class order: the tied classes that come first in the dataset's class order were taken."
    )
    section = text.split("## Few-shot fine-tuning\n")[1].split("\n## ")[0]
    assert sentence in section and sentence in summary_of(text)
    assert "3-way tie at 12.5%" in summary_of(text)  # on the few-shot line itself

    # no tie at the cut: nothing said
    few["selection_accuracy"] = dict(zip(CLASSES, [0.0, 0.125, 0.25, 0.375, 0.5, 0.75], strict=True))
    text = markdown_of(results)
    assert "tie" not in summary_of(text).lower() and "cut through" not in text


def tip_grid(accuracies: list[float]) -> tuple[dict, tuple[float, float]]:
    """A tip-adapter-f info dict with a 6 x 5 alpha x beta grid and these held-out accuracies."""
    alphas, betas = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0], [1.0, 3.0, 5.5, 7.0, 10.0]
    pairs = [(a, b) for a in alphas for b in betas]
    alpha, beta = pick_best(pairs, accuracies, prefer=lambda pair: pair)  # the method's own choice
    info = {
        "alpha": alpha,
        "beta": beta,
        "alpha_grid": alphas,
        "beta_grid": betas,
        "selected_on": "held-out shots (8 of 40)",
        "selection": [
            {"alpha": a, "beta": b, "heldout_accuracy": acc} for (a, b), acc in zip(pairs, accuracies, strict=True)
        ],
    }
    return info, (alpha, beta)


def with_methods(results: dict, infos: dict) -> dict:
    group = {"trained": 0.2, "others": 0.7, "overall": 0.5}
    results["stages"]["adapt_methods"] = {
        "chosen_classes": ["Archery"],
        "n_train_videos": 40,
        "zeroshot": group,
        "methods": {
            name: {
                "info": info,
                "before": group,
                "after": group,
                "delta": {"trained": 0.1 * i, "others": -0.01 * i, "overall": 0.0},
            }
            for i, (name, info) in enumerate(infos.items())
        },
    }
    return results


def test_an_all_tied_grid_is_reported_with_the_value_taken_and_why(study):
    tied, choice = tip_grid([0.5] * 30)
    assert choice == (0.1, 1.0)
    separated, best = tip_grid([0.5] * 29 + [0.75])
    assert best == (10.0, 10.0)
    results = with_methods(copy.deepcopy(study[0]), {"tip-adapter-f": tied, "tip-adapter": separated})
    text = markdown_of(results)
    sentence = (
        "tip-adapter-f: all 30 grid points (alpha x beta) tied at 50.0% held-out accuracy on held-out shots (8 of 40), "
        "so the search could not tell them apart; alpha 0.1, beta 1 came from the tie-break "
        "(the smallest alpha, then the smallest beta), not from the held-out data."
    )
    section = text.split("## Few-shot methods compared\n")[1].split("\n## ")[0]
    assert sentence in section and sentence in summary_of(text)
    assert "| tip-adapter-f |" in section and "alpha 0.1, beta 1 (tie-break: all 30 grid points tied) |" in section
    assert "alpha 10, beta 10 |" in section  # a real choice carries no tie note
    assert "tip-adapter:" not in text

    partly, choice = tip_grid([0.5 if i in (7, 12, 13, 27) else 0.25 for i in range(30)])
    assert choice == (0.5, 5.5)
    text = markdown_of(with_methods(copy.deepcopy(study[0]), {"tip-adapter-f": partly}))
    assert "4 of 30 grid points (alpha x beta) shared the best held-out accuracy, 50.0%" in text
    assert "alpha 0.5, beta 5.5 came from the tie-break (the smallest alpha), not from the held-out data." in text


def prompt_row(style: str, templates: str, top1: float, names: list[str] | None, style_names=None) -> dict:
    row = {
        "name_style": style,
        "templates": templates,
        "n_templates": 1,
        "top1": top1,
        "top5": 0.9,
        "mean_class_accuracy": top1,
    }
    if names is not None:
        row["class_names"] = names
    if style_names is not None:
        row["style_names"] = style_names
    return row


def test_identical_ablation_rows_are_flagged_and_never_ranked(study):
    mapped = ["draw a bow"] * C
    rows = [
        prompt_row("raw", "name", 0.6, mapped, list(CLASSES)),
        prompt_row("spaced", "name", 0.6, mapped, [n.lower() for n in CLASSES]),
        prompt_row("raw", "seed", 0.3, ["x"] * C, list(CLASSES)),
    ]
    results = copy.deepcopy(study[0])
    results["stages"]["ablations"] = {"prompts": rows, "label_map": "labels.csv", "temporal": []}
    text = markdown_of(results)
    section = text.split("### Prompts\n")[1].split("\n#")[0]
    assert "identical to spaced / name: the label map overrides the name style |" in section
    assert "identical to raw / name: the label map overrides the name style |" in section
    flagged = (
        "The prompt-ablation rows raw / name and spaced / name are identical: the label map overrides the name style"
    )
    assert flagged in section and flagged in summary_of(text)
    sentences = observations(results)
    ranking = [s for s in sentences if s.startswith("Of the prompt choices")]
    assert ranking == [
        "Of the prompt choices, raw = spaced class names with the name templates scored best (60.0% top-1) and "
        "raw names with seed worst (30.0%): +30.0 points apart."
    ]
    assert any(s.startswith(flagged) for s in sentences)

    # only the two identical rows: one result, so nothing is ranked
    results["stages"]["ablations"]["prompts"] = rows[:2]
    assert not [s for s in observations(results) if "prompt choices" in s]

    # the same numbers from different texts are a tie, not identical rows
    results["stages"]["ablations"]["prompts"] = [
        prompt_row("raw", "name", 0.6, ["a"] * C),
        prompt_row("spaced", "name", 0.6, ["b"] * C),
        prompt_row("raw", "seed", 0.3, ["c"] * C),
    ]
    sentences = observations(results)
    assert not any("identical" in s for s in sentences)
    assert any("raw names with name and spaced names with name tied for best (60.0% top-1)" in s for s in sentences)

    # older results without the texts: equal numbers with the same templates are flagged as such
    results["stages"]["ablations"]["prompts"] = [
        prompt_row("raw", "name", 0.6, None),
        prompt_row("spaced", "name", 0.6, None),
    ]
    text = markdown_of(results)
    assert "rows raw / name and spaced / name have identical numbers with the same templates" in text
    assert "does not record their texts" in text
    assert not [s for s in observations(results) if "prompt choices" in s]

    # the same identity over several template sets is said once
    results["stages"]["ablations"]["prompts"] = [
        prompt_row("raw", "name", 0.6, mapped, list(CLASSES)),
        prompt_row("raw", "seed", 0.4, ["y"] * C, list(CLASSES)),
        prompt_row("spaced", "name", 0.6, mapped, ["z"] * C),
        prompt_row("spaced", "seed", 0.4, ["y"] * C, ["z"] * C),
    ]
    merged = (
        "The prompt-ablation rows with raw and spaced class names are identical for each template set (name and seed): "
        "the label map overrides the name style; each set has one result, not 2."
    )
    text = markdown_of(results)
    assert merged in summary_of(text) and summary_of(text).count("Prompt ablation") == 1
    assert [s for s in observations(results) if s.startswith("Of the prompt choices")] == [
        "Of the prompt choices, raw = spaced class names with the name templates scored best (60.0% top-1) and "
        "raw = spaced names with seed worst (40.0%): +20.0 points apart."
    ]
