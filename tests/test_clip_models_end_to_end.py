"""A clip-level model (X-CLIP) through the commands: its own frame count unless --frames says
otherwise, a count it cannot take refused in one line, and the study's stages it cannot run
reported as not applicable instead of crashing."""

from __future__ import annotations

import json

import pytest

from clipaction.cli import main
from clipaction.testing.tiny_video import build_random_video_model
from clipaction.testing.videos import SyntheticVideo, make_ucf101_like, write_video


@pytest.fixture(scope="module")
def xclip_dir(tmp_path_factory):
    model = build_random_video_model(tmp_path_factory.mktemp("xclip"), "xclip", seed=0)
    frames = json.loads((model / "config.json").read_text())["vision_config"]["num_frames"]
    assert frames != 8, "the test needs a model whose count differs from the sampler's default"
    return model, frames


def _predict(args, capsys):
    code = main(["predict", *args, "--device", "cpu", "--no-progress", "--json"])
    return code, capsys.readouterr()


def test_predict_takes_the_models_frame_count_unless_given(xclip_dir, tmp_path, capsys):
    model, frames = xclip_dir
    video = write_video(tmp_path / "v.avi", SyntheticVideo(num_frames=40, pattern=2))
    common = [str(video), "--labels", "run,jump,swim", "--model", str(model), "--cache-dir", str(tmp_path / "c")]
    code, out = _predict(common, capsys)
    assert code == 0, out.err
    (prediction,) = json.loads(out.out)
    assert prediction["score"] == "softmax" and len(prediction["labels"]) == 3
    assert abs(sum(item["probability"] for item in prediction["labels"]) - 1) < 1e-5
    code, out = _predict([*common, "--frames", str(frames)], capsys)
    assert code == 0 and json.loads(out.out) == [prediction]  # the same count, the same answer
    code, out = _predict([*common, "--frames", "8"], capsys)
    assert code == 2 and out.out == ""
    assert f"--frames: this xclip model takes {frames} frames per clip, not 8" in out.err


@pytest.mark.slow
def test_the_study_on_a_clip_model_reports_what_does_not_apply(xclip_dir, tmp_path, capsys):
    model, frames = xclip_dir
    data_root, splits_dir = make_ucf101_like(
        tmp_path / "ucf", ["ApplyEyeMakeup", "Archery", "Basketball"], train_groups=(8, 9), test_groups=(1,),
        clips_per_group=2, spec=SyntheticVideo(num_frames=30),
    )  # fmt: skip
    code = main(["run", "--data-root", str(data_root), "--splits-dir", str(splits_dir), "--num-classes", "all",
                 "--model", str(model), "--device", "cpu", "--out", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["model"]["family"] == "xclip" and results["model"]["kind"] == "clip"
    assert results["stages"]["zeroshot"]["sampler"]["frames"] == frames
    assert set(results["not_applicable"]) == {"fewshot", "full_finetune", "adapt"}
    temporal = results["stages"]["temporal"]
    assert [v["sampler"]["frames"] for v in temporal["variants"]] == [frames]
    assert "middle" in temporal["not_applicable"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert report.count("Not applicable to this model") == 3
