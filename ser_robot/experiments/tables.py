"""Results of an experiment as tables: metrics from saved predictions, runs.csv, the paper's tables.

Everything here works from the files a run leaves (per-job predictions CSVs and ``job.json``),
so :func:`rebuild_tables` redraws every table and figure without training (no torch import).

Aggregation (stated in every table's caption): a metric of one (arm, test set) is first averaged
over the folds of each repetition (the paper's cross-validation average); the table shows the
mean ± sample std (ddof=1) of those averages over the repetitions. With a single repetition
the std is taken over the folds instead (the caption says which).

- Table I (Lakomkin et al. 2018): rows = model x training condition x test set (clean, robot),
  columns = accuracy, UAR, macro-F1 (categorical arm) and arousal/valence MAE and Pearson r
  (dimensional arm of the same model and training condition); a *gap* row per model and
  training condition, ``(robot - clean) / |clean|`` in %, and an *improvement* row per model,
  ``(augmented - clean-trained) / |clean-trained|`` on the robot test set, in %, both of the means.
- Table II: per removed augmentation, the relative macro-F1 change
  ``(F_removed - F_full) / F_full`` in %, on the clean and on the robot test set, of the
  categorical arm with full augmentation of the same model.
- Effects: each effect the paper claims with a paired bootstrap interval over (repetition, fold)
  units and a verdict (:mod:`ser_robot.experiments.stats`), in ``tables.md`` and ``effects.csv``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ser_robot.metrics import (
    MeanStd,
    aggregate,
    classification_report,
    regression_report,
)
from ser_robot.experiments.config import (
    ABLATION_NAMES,
    ABLATIONS,
    TEST_SETS,
    TRAINING_CONDITIONS,
)
from ser_robot.experiments.stats import arm_effects, effects_markdown, lakomkin_effects, relative_change, write_effects
from ser_robot.errors import ExperimentError

__all__ = [
    "CATEGORICAL_METRICS",
    "DIMENSIONAL_METRICS",
    "RUN_COLUMNS",
    "ExperimentTables",
    "metrics_from_predictions",
    "read_predictions",
    "read_runs",
    "rebuild_tables",
    "relative_change",
    "summarise",
    "summary_markdown",
    "table1_markdown",
    "table2_markdown",
    "write_predictions",
    "write_runs",
]

log = logging.getLogger(__name__)

DIMENSIONS: tuple[str, str] = ("arousal", "valence")
CATEGORICAL_METRICS: tuple[str, ...] = ("accuracy", "uar", "macro_f1")
DIMENSIONAL_METRICS: tuple[str, ...] = ("arousal_mae", "valence_mae", "arousal_r", "valence_r",
                                        "arousal_ccc", "valence_ccc")
METRIC_NAMES: dict[str, str] = {
    "accuracy": "Accuracy", "uar": "UAR", "macro_f1": "Macro-F1", "arousal_mae": "Arousal MAE",
    "valence_mae": "Valence MAE", "arousal_r": "Arousal r", "valence_r": "Valence r",
    "arousal_ccc": "Arousal CCC", "valence_ccc": "Valence CCC",
}
TABLE1_METRICS: tuple[str, ...] = CATEGORICAL_METRICS + ("arousal_mae", "valence_mae", "arousal_r", "valence_r")
"""Table I's columns, in the paper's order (UW Acc, UAR, F-score, arousal/valence MAE, arousal/valence corr)."""
RUN_COLUMNS: tuple[str, ...] = (
    "arm", "label", "model", "head", "training", "removed", "fold", "test_speaker", "repetition", "seed",
    "test_set", "utterances", *CATEGORICAL_METRICS, *DIMENSIONAL_METRICS, "best_epoch", "epochs_run",
    "train_seconds",
)
"""The columns of ``runs.csv``: one row per job and test set (empty cells: metrics of the other head)."""
TEST_NAMES: dict[str, str] = {"clean": "clean", "robot": "robot (simulated)"}


# --- predictions and metrics ------------------------------------------------------------------------


def write_predictions(path: str | pathlib.Path, head: str, ids: Sequence[str], speakers: Sequence[str],
                      targets: np.ndarray, outputs: np.ndarray, labels: Sequence[str]) -> pathlib.Path:
    """One test set's predictions as CSV.

    Categorical: ``targets`` ``(n,)`` class indices, ``outputs`` ``(n, classes)`` logits; columns
    ``id, speaker, true, predicted, logit_<class>...``. Dimensional: ``targets`` and ``outputs``
    ``(n, 2)`` arousal, valence; columns ``id, speaker, arousal_true, valence_true,
    arousal_pred, valence_pred``. Floats are written with full precision (``repr``).
    """
    path = pathlib.Path(path)
    targets, outputs = np.asarray(targets), np.asarray(outputs, dtype=np.float64)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        if head == "categorical":
            writer.writerow(["id", "speaker", "true", "predicted", *[f"logit_{c}" for c in labels]])
            predicted = outputs.argmax(axis=1) if len(outputs) else np.zeros(0, dtype=int)
            for i, (uid, speaker) in enumerate(zip(ids, speakers)):
                writer.writerow([uid, speaker, labels[int(targets[i])], labels[int(predicted[i])],
                                 *[repr(float(v)) for v in outputs[i]]])
        else:
            writer.writerow(["id", "speaker", *[f"{d}_true" for d in DIMENSIONS], *[f"{d}_pred" for d in DIMENSIONS]])
            for i, (uid, speaker) in enumerate(zip(ids, speakers)):
                writer.writerow([uid, speaker, *[repr(float(v)) for v in targets[i]],
                                 *[repr(float(v)) for v in outputs[i]]])
    return path


@dataclass
class Predictions:
    """A predictions CSV read back: ``ids``; categorical ``true``/``predicted`` class names; dimensional
    ``true``/``predicted`` ``(n, 2)`` float64 arousal, valence."""

    head: str
    ids: list[str]
    true: Any
    predicted: Any


def read_predictions(path: str | pathlib.Path) -> Predictions:
    """Read a CSV of :func:`write_predictions` (the head is told by its columns)."""
    path = pathlib.Path(path)
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
        columns = rows[0].keys() if rows else []
    if not rows:
        raise ExperimentError(f"predictions file {path} is empty; delete its job folder and run the experiment again")
    ids = [r["id"] for r in rows]
    if "true" in columns:
        return Predictions("categorical", ids, [r["true"] for r in rows], [r["predicted"] for r in rows])
    true = np.array([[float(r[f"{d}_true"]) for d in DIMENSIONS] for r in rows])
    pred = np.array([[float(r[f"{d}_pred"]) for d in DIMENSIONS] for r in rows])
    return Predictions("dimensional", ids, true, pred)


def metrics_from_predictions(predictions: Predictions, labels: Sequence[str]) -> dict[str, Any]:
    """The flat metrics of one test set: accuracy/uar/macro_f1 (+ ``confusion`` counts) or per-dimension
    MAE, Pearson r, CCC (``arousal_mae``, ...); ``utterances``."""
    if predictions.head == "categorical":
        report = classification_report(predictions.true, predictions.predicted, list(labels))
        out: dict[str, Any] = {k: float(report[k]) for k in CATEGORICAL_METRICS}
        out["confusion"] = np.asarray(report["confusion_matrix"]).tolist()
    else:
        report = regression_report(predictions.true, predictions.predicted, names=DIMENSIONS)
        out = {}
        for dim in DIMENSIONS:
            out[f"{dim}_mae"] = float(report[dim]["mae"])
            out[f"{dim}_r"] = float(report[dim]["pearson_r"])
            out[f"{dim}_ccc"] = float(report[dim]["ccc"])
    out["utterances"] = len(predictions.ids)
    return out


# --- runs ---------------------------------------------------------------------------------------------


def write_runs(path: str | pathlib.Path, runs: Iterable[Mapping[str, Any]]) -> pathlib.Path:
    """``runs.csv`` with :data:`RUN_COLUMNS` (missing values empty)."""
    path = pathlib.Path(path)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(RUN_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for run in runs:
            writer.writerow({k: "" if run.get(k) is None else run.get(k) for k in RUN_COLUMNS})
    return path


def read_runs(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """``runs.csv`` back as dicts (metrics as floats, ``repetition``/``seed`` as ints, empty cells None)."""
    numeric = set(CATEGORICAL_METRICS) | set(DIMENSIONAL_METRICS) | {"train_seconds"}
    integers = {"repetition", "seed", "utterances", "best_epoch", "epochs_run"}
    runs = []
    with pathlib.Path(path).open(newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            run: dict[str, Any] = {}
            for key, value in row.items():
                if value == "":
                    run[key] = None
                elif key in numeric:
                    run[key] = float(value)
                elif key in integers:
                    run[key] = int(value)
                else:
                    run[key] = value
            runs.append(run)
    return runs


# --- aggregation --------------------------------------------------------------------------------------


@dataclass
class Summary:
    """Mean ± std of every metric of one (arm, test set); ``spread``: ``"repetitions"`` or ``"folds"``."""

    metrics: dict[str, MeanStd]
    spread: str
    folds: int
    repetitions: int


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Summary]:
    """``{(arm, test_set): Summary}`` (see the module docstring for how folds and repetitions combine)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["arm"], run["test_set"]), []).append(run)
    out = {}
    for key, rows in groups.items():
        names = CATEGORICAL_METRICS if rows[0]["head"] == "categorical" else DIMENSIONAL_METRICS
        by_rep: dict[int, list[Mapping[str, Any]]] = {}
        for row in rows:
            by_rep.setdefault(int(row["repetition"]), []).append(row)
        folds = len({row["fold"] for row in rows})

        def value(row: Mapping[str, Any], name: str) -> float:
            v = row.get(name)
            return math.nan if v is None else float(v)

        if len(by_rep) >= 2:
            means = []
            for reps in by_rep.values():
                with np.errstate(all="ignore"):
                    means.append({n: _nanmean([value(r, n) for r in reps]) for n in names})
            out[key] = Summary(aggregate(means), "repetitions", folds, len(by_rep))
        else:
            out[key] = Summary(aggregate([{n: value(r, n) for n in names} for r in rows]), "folds", folds, 1)
    return out


