"""Experiments: YAML in, results folder out (the replications of the papers' tables).

- :mod:`~ser_robot.experiments.config`: :func:`load_experiment` -> :class:`ExperimentConfig`
  (``training/experiments/<name>.yaml``, validated; each arm's training configuration too).
- :mod:`~ser_robot.experiments.prepare`: :func:`prepare_data`: corpus, robot twin, noise and RIR
  banks in a cache folder (idempotent).
- :mod:`~ser_robot.experiments.runner`: :func:`run_experiment` -> :class:`ExperimentResult`:
  every fold x arm x repetition, in parallel processes, resumable.
- :mod:`~ser_robot.experiments.tables`: ``runs.csv``, Table I / Table II in Markdown,
  :func:`rebuild_tables` from the saved predictions; :func:`relative_change`.
- :mod:`~ser_robot.experiments.plots`: confusion matrices (Fig. 4) and violin plots (Fig. 5).
- :mod:`~ser_robot.experiments.command`: ``ser-robot experiment PATH [--out DIR] [--workers N]``.

Names are imported on first use, so ``ser-robot --help`` loads neither torch nor matplotlib.
"""

import importlib
from typing import Any

_EXPORTS = {
    "ArmConfig": "config", "ExperimentConfig": "config", "load_experiment": "config",
    "PreparedData": "prepare", "prepare_data": "prepare",
    "ExperimentResult": "runner", "JobSpec": "runner", "plan_jobs": "runner", "run_experiment": "runner",
    "run_job": "runner",
    "ExperimentTables": "tables", "rebuild_tables": "tables", "relative_change": "tables", "summarise": "tables",
    "table1_markdown": "tables", "table2_markdown": "tables",
}


def __getattr__(name: str) -> Any:
    """Import the public names on first use."""
    if name == "ExperimentError":
        return getattr(importlib.import_module("ser_robot.errors"), name)
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ser_robot.experiments' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ser_robot.experiments.{_EXPORTS[name]}"), name)


__all__ = [
    "ArmConfig",
    "ExperimentConfig",
    "ExperimentError",
    "ExperimentResult",
    "ExperimentTables",
    "JobSpec",
    "PreparedData",
    "load_experiment",
    "plan_jobs",
    "prepare_data",
    "rebuild_tables",
    "relative_change",
    "run_experiment",
    "run_job",
    "summarise",
    "table1_markdown",
    "table2_markdown",
]
