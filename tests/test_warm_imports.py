"""A warm `zeroshot` and `predict` (every frame and text feature cached) import no scikit-learn,
SciPy or transformers: their imports cost seconds, the work of a warm run a fraction of one.
(torch is still imported: the backend protocol, pooling and the extraction core hold tensors.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clipaction.cli import main
from clipaction.testing.videos import SyntheticVideo, make_folder_dataset

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

HEAVY = ("sklearn", "scipy", "transformers", "matplotlib")

# Both commands in one child, the modules read after each.
SCRIPT = """
import contextlib, io, json, sys
from clipaction.cli import main
heavy, commands, reports = sys.argv[1].split(","), json.loads(sys.argv[2]), []
for argv in commands:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    imported = [name for name in heavy if name in sys.modules]
    reports.append({"code": code, "imported": imported, "stdout": out.getvalue()})
print(json.dumps(reports))
"""


def test_a_warm_zeroshot_and_predict_import_no_scikit_learn_scipy_or_transformers(tiny_model_dir, tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "videos", ["run", "jump"], 2, spec=SyntheticVideo(num_frames=12))
    common = ["--model", str(tiny_model_dir), "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
              "--no-progress", "--sampler", "uniform", "--frames", "2"]  # fmt: skip
    zeroshot = ["zeroshot", "--dataset", "folder", "--data-root", str(root), *common]
    predict = ["predict", str(root), "--labels", "run,jump", "--json", *common]
    # Cold, here: fills the frame and text caches.
    assert main([*zeroshot, "--out", str(tmp_path / "cold")]) == 0
    capsys.readouterr()
    assert main(predict) == 0
    cold_predictions = capsys.readouterr().out
    commands = [[*zeroshot, "--out", str(tmp_path / "warm")], predict]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(HEAVY), json.dumps(commands)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    reports = json.loads(done.stdout.strip().splitlines()[-1])
    assert [report["code"] for report in reports] == [0, 0]
    assert [report["imported"] for report in reports] == [[], []]
    warm = json.loads((tmp_path / "warm" / "results.json").read_text())
    cold = json.loads((tmp_path / "cold" / "results.json").read_text())
    assert warm["cache"] == {"cached": 4, "encoded": 0}  # the warm path is the one checked
    assert warm["metrics"] == cold["metrics"]
    warm_report = (tmp_path / "warm" / "classification_report.txt").read_text()
    assert warm_report == (tmp_path / "cold" / "classification_report.txt").read_text()
    assert json.loads(reports[1]["stdout"]) == json.loads(cold_predictions)
