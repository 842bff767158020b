"""timeline.png: each label's probability over time (one curve per label, at the windows'
centres) with the segments as a coloured bar underneath. The only module of the timeline that
imports matplotlib (`matplotlib.figure.Figure`, no pyplot, as `clipaction.report.figures`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from clipaction.timeline.segments import Segment, Windows

DPI = 110


def _text(name: str) -> str:
    return str(name).replace("$", r"\$")  # a `$` would start matplotlib mathtext


def _clock(seconds: float, _position: object = None) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def draw_timeline(
    path: Path,
    windows: Windows,
    segments: Sequence[Segment],
    *,
    title: str = "",
    threshold: float | None = None,
    background: str | None = None,
) -> Path:
    """Write the figure to `path` (PNG) and return it."""
    from matplotlib.ticker import FuncFormatter

    labels = list(windows.labels)
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    if background in colours:
        colours[background] = "0.6"
    fig = Figure(figsize=(10, 3.6))
    grid = fig.add_gridspec(2, 1, height_ratios=(5, 1), hspace=0.08)
    curves = fig.add_subplot(grid[0])
    bar = fig.add_subplot(grid[1], sharex=curves)
    centres = (windows.starts + windows.ends) / 2
    for index, label in enumerate(labels):
        style = "--" if label == background else "-"
        curves.plot(centres, windows.scores[:, index], style, color=colours[label], linewidth=1.3, label=_text(label))
    if threshold:
        curves.axhline(threshold, color="0.3", linewidth=0.8, linestyle=":")
    curves.set_ylim(0, 1.02)
    curves.set_ylabel("probability")
    curves.grid(alpha=0.25)
    curves.tick_params(labelbottom=False)
    if title:
        curves.set_title(_text(title), fontsize=10)
    end = float(windows.slots[-1][1]) if len(windows.slots) else 1.0
    for segment in segments:
        bar.axvspan(segment.start, segment.end, color=colours.get(segment.label, "0.5"), linewidth=0)
    bar.set_xlim(0, end)
    bar.set_yticks([])
    bar.set_ylabel("segments", rotation=0, ha="right", va="center", fontsize=8)
    bar.xaxis.set_major_formatter(FuncFormatter(_clock))
    bar.set_xlabel("time")
    handles = [Patch(color=colours[label], label=_text(label)) for label in labels]
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=min(len(labels), 6),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 1.02),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    fig.clear()
    return path
