"""``ser-robot train``: one fold of a speaker-independent protocol from a YAML configuration.

::

    ser-robot train --config config/train/lakomkin.yaml --manifest corpus/manifest.jsonl \\
        --fold Ses01F --out runs/lakomkin/Ses01F [--set epochs=5 --set augmentation.kind=none]
    torchrun --nproc_per_node 2 -m ser_robot.train --config ... --manifest ... --fold 0

``--fold``: the test speaker, the fold's full name (``test=Ses01F,val=Ses01M``) or its index in
:func:`~ser_robot.data.splits.leave_one_speaker_out` order; ``--validation`` picks the
validation speaker (``partner``: the test speaker's session partner, Lakomkin et al.'s protocol).
Wire it into a larger parser with :func:`add_arguments` and :func:`run_from_args`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from ser_robot.errors import SerRobotError

__all__ = ["add_arguments", "main", "run_from_args", "select_fold"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` options to ``parser`` (a sub-command parser)."""
    parser.add_argument("--config", required=True, help="training YAML (e.g. config/train/lakomkin.yaml)")
    parser.add_argument("--manifest", required=True, help="JSON Lines manifest of the corpus")
    parser.add_argument("--fold", required=True, help="test speaker, fold name, or fold index")
    parser.add_argument("--validation", default="partner", choices=("partner", "next", "none"),
                        help="validation speaker of each fold (default: partner, the paper's)")
    parser.add_argument("--out", default=None, help="results folder (checkpoints, result.json, history.csv)")
    parser.add_argument("--resume", default=None, help="last.pt of an interrupted run to continue")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a configuration key (YAML value; nested: augmentation.p_ir=0.2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def select_fold(folds, key: str):
    """The fold whose name, test speaker or index is ``key``; raises :class:`SerRobotError` listing them."""
    from ser_robot.data.splits import Fold  # noqa: F401 - for the type in the message

    for fold in folds:
        if key == fold.name or key in fold.test.speakers and len(fold.test.speakers) == 1:
            return fold
    if key.isdigit() and int(key) < len(folds):
        return folds[int(key)]
    raise SerRobotError(f"no fold {key!r}; choose an index 0-{len(folds) - 1} or one of "
                        f"{[f.name for f in folds]}")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the ``train`` command of parsed ``args``; prints the result summary as JSON."""
    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.train.config import load_train_config, parse_overrides
    from ser_robot.train.trainer import train

    config = load_train_config(args.config, parse_overrides(args.set))
    manifest = read_manifest(args.manifest)
    fold = select_fold(leave_one_speaker_out(manifest, validation=args.validation), args.fold)
    result = train(config, fold, out_dir=args.out, resume=args.resume, progress=not args.no_progress)
    summary = {"fold": fold.name, "best_epoch": result.best_epoch, "best_metric": result.best_metric,
               "test": {k: v for k, v in result.test.items() if isinstance(v, (int, float))},
               "throughput_utterances_per_s": round(result.throughput, 2),
               "out": str(result.out_dir) if result.out_dir else None}
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ser_robot.train ...``; returns the exit status (2 on a configuration or data error)."""
    from ser_robot.command_line import standalone_main

    return standalone_main("ser-robot train", __doc__, add_arguments, run_from_args, argv)
