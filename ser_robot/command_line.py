"""What every ``ser-robot`` program shares: one-line argument errors and the standalone entry point.

Below the commands: ``cli.py`` (the ``ser-robot`` dispatcher) and the sub-commands that also run
as their own programs (``python -m ser_robot.train``, ``python -m ser_robot.experiments``, for
torchrun) import it, never the other way round.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn, Sequence

from ser_robot.errors import SerRobotError

__all__ = ["OneLineErrorParser", "standalone_main"]


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every error of ``ser-robot``: what was
    wrong; what to do (``--help`` when the message does not say)."""

    def error(self, message: str) -> NoReturn:
        advice = "" if "; " in message else f"; see {self.prog} --help"
        self.exit(2, f"{self.prog}: error: {message}{advice}\n")


def standalone_main(prog: str, doc: str, add_arguments: Callable[[argparse.ArgumentParser], object],
                    run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None = None) -> int:
    """One sub-command as its own program (``python -m ser_robot.train``, for torchrun): exit status 2 on errors."""
    import logging

    parser = OneLineErrorParser(prog=prog, description=doc.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return run(args)
    except SerRobotError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
