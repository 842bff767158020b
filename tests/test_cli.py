"""The zeroshot, extract and predict commands end to end, on generated videos and a tiny CLIP."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from transformers import AutoProcessor, CLIPModel

from clipaction.cli import main
from clipaction.testing.videos import SyntheticVideo, make_ucf101_like, write_video

CLASSES = ["ApplyEyeMakeup", "Archery", "Basketball", "BasketballDunk"]


@pytest.fixture(scope="module")
def ucf(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ucf")
    return make_ucf101_like(root, CLASSES, train_groups=(8,), test_groups=(1, 2), clips_per_group=2)


def _common(ucf, model_dir, cache) -> list[str]:
    data_root, splits_dir = ucf
    return [
        "--data-root", str(data_root), "--splits-dir", str(splits_dir),
        "--model", str(model_dir), "--device", "cpu", "--cache-dir", str(cache), "--no-progress",
    ]  # fmt: skip


def test_zeroshot_writes_results_predictions_and_report(ucf, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "zs"
    code = main(
        ["zeroshot", *_common(ucf, tiny_model_dir, tmp_path / "cache"), "--out", str(out), "--num-classes", "3"]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 1
    assert results["dataset"]["classes"] == CLASSES[:3]
    assert results["dataset"]["n_videos"] == 12 and results["dataset"]["split"] == 1
    assert results["failures"] == []
    metrics = results["metrics"]
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    correct = sum(row["true_label"] == row["predicted_label"] for row in rows)
    assert metrics["top1"] == pytest.approx(correct / 12)
    assert np.asarray(metrics["confusion_matrix"]).sum() == 12
    assert 0 <= metrics["mean_class_accuracy"] <= 1 and metrics["top5"] == 1.0  # 3 classes < 5
    assert set(metrics["per_class"]) == set(CLASSES[:3])
    assert "ApplyEyeMakeup" in (out / "classification_report.txt").read_text()
    printed = capsys.readouterr().out
    assert "top-1" in printed and "encoded 12" in printed

    # a second run reads every video from the cache and gives the same numbers
    assert (
        main(["zeroshot", *_common(ucf, tiny_model_dir, tmp_path / "cache"), "--out", str(out), "--num-classes", "3"])
        == 0
    )
    again = json.loads((out / "results.json").read_text())
    assert again["cache"] == {"cached": 12, "encoded": 0}
    assert again["metrics"] == metrics


def test_missing_and_corrupt_videos_are_reported(ucf, tiny_model_dir, tmp_path, capsys):
    data_root, splits_dir = ucf
    # a copy of the dataset with one video deleted and one replaced by noise
    copy_root = tmp_path / "UCF-101"
    for path in data_root.rglob("*.avi"):
        target = copy_root / path.relative_to(data_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (copy_root / "Archery" / "v_Archery_g01_c01.avi").unlink()
    (copy_root / "Archery" / "v_Archery_g02_c01.avi").write_bytes(b"\x00garbage" * 100)
    args = ["zeroshot", *_common((copy_root, splits_dir), tiny_model_dir, tmp_path / "cache"), "--num-classes", "2"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 1
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    failed = {Path(f["path"]).name: f["error"] for f in results["failures"]}
    assert set(failed) == {"v_Archery_g01_c01.avi", "v_Archery_g02_c01.avi"}
    assert "missing" in failed["v_Archery_g01_c01.avi"]
    assert results["dataset"]["n_evaluated"] == 6
    assert main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 2
    assert not (tmp_path / "strict" / "results.json").exists()


def test_bad_paths_and_names_give_one_clear_line(ucf, tiny_model_dir, tmp_path, capsys):
    data_root, splits_dir = ucf
    code = main(
        [
            "zeroshot",
            "--data-root",
            str(tmp_path / "nowhere"),
            "--splits-dir",
            str(splits_dir),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(tmp_path / "nowhere") in err and len(err.splitlines()) == 1
    code = main(
        [
            "zeroshot",
            *_common(ucf, tiny_model_dir, tmp_path / "c"),
            "--classes",
            "Archerry",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Archery" in err
    assert not (tmp_path / "o").exists()


def test_extract_fills_the_cache_that_zeroshot_uses(ucf, tiny_model_dir, tmp_path, capsys):
    common = _common(ucf, tiny_model_dir, tmp_path / "cache")
    assert main(["extract", *common, "--num-classes", "2"]) == 0
    assert "encoded 8" in capsys.readouterr().out
    assert main(["zeroshot", *common, "--num-classes", "2", "--out", str(tmp_path / "zs")]) == 0
    assert json.loads((tmp_path / "zs" / "results.json").read_text())["cache"] == {"cached": 8, "encoded": 0}


def test_predict_matches_transformers_on_the_middle_frame(tiny_model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "my video.mp4", SyntheticVideo(codec="h264", num_frames=31, pattern=3))
    labels = ["juggling a soccer ball", "shooting a basketball", "riding a bike"]
    code = main([
        "predict", str(video), "--labels", ",".join(labels), "--json", "--sampler", "middle",
        "--model", str(tiny_model_dir), "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
    ])  # fmt: skip
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert [item["video"] for item in payload] == [str(video)]
    ranked = payload[0]["labels"]
    probabilities = [item["probability"] for item in ranked]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)

    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = CLIPModel.from_pretrained(tiny_model_dir).eval()
    prompts = [f"a photo of a person {label}." for label in labels]
    with torch.no_grad():
        inputs = processor(text=prompts, images=[frames[len(frames) // 2]], padding=True, return_tensors="pt")
        expected = model(**inputs).logits_per_image.softmax(-1)[0]
    ours = {item["label"]: item["probability"] for item in ranked}
    for label, probability in zip(labels, expected.tolist()):
        assert ours[label] == pytest.approx(probability, abs=1e-5)


def test_predict_prints_ranked_labels_and_skips_bad_files(tiny_model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "a.avi", SyntheticVideo(pattern=2))
    broken = tmp_path / "broken.mp4"
    broken.write_text("hello")
    code = main([
        "predict", str(video), str(broken), "--labels", "running,jumping", "--model", str(tiny_model_dir),
        "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert str(video) in captured.out and "running" in captured.out and "jumping" in captured.out
    assert "broken.mp4" in captured.err and "broken.mp4" not in captured.out


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("zeroshot", "predict", "extract"):
        assert command in text


def test_benchmark_command(tmp_path, tiny_model_dir, capsys):
    data_root, splits = make_ucf101_like(
        tmp_path / "ucf", ["Archery", "Basketball"], train_groups=(8,), test_groups=(1,),
        clips_per_group=1, spec=SyntheticVideo(width=32, height=32, num_frames=10),
    )  # fmt: skip
    config = tmp_path / "bench.toml"
    config.write_text(
        f"templates = 'seed'\ncache_dir = '{tmp_path / 'cache'}'\n"
        f"[model]\nname_or_path = '{tiny_model_dir}'\ndevice = 'cpu'\n"
        f"[[datasets]]\nname = 'ucf101'\nroot = '{data_root}'\nsplits_dir = '{splits}'\nsplits = [1, 2]\n"
    )
    assert main(["benchmark", "--config", str(config), "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert f'name_or_path = "{tiny_model_dir}"' in printed and 'num_classes = "all"' in printed
    out = tmp_path / "out"
    assert main(["benchmark", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "ucf101: top-1" in text and "over splits 1, 2" in text
    assert (out / "benchmark.md").is_file() and (out / "results.json").is_file()
    config.write_text("[[datasets]]\nname = 'ucf101'\nroot = 'r'\n")
    assert main(["benchmark", "--config", str(config)]) == 2
    assert "ucf101 needs splits_dir" in capsys.readouterr().err


def test_predict_on_a_folder_labels_every_video_in_it(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "my clips"
    first = write_video(folder / "a.avi", SyntheticVideo(pattern=1))
    second = write_video(folder / "day 2" / "b.mp4", SyntheticVideo(codec="h264", pattern=3))
    (folder / "notes.txt").write_text("not a video")
    common = ["--labels", "running,jumping", "--model", str(tiny_model_dir), "--device", "cpu",
              "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--json"]  # fmt: skip
    assert main(["predict", str(folder), *common]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert [item["video"] for item in ranked] == [str(first), str(second)]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), *common]) == 2
    assert "no videos found in" in capsys.readouterr().err


def test_bad_out_cache_or_model_paths_fail_at_once_with_one_line(ucf, tiny_model_dir, tmp_path, capsys):
    cache = tmp_path / "cache"
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    assert main(["zeroshot", *_common(ucf, tiny_model_dir, cache), "--out", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write results to {a_file}: it is a file" in err
    assert not list(cache.rglob("*.safetensors")), "nothing was encoded before the bad --out was noticed"

    blocked = a_file / "cache"  # under a file: cannot be created
    assert main(["zeroshot", *_common(ucf, tiny_model_dir, blocked), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot use {blocked} as the embedding cache" in err

    missing = tmp_path / "no-such-model"
    assert main(["zeroshot", *_common(ucf, missing, cache), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"model folder not found: {missing}" in err


@pytest.mark.parametrize(
    ("labels", "message"),
    [(" , ", "--labels: give at least one label"), ("run,jump,run", "--labels: 'run' given more than once")],
)
def test_predict_refuses_empty_or_repeated_labels(labels, message, tiny_model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "a.avi", SyntheticVideo(pattern=2))
    code = main(["predict", str(video), "--labels", labels, "--model", str(tiny_model_dir), "--device", "cpu",
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2 and message in captured.err and captured.out == ""
