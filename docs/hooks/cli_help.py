"""MkDocs hook: the command line reference's "Every option" section is `clipaction --help` and
each command's `--help`, rendered at build time from the parser itself, so it cannot fall behind."""

from __future__ import annotations

import argparse
import os

MARKER = "<!-- clipaction --help -->"


def _help(parser: argparse.ArgumentParser) -> str:
    return parser.format_help().rstrip()


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the page should not depend on one
    from clipaction.cli.parser import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    parts = ["### `clipaction --help`", "", "```", _help(parser), "```", ""]
    for name, sub in commands.choices.items():
        parts += [f"### `clipaction {name} --help`", "", "```", _help(sub), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' signature)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
