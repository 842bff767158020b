"""The README's Python example runs as written, and its claims about the API hold."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs(capsys):
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Use from Python") :]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README has a Python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].endswith("softmax")
    label = printed[0].split(" ")[1:-2]
    assert " ".join(label) in ("juggling a soccer ball", "riding a bike", "archery")


def test_the_public_api_is_what_the_readme_lists():
    import clipaction

    for name in ("load_model", "predict", "zeroshot", "run_study", "DatasetConfig", "SamplerConfig",
                 "ModelConfig", "PromptConfig", "ZeroShotConfig", "StudyConfig", "ClipactionError",
                 "list_models", "list_samplers", "list_datasets"):  # fmt: skip
        assert name in clipaction.__all__ and getattr(clipaction, name) is not None
        assert f"`{name}`" in README.read_text(encoding="utf-8")
    assert "clip" in clipaction.list_models()
