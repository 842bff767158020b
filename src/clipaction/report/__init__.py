"""The study report: figures, report.md and a self-contained report.html, rendered from the
results dict alone (what results.json holds), with no recomputation.

    write_report(results, out_dir) -> {"markdown": ..., "html": ..., "figures/<key>": ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clipaction.outputs import write_text_atomic
from clipaction.report.figures import write_figures
from clipaction.report.html import render_html
from clipaction.report.markdown import build_document, render_markdown
from clipaction.report.observations import observations

__all__ = ["observations", "report_observations", "write_figures", "write_report"]


def report_observations(results: Mapping[str, Any]) -> list[str]:
    """The observations stored in the results, else those computed from its numbers."""
    stored = results.get("observations")
    return [str(sentence) for sentence in stored] if stored is not None else observations(results)


def write_report(results: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write figures/*.png, report.md (figures linked relatively) and report.html (figures
    embedded) into `out_dir`. Returns {"markdown", "html", and one "figure:<key>" per figure}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = write_figures(results, out_dir)
    blocks = build_document(results, figures, report_observations(results))
    paths = {"markdown": out_dir / "report.md", "html": out_dir / "report.html"}
    write_text_atomic(paths["markdown"], render_markdown(blocks))
    write_text_atomic(paths["html"], render_html(blocks, out_dir))
    paths.update({f"figure:{key}": out_dir / relative for key, relative in figures.items()})
    return paths
