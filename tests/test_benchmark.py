"""The zero-shot benchmark: config and TOML, mean/std, the table, and a run end to end on
generated UCF101-like and HMDB51-like data with the tiny random CLIP; then the benchmark's
dataset settings on the real split lists (all classes, every split, classInd label order)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
from pathlib import Path

import numpy as np
import pytest

import clipaction.benchmark.run as benchmark
from clipaction.benchmark.run import (
    BenchmarkConfig,
    BenchmarkDataset,
    benchmark_config_from_toml,
    benchmark_config_to_toml,
    benchmark_markdown,
    load_benchmark_config,
    run_benchmark,
    summarize,
)
from clipaction.config import ModelConfig, SamplerConfig
from clipaction.config.toml import ConfigError
from clipaction.data import DatasetError, load_dataset
from clipaction.data.hmdb51 import split_file_name
from clipaction.data.ucf101 import read_class_index, read_split_list
from clipaction.testing.videos import SyntheticVideo, make_ucf101_like, write_video

SPEC = SyntheticVideo(width=32, height=32, num_frames=10, gop=5)
UCF_CLASSES = ["Archery", "Basketball", "BasketballDunk"]
HMDB_CLASSES = ["brush_hair", "catch", "kick_ball"]
# HMDB51-like marks of video k of every class, per split (1 train, 2 test, 0 unused); the
# test lists overlap between splits, as HMDB51's do.
HMDB_MARKS = {1: (2, 2, 1, 0), 2: (1, 2, 2, 1), 3: (2, 1, 1, 2)}


def hmdb_video(name: str, k: int) -> str:
    return f"Clip_{name}_u_cm_np1_fr_med_{k}.avi"


def make_hmdb51_like(root: Path) -> tuple[Path, Path]:
    """`root/videos/<class>/<video>.avi` and the split files in the official format (trailing
    space); split 2 of `catch` also lists a video that does not exist."""
    videos, splits = root / "videos", root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for ci, name in enumerate(HMDB_CLASSES):
        for k in range(4):
            spec = dataclasses.replace(SPEC, pattern=ci, seed=100 * ci + k)
            write_video(videos / name / hmdb_video(name, k), spec)
        for s, marks in HMDB_MARKS.items():
            lines = "".join(f"{hmdb_video(name, k)} {m} \n" for k, m in enumerate(marks))
            if (name, s) == ("catch", 2):
                lines += "ghost.avi 2 \n"
            (splits / split_file_name(name, s)).write_text(lines)
    return videos, splits


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-data")
    ucf_root, ucf_splits = make_ucf101_like(
        root / "ucf", UCF_CLASSES, train_groups=(8,), test_groups=(1, 2), clips_per_group=1, spec=SPEC
    )
    # Split 1 tests groups 1 and 2; splits 2 and 3 one group each, so the splits differ.
    for split, group in ((2, "g01"), (3, "g02")):
        lines = [x for x in (ucf_splits / "testlist01.txt").read_text().splitlines() if group in x]
        (ucf_splits / f"testlist0{split}.txt").write_text("".join(f"{x}\n" for x in lines))
    hmdb_root, hmdb_splits = make_hmdb51_like(root / "hmdb")
    return {"ucf101": (ucf_root, ucf_splits), "hmdb51": (hmdb_root, hmdb_splits)}


def make_config(data, tiny_model_dir, tmp_path, out="out", **kw) -> BenchmarkConfig:
    return BenchmarkConfig(
        datasets=(
            BenchmarkDataset("ucf101", str(data["ucf101"][0]), str(data["ucf101"][1])),
            BenchmarkDataset("hmdb51", str(data["hmdb51"][0]), str(data["hmdb51"][1])),
        ),
        model=ModelConfig(name_or_path=str(tiny_model_dir), device="cpu", batch_size=8),
        cache_dir=str(tmp_path / "cache"),
        out=str(tmp_path / out),
        **kw,
    )


def parse_table(markdown: str) -> tuple[list[str], dict[tuple[str, str], list[str]]]:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]
    header, rule, body = rows[0], rows[1], rows[2:]
    assert all(set(cell) <= set("-:") for cell in rule)
    table = {}
    for row in body:
        assert (row[0], row[1]) not in table
        table[(row[0], row[1])] = row
    return header, table


# --- end to end ------------------------------------------------------------------------------


def expected_hmdb_test(split: int) -> set[str]:
    return {hmdb_video(n, k) for n in HMDB_CLASSES for k, m in enumerate(HMDB_MARKS[split]) if m == 2}


def test_benchmark_end_to_end(data, tiny_model_dir, tiny_backend, tmp_path, monkeypatch):
    config = make_config(data, tiny_model_dir, tmp_path)
    loads, backends = [], []
    real_run_zeroshot = benchmark.run_zeroshot

    def fake_load_backend(model_config):
        loads.append(model_config)
        return tiny_backend

    def spy_run_zeroshot(zs_config, *, backend=None, progress=True):
        backends.append(backend)
        assert zs_config.dataset.num_classes is None and zs_config.dataset.subset == "test"
        return real_run_zeroshot(zs_config, backend=backend, progress=progress)

    monkeypatch.setattr(benchmark, "load_backend", fake_load_backend)
    monkeypatch.setattr(benchmark, "run_zeroshot", spy_run_zeroshot)
    results = run_benchmark(config, progress=False)
    # One backend, loaded once and handed to every dataset and split.
    assert loads == [config.model]
    assert len(backends) == 6 and all(b is tiny_backend for b in backends)

    out = Path(config.out)
    saved = json.loads((out / "results.json").read_text())
    assert saved["schema_version"] == 1 and saved["task"] == "benchmark"
    assert [d["name"] for d in saved["datasets"]] == ["ucf101", "hmdb51"]
    by_name = {d["name"]: d for d in saved["datasets"]}

    ucf, hmdb = by_name["ucf101"], by_name["hmdb51"]
    assert [s["split"] for s in ucf["splits"]] == [1, 2, 3] == [s["split"] for s in hmdb["splits"]]
    assert [s["n_videos"] for s in ucf["splits"]] == [6, 3, 3]
    assert [s["n_failures"] for s in ucf["splits"]] == [0, 0, 0]
    assert [s["n_videos"] for s in hmdb["splits"]] == [len(expected_hmdb_test(s)) for s in (1, 2, 3)]
    assert [s["n_failures"] for s in hmdb["splits"]] == [0, 1, 0]
    assert hmdb["splits"][1]["failures"][0]["path"] == "catch/ghost.avi"
    assert all(s["n_classes"] == 3 for d in saved["datasets"] for s in d["splits"])

    # Mean and population std over the splits, from the per-split numbers.
    for dataset in saved["datasets"]:
        for metric in ("top1", "top5", "mean_class_accuracy"):
            values = [s["metrics"][metric] for s in dataset["splits"]]
            assert all(0 <= v <= 1 for v in values)
            summary = dataset["summary"][metric]
            assert summary["mean"] == pytest.approx(statistics.fmean(values), abs=1e-12)
            assert summary["std"] == pytest.approx(statistics.pstdev(values), abs=1e-12)

    # The cache: each distinct test video is encoded once even when several splits list it.
    encoded = {name: sum(s["cache"]["encoded"] for s in d["splits"]) for name, d in by_name.items()}
    hmdb_distinct = expected_hmdb_test(1) | expected_hmdb_test(2) | expected_hmdb_test(3)
    assert encoded == {"ucf101": 6, "hmdb51": len(hmdb_distinct)}
    assert len(hmdb_distinct) < sum(s["n_videos"] for s in hmdb["splits"])

    # The table holds the same numbers as results.json.
    markdown = (out / "benchmark.md").read_text()
    header, table = parse_table(markdown)
    assert header == ["Dataset", "Split", "Top-1 (%)", "Top-5 (%)", "Mean class acc. (%)", "Videos", "Failed"]
    assert set(table) == {(d, s) for d in ("ucf101", "hmdb51") for s in ("1", "2", "3", "mean ± std")}
    for dataset in saved["datasets"]:
        for split in dataset["splits"]:
            row = table[(dataset["name"], str(split["split"]))]
            for cell, metric in zip(row[2:5], ("top1", "top5", "mean_class_accuracy")):
                assert float(cell) == pytest.approx(100 * split["metrics"][metric], abs=0.005 + 1e-9)
            assert (int(row[5]), int(row[6])) == (split["n_videos"], split["n_failures"])
        row = table[(dataset["name"], "mean ± std")]
        for cell, metric in zip(row[2:5], ("top1", "top5", "mean_class_accuracy")):
            mean, std = (float(x) for x in cell.split("±"))
            assert mean == pytest.approx(100 * dataset["summary"][metric]["mean"], abs=0.005 + 1e-9)
            assert std == pytest.approx(100 * dataset["summary"][metric]["std"], abs=0.005 + 1e-9)
    # The settings sit above the table.
    settings = markdown.split("| Dataset")[0]
    assert str(tiny_model_dir) in settings and "Frames: middle" in settings
    assert "`clip` templates" in settings and "`spaced` class names" in settings
    assert "ddof=0" in settings and "1 listed video(s) were missing" in markdown
    assert results["datasets"][0]["splits"][0]["metrics"] == ucf["splits"][0]["metrics"]

    # A second run encodes nothing and gives the same numbers.
    again = run_benchmark(make_config(data, tiny_model_dir, tmp_path, out="out2"), backend=tiny_backend, progress=False)
    assert all(s["cache"]["encoded"] == 0 for d in again["datasets"] for s in d["splits"])
    for first, second in zip(results["datasets"], again["datasets"]):
        assert [s["metrics"] for s in first["splits"]] == [s["metrics"] for s in second["splits"]]


def test_names_reach_the_prompts_in_the_chosen_style(data, tiny_model_dir, tmp_path):
    config = make_config(data, tiny_model_dir, tmp_path)
    zs = config.zeroshot_config(config.datasets[1], 2)
    assert (zs.dataset.name, zs.dataset.split, zs.dataset.subset) == ("hmdb51", 2, "test")
    assert (zs.prompts.templates, zs.prompts.name_style) == ("clip", "spaced")
    assert zs.sampler == SamplerConfig(name="middle") and zs.cache_dir == config.cache_dir
    assert load_dataset(zs.dataset).classes == tuple(HMDB_CLASSES)


# --- pieces ----------------------------------------------------------------------------------


def test_summarize_is_mean_and_population_std():
    summary = summarize([0.5, 0.6, 0.7])
    assert summary["mean"] == pytest.approx(0.6)
    assert summary["std"] == pytest.approx(math.sqrt(0.02 / 3))  # ddof=0, not the sample std 0.1
    assert summarize([0.4]) == {"mean": 0.4, "std": 0.0}
    assert all(math.isnan(v) for v in summarize([0.5, float("nan")]).values())


def test_markdown_shows_missing_numbers_as_na():
    results = {
        "model": {"name_or_path": "m", "precision": "fp32", "device": "cpu"},
        "sampler": {"name": "center-clip", "frames": 8, "window": 3.0},
        "prompts": {"templates": "seed"},
        "datasets": [
            {
                "name": "hmdb51",
                "settings": {"num_classes": 5, "name_style": "raw", "splits": [1]},
                "splits": [
                    {
                        "split": 1,
                        "n_videos": 0,
                        "n_failures": 2,
                        "metrics": {"top1": None, "top5": None, "mean_class_accuracy": None},
                    }
                ],
                "summary": {m: {"mean": None, "std": None} for m in ("top1", "top5", "mean_class_accuracy")},
            }
        ],
    }
    text = benchmark_markdown(results)
    _, table = parse_table(text)
    assert table[("hmdb51", "1")][2:] == ["n/a", "n/a", "n/a", "0", "2"]
    assert table[("hmdb51", "mean ± std")][2:5] == ["n/a"] * 3
    assert "center-clip, 8 frames over 3 s" in text and "first 5 classes" in text


@pytest.mark.parametrize(
    "kinds, says, not_said",
    [(["frame"], "frame models average", "clip models"), (["clip"], "clip models encode", "frame models"),
     (["frame", "clip"], "frame models average", None)],
)  # fmt: skip
def test_settings_say_how_each_kind_of_model_makes_a_video_feature(kinds, says, not_said):
    runs = [
        {"model": {"name_or_path": f"m{i}", "precision": "fp32", "device": "cpu", "kind": kind}, "datasets": []}
        for i, kind in enumerate(kinds)
    ]
    results = {
        "model": runs[0]["model"],
        "models": runs,
        "sampler": {"name": "uniform", "frames": 8},
        "prompts": {"templates": "clip"},
        "datasets": [],
    }
    frames_line = next(line for line in benchmark_markdown(results).splitlines() if line.startswith("- Frames:"))
    assert says in frames_line
    if not_said:
        assert not_said not in frames_line
    else:
        assert "clip models encode" in frames_line


def test_toml_round_trip_and_defaults(tmp_path):
    default = BenchmarkConfig()
    assert [d.name for d in default.datasets] == ["ucf101", "hmdb51"]
    assert all(d.splits == (1, 2, 3) and d.num_classes is None and d.name_style == "spaced" for d in default.datasets)
    assert default.sampler == SamplerConfig(name="middle") and default.templates == "clip"
    text = benchmark_config_to_toml(default)
    assert 'num_classes = "all"' in text
    assert benchmark_config_from_toml(text) == default
    custom = BenchmarkConfig(
        datasets=(BenchmarkDataset("hmdb51", "/d/h", "/d/s", splits=(2,), name_style="raw", num_classes=7),),
        sampler=SamplerConfig(name="uniform", frames=4),
        cache_dir="/c",
        workers=3,
    )
    path = tmp_path / "bench.toml"
    path.write_text(benchmark_config_to_toml(custom), encoding="utf-8")
    assert load_benchmark_config(path) == custom


def test_hand_written_toml():
    config = benchmark_config_from_toml(
        """
        templates = "seed"
        out = "runs/b"
        [model]
        name_or_path = "/models/tiny"
        [[datasets]]
        name = "ucf101"
        root = "/data/UCF-101"
        splits_dir = "/data/ucfTrainTestlist"
        [[datasets]]
        name = "hmdb51"
        root = "/data/hmdb51"
        splits_dir = "/data/splits"
        splits = [1, 3]
        name_style = "raw"
        """
    )
    ucf, hmdb = config.datasets
    assert (ucf.splits, ucf.name_style, ucf.num_classes) == ((1, 2, 3), "spaced", None)
    assert (hmdb.splits, hmdb.name_style) == ((1, 3), "raw")
    assert config.model.name_or_path == "/models/tiny" and config.templates == "seed"


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "[[datasets]]\nname = 'kinetics'\nroot = 'r'\nsplits_dir = 's'\n",
            "must be one of ucf101, hmdb51; got 'kinetics'",
        ),
        ("[[datasets]]\nname = 'ucf101'\nroot = 'r'\nsplits_dir = 's'\nsplits = [4]\n", "splits must be among 1, 2, 3"),
        ("[[datasets]]\nname = 'ucf101'\nroot = 'r'\nsplits_dir = 's'\nsplits = []\n", "at least one"),
        ("[[datasets]]\nname = 'ucf101'\nroot = 'r'\nsplits_dir = 's'\nsplits = [1, 1]\n", "repeat"),
        ("[[datasets]]\nname = 'ucf101'\nroot = 'r'\n", "ucf101 needs splits_dir: the folder holding classInd.txt"),
        ("[[datasets]]\nname = 'hmdb51'\nsplits_dir = 's'\n", "hmdb51 needs root: the folder holding one folder"),
        ("[[datasets]]\nname = 'ucf101'\nroot = 'r'\nsplits_dir = 's'\nsplit = 1\n", "unknown key 'split'"),
        ("[[datasets]]\nname = 'ucf101'\nroot = 'r'\nsplits_dir = 's'\nnum_classes = 'some'\n", "num_classes"),
        (
            "[[datasets]]\nname='ucf101'\nroot='r'\nsplits_dir='s'\n[[datasets]]\nname='ucf101'\nroot='r'\nsplits_dir='s'\n",
            "once",
        ),
        ("datasets = []\n", "at least one"),
        ("prompts = 'clip'\n", "unknown key 'prompts'; valid keys: datasets, model"),
        ("[sampler]\nname = 'first'\n", "sampler.name: must be one of center-clip, middle, multi-clip, uniform"),
        ("datasets = [\n", "not valid TOML"),
    ],
)
def test_bad_toml_is_one_clear_error(text, match):
    with pytest.raises(ConfigError, match=match):
        benchmark_config_from_toml(text)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_benchmark_config(tmp_path / "nope.toml")


# --- the benchmark's dataset settings on the real lists ----------------------------------------


@pytest.fixture(scope="module")
def real_ucf101(shared_dir, tmp_path_factory):
    """The videos of the three test lists as empty files, spelled as the archive spells them."""
    splits = shared_dir / "ucf101_splits"
    entries = {p for s in (1, 2, 3) for p, _ in read_split_list(splits / f"testlist0{s}.txt")}
    entries = {p.replace("HandstandPushups", "HandStandPushups") for p in entries}
    root = tmp_path_factory.mktemp("ucf") / "UCF-101"
    for folder in {p.split("/")[0] for p in entries}:
        (root / folder).mkdir(parents=True)
    for rel in entries:
        os.close(os.open(os.path.join(root, rel), os.O_CREAT | os.O_WRONLY, 0o644))
    return root, splits


@pytest.mark.parametrize("split, n_test", [(1, 3783), (2, 3734), (3, 3696)])
def test_real_ucf101_all_classes_in_class_index_order(real_ucf101, split, n_test):
    root, splits = real_ucf101
    order = read_class_index(splits / "classInd.txt")
    ds = load_dataset(BenchmarkDataset("ucf101", str(root), str(splits)).dataset_config(split))
    assert len(ds) == n_test and not ds.missing
    assert ds.classes == tuple(order) != tuple(sorted(order))
    # Labels are classInd positions, also where sorted folder order differs.
    folded = {name.casefold(): i for i, name in enumerate(order)}
    assert all(r.label == folded[r.path.parent.name.casefold()] for r in ds.records)
    labels = {r.class_name: r.label for r in ds.records}
    assert labels["Hammering"] < labels["HammerThrow"] and labels["JumpingJack"] < labels["JumpRope"]
    assert (labels["Hammering"], labels["HammerThrow"]) == (order.index("Hammering"), order.index("HammerThrow"))
    assert sorted(np.unique([r.label for r in ds.records]).tolist()) == list(range(101))


def test_real_ucf101_test_lists_are_disjoint(real_ucf101):
    # Each UCF101 video is in at most one split's test list (groups 1-7, 8-14, 15-21), so a
    # three-split run encodes 11,213 distinct videos; groups 22-25 are never tested.
    _, splits = real_ucf101
    tests = [{p for p, _ in read_split_list(splits / f"testlist0{s}.txt")} for s in (1, 2, 3)]
    assert not (tests[0] & tests[1] or tests[0] & tests[2] or tests[1] & tests[2])
    assert len(tests[0] | tests[1] | tests[2]) == 11213


def test_a_wrong_path_fails_before_the_model_loads(data, tiny_model_dir, tmp_path, monkeypatch):
    config = make_config(data, tiny_model_dir, tmp_path)
    wrong = dataclasses.replace(config.datasets[1], splits_dir=str(tmp_path / "nowhere"))
    monkeypatch.setattr(benchmark, "load_backend", lambda _: pytest.fail("the model loaded first"))
    with pytest.raises(DatasetError, match="splits dir not found: .*nowhere"):
        run_benchmark(dataclasses.replace(config, datasets=(config.datasets[0], wrong)), progress=False)
    assert not Path(config.out).exists()


def test_several_models_share_splits_frames_and_prompts_and_get_one_table(data, tiny_model_dir, tmp_path):
    from clipaction.testing.tiny_clip import build_random_clip

    other = build_random_clip(tmp_path / "other-model", "tiny", seed=5, logit_scale=50.0)
    config = make_config(data, tiny_model_dir, tmp_path, models=(str(tiny_model_dir), str(other)))
    results = run_benchmark(config, progress=False)
    runs = results["models"]
    assert [r["model"]["name_or_path"] for r in runs] == [str(tiny_model_dir), str(other)]
    assert runs[1]["model"]["logit_scale"] == pytest.approx(50.0, rel=1e-5)
    # the same test videos for each model
    for first, second in zip(runs[0]["datasets"], runs[1]["datasets"]):
        assert [s["n_videos"] for s in first["splits"]] == [s["n_videos"] for s in second["splits"]]
    # the first model alone gives exactly its numbers in the comparison
    alone = run_benchmark(make_config(data, tiny_model_dir, tmp_path, out="alone"), progress=False)

    def numbers(datasets):
        return [(d["name"], [(s["split"], s["metrics"]) for s in d["splits"]], d["summary"]) for d in datasets]

    assert numbers(alone["datasets"]) == numbers(runs[0]["datasets"]) == numbers(results["datasets"])
    assert numbers(runs[0]["datasets"]) != numbers(runs[1]["datasets"])  # two models, two answers
    table = (Path(config.out) / "benchmark.md").read_text()
    section = table[table.index("## Models compared") :]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) == 2 and str(other) in rows[1] and "softmax" in rows[1]
    for run, row in zip(runs, rows):
        cells = [c.strip() for c in row.strip("|").split("|")]
        top1 = run["datasets"][0]["summary"]["top1"]
        assert cells[4] == f"{100 * top1['mean']:.2f} ± {100 * top1['std']:.2f}"
    with pytest.raises(ValueError, match="listed twice"):
        make_config(data, tiny_model_dir, tmp_path, models=(str(other), str(other)))
