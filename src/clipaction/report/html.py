"""HTML rendering of the report's blocks: one self-contained file.

Figures are embedded as base64 PNG data URIs and the style sheet is inline, so the file opens
anywhere with no other file, script or network access. All text goes through html.escape.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path

from clipaction.report.markdown import (
    TITLE,
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Inline,
    Paragraph,
    TableBlock,
)
from clipaction.report.tables import Table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f3f3f3; }
td.r, th.r { text-align: right; }
td.l, th.l { text-align: left; }
tbody tr:nth-child(even) { background: #fafafa; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9em; }
.banner { background: #fff3cd; border: 1px solid #e0c36a; padding: .6em 1em; }
""".strip()


def inline_html(spans: Inline) -> str:
    out = []
    for span in spans:
        value = escape(span.text)
        if span.style == "bold":
            out.append(f"<strong>{value}</strong>")
        elif span.style == "code":
            out.append(f"<code>{value}</code>")
        elif span.style == "link" and span.target.startswith("#"):
            out.append(f'<a href="{escape(span.target)}">{value}</a>')
        else:
            out.append(value)
    return "".join(out)


def table_html(table: Table) -> str:
    head = "".join(f'<th class="{a}">{escape(cell)}</th>' for cell, a in zip(table.header, table.align))
    cells = (zip(row, table.align) for row in table.rows)
    body = "\n".join(
        "<tr>" + "".join(f'<td class="{a}">{escape(cell)}</td>' for cell, a in row) + "</tr>" for row in cells
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def image_html(block: Image, base_dir: Path) -> str:
    data = base64.b64encode((base_dir / block.path).read_bytes()).decode("ascii")
    caption = escape(block.caption)
    return (
        f'<figure id="{escape(block.key)}"><img src="data:image/png;base64,{data}" alt="{caption}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def block_html(block: Block, base_dir: Path) -> str:
    if isinstance(block, Heading):
        # ids on the sections (h2) and on the headings a link points at
        linked = block.anchor and (block.level <= 2 or block.key)
        anchor = f' id="{escape(block.anchor)}"' if linked else ""
        return f"<h{block.level}{anchor}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        css = f' class="{escape(block.role)}"' if block.role else ""
        return f"<p{css}>{inline_html(block.spans)}</p>"
    if isinstance(block, Bullets):
        return "<ul>\n" + "\n".join(f"<li>{inline_html(item)}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, TableBlock):
        return table_html(block.table)
    if isinstance(block, Image):
        return image_html(block, base_dir)
    if isinstance(block, Code):
        return f"<pre><code>{escape(block.text)}</code></pre>"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_html(blocks: Sequence[Block], base_dir: Path) -> str:
    """The whole page; figure paths in `blocks` are read relative to `base_dir`."""
    body = "\n".join(block_html(block, Path(base_dir)) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(TITLE)}</title>\n"
        f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
