"""A warm `zeroshot` and `predict` (every frame and text feature cached) pay for their work, not
for imports: no scikit-learn, SciPy, transformers, matplotlib or torch (PyAV, 0.1 s, stays: the
decoding module also works out a cached video's partial-decoding warnings). A warm run scores
cached features in numpy; its outputs equal the cold run's."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from clipaction.cli import main
from clipaction.testing.videos import SyntheticVideo, make_folder_dataset

HEAVY = ("sklearn", "scipy", "transformers", "matplotlib")
#: Imported only where a model runs.
RUNTIME = ("torch",)

# Both commands in one child, the modules read after each. Every `import` statement naming
# torch is recorded (builtins.__import__ sees each, also when the module is already
# loaded) with the module it is in and the nearest other clipaction module up the stack (the
# caller of a function that imports torch where it runs), so a module that brings in either
# is caught wherever it sits in the import order.
SCRIPT = """
import builtins, contextlib, io, json, sys
heavy, runtime, commands = sys.argv[1].split(","), sys.argv[2].split(","), json.loads(sys.argv[3])
importers = {}
plain_import = builtins.__import__

def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.split(".")[0]
    importer = (globals or {}).get("__name__", "?")
    if level == 0 and top in runtime and importer.startswith("clipaction"):
        frame, via = sys._getframe(1), "?"
        while frame is not None:
            module = frame.f_globals.get("__name__", "")
            if module.startswith("clipaction") and module != importer:
                via = module
                break
            frame = frame.f_back
        importers.setdefault(importer + " <- " + via, set()).add(top)
    return plain_import(name, globals, locals, fromlist, level)

builtins.__import__ = recording_import
from clipaction.cli import main
reports = []
for argv in commands:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    reports.append({
        "code": code,
        "imported": [name for name in heavy if name in sys.modules],
        "runtime_loaded": [name for name in runtime if name in sys.modules],
        "importers": {site: sorted(names) for site, names in importers.items()},
        "stdout": out.getvalue(),
    })
print(json.dumps(reports))
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_warm_zeroshot_and_predict_import_only_what_their_work_needs(tiny_model_dir, tmp_path, capsys):
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
        [sys.executable, "-c", SCRIPT, ",".join(HEAVY), ",".join(RUNTIME), json.dumps(commands)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    reports = json.loads(done.stdout.strip().splitlines()[-1])
    assert [report["code"] for report in reports] == [0, 0]
    assert [report["imported"] for report in reports] == [[], []]
    for report in reports:  # the importers ("module <- its caller") say who brought torch in
        assert (report["runtime_loaded"], report["importers"]) == ([], {})
    warm = json.loads((tmp_path / "warm" / "results.json").read_text())
    cold = json.loads((tmp_path / "cold" / "results.json").read_text())
    assert warm["cache"] == {"cached": 4, "encoded": 0}  # the warm path is the one checked
    assert warm["metrics"] == cold["metrics"]
    assert warm["model"]["logit_scale"] == cold["model"]["logit_scale"]
    warm_report = (tmp_path / "warm" / "classification_report.txt").read_text()
    assert warm_report == (tmp_path / "cold" / "classification_report.txt").read_text()
    warm_csv = (tmp_path / "warm" / "predictions.csv").read_text()
    assert warm_csv == (tmp_path / "cold" / "predictions.csv").read_text()
    assert json.loads(reports[1]["stdout"]) == json.loads(cold_predictions)


def test_scoring_and_pooling_give_numpy_for_numpy_and_agree_with_torch():
    """The numpy path a warm run takes computes what the torch path computes."""
    import torch

    from clipaction.models.base import Scoring
    from clipaction.models.pooling import pool_frame_array, pool_frames

    rng = np.random.default_rng(0)
    frames = rng.standard_normal((3, 5, 8)).astype(np.float32)
    pooled = pool_frame_array(frames)
    assert isinstance(pooled, np.ndarray) and pooled.dtype == np.float32 and pooled.shape == (3, 8)
    np.testing.assert_allclose(pooled, pool_frames(torch.from_numpy(frames)).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=-1), 1.0, rtol=1e-6)
    text = pool_frame_array(rng.standard_normal((4, 1, 8)).astype(np.float32))
    for scoring in (Scoring(scale=100.0), Scoring(scale=10.0, bias=-2.5, kind="sigmoid")):
        logits = scoring.logits(pooled, text)
        probabilities = scoring.probabilities(logits)
        assert isinstance(probabilities, np.ndarray) and probabilities.shape == (3, 4)
        reference = scoring.logits(torch.from_numpy(pooled), torch.from_numpy(text))
        np.testing.assert_allclose(logits, reference.numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(probabilities, scoring.probabilities(reference).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Scoring(scale=1.0).probabilities(logits).sum(axis=1), 1.0, rtol=1e-6)


def test_the_scale_is_the_same_float_from_the_weight_file_or_the_model():
    import math

    import torch

    from clipaction.models.base import scale_from_log

    for log_scale in (math.log(100.0), math.log(1 / 0.07), 0.0, -1.5):
        stored = np.float32(log_scale)
        scale = scale_from_log(stored)
        assert scale == scale_from_log(torch.tensor(stored).numpy())  # from the model's parameter
        assert float(np.float32(scale)) == scale  # a float32, as the parameter is
        assert abs(scale - math.exp(float(stored))) <= np.spacing(np.float32(scale)) / 2  # the nearest one
