"""``ser-robot experiment``: run (or resume) an experiment YAML and write its results folder.

::

    ser-robot experiment training/experiments/lakomkin_table1_tiny.yaml [--out DIR] [--workers N]
    python -m ser_robot.experiments training/experiments/lakomkin_table2.yaml --workers 2

Wire it into a larger parser with :func:`add_arguments` and :func:`run_from_args`; torch is
imported only when the command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


__all__ = ["add_arguments", "main", "run_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``experiment`` arguments to ``parser`` (a sub-command parser)."""
    parser.add_argument("path", help="experiment YAML (training/experiments/<name>.yaml)")
    parser.add_argument("--out", default=None, help="results folder (default: out/experiments/<name>); "
                                                    "finished jobs in it are skipped")
    parser.add_argument("--workers", type=int, default=None,
                        help="jobs in parallel processes (default 1; each gets cpu_count / N torch threads)")
    parser.add_argument("--cache", default=None,
                        help="folder of generated corpora, robot twins and banks (default: the YAML's cache)")
    parser.add_argument("--rebuild", action="store_true",
                        help="only rebuild runs.csv, tables and figures of --out from saved predictions")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Run the ``experiment`` command of parsed ``args``; prints the tables' Markdown and the folder."""
    if args.rebuild:
        from ser_robot.experiments.config import load_experiment
        from ser_robot.experiments.tables import rebuild_tables

        out = args.out or f"out/experiments/{load_experiment(args.path).name}"
        tables = rebuild_tables(out)
        print(tables.markdown)
        print(f"rebuilt {len(tables.files)} files in {out}")
        return 0
    from ser_robot.experiments.runner import run_experiment

    result = run_experiment(args.path, out=args.out, workers=args.workers, progress=not args.no_progress,
                            cache=args.cache)
    print(result.markdown)
    print(f"results: {result.out_dir} ({result.jobs_run} jobs trained, {result.jobs_skipped} found finished, "
          f"{result.seconds:.0f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ser_robot.experiments ...``; returns the exit status (2 on a configuration or data error)."""
    from ser_robot.cli import standalone_main

    return standalone_main("ser-robot experiment", __doc__, add_arguments, run_from_args, argv)
