"""``ser-robot experiment``: run (or resume) an experiment YAML and write its results folder.

::

    ser-robot experiment training/experiments/lakomkin_table1_tiny.yaml [--out DIR] [--workers N]
    ser-robot prepare-features training/experiments/lakomkin_table1_cpu.yaml [--workers N]
    python -m ser_robot.experiments training/experiments/lakomkin_table2_paper.yaml --workers 2

Wire it into a larger parser with :func:`add_arguments` and :func:`run_from_args`; torch is
imported only when the command runs.
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Sequence


__all__ = ["add_arguments", "add_prepare_arguments", "main", "run_from_args", "run_prepare_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``experiment`` arguments to ``parser`` (a sub-command parser)."""
    parser.add_argument("path", help="experiment YAML (training/experiments/<name>.yaml)")
    parser.add_argument("--out", default=None, help="results folder (default: out/experiments/<name>); "
                                                    "finished jobs in it are skipped")
    parser.add_argument("--workers", type=int, default=None,
                        help="jobs in parallel processes (default 1; each gets cpu_count / N torch threads)")
    parser.add_argument("--cache", default=None,
                        help="folder of generated corpora, robot twins and banks (default: the YAML's cache)")
    parser.add_argument("--launcher", choices=("local", "ray"), default="local",
                        help="local: processes of this machine; ray: tasks on a Ray cluster (Ray's own scheduling)")
    parser.add_argument("--ray-address", default=None,
                        help="the Ray cluster to use (e.g. auto or ray://head:10001; default: start a local one)")
    parser.add_argument("--gpus-per-job", type=float, default=0.0,
                        help="GPUs each job asks Ray for (fractions share a GPU, e.g. 0.25)")
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
    import signal

    from ser_robot.experiments.runner import run_experiment

    # Ctrl-C (SIGINT) stops a run, which resumes later, even when it was started where SIGINT is ignored: a
    # non-interactive shell's background job inherits SIG_IGN, and training/gpu_burst.py stops runs with SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result = run_experiment(args.path, out=args.out, workers=args.workers, progress=not args.no_progress,
                            cache=args.cache, launcher=args.launcher, ray_address=args.ray_address,
                            gpus_per_job=args.gpus_per_job)
    print(result.markdown)
    print(f"results: {result.out_dir} ({result.jobs_run} jobs trained, {result.jobs_skipped} found finished, "
          f"{result.seconds:.0f} s)")
    return 0


def add_prepare_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``prepare-features`` arguments to ``parser``."""
    parser.add_argument("path", help="experiment YAML whose arms train from augmentation banks (augmentation.mode: bank)")
    parser.add_argument("--workers", type=int, default=1, help="processes that render the banks (default 1)")
    parser.add_argument("--cache", default=None, help="folder of corpora and banks (default: the YAML's cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run_prepare_from_args(args: argparse.Namespace) -> int:
    """``ser-robot prepare-features``: the experiment's data and every augmentation bank its jobs will read,
    checked against every fold (the experiment runner does the same before its jobs)."""
    import tempfile

    from ser_robot.experiments.config import load_experiment
    from ser_robot.experiments.prepare import prepare_data
    from ser_robot.experiments.runner import plan_jobs, prepare_banks

    experiment = load_experiment(args.path)
    prepared = prepare_data(experiment, args.cache, workers=args.workers, progress=not args.no_progress)
    with tempfile.TemporaryDirectory() as scratch:  # job folders are only named, never written, when planning
        jobs = plan_jobs(experiment, prepared, pathlib.Path(scratch), args.workers)
    banks = prepare_banks(jobs, workers=args.workers, progress=not args.no_progress)
    if not banks:
        print(f"{args.path}: no arm trains from a bank (augmentation.mode is online); nothing to prepare")
    for bank in banks:
        print(f"{bank.root}: {len(bank.records)} utterances x {bank.versions} versions, "
              f"{bank.nbytes / 2**20:.1f} MB, steps {list(bank.steps) or 'none (clean)'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ser_robot.experiments ...``; returns the exit status (2 on a configuration or data error)."""
    from ser_robot.command_line import standalone_main

    return standalone_main("ser-robot experiment", __doc__, add_arguments, run_from_args, argv)
