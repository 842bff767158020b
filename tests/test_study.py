"""`clipaction run` and `report` end to end on generated videos with the tiny model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from clipaction.cli import main
from clipaction.config import StudyConfig
from clipaction.config.toml import load_study_config, study_config_to_toml
from clipaction.testing.videos import SyntheticVideo, make_ucf101_like

CLASSES = ["ApplyEyeMakeup", "Archery", "Basketball", "BasketballDunk"]


@pytest.fixture(scope="module")
def ucf(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ucf")
    spec = SyntheticVideo(num_frames=40)  # 1.6 s: shorter than the 3 s window
    return make_ucf101_like(root, CLASSES, train_groups=(8, 9), test_groups=(1,), clips_per_group=2, spec=spec)


def _study_toml(tmp_path: Path, ucf, model_dir: Path, **sections: str) -> Path:
    data_root, splits_dir = ucf
    text = f"""
out = "{tmp_path / "study"}"
cache_dir = "{tmp_path / "cache"}"
[dataset]
root = "{data_root}"
splits_dir = "{splits_dir}"
num_classes = "all"
[model]
name_or_path = "{model_dir}"
device = "cpu"
batch_size = 16
[fewshot]
n_classes = 2
shots = 3
[fewshot.train]
lr = 0.001
epochs = 3
batch_size = 4
[full_finetune.train]
lr = 0.0001
epochs = 1
batch_size = 4
[embeddings]
perplexity = 2.0
"""
    for header, body in sections.items():
        text += f"[{header}]\n{body}\n"
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _without_run_facts(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in {"created_at", "env"}}


@pytest.mark.slow
def test_run_writes_every_artifact_and_report_rebuilds_it(ucf, tiny_model_dir, tmp_path, capsys):
    config = _study_toml(tmp_path, ucf, tiny_model_dir)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    out = tmp_path / "study"
    results = json.loads((out / "results.json").read_text())
    assert set(results["stages"]) == {
        "zeroshot", "temporal", "fewshot", "full_finetune", "adapt_methods", "embeddings", "ablations",
    }  # fmt: skip
    assert results["dataset"]["classes"] == CLASSES
    assert results["dataset"]["n_test"] == 8 and results["dataset"]["n_train"] == 16
    fewshot = results["stages"]["fewshot"]
    assert len(fewshot["chosen_classes"]) == 2 and set(fewshot["shots_per_class"].values()) == {3}
    assert len(fewshot["comparison"]) == len(CLASSES)
    assert [v["frames_per_video"] for v in results["stages"]["temporal"]["variants"]] == [1, 8]
    assert len(results["stages"]["embeddings"]["tsne"]["points"]) == 8
    assert results["observations"], "observations are generated from the run's numbers"
    ablations = results["stages"]["ablations"]
    assert [(r["name_style"], r["templates"], r["n_templates"]) for r in ablations["prompts"]] == [
        ("raw", "name", 1), ("raw", "seed", 1), ("raw", "clip", 48),
        ("spaced", "name", 1), ("spaced", "seed", 1), ("spaced", "clip", 48),
    ]  # fmt: skip
    assert [r["frames_per_video"] for r in ablations["temporal"]] == [1, 8, 16, 24]
    # the study's own setting (raw names, seed template, 8-frame clip) appears with its numbers
    assert ablations["prompts"][1]["top1"] == results["stages"]["zeroshot"]["metrics"]["top1"]
    assert ablations["temporal"][1]["top1"] == results["stages"]["zeroshot"]["metrics"]["top1"]
    for name in [
        "report.md", "report.html", "classification_report.txt", "predictions_zeroshot.csv",
        "predictions_fewshot.csv", "predictions_full_finetune.csv",
    ]:  # fmt: skip
        assert (out / name).is_file(), name
    assert len(list(out.glob("predictions_temporal_*.csv"))) == 2
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(figures) >= 8, figures
    assert "zero-shot top-1" in capsys.readouterr().out

    report_md = (out / "report.md").read_text()
    (out / "report.md").unlink()
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == report_md
    assert (out / "report.html").is_file()


@pytest.mark.slow
def test_second_run_encodes_nothing_and_gives_the_same_results(ucf, tiny_model_dir, tmp_path):
    config = _study_toml(tmp_path, ucf, tiny_model_dir, full_finetune="enabled = false")
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    first = json.loads((tmp_path / "study" / "results.json").read_text())
    entries = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.safetensors")}
    assert entries
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    second = json.loads((tmp_path / "study" / "results.json").read_text())
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.safetensors")} == entries
    assert _without_run_facts(second) == _without_run_facts(first)
    assert "full_finetune" not in second["stages"]


def test_selection_on_the_train_list_never_reads_test_labels(ucf, tiny_backend, tmp_path):
    from clipaction.data.records import VideoDataset
    from clipaction.study import prepare
    from clipaction.study.adaptation import few_shot_plan

    data_root, splits_dir = ucf
    config = load_study_config(_study_toml(tmp_path, ucf, Path(".")))
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, name_or_path="unused"))
    ctx = prepare(config, tiny_backend, progress=False)
    honest = few_shot_plan(ctx, zeroshot_metrics=None)
    # No test video and no test metrics at all: the plan must not change.
    ctx.test = VideoDataset(ctx.test.name, ctx.test.classes, records=())
    blind = few_shot_plan(ctx, zeroshot_metrics=None)
    assert blind.chosen == honest.chosen and blind.records == honest.records
    assert all("g08" in r.path.name or "g09" in r.path.name for r in honest.records)


def test_print_config_round_trips(tmp_path, capsys):
    assert main(["run", "--print-config"]) == 0
    path = tmp_path / "defaults.toml"
    path.write_text(capsys.readouterr().out, encoding="utf-8")
    assert load_study_config(path) == StudyConfig()
    assert study_config_to_toml(load_study_config(path)) == path.read_text(encoding="utf-8")
    # Settings without a default are shown, commented out, in their table.
    lines = path.read_text(encoding="utf-8").splitlines()
    dataset = lines.index("[dataset]")
    assert "# root = ...  (not set)" in lines[dataset + 1 : lines.index("[model]")]


def test_flags_override_the_config_file(ucf, tiny_model_dir, tmp_path, capsys):
    config = _study_toml(tmp_path, ucf, tiny_model_dir)
    assert (
        main(
            [
                "run",
                "--config",
                str(config),
                "--print-config",
                "--split",
                "2",
                "--skip",
                "fewshot",
                "--out",
                "elsewhere",
            ]
        )
        == 0
    )
    path = tmp_path / "effective.toml"
    path.write_text(capsys.readouterr().out, encoding="utf-8")
    effective = load_study_config(path)
    assert effective.dataset.split == 2 and effective.out == "elsewhere"
    assert not effective.fewshot.enabled and effective.full_finetune.enabled
    assert effective.fewshot.shots == 3  # from the file


def test_bad_config_files_give_one_clear_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[fewshot]\nshot = 3\n", encoding="utf-8")
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'shot'" in err and "shots" in err
    path.write_text("[fewshot.train]\nlr = 'fast'\n", encoding="utf-8")
    assert main(["run", "--config", str(path)]) == 2
    assert "fewshot.train.lr: expected a number" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "none.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err


@pytest.mark.slow
def test_two_runs_from_scratch_give_identical_results(ucf, tiny_model_dir, tmp_path):
    """Determinism: same seed, same machine, separate caches -> the same results.json but for
    timestamps and the machine facts."""
    runs = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        config = _study_toml(folder, ucf, tiny_model_dir)
        assert main(["run", "--config", str(config), "--no-progress"]) == 0
        results = json.loads((folder / "study" / "results.json").read_text())
        del results["config"]["cache_dir"], results["config"]["out"]
        runs.append(_without_run_facts(results))
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_few_shot_methods_side_by_side_with_forgetting_outside_the_study(ucf, tiny_model_dir, tmp_path):
    config = _study_toml(tmp_path, ucf, tiny_model_dir)
    skips = [arg for stage in ("temporal", "full-finetune", "embeddings", "ablations") for arg in ("--skip", stage)]
    assert main(["run", "--config", str(config), "--num-classes", "3", *skips, "--no-progress"]) == 0
    results = json.loads((tmp_path / "study" / "results.json").read_text())
    stage = results["stages"]["adapt_methods"]
    assert list(stage["methods"]) == ["projection", "linear-probe", "wise-ft", "tip-adapter", "tip-adapter-f"]
    assert stage["outside"]["classes"] == ["BasketballDunk"] and stage["outside"]["n_videos"] == 2
    for result in stage["methods"].values():
        assert set(result["after"]) == {"trained", "others", "overall"}
    # Which methods leave CLIP's projection alone is known from their design, not from the stage:
    # a head or a cache on top of the untouched projection cannot move classes outside training.
    for name in ("linear-probe", "tip-adapter", "tip-adapter-f"):
        assert not stage["methods"][name]["changes_projection"], name
        assert stage["methods"][name]["outside_unchanged"], name
    assert stage["methods"]["projection"]["changes_projection"]
    assert not stage["methods"]["projection"]["outside_unchanged"]
    # the projection method is the few-shot stage: same shots, same settings, same numbers
    fewshot = results["stages"]["fewshot"]
    assert stage["methods"]["projection"]["after"]["overall"] == pytest.approx(fewshot["finetuned_metrics"]["top1"])
    assert len(stage["methods"]["wise-ft"]["curve"]) == 11
    assert (tmp_path / "study" / "figures" / "adapt_tradeoff.png").is_file()
    assert "## Few-shot methods compared" in (tmp_path / "study" / "report.md").read_text()
