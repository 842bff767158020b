"""End-to-end correctness with a model that knows something: the tiny CLIP trained on the
synthetic action world (tests/conftest.py `world_model_dir`), on the demo's videos.

A random model gets chance everywhere, so a bug that pairs the wrong prompt with a class, reads
the wrong label or mixes up class order cannot be seen with it; here it can. The library is
driven through its CLI and `run_study`; the reference computation uses only PyAV and
transformers. These numbers are about the synthetic world, not about real actions.
"""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from clipaction.cli import main

#: Zero-shot top-1 on the demo's 90 test videos must be at least this (chance is 1/15 = 6.7%).
#: Measured: see the closing note of issue 16; the bound leaves a wide margin below it.
MIN_TOP1 = 0.3
#: The same on the unseen compositions alone (held-out colour-shape pairs).
MIN_UNSEEN_TOP1 = 0.25
WINDOW, FRAMES = 3.0, 8  # the default center-clip sampler


def _zeroshot(data, model: Path, out: Path, cache: Path, *, classes, manifest=None, label_map=None) -> dict:
    code = main([
        "zeroshot", "--dataset", "folder", "--manifest", str(manifest or data.manifest), "--data-root", str(data.root),
        "--subset", "test", "--classes", ",".join(classes), "--model", str(model), "--device", "cpu",
        "--prompts", "name", "--label-map", str(label_map or data.label_map), "--cache-dir", str(cache),
        "--no-progress", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    return json.loads((out / "results.json").read_text())


def _predictions(out: Path) -> dict[str, dict]:
    """video path -> {"true", "predicted", "scores": {class: score of the top 5}}."""
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = {}
    for row in rows:
        scores = {row[f"top{k}_label"]: float(row[f"top{k}_score"]) for k in range(1, 6) if f"top{k}_label" in row}
        table[str(Path(row["video"]).resolve())] = {
            "true": row["true_label"], "predicted": row["predicted_label"], "scores": scores
        }  # fmt: skip
    return table


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("world-cache")


@pytest.fixture(scope="module")
def zeroshot_run(world_data, world_model_dir, tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("world-zeroshot")
    results = _zeroshot(world_data, world_model_dir, out, cache_dir, classes=world_data.classes)
    return out, results


def test_zero_shot_far_above_chance_on_seen_and_unseen(zeroshot_run, world_data):
    _, results = zeroshot_run
    metrics = results["metrics"]
    assert results["dataset"]["n_evaluated"] == 6 * len(world_data.classes)
    assert metrics["top1"] >= MIN_TOP1
    unseen = [c for c in world_data.classes if c in world_data.unseen]
    correct = sum(metrics["per_class"][c]["accuracy"] * metrics["per_class"][c]["support"] for c in unseen)
    support = sum(metrics["per_class"][c]["support"] for c in unseen)
    assert correct / support >= MIN_UNSEEN_TOP1


def test_class_order_renaming_and_subset_change_no_score(
    zeroshot_run, world_data, world_model_dir, tmp_path, cache_dir
):
    out, _ = zeroshot_run
    reference = _predictions(out)
    classes = list(world_data.classes)

    # Renamed labels that sort in the opposite order, the sentences given through a label map.
    renamed = {name: f"k{len(classes) - i:02d}" for i, name in enumerate(classes)}
    with open(world_data.manifest, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    manifest = tmp_path / "renamed.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows(
            [["path", "label", "split"], *[[p, renamed.get(label, label), s] for p, label, s in rows]]
        )
    with open(world_data.label_map, newline="") as handle:
        sentences = dict(list(csv.reader(handle))[1:])
    label_map = tmp_path / "renamed_labels.json"
    label_map.write_text(json.dumps({renamed[c]: sentences[c] for c in classes}))
    back = {new: old for old, new in renamed.items()}
    runs = {
        "reversed": (_zeroshot(world_data, world_model_dir, tmp_path / "reversed", cache_dir, classes=classes[::-1]), {}),
        "renamed": (
            _zeroshot(
                world_data, world_model_dir, tmp_path / "renamed", cache_dir,
                classes=[renamed[c] for c in classes], manifest=manifest, label_map=label_map,
            ),
            back,
        ),
    }  # fmt: skip
    assert runs["renamed"][0]["dataset"]["classes"] != classes  # really another class order
    for name, (_results, names) in runs.items():
        table = _predictions(tmp_path / name)
        assert table.keys() == reference.keys(), name
        for video, row in table.items():
            expected = reference[video]
            assert names.get(row["true"], row["true"]) == expected["true"], (name, video)
            assert names.get(row["predicted"], row["predicted"]) == expected["predicted"], (name, video)
            scores = {names.get(k, k): v for k, v in row["scores"].items()}
            assert scores == pytest.approx(expected["scores"], abs=2e-5), (name, video)

    subset = classes[::3]
    _zeroshot(world_data, world_model_dir, tmp_path / "subset", cache_dir, classes=subset)
    table = _predictions(tmp_path / "subset")
    assert {row["true"] for row in table.values()} == set(subset)
    compared = 0
    for video, row in table.items():
        for label, score in row["scores"].items():
            if label in reference[video]["scores"]:
                assert score == pytest.approx(reference[video]["scores"][label], abs=2e-5)
                compared += 1
    assert compared >= len(table)


def _center_clip(n: int, fps: float) -> list[int]:
    """The documented center-clip rule, written out again: L = clamp(round(window * fps), 1, n)
    frames centred in the video, index k = floor((n - L) / 2 + (k + 0.5) * L / FRAMES)."""
    length = min(n, max(1, round(WINDOW * fps)))
    return [min(n - 1, int(np.floor((n - length) / 2 + (k + 0.5) * length / FRAMES))) for k in range(FRAMES)]


def test_predictions_and_confusion_match_an_independent_computation(zeroshot_run, world_data, world_model_dir):
    from transformers import CLIPModel, CLIPProcessor

    out, results = zeroshot_run
    table = _predictions(out)
    model = CLIPModel.from_pretrained(world_model_dir).eval()
    processor = CLIPProcessor.from_pretrained(world_model_dir)
    with open(world_data.label_map, newline="") as handle:
        sentences = dict(list(csv.reader(handle))[1:])
    classes = list(results["dataset"]["classes"])  # the run's class order (its confusion matrix's)
    with torch.no_grad():
        tokens = processor.tokenizer([sentences[c] for c in classes], padding=True, return_tensors="pt")
        text = model.text_projection(model.text_model(**tokens).pooler_output)
        text = text / text.norm(dim=-1, keepdim=True)
        scale = model.logit_scale.exp()
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    for video, row in table.items():
        with av.open(video) as container:
            stream = container.streams.video[0]
            fps = float(Fraction(stream.average_rate))
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        picked = [frames[i] for i in _center_clip(len(frames), fps)]
        with torch.no_grad():
            pixels = processor.image_processor(images=picked, return_tensors="pt")["pixel_values"]
            embeds = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        embeds = embeds / embeds.norm(dim=-1, keepdim=True)
        mean = embeds.mean(dim=0)
        logits = scale * (mean / mean.norm()) @ text.T
        predicted = classes[int(logits.argmax())]
        truth = Path(video).parent.name  # videos/<label>/<split>_NN.mp4
        assert row["true"] == truth
        assert row["predicted"] == predicted, video
        assert row["scores"][predicted] == pytest.approx(float(logits.max()), rel=1e-4, abs=1e-4)
        confusion[classes.index(truth), classes.index(predicted)] += 1
    assert confusion.tolist() == results["metrics"]["confusion_matrix"]
    assert results["metrics"]["top1"] == pytest.approx(np.trace(confusion) / confusion.sum())


def test_predict_ranks_the_true_sentence_first(world_data, world_model_dir, tmp_path, capsys):
    with open(world_data.label_map, newline="") as handle:
        sentences = dict(list(csv.reader(handle))[1:])
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{sentences[c]}\n" for c in world_data.classes))
    video = world_data.root / "videos" / "yellow_triangle_spinning" / "test_01.mp4"
    capsys.readouterr()
    code = main([
        "predict", str(video), "--labels", f"@{labels}", "--prompts", "name", "--model", str(world_model_dir),
        "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--json",
    ])  # fmt: skip
    assert code == 0
    # The format `predict --json` prints: one object per video, every label ranked by probability.
    (answer,) = json.loads(capsys.readouterr().out)
    assert set(answer) == {"video", "score", "labels"}
    assert answer["video"] == str(video)
    assert answer["score"] == "softmax"  # the tiny CLIP's probabilities are a softmax over the labels
    ranked = answer["labels"]
    assert all(set(entry) == {"label", "probability"} for entry in ranked)
    assert sorted(entry["label"] for entry in ranked) == sorted(sentences[c] for c in world_data.classes)
    probabilities = [entry["probability"] for entry in ranked]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0)
    assert ranked[0]["label"] == "a yellow triangle spinning"


@pytest.fixture(scope="module")
def study(world_data, world_model_dir, tmp_path_factory):
    from clipaction.demo.run import run_world_study

    out = tmp_path_factory.mktemp("world-study")
    return out, run_world_study(out, world_data, world_model_dir, progress=False)


def test_few_shot_raises_the_chosen_classes(study):
    _, results = study
    stage = results["stages"]["fewshot"]
    rows = {row["class"]: row for row in stage["comparison"]}
    chosen = stage["chosen_classes"]
    before = np.mean([rows[c]["zeroshot"] for c in chosen])
    after = np.mean([rows[c]["finetuned"] for c in chosen])
    assert after > before + 0.1


def test_tip_adapter_leaves_the_other_classes_at_zero_shot(study):
    """Tip-Adapter adds a non-negative cache term to the trained classes' logits only: the other
    classes' logits stay zero-shot's, so a video of another class can lose (to a trained class)
    but never gain, and classes outside the study keep their zero-shot accuracy exactly.
    (Their accuracy among the study's classes is not unchanged: here it drops.)"""
    _, results = study
    stage = results["stages"]["adapt_methods"]
    tip = stage["methods"]["tip-adapter"]
    assert tip["after"]["others"] <= tip["before"]["others"]
    assert tip["outside_unchanged"] and tip["outside_top1"] == stage["outside"]["zeroshot_top1"]
    assert tip["after"]["trained"] > tip["before"]["trained"]


def test_world_numbers_and_report(study):
    out, results = study
    world = results["world"]
    assert world["unseen_classes"] and world["seen_classes"]
    assert world["seen_top1"] >= MIN_TOP1 and world["unseen_top1"] >= MIN_UNSEEN_TOP1
    saved = json.loads((out / "results.json").read_text())
    assert saved["world"]["unseen_top1"] == pytest.approx(world["unseen_top1"])
    report = (out / "report.md").read_text()
    assert "synthetic world" in report and "not about real actions" in report
    assert "random weights" not in report
    assert "never seen in training" in report