def _nanmean(values: Sequence[float]) -> float:
    array = np.asarray(values, dtype=np.float64)
    array = array[~np.isnan(array)]
    return float(array.mean()) if len(array) else math.nan


def _fmt(stat: MeanStd | None, digits: int = 3) -> str:
    if stat is None or math.isnan(stat.mean):
        return "–"
    if math.isnan(stat.std):
        return f"{stat.mean:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.1f}%"


def _spread_text(summaries: Mapping[tuple[str, str], Summary]) -> str:
    spreads = {s.spread for s in summaries.values()}
    reps = max((s.repetitions for s in summaries.values()), default=1)
    folds = max((s.folds for s in summaries.values()), default=0)
    if spreads == {"repetitions"}:
        return (f"mean ± sample std over {reps} repetitions of the average over {folds} folds")
    return f"mean ± sample std over {folds} folds (a single repetition)"


def _arms(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One metadata dict per arm (label, head, training, removed), in first-appearance order."""
    seen: dict[str, dict[str, Any]] = {}
    for run in runs:
        seen.setdefault(run["arm"], {k: run.get(k) for k in ("arm", "label", "model", "head", "training", "removed")})
    return list(seen.values())


def _find(arms: Sequence[Mapping[str, Any]], label: str, head: str, training: str,
          removed: str | None = None) -> str | None:
    matches = [a["arm"] for a in arms if a["label"] == label and a["head"] == head and a["training"] == training
               and (a.get("removed") or None) == removed]
    if len(matches) > 1:
        log.warning("arms %s all fit %s %s %s; the table uses %s", matches, label, head, training, matches[0])
    return matches[0] if matches else None


def test_sets(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The test sets of ``runs``: clean and robot first, then the others (noisy copies) in order of appearance."""
    present = list(dict.fromkeys(r["test_set"] for r in runs))
    return [t for t in TEST_SETS if t in present] + [t for t in present if t not in TEST_SETS]


def _test_name(test: str) -> str:
    return TEST_NAMES.get(test, f"{test[3:]} dB SNR" if test.startswith("snr") else test)


def test_sets_markdown(runs: Sequence[Mapping[str, Any]], metric: str = "uar") -> str:
    """One row per arm, one column per test set: ``metric`` mean ± std (MTL-AUG's Tables 2 and 5 side by side)."""
    summaries = summarise(runs)
    tests = test_sets(runs)
    lines = ["| Arm | Model | " + " | ".join(_test_name(t) for t in tests) + " |", "|" + "---|" * (2 + len(tests))]
    for arm in _arms(runs):
        cells = [_fmt(summaries[(arm["arm"], t)].metrics.get(metric)) if (arm["arm"], t) in summaries else "–"
                 for t in tests]
        lines.append(f"| {arm['arm']} | {arm['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{METRIC_NAMES[metric]}, values: {_spread_text(summaries)}.\n"


def summary_markdown(runs: Sequence[Mapping[str, Any]]) -> str:
    """Every arm and test set with every metric of its head (mean ± std)."""
    summaries = summarise(runs)
    lines = ["| Arm | Model | Head | Training | Removed | Test | Folds | " + " | ".join(
        METRIC_NAMES[m] for m in CATEGORICAL_METRICS + DIMENSIONAL_METRICS) + " |",
        "|" + "---|" * (7 + len(CATEGORICAL_METRICS) + len(DIMENSIONAL_METRICS))]
    for arm in _arms(runs):
        for test in test_sets(runs):
            summary = summaries.get((arm["arm"], test))
            if summary is None:
                continue
            cells = [_fmt(summary.metrics.get(m)) for m in CATEGORICAL_METRICS + DIMENSIONAL_METRICS]
            lines.append(f"| {arm['arm']} | {arm['label']} | {arm['head']} | {arm['training']} | "
                         f"{arm.get('removed') or '–'} | {_test_name(test)} | {summary.folds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nValues: {_spread_text(summaries)}.\n"


def table1_markdown(runs: Sequence[Mapping[str, Any]]) -> str:
    """Lakomkin et al.'s Table I from ``runs`` (rows with ``removed`` set are left out)."""
    runs = [r for r in runs if not r.get("removed")]
    summaries = summarise(runs)
    arms = _arms(runs)
    header = ["Model", "Training", "Test", *[METRIC_NAMES[m] for m in TABLE1_METRICS]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    heads = {m: ("categorical" if m in CATEGORICAL_METRICS else "dimensional") for m in TABLE1_METRICS}

    def means(label: str, training: str, test: str) -> list[float]:
        values = []
        for metric in TABLE1_METRICS:
            arm = _find(arms, label, heads[metric], training)
            stat = summaries.get((arm, test)).metrics.get(metric) if arm and (arm, test) in summaries else None
            values.append(math.nan if stat is None else stat.mean)
        return values

    labels = list(dict.fromkeys(a["label"] for a in arms))
    for label in labels:
        for training in TRAINING_CONDITIONS:
            if not any(a["label"] == label and a["training"] == training for a in arms):
                continue
            for test in TEST_SETS:
                cells = []
                for metric in TABLE1_METRICS:
                    arm = _find(arms, label, heads[metric], training)
                    summary = summaries.get((arm, test)) if arm else None
                    cells.append(_fmt(summary.metrics.get(metric) if summary else None))
                lines.append(f"| {label} | {training} | {TEST_NAMES[test]} | " + " | ".join(cells) + " |")
            gap = [relative_change(r, c) for r, c in zip(means(label, training, "robot"), means(label, training, "clean"))]
            lines.append(f"| {label} | {training} | **gap %** (robot − clean) | " + " | ".join(_pct(g) for g in gap) + " |")
        if all(any(a["label"] == label and a["training"] == t for a in arms) for t in TRAINING_CONDITIONS):
            improvement = [relative_change(a, c) for a, c in
                           zip(means(label, "augmented", "robot"), means(label, "clean", "robot"))]
            lines.append(f"| {label} | augmented vs clean | **improvement %** on robot | "
                         + " | ".join(_pct(v) for v in improvement) + " |")
    caption = (f"Values: {_spread_text(summaries)}. Gap % = (robot − clean) / |clean| and improvement % = "
               "(augmented − clean-trained) / |clean-trained| on the robot test set, both of the means, in %. "
               "Higher is better for accuracy, UAR, macro-F1 and r; lower is better for MAE. "
               "Accuracy is the fraction of utterances right (the paper's \"UW Acc\"), UAR the mean per-class recall.")
    return "\n".join(lines) + "\n\n" + caption + "\n"


def table2_markdown(runs: Sequence[Mapping[str, Any]]) -> str:
    """Lakomkin et al.'s Table II (ablation) from ``runs``: relative macro-F1 change per removed augmentation."""
    summaries = summarise(runs)
    arms = _arms(runs)
    header = ["Model", "Augmentation removed", "Macro-F1 clean", "Macro-F1 robot", "Δ clean", "Δ robot"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in dict.fromkeys(a["label"] for a in arms):
        full = _find(arms, label, "categorical", "augmented")
        if full is None:
            continue
        base = {t: summaries[(full, t)].metrics["macro_f1"] for t in TEST_SETS if (full, t) in summaries}
        lines.append(f"| {label} | none (full augmentation) | {_fmt(base.get('clean'))} | {_fmt(base.get('robot'))} "
                     "| – | – |")
        for removed in ABLATIONS:
            arm = _find(arms, label, "categorical", "augmented", removed)
            if arm is None:
                continue
            stats = {t: summaries[(arm, t)].metrics["macro_f1"] for t in TEST_SETS if (arm, t) in summaries}
            deltas = [relative_change(stats[t].mean, base[t].mean) if t in stats and t in base else math.nan
                      for t in TEST_SETS]
            lines.append(f"| {label} | {ABLATION_NAMES[removed]} | {_fmt(stats.get('clean'))} | "
                         f"{_fmt(stats.get('robot'))} | {_pct(deltas[0])} | {_pct(deltas[1])} |")
    caption = (f"Values: {_spread_text(summaries)}. Δ = (F_removed − F_full) / F_full of the mean macro-F1, in %, "
               "on each test set (the paper's Table II: negative = the removed augmentation helped).")
    return "\n".join(lines) + "\n\n" + caption + "\n"


# --- rebuilding from a results folder ---------------------------------------------------------------------


@dataclass
class ExperimentTables:
    """What :func:`rebuild_tables` wrote: the ``runs`` rows, the ``markdown`` of ``tables.md``, and ``files``."""

    runs: list[dict[str, Any]]
    markdown: str
    files: list[pathlib.Path] = field(default_factory=list)


def load_jobs(results_dir: pathlib.Path) -> list[dict[str, Any]]:
    """Every finished job's ``job.json`` (with its ``dir``), sorted by arm order, repetition and fold."""
    jobs = []
    for path in sorted((results_dir / "jobs").glob("*/rep*/*/job.json")):
        job = json.loads(path.read_text(encoding="utf-8"))
        job["dir"] = path.parent
        jobs.append(job)
    return jobs


def job_runs(job: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Predictions]]:
    """The ``runs.csv`` rows of one job, metrics recomputed from its predictions, and the predictions."""
    rows, predictions = [], {}
    tests = job.get("test_sets") or (  # jobs written before test_sets was recorded
        *TEST_SETS, *(job.get("noisy") or {}), *(a["name"] for a in job.get("attacks") or []))
    for test in tests:
        path = pathlib.Path(job["dir"]) / f"predictions_{test}.csv"
        if not path.is_file():
            raise ExperimentError(f"job {job['dir']} has no {path.name}; delete the job folder and run the "
                                  "experiment again")
        pred = read_predictions(path)
        metrics = metrics_from_predictions(pred, job["labels"])
        predictions[test] = pred
        row = {k: job.get(k) for k in ("arm", "label", "model", "head", "training", "removed", "fold", "test_speaker",
                                       "repetition", "seed", "best_epoch", "epochs_run", "train_seconds")}
        row.update({k: v for k, v in metrics.items() if k != "confusion"})
        row["test_set"] = test
        rows.append(row)
    return rows, predictions


def protection_rows(collected: Sequence[tuple[Mapping[str, Any], Mapping[str, Predictions]]],
                    experiment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Su and Lee's protection efficacy (eq. 12) and recovery rate (eq. 13) per defended job and attack.

    ``collected``: ``(job, {test set: Predictions})``. An SSAD job is measured against its own model without
    the purifier (``clean_unprotected``, ``<attack>_unprotected``), under the non-adaptive and the adaptive
    attacker; any other arm but the ``purifier.reference`` arm (an adversarially trained model) against the
    reference arm's job of the same repetition and fold. Rows: ``arm, label, repetition, fold, attack,
    attacker, protection_efficacy, recovery_rate`` (NaN where a metric is undefined: no harm done, or no
    utterance wrong on clean input)."""
    from ser_robot.adversarial.ssad import protection_efficacy, recovery_rate
    from ser_robot.errors import ConfigError

    reference = experiment["purifier"]["reference"]
    by_unit = {(job["repetition"], job["fold"]): predictions for job, predictions in collected
               if job["arm"] == reference}

    def correct(pred: Predictions) -> np.ndarray:
        return np.asarray(pred.true) == np.asarray(pred.predicted)

    def metric(fn: Any, *args: np.ndarray) -> float:
        try:
            return float(fn(*args))
        except ConfigError:
            return math.nan

    rows = []
    for job, predictions in collected:
        if job["arm"] == reference:
            continue
        ssad = bool(job.get("purifier"))
        base = predictions if ssad else by_unit.get((job["repetition"], job["fold"]))
        if base is None:
            continue
        clean = correct(base["clean_unprotected" if ssad else "clean"])
        for attack in (a["name"] for a in experiment["attacks"]):
            attacked = correct(base[f"{attack}_unprotected" if ssad else attack])
            for attacker, test in (("non-adaptive", attack), *((("adaptive", f"{attack}_adaptive"),) if ssad else ())):
                protected = correct(predictions[test])
                rows.append({"arm": job["arm"], "label": job["label"], "repetition": job["repetition"],
                             "fold": job["fold"], "attack": attack, "attacker": attacker,
                             "protection_efficacy": metric(protection_efficacy, clean, attacked, protected),
                             "recovery_rate": metric(recovery_rate, clean, protected)})
    return rows


def protection_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`protection_rows` as a table: mean ± std over the units that define each metric, per arm, attacker
    and attack (n: the units)."""
    if not rows:
        return "No defended job has finished yet.\n"
    lines = ["| arm | attacker | attack | protection efficacy | recovery rate | n |", "|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["label"], r["attacker"], r["attack"]) for r in rows))
    for label, attacker, attack in keys:
        group = [r for r in rows if (r["label"], r["attacker"], r["attack"]) == (label, attacker, attack)]
        cells = []
        for name in ("protection_efficacy", "recovery_rate"):
            values = np.array([r[name] for r in group], dtype=float)
            values = values[~np.isnan(values)]
            cells.append(f"{values.mean():.2f} ± {values.std():.2f}" if len(values) else "undefined")
        lines.append(f"| {label} | {attacker} | {attack} | {cells[0]} | {cells[1]} | {len(group)} |")
    caption = ("R (eq. 12) is the share of the utterances right on clean input that the attack turns wrong; without "
               "protection it is the undefended model's (an SSAD arm: its own model without the purifier; any other "
               "arm: the reference arm's). Recovery rate: of the utterances wrong on clean input, the share right "
               "with the defence under attack.")
    return "\n".join(lines) + "\n\n" + caption + "\n"


def rebuild_tables(results_dir: str | pathlib.Path, figures: bool = True) -> ExperimentTables:
    """Rewrite ``runs.csv``, ``tables.md``, ``effects.csv``, the figures and ``README.md`` of a results folder
    from its saved predictions (no training; metrics recomputed from ``jobs/*/rep*/*/predictions_*.csv``)."""
    from ser_robot.experiments.report import write_readme

    results_dir = pathlib.Path(results_dir)
    resolved = results_dir / "experiment.resolved.json"
    if not resolved.is_file():
        raise ExperimentError(f"{results_dir} is not an experiment results folder (no {resolved.name}); "
                              "run ser-robot experiment first")
    experiment = json.loads(resolved.read_text(encoding="utf-8"))
    order = {arm["name"]: i for i, arm in enumerate(experiment["arms"])}
    jobs = [j for j in load_jobs(results_dir) if j["arm"] in order]
    if not jobs:
        raise ExperimentError(f"{results_dir} holds no finished job yet (jobs/*/rep*/*/job.json)")
    jobs.sort(key=lambda j: (order[j["arm"]], j["repetition"], j["fold_index"]))
    runs: list[dict[str, Any]] = []
    collected: list[tuple[dict[str, Any], dict[str, Predictions]]] = []
    for job in jobs:
        rows, predictions = job_runs(job)
        runs.extend(rows)
        collected.append((job, predictions))
    files = [write_runs(results_dir / "runs.csv", runs)]
    parts = [f"# {experiment['name']}: results\n",
             "Synthetic corpus and simulated robot recordings (see README.md), not IEMOCAP / IEMOCAP-iCub.\n"]
    if "table1" in experiment["tables"]:
        parts += ["## Table I: clean vs robot test, clean vs augmented training\n", table1_markdown(runs)]
    if "table2" in experiment["tables"]:
        parts += ["## Table II: ablation, relative macro-F1 change when one augmentation is removed\n",
                  table2_markdown(runs)]
    if experiment.get("effects"):
        parts += [f"## {METRIC_NAMES['uar']} by test set\n", test_sets_markdown(runs)]
    effects = (arm_effects(runs, experiment["effects"]) if experiment.get("effects")
               else lakomkin_effects(runs))
    files.append(write_effects(results_dir / "effects.csv", effects))
    protection = protection_rows(collected, experiment) if experiment.get("purifier") else None
    if protection is not None:
        parts += ["## Protection efficacy and recovery rate (Su and Lee eq. 12-13)\n", protection_markdown(protection)]
    parts += ["## Effects the paper claims, with intervals\n", effects_markdown(effects)]
    parts += ["## Every arm\n", summary_markdown(runs)]
    markdown = "\n".join(parts)
    (results_dir / "tables.md").write_text(markdown, encoding="utf-8")
    files.append(results_dir / "tables.md")
    if figures:
        from ser_robot.experiments.plots import confusion_figures, violin_figures

        figure_dir = results_dir / "figures"
        figure_dir.mkdir(exist_ok=True)
        files += confusion_figures(collected, figure_dir)
        files += violin_figures(collected, figure_dir)
        if protection is not None:
            from ser_robot.experiments.plots import protection_figure

            files.append(protection_figure(protection, figure_dir / "protection.png"))
        if "labelled_fraction" in experiment["tables"]:
            from ser_robot.experiments.plots import labelled_fraction_figure

            files.append(labelled_fraction_figure(runs, experiment, figure_dir / "labelled_fraction.png"))
    files.append(write_readme(results_dir, experiment, markdown, files))
    return ExperimentTables(runs, markdown, files)
