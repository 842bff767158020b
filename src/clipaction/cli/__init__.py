"""Command line: `main(argv)` parses flags (`parser`), runs one command (`commands`) and turns
errors into one line and an exit code: 0 all good; 1 finished, but some videos failed (results
written); 2 bad input or usage (a `ClipactionError`), nothing written; 3 a bug in clipaction
(the traceback is printed); 130 interrupted (finished work is kept)."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

from clipaction.cli.commands import COMMANDS, EXIT_BUG, EXIT_USAGE, error_line
from clipaction.cli.parser import build_parser, flag_for
from clipaction.errors import ClipactionError

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # transformers' notices (e.g. about torchvision) are noise to users
        # set through the environment: importing transformers here would cost every command
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        return COMMANDS[args.command](args)
    except ClipactionError as error:
        where = flag_for(args.command, error.setting) if error.setting else None
        error_line(f"{where}: {error.message}" if where else error.message)
        return EXIT_USAGE
    except BrokenPipeError:
        # the reader went away (`clipaction models | head`): what it read was all it wanted;
        # point stdout at devnull so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        error_line("interrupted; finished videos are in the cache, run the same command again to resume")
        return 130
    except Exception:  # anything else is a bug: say so, with what is needed to report it
        traceback.print_exc()
        error_line("this is a bug in clipaction; please report it with the traceback above")
        return EXIT_BUG
