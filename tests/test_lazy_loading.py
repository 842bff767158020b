"""A run whose frame and text features are all cached loads no weights and does not even
import transformers: a warm run costs what its work costs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clipaction.testing.videos import SyntheticVideo, make_folder_dataset

SCRIPT = """
import json, sys
from clipaction.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "transformers": "transformers" in sys.modules,
                  "matplotlib": "matplotlib" in sys.modules}))
"""


def _zeroshot(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_warm_zeroshot_imports_no_transformers_and_gives_the_same_numbers(tiny_model_dir, tmp_path):
    root = make_folder_dataset(tmp_path / "videos", ["run", "jump"], 2, spec=SyntheticVideo(num_frames=20))
    args = ["zeroshot", "--dataset", "folder", "--data-root", str(root), "--model", str(tiny_model_dir),
            "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]  # fmt: skip
    cold = _zeroshot([*args, "--out", str(tmp_path / "cold")])
    warm = _zeroshot([*args, "--out", str(tmp_path / "warm")])
    assert cold["code"] == warm["code"] == 0
    assert cold["transformers"], "the cold run encodes, so it must load the model"
    assert not warm["transformers"] and not warm["matplotlib"]
    first = json.loads((tmp_path / "cold" / "results.json").read_text())
    second = json.loads((tmp_path / "warm" / "results.json").read_text())
    assert second["cache"]["encoded"] == 0
    assert first["metrics"] == second["metrics"]
    assert second["model"]["logit_scale"] == first["model"]["logit_scale"]


@pytest.mark.subprocess
def test_help_imports_no_heavy_library():
    """`clipaction --help` and every command's flags are built without torch, transformers,
    gradio, ray or openvino (each is imported by the command that uses it)."""
    script = (
        "import sys; from clipaction.cli.parser import build_parser; build_parser().format_help(); "
        "print(' '.join(m for m in ('torch', 'transformers', 'gradio', 'ray', 'openvino', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
