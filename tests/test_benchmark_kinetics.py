"""`clipaction benchmark` on Kinetics: the k600-zs protocol (the packaged class splits, 160
labels per split) and k400 through the command line on a generated Kinetics layout, checked
against hand computations from the per-video predictions; a tiny CLIP trained on the action
world scores above chance through the same protocol; views x crops averaging; the published
figures beside the measured ones; the config, TOML and flags."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
from importlib.resources import files
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from clipaction.benchmark.run import (
    BenchmarkConfig,
    KineticsProtocol,
    benchmark_config_from_toml,
    benchmark_config_to_toml,
    benchmark_markdown,
    with_protocols,
)
from clipaction.benchmark.table import published_figure
from clipaction.cli import main
from clipaction.config import DatasetConfig, ModelConfig, PromptConfig, SamplerConfig, ZeroShotConfig
from clipaction.demo.world import ActionWorld, encode_video, render_video, video_seed
from clipaction.errors import ConfigError
from clipaction.testing.videos import SyntheticVideo, write_video

SPEC = SyntheticVideo(width=32, height=32, num_frames=10)
HEADER = ["label", "youtube_id", "time_start", "time_end", "split"]


def packaged_split(split: int) -> list[str]:
    """The class names of a packaged zero-shot split, read as plain CSV (the test's own reader)."""
    text = files("clipaction.data").joinpath("kinetics600_zeroshot", f"split{split}.csv").read_text("utf-8")
    return [row["name"] for row in csv.DictReader(io.StringIO(text))]


def write_annotations(path: Path, rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def read_predictions(out: Path, relative: str) -> list[dict[str, str]]:
    with open(out / relative, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    """A Kinetics-600 validation-like layout, one folder per label: two classes only in split 1,
    two only in split 2, two in all three, a Kinetics-400 class in none; a listed clip that was
    never downloaded and one whose file is garbage."""
    root = tmp_path_factory.mktemp("kinetics")
    names = [set(packaged_split(s)) for s in (1, 2, 3)]
    only1 = sorted(names[0] - names[1] - names[2])[:2]
    only2 = sorted(names[1] - names[0] - names[2])[:2]
    every = sorted(names[0] & names[1] & names[2])[:2]
    assert "abseiling" not in names[0] | names[1] | names[2]
    labels = {}
    rows = []
    for ci, label in enumerate(only1 + only2 + every + ["abseiling"]):
        vid = f"Yt{ci:02d}-_id{ci}"
        path = write_video(
            root / "videos" / label / f"{vid}_000010_000020.mp4", dataclasses.replace(SPEC, pattern=ci, seed=ci)
        )
        labels[str(path)] = label
        rows.append([label, vid, 10, 20, "validate"])
    rows.append([every[0], "neverthere1", 0, 10, "validate"])
    garbage = root / "videos" / only1[1] / "garbage0001_000000_000010.mp4"
    garbage.write_bytes(b"\x00garbage" * 64)
    rows.append([only1[1], "garbage0001", 0, 10, "validate"])
    annotations = write_annotations(root / "validate.csv", rows)
    return {"root": root / "videos", "annotations": annotations, "labels": labels, "names": names,
            "missing": ("neverthere1_000000_000010", every[0]), "garbage": (str(garbage), only1[1])}  # fmt: skip


def test_k600_zeroshot_from_the_command_line(kinetics, tiny_model_dir, tmp_path, capsys):
    from clipaction.testing.tiny_clip import build_random_clip

    other = build_random_clip(tmp_path / "other", "tiny", seed=5, logit_scale=50.0)
    (tmp_path / "bench.toml").write_text("templates = 'seed'\n")
    out = tmp_path / "out"
    code = main([
        "benchmark", "--config", str(tmp_path / "bench.toml"), "--protocols", "k600-zs",
        "--data-root", str(kinetics["root"]), "--annotations", str(kinetics["annotations"]),
        "--models", f"{tiny_model_dir},{other}", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        "--device", "cpu", "--batch-size", "4", "--no-progress",
    ])  # fmt: skip
    assert code == 1  # finished, with listed clips missing or unreadable
    printed = capsys.readouterr().out
    assert "k600-zs: top-1" in printed and "over splits 1, 2, 3" in printed

    saved = json.loads((out / "results.json").read_text())
    assert [m["model"]["name_or_path"] for m in saved["models"]] == [str(tiny_model_dir), str(other)]
    for run in saved["models"]:
        (dataset,) = run["datasets"]
        assert dataset["name"] == "k600-zs" and dataset["settings"]["name_style"] == "raw"
        top1 = []
        for split, names in zip(dataset["splits"], kinetics["names"]):
            number = split["split"]
            assert split["annotations"] == str(kinetics["annotations"])
            assert split["class_split"]["packaged"] and split["class_split"]["file"].endswith(f"split{number}.csv")
            assert split["n_classes"] == 160 == len(names)  # the split's names, not only those with videos
            rows = read_predictions(out, split["predictions"])
            expected = {path for path, label in kinetics["labels"].items() if label in names}
            assert {row["video"] for row in rows} == expected
            assert all(row["true_label"] == kinetics["labels"][row["video"]] for row in rows)
            assert all(row[f"top{k}_label"] in names for row in rows for k in range(1, 6))
            hand = sum(row["true_label"] == row["predicted_label"] for row in rows) / len(rows)
            top5 = sum(row["true_label"] in [row[f"top{k}_label"] for k in range(1, 6)] for row in rows) / len(rows)
            assert split["metrics"]["top1"] == pytest.approx(hand, abs=1e-12)
            assert split["metrics"]["top5"] == pytest.approx(top5, abs=1e-12)
            top1.append(hand)
            failed = {f["path"] for f in split["failures"]}
            assert failed == {path for path, label in (kinetics["missing"], kinetics["garbage"]) if label in names}
            assert split["n_failures"] == len(failed) and split["n_videos"] == len(expected)
        assert dataset["summary"]["top1"]["mean"] == pytest.approx(statistics.fmean(top1), abs=1e-12)
        assert dataset["summary"]["top1"]["std"] == pytest.approx(statistics.pstdev(top1), abs=1e-12)
    # the missing clip is named in every split, the garbage one only in split 1's (its class's)
    first = saved["models"][0]["datasets"][0]["splits"]
    assert [kinetics["missing"][0] in {f["path"] for f in s["failures"]} for s in first] == [True] * 3
    markdown = (out / "benchmark.md").read_text()
    assert "| k600-zs | mean ± std |" in markdown and "k600-zs top-1 (%)" in markdown
    assert "160 names are the labels" in markdown and "packaged with clipaction" in markdown

    # the same clips laid out flat give the same numbers (and, content-keyed, encode nothing)
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in [*kinetics["labels"], kinetics["garbage"][0]]:
        (flat / Path(path).name).write_bytes(Path(path).read_bytes())
    (tmp_path / "k400.toml").write_text(
        f"templates = 'seed'\ncache_dir = '{tmp_path / 'cache'}'\nviews = 1\ndatasets = []\n[model]\nname_or_path = '{tiny_model_dir}'\n"
        f"device = 'cpu'\n[[protocols]]\nname = 'k600-zs'\nroot = '{flat}'\nannotations = '{kinetics['annotations']}'\n"
        f"[[protocols]]\nname = 'k400'\nroot = '{flat}'\nannotations = '{kinetics['annotations']}'\n"
    )
    assert (
        main(
            ["benchmark", "--config", str(tmp_path / "k400.toml"), "--out", str(tmp_path / "flat-out"), "--no-progress"]
        )
        == 1
    )
    again = json.loads((tmp_path / "flat-out" / "results.json").read_text())
    k600, k400 = again["datasets"]
    assert [s["metrics"] for s in k600["splits"]] == [s["metrics"] for s in saved["models"][0]["datasets"][0]["splits"]]
    assert all(s["cache"]["encoded"] == 0 for s in k600["splits"])
    # k400: closed set, every class of the file, one "split"
    (split,) = k400["splits"]
    assert split["n_classes"] == len(set(kinetics["labels"].values()) | {kinetics["missing"][1]})
    rows = read_predictions(tmp_path / "flat-out", split["predictions"])
    assert len(rows) == len(kinetics["labels"]) and "class_split" not in split


def world_kinetics(root: Path, world: ActionWorld) -> tuple[Path, Path, Path, list[str]]:
    """The seen compositions of the action world's study as a flat Kinetics layout, one video
    each, labelled Kinetics-style with a disambiguation ("red square moving up (toy)"); three
    class splits of 8 of the 10 classes (as K600's are 160 of 220)."""
    seen = [c for c in world.classes if not world.is_unseen(c)]
    rows = []
    for ci, comp in enumerate(seen):
        vid = f"world{ci:02d}"
        encode_video(
            root / "clips" / f"{vid}_000000_000003.mp4",
            render_video(world, comp, video_seed(world, comp, "test", 0)).frames,
            world.fps,
        )
        rows.append([f"{comp.colour} {comp.shape} {comp.motion} (toy)", vid, 0, 3, "validate"])
    annotations = write_annotations(root / "validate.csv", rows)
    names = sorted(row[0] for row in rows)
    (root / "splits").mkdir()
    for split, pick in ((1, names[:8]), (2, names[2:]), (3, names[:4] + names[6:])):
        with open(root / "splits" / f"split{split}.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([("id", "name"), *enumerate(pick)])
    (root / "templates.txt").write_text("a {}\n")  # the world's own sentences: "a red square moving up"
    return root / "clips", annotations, root / "splits", names


def test_a_trained_model_scores_above_chance_through_the_protocol(world_model_dir, tmp_path):
    clips, annotations, splits, names = world_kinetics(tmp_path, ActionWorld())
    (tmp_path / "bench.toml").write_text(f"templates = '{tmp_path / 'templates.txt'}'\n")
    out = tmp_path / "out"
    code = main([
        "benchmark", "--config", str(tmp_path / "bench.toml"), "--protocols", "k600-zs", "--data-root", str(clips),
        "--annotations", str(annotations), "--split-dir", str(splits), "--name-style", "plain",
        "--models", str(world_model_dir), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        "--device", "cpu", "--no-progress",
    ])  # fmt: skip
    assert code == 0
    (dataset,) = json.loads((out / "results.json").read_text())["datasets"]
    assert dataset["settings"]["name_style"] == "plain"
    top1 = []
    for split in dataset["splits"]:
        assert split["n_classes"] == 8 and not split["class_split"]["packaged"]
        rows = read_predictions(out, split["predictions"])
        assert len(rows) == 8
        top1.append(sum(r["true_label"] == r["predicted_label"] for r in rows) / len(rows))
        assert split["metrics"]["top1"] == pytest.approx(top1[-1], abs=1e-12)
    chance = 1 / 8
    assert statistics.fmean(top1) >= 3 * chance, top1  # about 0.7 measured; a random model: about chance
    assert dataset["summary"]["top1"]["mean"] == pytest.approx(statistics.fmean(top1), abs=1e-12)


# --- views x crops ---------------------------------------------------------------------------


def wide_video(path: Path) -> Path:
    """96x32 frames whose thirds differ: a red left third, a textured middle, a blue right third."""
    rng = np.random.default_rng(0)
    frames = np.zeros((10, 32, 96, 3), np.uint8)
    frames[:, :, :32] = (220, 40, 40)
    frames[:, :, 32:64] = rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    frames[:, :, 64:] = (40, 60, 230)
    return encode_video(path, frames)


def middle_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return frames[len(frames) // 2]


def test_three_crops_average_the_probabilities_of_the_crops_scored_one_by_one(tiny_backend, tiny_model_dir, tmp_path):
    from clipaction.classify.run import run_zeroshot
    from clipaction.classify.scoring import class_text_features

    wide_video(tmp_path / "data" / "stripes" / "a.mp4")
    write_video(tmp_path / "data" / "plain" / "b.mp4", SPEC)
    config = ZeroShotConfig(
        dataset=DatasetConfig(name="folder", root=str(tmp_path / "data"), num_classes=None),
        sampler=SamplerConfig(name="middle"),
        model=ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"),
        prompts=PromptConfig(templates="seed"),
        cache_dir=str(tmp_path / "cache"),
        crops=3,
        pool="probabilities",
    )
    run = run_zeroshot(config, backend=tiny_backend, progress=False)
    row = run.videos.index(str(tmp_path / "data" / "stripes" / "a.mp4"))
    assert run.score_kind == "probabilities" and run.extraction.n_encoded == 2 * 3

    # by hand: the three thirds of the middle frame, each encoded and scored on its own
    frame = middle_frame(tmp_path / "data" / "stripes" / "a.mp4")
    text = class_text_features(tiny_backend, list(run.dataset.classes), ("a photo of a person {}.",))
    scale = tiny_backend.scoring().scale
    per_crop = []
    for third in (frame[:, :32], frame[:, 32:64], frame[:, 64:]):
        embed = tiny_backend.encode_frames(third[None]).embeds.double()
        embed = embed / embed.norm(dim=-1, keepdim=True)
        per_crop.append(torch.softmax(scale * embed @ text.double().T, dim=-1)[0].numpy())
    assert not np.allclose(per_crop[0], per_crop[2], atol=1e-4)  # the crops really see different pixels
    np.testing.assert_allclose(run.scores[row], np.mean(per_crop, axis=0), rtol=1e-4, atol=1e-6)

    # crops have cache entries of their own: one crop never reads another's, nor the uncropped ones
    single = run_zeroshot(dataclasses.replace(config, crops=1, pool="features"), backend=tiny_backend, progress=False)
    assert single.extraction.n_encoded == 2 and single.extraction.n_cached == 0
    again = run_zeroshot(config, backend=tiny_backend, progress=False)
    assert again.extraction.n_encoded == 0 and again.extraction.n_cached == 2 * 3
    np.testing.assert_array_equal(again.scores, run.scores)


def test_views_are_the_sampler_clips_found_by_frame_index_even_when_they_overlap():
    from clipaction.classify.scoring import view_rows
    from clipaction.features.cache import CachedVideo
    from clipaction.video.sampling import VideoMeta, multi_clip, multi_clip_groups

    meta = VideoMeta.from_frames(40, 10)  # 4 s: three 3-second windows overlap
    sampler = SamplerConfig(name="multi-clip", frames=4, window=3.0, clips=3)
    groups = multi_clip_groups(meta, frames=4, window=3.0, clips=3)
    indices = multi_clip(meta, frames=4, window=3.0, clips=3)
    assert sorted(i for g in groups for i in g) == indices
    # the windows overlap in time, so the sorted indices cut in fours are not the clips
    assert [indices[i : i + 4] for i in (0, 4, 8)] != groups
    embeds = np.stack([np.full(2, float(i), np.float32) for i in indices])  # a row says its frame index
    video = CachedVideo(np.asarray(indices), embeds, embeds, {"num_frames": "40", "fps": "10.0", "duration": "4.0"})

    class FrameModel:
        kind = "frame"

    views = view_rows(FrameModel(), video, sampler)
    assert [v[:, 0].int().tolist() for v in views] == groups


def test_a_clip_model_encodes_each_overlapping_clip_with_its_own_frames(tmp_path):
    from clipaction.features.extract import extract_features
    from clipaction.models import load_backend
    from clipaction.testing.tiny_video import build_random_video_model
    from clipaction.video.sampling import VideoMeta, multi_clip_groups

    backend = load_backend(
        ModelConfig(name_or_path=str(build_random_video_model(tmp_path / "xclip", "xclip", seed=0)), device="cpu")
    )
    path = write_video(tmp_path / "v.mp4", dataclasses.replace(SPEC, num_frames=40, pattern=2))
    sampler = SamplerConfig(name="multi-clip", frames=backend.clip_frames, window=1.0, clips=2)
    groups = multi_clip_groups(VideoMeta.from_frames(40, 25), frames=sampler.frames, window=1.0, clips=2)
    assert max(groups[0]) > min(groups[1])  # the two windows overlap: sorted runs would mix them
    rows = extract_features([path], backend, sampler, None, progress=False).features[str(path)].embeds
    with av.open(str(path)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    for row, group in zip(rows, groups):
        alone = backend.encode_pixels(backend.preprocess(frames[group])[None]).embeds[0].numpy()
        np.testing.assert_allclose(row, alone, rtol=1e-4, atol=1e-5)


# --- published figures -----------------------------------------------------------------------


def test_published_figures_stand_beside_the_measured_ones_with_their_protocol():
    xclip = "microsoft/xclip-base-patch16-zero-shot"
    # the X-CLIP README's zero-shot table (B/16, 32 frames), std over the splits from its paper
    assert {k: published_figure(xclip, k)["top1"] for k in ("ucf101", "hmdb51", "k600-zs")} == {
        "ucf101": 72.0, "hmdb51": 44.6, "k600-zs": 65.2,
    }  # fmt: skip
    assert [published_figure(xclip, k)["std"] for k in ("ucf101", "hmdb51", "k600-zs")] == [2.3, 5.2, 0.4]
    assert published_figure(xclip, "k400") is None and published_figure("/some/folder", "ucf101") is None
    assert "3 views" in published_figure("openai/clip-vit-base-patch16", "k600-zs")["protocol"]

    def dataset(name, mean):
        summary = {m: {"mean": mean, "std": 0.01} for m in ("top1", "top5", "mean_class_accuracy")}
        split = {"split": 1, "n_videos": 3, "n_failures": 0, "metrics": {m: mean for m in summary}}
        settings = {
            "name": name,
            "root": "/k",
            "annotations": "/k/validate.csv",
            "split_dir": None,
            "splits": [1],
            "name_style": "raw",
        }
        return {"name": name, "settings": settings, "splits": [{**split, "class_split": {"packaged": True, "n_classes": 160}}],
                "summary": summary, "published": published_figure(xclip, name)}  # fmt: skip

    run = {"model": {"name_or_path": xclip, "family": "xclip", "score": "softmax"}, "sampler": {"name": "uniform", "frames": 32},
           "datasets": [dataset("k600-zs", 0.5), dataset("k400", 0.4)]}  # fmt: skip
    results = {
        "model": {**run["model"], "precision": "fp32", "device": "cpu"}, "sampler": {"name": "uniform", "frames": 32, "window": 3.0},
        "views": {"views": 1, "crops": 3, "pool": "probabilities"}, "prompts": {"templates": "clip"},
        "datasets": run["datasets"], "models": [run, {**run, "model": {**run["model"], "name_or_path": "/other"},
                                                      "datasets": [{**d, "published": None} for d in run["datasets"]]}],
    }  # fmt: skip
    text = benchmark_markdown(results)
    assert "| k600-zs | mean ± std | 50.00 ± 1.00 |" in text and "| 65.2 ± 0.4 [1] |" in text
    assert "50.00 ± 1.00 (published 65.2 ± 0.4 [1])" in text  # the models table, the same note
    note = next(line for line in text.splitlines() if line.startswith("[1]"))
    assert "3 splits of 160 classes" in note and "32 frames" in note and "VideoX" in note
    assert "Views × crops: 1 × 3" in text and "probabilities averaged over views × crops" in text


# --- config, TOML and flags ------------------------------------------------------------------


def test_protocols_in_toml_round_trip_and_old_files_still_read(tmp_path):
    config = BenchmarkConfig(
        datasets=(),
        protocols=(
            KineticsProtocol("k600-zs", "/k/clips", "/k/validate.csv", splits=(1, 3)),
            KineticsProtocol("k700", "/k7", "/k7/val.csv"),
        ),
        views=3,
        crops=3,
    )
    text = benchmark_config_to_toml(config)
    assert "[[protocols]]" in text and benchmark_config_from_toml(text) == config
    assert config.protocols[1].splits == (1,) and config.pool == "probabilities"
    assert config.view_sampler() == SamplerConfig(name="multi-clip", frames=8, window=3.0, clips=3)
    assert BenchmarkConfig().pool == "features" and BenchmarkConfig().view_sampler() == SamplerConfig(name="middle")
    with pytest.raises(ConfigError, match="k600-zs needs annotations"):
        benchmark_config_from_toml("datasets = []\n[[protocols]]\nname = 'k600-zs'\nroot = 'r'\n")
    with pytest.raises(ConfigError, match="k400 evaluates every class"):
        KineticsProtocol("k400", "r", "a", splits=(1, 2))
    with pytest.raises(ConfigError, match="crops: must be one of 1, 3"):
        benchmark_config_from_toml("crops = 2\n")


def test_with_protocols_keeps_what_is_named_and_fills_in_the_files():
    base = BenchmarkConfig()
    only = with_protocols(base, ["k600-zs", "ucf101"], root="/clips", annotations="/val.csv")
    assert [e.name for e in only.evaluations()] == ["ucf101", "k600-zs"]
    assert only.datasets == base.datasets[:1] and only.protocols[0].annotations == "/val.csv"
    plain = with_protocols(only, None, name_style="plain", split_dir="/s")
    assert {e.name_style for e in plain.evaluations()} == {"plain"} and plain.protocols[0].split_dir == "/s"
    with pytest.raises(ConfigError) as error:
        with_protocols(base, ["k600-zs"], annotations="/val.csv")
    assert error.value.setting == "dataset.root"
    with pytest.raises(ConfigError, match="name one"):
        with_protocols(base, None, root="/clips")
    with pytest.raises(ConfigError, match="must be one of ucf101, hmdb51, k600-zs, k400, k700"):
        with_protocols(base, ["k600"])


def test_benchmark_flags_errors_name_the_flag(capsys, tmp_path):
    assert main(["benchmark", "--protocols", "k600-zs", "--annotations", "a.csv", "--out", str(tmp_path / "o")]) == 2
    assert "--data-root: k600-zs needs root" in capsys.readouterr().err
    assert main(["benchmark", "--views", "0", "--print-config"]) == 2
    assert "--views: must be an integer >= 1" in capsys.readouterr().err
    assert main(["benchmark", "--device", "tpu", "--print-config"]) == 2
    assert "--device: must be one of auto, cpu, cuda" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["benchmark", "--crops", "2"])
    assert main(["benchmark", "--protocols", "k400", "--data-root", "/c", "--annotations", "/v.csv", "--crops", "3",
                 "--batch-size", "4", "--precision", "int8", "--print-config"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "crops = 3" in printed and "batch_size = 4" in printed and 'precision = "int8"' in printed
    assert 'name = "k400"' in printed and "datasets = []" in printed


def test_a_sampler_a_later_model_cannot_take_fails_before_any_model_runs(
    kinetics, tiny_model_dir, tmp_path, monkeypatch
):
    """The middle sampler gives a clip model no clip: the benchmark says so before it encodes
    anything with the first (frame) model."""
    from clipaction.benchmark import run as benchmark_module
    from clipaction.testing.tiny_video import build_random_video_model

    xclip = build_random_video_model(tmp_path / "xclip", "xclip")
    ran = []
    monkeypatch.setattr(benchmark_module, "_benchmark_model", lambda *a, **k: ran.append(a) or {})
    code = main(["benchmark", "--protocols", "k400", "--data-root", str(kinetics["root"]), "--annotations",
                 str(kinetics["annotations"]), "--models", f"{tiny_model_dir},{xclip}", "--out", str(tmp_path / "out"),
                 "--no-progress"])  # fmt: skip
    assert code == 2
    assert ran == []
