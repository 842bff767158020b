"""--shard I/N: a deterministic share of the videos by content; N shards fill one cache exactly
as one run does, and a later zeroshot encodes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from clipaction.cli import main
from clipaction.errors import ConfigError
from clipaction.features.shard import EDGE, Shard, parse_shard, select_shard, shard_key, shard_of
from clipaction.testing.videos import SyntheticVideo, make_folder_dataset


def test_parse_shard():
    assert parse_shard("2/8") == Shard(2, 8) and str(parse_shard(" 1 / 1 ")) == "1/1"
    for bad in ("0/2", "3/2", "1/0", "1", "a/b", "-1/2", ""):
        with pytest.raises(ConfigError) as error:
            parse_shard(bad)
        assert error.value.setting == "shard"


def test_shard_of_is_deterministic_in_range_and_balanced():
    keys = [f"{i:032x}" for i in range(4000)]
    shards = [shard_of(key, 4) for key in keys]
    assert shards == [shard_of(key, 4) for key in keys]
    counts = np.bincount(shards, minlength=5)[1:]
    assert counts.min() > 800 and counts.max() < 1200  # 1000 each, +-6 sigma
    assert all(shard_of(key, 1) == 1 for key in keys[:50])


def test_shards_partition_the_videos_by_content(tmp_path):
    files = []
    for i in range(12):
        path = tmp_path / f"v{i}.bin"
        path.write_bytes(bytes([i]) * (100 + i))
        files.append(path)
    twin = tmp_path / "elsewhere" / "twin.bin"  # same bytes as v3: same shard, whatever its name
    twin.parent.mkdir()
    shutil.copy(files[3], twin)
    missing = tmp_path / "missing.bin"
    paths = [*files, twin, missing]
    shares = [select_shard(paths, i, 3) for i in (1, 2, 3)]
    assert sorted(map(str, sum(shares, []))) == sorted(map(str, paths))  # each path exactly once
    for share in shares:
        assert share == [p for p in paths if p in share]  # in the given order
    assert [files[3] in share for share in shares] == [twin in share for share in shares]
    assert all(shard_of(shard_key(p), 3) == i for i, share in zip((1, 2, 3), shares) for p in share if p != missing)
    assert select_shard(paths, 1, 1) == paths


def test_the_shard_key_follows_content_at_both_ends_and_the_size(tmp_path):
    body = bytearray(range(256)) * (3 * EDGE // 256)
    a, b = tmp_path / "a.avi", tmp_path / "b.avi"
    a.write_bytes(bytes(body))
    b.write_bytes(bytes(body))
    assert shard_key(a) == shard_key(b)
    for position in (0, len(body) - 1):  # a change in the head or the tail is a new key
        changed = bytearray(body)
        changed[position] ^= 0xFF
        b.write_bytes(bytes(changed))
        assert shard_key(b) != shard_key(a)
    b.write_bytes(bytes(body) + b"x")
    assert shard_key(b) != shard_key(a)
    tiny = tmp_path / "tiny.avi"
    tiny.write_bytes(b"abc")
    assert len(shard_key(tiny)) == 64


def _entries(cache: Path) -> dict[str, dict[str, np.ndarray]]:
    return {
        path.name: load_file(str(path)) for path in sorted(cache.rglob("*.safetensors")) if path.parent.name != "texts"
    }


@pytest.mark.slow
def test_n_shards_fill_the_cache_one_run_fills(tiny_model_dir, tmp_path, capsys):
    root = make_folder_dataset(
        tmp_path / "videos", ["a", "b", "c"], videos_per_label=3, spec=SyntheticVideo(num_frames=16)
    )
    common = ["--dataset", "folder", "--data-root", str(root), "--model", str(tiny_model_dir), "--device", "cpu",
              "--no-progress", "--sampler", "uniform", "--frames", "3"]  # fmt: skip
    assert main(["extract", *common, "--cache-dir", str(tmp_path / "whole")]) == 0
    capsys.readouterr()
    printed = []
    for shard in ("1/2", "2/2"):
        assert main(["extract", *common, "--cache-dir", str(tmp_path / "shared"), "--shard", shard]) == 0
        printed.append(capsys.readouterr().out)
    encoded = [int(text.split("encoded ")[1].split(",")[0]) for text in printed]
    assert sum(encoded) == 9 and all(n > 0 for n in encoded), printed  # each did a real share
    whole, shared = _entries(tmp_path / "whole"), _entries(tmp_path / "shared")
    assert sorted(whole) == sorted(shared) and len(whole) == 9
    for name, arrays in whole.items():
        for array in ("indices", "pooled", "embeds"):
            np.testing.assert_allclose(shared[name][array], arrays[array], atol=1e-6)
    # zeroshot needs every video: it finds them all in the shards' cache
    out = tmp_path / "out"
    assert main(["zeroshot", *common, "--cache-dir", str(tmp_path / "shared"), "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["cache"] == {"cached": 9, "encoded": 0}


def test_a_bad_shard_names_its_flag(tiny_model_dir, tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "videos", ["a"], videos_per_label=1, spec=SyntheticVideo(num_frames=8))
    code = main(["extract", "--dataset", "folder", "--data-root", str(root), "--model", str(tiny_model_dir),
                 "--cache-dir", str(tmp_path / "c"), "--shard", "3/2"])  # fmt: skip
    assert code == 2 and "--shard" in capsys.readouterr().err


@pytest.mark.slow
def test_timeline_shards_split_the_videos_between_them(tiny_model_dir, tmp_path, capsys):
    from clipaction.testing.videos import write_video

    videos = [write_video(tmp_path / "in" / f"long{i}.mp4", SyntheticVideo(codec="h264", num_frames=100, pattern=i, seed=i))
              for i in range(4)]  # fmt: skip
    seen = []
    for shard in ("1/2", "2/2"):
        out = tmp_path / f"out-{shard[0]}"
        code = main(["timeline", str(tmp_path / "in"), "--labels", "red,green", "--out", str(out), "--shard", shard,
                     "--model", str(tiny_model_dir), "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
                     "--no-progress"])  # fmt: skip
        assert code == 0
        seen.append(sorted(Path(v["video"]).name for v in json.loads((out / "results.json").read_text())["videos"]))
    assert sorted(seen[0] + seen[1]) == sorted(v.name for v in videos)  # each video in exactly one shard
    assert seen == [sorted(p.name for p in select_shard(videos, i, 2)) for i in (1, 2)]
