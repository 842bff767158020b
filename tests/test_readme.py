"""The README and the documentation site: the README's example runs, what it claims holds, its
install lines are CI's, it stays short, and every relative link in it and in docs/ resolves."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CI = ROOT / ".ci" / "run"

#: The README is the front page; the manual lives in docs/.
README_MAX_BYTES = 12_800

HUB_ID = "openai/clip-vit-base-patch32"
VIDEO = "my_video.mp4"


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_the_readme_python_example_runs(capsys, monkeypatch, tmp_path, tiny_model_dir):
    from clipaction.testing.videos import SyntheticVideo, write_video

    text = _readme()
    section = text[text.index("## Use from Python") :]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README has a Python example"
    code = blocks[0]
    # The example is written for a real hub id and the reader's video; offline, a tiny random
    # CLIP saved like a downloaded one and a generated video take their places, nothing else.
    assert code.count(f'"{HUB_ID}"') == 1 and code.count(f'"{VIDEO}"') == 1
    video = write_video(tmp_path / "clip.mp4", SyntheticVideo(num_frames=60))
    code = code.replace(f'"{HUB_ID}"', repr(str(tiny_model_dir))).replace(f'"{VIDEO}"', repr(str(video)))
    monkeypatch.setenv("CLIPACTION_CACHE", str(tmp_path / "cache"))
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].endswith("softmax")
    label = printed[0].split(" ")[1:-2]
    assert " ".join(label) in ("juggling a soccer ball", "riding a bike", "archery")


def test_the_public_api_is_what_the_readme_and_the_api_page_list():
    import clipaction

    api_page = (DOCS / "python-api.md").read_text(encoding="utf-8")
    for name in ("load_model", "predict", "zeroshot", "run_study", "DatasetConfig", "SamplerConfig",
                 "ModelConfig", "PromptConfig", "ZeroShotConfig", "StudyConfig", "ClipactionError",
                 "list_models", "list_samplers", "list_datasets"):  # fmt: skip
        assert name in clipaction.__all__ and getattr(clipaction, name) is not None
        assert f"`{name}`" in _readme()
        assert f"`{name}`" in api_page
    assert "clip" in clipaction.list_models()


def _install_lines(lines: list[str]) -> list[list[str]]:
    """The `pip install` commands among lines, as argument lists without pip's own options."""
    commands = []
    for line in lines:
        if "pip install" not in line:
            continue
        words = shlex.split(line, comments=True)
        if "pip" in words and "install" in words:
            args = words[words.index("install") + 1 :]
            commands.append([word for word in args if word not in ("--quiet", "-q")])
    return commands


def _first_block_after(text: str, heading: str) -> str:
    section = text[text.index(heading) :]
    return re.search(r"```\n(.*?)```", section, flags=re.S).group(1)


def test_ci_installs_exactly_as_the_readme_says():
    readme = _install_lines(_first_block_after(_readme(), "## Install").splitlines())
    ci = _install_lines(CI.read_text(encoding="utf-8").splitlines())
    assert readme == [["torch==2.13.0"], ["-e", ".[dev,openvino,ui,ray,docs,search]"]]
    assert ci == readme
    install_page = (DOCS / "install.md").read_text(encoding="utf-8")
    assert _install_lines(_first_block_after(install_page, "# Install").splitlines()) == readme


def test_every_extra_the_readme_installs_exists():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = re.search(r'pip install -e "\.\[([a-z,]+)\]"', _readme()).group(1).split(",")
    assert set(named) <= set(extras)


def test_the_readme_stays_short():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move material into docs/"


def _slug(heading: str) -> str:
    # Python-Markdown's toc slugify, which MkDocs uses (and GitHub agrees for plain headings).
    heading = re.sub(r"[`*_]", "", heading).strip().lower()
    heading = re.sub(r"[^\w\s-]", "", heading)
    return re.sub(r"[-\s]+", "-", heading)


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def _relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_every_relative_link_in_the_readme_and_the_docs_resolves():
    broken = []
    checked = 0
    for page in _markdown_files():
        for target in _relative_links(page):
            checked += 1
            file, _, anchor = target.partition("#")
            resolved = (page.parent / file).resolve() if file else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert checked > 20, "the link check found almost no links: is the pattern still right?"
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_in_the_site_navigation():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.rglob("*.md"):
        assert f" {page.relative_to(DOCS).as_posix()}" in config, f"{page.name} is not in mkdocs.yml's nav"


def test_the_cli_reference_lists_every_command():
    from clipaction.cli.parser import build_parser

    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    commands = set(subparsers.choices)
    assert {"zeroshot", "predict", "run", "timeline", "serve"} <= commands
    reference = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = sorted(name for name in commands if f"`clipaction {name}`" not in reference)
    assert not missing, f"docs/cli.md does not list: {', '.join(missing)}"


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_documentation_site_builds_strictly(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "python-api" / "index.html").is_file()
