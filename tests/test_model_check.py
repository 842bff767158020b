"""`clipaction models --check` on every family's tiny model, and model folders clipaction cannot
run (processor missing or of a kind the family does not run): exit 2 with one line, never a
traceback, for `models --check` and for the commands that run the model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from clipaction.cli import main
from clipaction.config import ModelConfig
from clipaction.errors import ModelLoadError
from clipaction.models import load_backend
from clipaction.models.checkpoint_layouts import layout_for

#: builder name -> (family the folder loads as, frame or clip, scores, openvino runs it)
EXPECT = {
    "clip": ("clip", "frame", "softmax", True),
    "metaclip_2": ("metaclip_2", "frame", "softmax", True),
    "siglip": ("siglip", "frame", "sigmoid", True),
    "siglip2-fixed": ("siglip", "frame", "sigmoid", True),  # fixed-resolution SigLIP 2 is a SiglipModel
    "siglip2-naflex": ("siglip2", "frame", "sigmoid", False),
    "xclip": ("xclip", "clip", "softmax", False),
    "videoprism": ("videoprism", "clip", "softmax", False),
}


def _hub_layout(name: str):
    from clipaction.testing import tiny_clip as tiny
    from clipaction.testing import tiny_families, tiny_video

    if name == "clip":
        return layout_for(tiny.HUB_LAYOUT)
    return layout_for({**tiny_families.HUB_LAYOUTS, **tiny_video.HUB_LAYOUTS}[name])


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    from clipaction.testing.tiny_clip import build_random_clip
    from clipaction.testing.tiny_families import TINY_VARIANTS, build_random_model
    from clipaction.testing.tiny_video import build_random_video_model

    root = tmp_path_factory.mktemp("check-models")
    dirs = {"clip": build_random_clip(root / "clip", logit_scale=100.0)}
    dirs.update({name: build_random_model(root / name, name) for name in TINY_VARIANTS})
    dirs.update({name: build_random_video_model(root / name, name) for name in ("xclip", "videoprism")})
    assert set(dirs) == set(EXPECT)
    return dirs


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from clipaction.testing.videos import SyntheticVideo, write_video

    return write_video(tmp_path_factory.mktemp("check-video") / "a.avi", SyntheticVideo(num_frames=24, pattern=1))


def _one_error_line(stderr: str) -> str:
    """The CLI's error line; there must be exactly one and no traceback."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("clipaction: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _devices_allowed(precision: str) -> list[str]:
    """The devices `check_precision` lets `precision` run on, asked of the check itself."""
    from clipaction.models.hf_common import check_precision

    allowed = []
    for device in ("cpu", "cuda"):
        try:
            check_precision(ModelConfig(precision=precision), torch.device(device))
        except ModelLoadError:
            continue
        allowed.append(device)
    return allowed


