"""Command line: `main(argv)` parses flags (`parser`), runs one command (`commands`) and turns
errors into one line and an exit code: 0 all good; 1 finished, but some videos failed (results
written); 2 bad input or usage, nothing written; 130 interrupted (finished work is kept)."""

from __future__ import annotations

import logging
from typing import Sequence

from clipaction.cli.commands import COMMANDS, EXIT_USAGE, error_line
from clipaction.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # transformers' notices (e.g. about torchvision) are noise to users
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    from clipaction.data import DatasetError
    from clipaction.models.hf_clip import ModelLoadError

    try:
        return COMMANDS[args.command](args)
    except (DatasetError, ModelLoadError, ValueError, OSError) as error:
        error_line(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        error_line("interrupted; finished videos are in the cache, run the same command again to resume")
        return 130
