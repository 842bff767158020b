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

from clipaction.evaluate import classification_report_text, compute_metrics
from clipaction.report import observations, write_figures, write_report
from clipaction.report.markdown import BANNER, BANNER_TEXT
from clipaction.report.tables import pct, points, sampler_text
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
            {"class": name, "correct": correct, "mistakes": mistakes, "difference": correct["center-clip"] - correct["middle"]}
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
    training = {"lr": 1e-4, "epochs": 3, "weight_decay": 0.01, "seed": 0, "batch_size": 8, "loss_curve": [1.9, 1.2, 0.7]}
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
        "model": {"name_or_path": "tiny-random-clip", "revision": None, "device": "cpu", "precision": "fp32",
                  "logit_scale": 100.0, "feature_dim": 64, "embed_dim": 32},
        "dataset": {"name": "ucf101", "split": 1, "classes": CLASSES, "n_test": len(labels), "n_train": 300, "root": "/data/UCF-101"},
        "failures": [{"path": f"/data/UCF-101/Jump<b>&Roll/v_{i:02d}.avi", "error": "moov atom not found"} for i in range(23)],
        "prompts": {"templates": ["a photo of a person {}."], "name_style": "raw",
                    "class_prompts": [f"a photo of a person {name}." for name in CLASSES]},
        "stages": {
            "zeroshot": {
                "sampler": {"name": "center-clip", "frames": 8, "window": 3.0},
                "metrics": zs,
                "classification_report": classification_report_text(zs_scores, labels, CLASSES),
                "most_confused": most_confused(zs),  # what the zero-shot stage stores
                "examples": [
                    {"video": "/data/UCF-101/Basketball/v_Basketball_g01_c01.avi", "true": "Basketball",
                     "predicted": "BasketballDunk", "top5": [["BasketballDunk", 0.6], ["Basketball", 0.3], ["Archery", 0.1]]}
                ],
            },
            "temporal": {
                "variants": [
                    {"name": "middle", "sampler": {"name": "middle", "frames": 1, "window": 3.0}, "frames_per_video": 1, "metrics": middle},
                    {"name": "center-clip", "sampler": {"name": "center-clip", "frames": 8, "window": 3.0}, "frames_per_video": 8, "metrics": zs},
                ],
                "per_class": per_class_temporal,
            },
            "fewshot": {
                "select_on": "train", "selection_accuracy": accuracy, "chosen_classes": chosen, "shots": 16,
                "shots_per_class": {chosen[0]: 16, chosen[1]: 10}, "short_classes": [chosen[1]], "train_classes": chosen,
                "training": few_training, "chosen_metrics": chosen_metrics, "zeroshot_metrics": zs,
                "finetuned_metrics": finetuned, "comparison": comparison(zs, finetuned),
            },
            "full_finetune": {
                "chosen_classes": chosen, "shots": 16, "shots_per_class": {chosen[0]: 16, chosen[1]: 10},
                "short_classes": [chosen[1]], "train_classes": chosen, "training": full_training,
                "chosen_metrics": collapsed_chosen, "zeroshot_metrics": zs, "finetuned_metrics": collapsed,
                "comparison": comparison(zs, collapsed),
            },
            "embeddings": {
                "tsne": {"points": (centres[labels] + rng.normal(0, 1, size=(len(labels), 2))).tolist(),
                         "labels": labels.tolist(), "perplexity": 30.0, "seed": 0},
                "text_similarity": similarity.tolist(),
            },
            "ablations": {
                "prompts": [
                    {"name_style": "raw", "templates": "seed", "n_templates": 1, "top1": 0.40, "top5": 0.8, "mean_class_accuracy": 0.4},
                    {"name_style": "spaced", "templates": "clip", "n_templates": 48, "top1": 0.55, "top5": 0.9, "mean_class_accuracy": 0.5},
                ],
                "temporal": [
                    {"name": "middle", "sampler": {"name": "middle", "frames": 8, "window": 3.0}, "frames_per_video": 1,
                     "n_videos": 60, "top1": 0.30, "top5": 0.7, "mean_class_accuracy": 0.3},
                    {"name": "uniform-16", "sampler": {"name": "uniform", "frames": 16, "window": 3.0}, "frames_per_video": 16,
                     "n_videos": 60, "top1": 0.45, "top5": 0.8, "mean_class_accuracy": 0.45},
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

    from clipaction.results import write_json

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
    assert any("spaced class names with the clip templates scored best (55.0% top-1)" in s and "+15.0 points" in s for s in sentences)
    assert any("uniform-16 (16 frames per video) scored best (45.0% top-1), +15.0 points over middle (1 frame)" in s for s in sentences)


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