@pytest.mark.parametrize("name", list(EXPECT))
def test_check_reports_what_clipaction_will_do(name, tiny_dirs, capsys, monkeypatch):
    family, kind, score, openvino = EXPECT[name]
    assert main(["models", "--check", str(tiny_dirs[name]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    config = json.loads((tiny_dirs[name] / "config.json").read_text())
    layout = _hub_layout(name)
    assert report["family"] == family == config["model_type"]
    assert report["kind"] == kind
    assert report["frames"] == ("any" if kind == "frame" else [config["vision_config"]["num_frames"]])
    if name == "siglip2-naflex":
        saved = json.loads((tiny_dirs[name] / "preprocessor_config.json").read_text())
        assert (report["max_num_patches"], report["patch_size"]) == (saved["max_num_patches"], saved["patch_size"])
    else:
        assert report["input_size"] == config["vision_config"]["image_size"]
    assert report["processor"] == layout.processor_class
    assert report["image_processor"] == layout.image_processor_class
    assert report["video_processor"] == layout.video_processor_class
    assert report["tokenizer"] == layout.tokenizer_class
    assert report["score"] == score
    # the score kind the backend really scores with
    assert load_backend(ModelConfig(name_or_path=str(tiny_dirs[name]), device="cpu")).scoring().kind == score
    monkeypatch.setattr("clipaction.hardware.cpu_features", lambda: {"avx512_bf16": True})  # a CPU with bf16
    precisions = ("fp32", "int8", "bf16", "fp16")
    assert report["precisions"] == {precision: _devices_allowed(precision) for precision in precisions}
    assert report["runtimes"]["torch"]["precisions"] == list(precisions)
    assert bool(report["runtimes"]["openvino"]["precisions"]) == openvino
    if not openvino:
        assert "use runtime torch" in report["runtimes"]["openvino"]["note"]


def test_check_text_names_the_family_and_classes(tiny_dirs, capsys):
    assert main(["models", "--check", str(tiny_dirs["xclip"])]) == 0
    text = capsys.readouterr().out
    expected_parts = ("family: xclip", "clip model", "frames per clip: 4", "XCLIPProcessor", "VideoMAEImageProcessor")
    for expected in (*expected_parts, "CLIPTokenizer", "softmax", "openvino: no"):
        assert expected in text, expected


def test_check_loads_neither_weights_nor_processor(tiny_dirs, monkeypatch):
    from clipaction.models import check, hf_common

    def refuse(*args, **kwargs):
        raise AssertionError("--check must not load the model or its processor")

    monkeypatch.setattr(hf_common, "load_pretrained", refuse)
    for module in ("families.clip", "hf_video", "families.siglip", "families.xclip", "families.videoprism"):
        monkeypatch.setattr(f"clipaction.models.{module}.load_pretrained", refuse)
    for name in EXPECT:
        assert check.check_model(str(tiny_dirs[name]))["family"] == EXPECT[name][0]


def _broken(tiny_dirs, tmp_path: Path, name: str, remove: tuple[str, ...] = (), copy_from: str | None = None) -> Path:
    """A copy of a tiny model with processor files removed, or replaced by another model's."""
    folder = tmp_path / f"{name}-broken"
    shutil.copytree(tiny_dirs[name], folder)
    for file in remove:
        (folder / file).unlink()
    if copy_from is not None:
        for file in ("preprocessor_config.json", "tokenizer_config.json"):
            shutil.copy(tiny_dirs[copy_from] / file, folder / file)
    return folder


def _run_both(folder: Path, video: Path, tmp_path: Path, capsys) -> tuple[str, str]:
    """`models --check` and `predict` on `folder`: both exit 2; their error lines."""
    assert main(["models", "--check", str(folder)]) == 2
    check_line = _one_error_line(capsys.readouterr().err)
    code = main(["predict", str(video), "--labels", "a,b,c", "--model", str(folder), "--cache-dir", str(tmp_path)])
    assert code == 2
    return check_line, _one_error_line(capsys.readouterr().err)


def test_xclip_without_its_image_processor_is_one_line(tiny_dirs, video, tmp_path, capsys):
    folder = _broken(tiny_dirs, tmp_path, "xclip", remove=("preprocessor_config.json",))
    check_line, predict_line = _run_both(folder, video, tmp_path, capsys)
    assert check_line.startswith("clipaction: error: --check:")
    assert predict_line.startswith("clipaction: error: --model:")
    for line in (check_line, predict_line):
        assert "no image processor" in line and "VideoMAEImageProcessor" in line and "XCLIPProcessor" in line


def test_processor_of_another_family_is_one_line(tiny_dirs, video, tmp_path, capsys):
    folder = _broken(tiny_dirs, tmp_path, "xclip", copy_from="siglip")
    for line in _run_both(folder, video, tmp_path, capsys):
        assert "SiglipProcessor" in line and "SiglipImageProcessor" in line and "XCLIPProcessor" in line
    # and a CLIP folder carrying X-CLIP's video processor
    folder = _broken(tiny_dirs, tmp_path, "clip", copy_from="xclip")
    for line in _run_both(folder, video, tmp_path, capsys):
        assert "VideoMAEImageProcessor" in line and "CLIPImageProcessor" in line


def test_processor_input_size_the_model_cannot_take_is_one_line(tiny_dirs, tmp_path, capsys):
    folder = _broken(tiny_dirs, tmp_path, "clip")
    settings = json.loads((folder / "preprocessor_config.json").read_text())
    settings["crop_size"] = {"height": 48, "width": 48}
    (folder / "preprocessor_config.json").write_text(json.dumps(settings))
    assert main(["models", "--check", str(folder)]) == 2
    assert "makes 48 px inputs; the model takes 32 px" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("case", ["no config", "no weights", "no tokenizer", "unknown family"])
def test_check_refuses_what_cannot_run(case, tiny_dirs, tmp_path, capsys):
    folder = _broken(tiny_dirs, tmp_path, "clip")
    if case == "no config":
        (folder / "config.json").unlink()
    elif case == "no weights":
        (folder / "model.safetensors").unlink()
    elif case == "no tokenizer":
        for file in ("tokenizer_config.json", "tokenizer.json"):
            (folder / file).unlink()
    else:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "model_type": "flava"}))
    assert main(["models", "--check", str(folder)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    expected = {
        "no config": "no config.json",
        "no weights": "no weights",
        "no tokenizer": "no tokenizer",
        "unknown family": "'flava'",
    }
    assert expected[case] in line


def _fake_hub(monkeypatch, folder: Path, serve: tuple[str, ...], error) -> None:
    """hf_hub_download that serves config.json and the `serve` files from `folder` and fails
    every other file with `error`."""
    import huggingface_hub

    def download(repo_id, filename, revision=None, **kwargs):
        if filename == "config.json" or filename in serve:
            return str(folder / filename)
        raise error

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)


def test_hub_processor_files_out_of_reach_are_not_called_missing(tiny_dirs, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    folder, config = tiny_dirs["xclip"], ModelConfig(name_or_path="someone/xclip", device="cpu")
    offline = LocalEntryNotFoundError("not in the local cache")
    _fake_hub(monkeypatch, folder, (), offline)
    with pytest.raises(ModelLoadError, match="could not get .*offline") as caught:
        load_backend(config)
    assert "no image processor" not in str(caught.value)
    # files the hub says are not in the repository are missing
    _fake_hub(monkeypatch, folder, (), EntryNotFoundError("404: not in the repository"))
    with pytest.raises(ModelLoadError, match="no image processor"):
        load_backend(config)
    # offline with what the model needs cached: the other processor files do not matter
    _fake_hub(monkeypatch, folder, ("preprocessor_config.json", "tokenizer_config.json"), offline)
    assert load_backend(config).processor_files.image_processor_class == "VideoMAEImageProcessor"
    # offline, the cache remembering that the hub has no such files: missing
    _fake_hub(monkeypatch, folder, ("tokenizer_config.json",), offline)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: huggingface_hub._CACHED_NO_EXIST)
    with pytest.raises(ModelLoadError, match="no image processor"):
        load_backend(config)
