"""Effects the paper claims, measured with paired bootstrap intervals and a verdict (numpy only).

A reduced protocol (5 folds, 1-3 repetitions) earns its meaning from statistics. The *unit* of every
comparison is one (repetition, fold) pair: two arms (or two test sets of one arm) are compared on the
units present in both, so each unit contributes one paired difference (same test speaker, same
repetition). With ``n`` units:

- estimate: the mean paired difference ``mean(b - a)`` in the metric's units, and the relative change
  of the means ``(mean(b) - mean(a)) / |mean(a)|`` in % (the paper's "gap %", "improvement %" and
  Table II);
- 95 % interval: percentile bootstrap, resampling units with replacement (``n_boot`` = 10000 resamples,
  seeded: the same input gives the same interval);
- p: two-sided paired sign-flip permutation test of ``mean(b - a) = 0`` (exact over all ``2**n`` sign
  patterns when ``2**n <= n_boot``, else ``n_boot`` random ones); the smallest p that ``n`` units can
  give is ``2 / 2**n`` (0.0625 for 5 units).

Verdict (:func:`verdict`): with fewer than :data:`MIN_VERDICT_UNITS` units, "cannot tell at this
size" (with 4 units even four agreeing signs give p = 0.125, and a percentile interval over 3 or 4
units is too narrow to trust). A
directional claim *holds* when the interval of the mean difference excludes 0 on the paper's side,
*does not hold* when it excludes 0 on the other side, and otherwise we *cannot tell at this size*.
The paper's "no loss on clean speech" claim is a non-inferiority claim with margin
:data:`NON_INFERIORITY_MARGIN`: it holds when the lower end of the interval is above ``-margin``, and
does not hold when the whole interval lies below ``-margin``.

The paper's own numbers (Table I, Table II, the text) are :data:`LAKOMKIN2018`, transcribed in
``docs/results/paper_lakomkin2018.md``.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import pathlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ser_robot.errors import ExperimentError

__all__ = [
    "CANNOT_TELL",
    "DOES_NOT_HOLD",
    "EFFECT_COLUMNS",
    "HOLDS",
    "LAKOMKIN2018",
    "MIN_UNITS",
    "MIN_VERDICT_UNITS",
    "NON_INFERIORITY_MARGIN",
    "Comparison",
    "Effect",
    "arm_effects",
    "bootstrap_statistic",
    "effects_markdown",
    "kendall_tau",
    "lakomkin_effects",
    "paired_bootstrap",
    "relative_change",
    "sign_flip_p_value",
    "verdict",
    "write_effects",
]

log = logging.getLogger(__name__)

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
CANNOT_TELL = "cannot tell at this size"
MIN_UNITS = 3
MIN_VERDICT_UNITS = 5
"""Fewer paired units than this give NaN intervals and "cannot tell at this size"."""
NON_INFERIORITY_MARGIN = 0.05
"""Macro-F1 (absolute, 0-1) that augmentation may cost on clean speech and still count as "no loss"; the
paper's own largest loss, 0.025 (CNN), lies within it. Fixed before any result was seen."""
LOWER, HIGHER, NOT_LOWER = "lower", "higher", "not lower"
"""Expected direction of ``b - a``: a directional claim (lower, higher) or non-inferiority (not lower)."""

_METRIC_NAMES = {"accuracy": "accuracy", "uar": "UAR", "macro_f1": "macro-F1", "arousal_mae": "arousal MAE",
                 "valence_mae": "valence MAE", "arousal_r": "arousal r", "valence_r": "valence r",
                 "kendall_tau": "Kendall's τ"}
_ABLATION_NAMES = {"tempo": "-tempo", "gain": "-loudness", "noise": "-background noise",
                   "ir": "-filter impulse response"}

# --- the paper's numbers ----------------------------------------------------------------------------------

_T1_METRICS = ("accuracy", "uar", "macro_f1", "arousal_mae", "valence_mae", "arousal_r", "valence_r")


def _row(*values: float) -> dict[str, float]:
    return dict(zip(_T1_METRICS, values))


LAKOMKIN2018: dict[str, Any] = {
    # Table I as printed: (model, training, test) -> metric. "clean" training = "IEMOCAP", "augmented" =
    # "IEMOCAP + Augmentation and noise"; "clean" test = IEMOCAP, "robot" test = IEMOCAP-iCub.
    "table1": {
        ("RNN", "clean", "clean"): _row(0.533, 0.559, 0.531, 0.430, 0.655, 0.715, 0.525),
        ("RNN", "clean", "robot"): _row(0.203, 0.303, 0.144, 0.493, 1.004, 0.572, 0.076),
        ("RNN", "augmented", "clean"): _row(0.545, 0.563, 0.54, 0.422, 0.727, 0.675, 0.426),
        ("RNN", "augmented", "robot"): _row(0.475, 0.418, 0.411, 0.431, 0.762, 0.658, 0.33),
        ("CNN", "clean", "clean"): _row(0.511, 0.532, 0.505, 1.351, 1.150, 0.687, 0.412),
        ("CNN", "clean", "robot"): _row(0.360, 0.342, 0.247, 1.419, 1.116, 0.647, 0.155),
        ("CNN", "augmented", "clean"): _row(0.495, 0.521, 0.48, 1.320, 1.184, 0.638, 0.214),
        ("CNN", "augmented", "robot"): _row(0.400, 0.401, 0.312, 1.399, 1.164, 0.605, 0.145),
    },
    # Table I's "Gap %" rows as printed, (robot - clean) / |clean| in %: (model, training) -> metric.
    "gap": {
        ("RNN", "clean"): _row(-61.9, -45.8, -72.9, 14.6, 53.2, -20.1, -85.5),
        ("RNN", "augmented"): _row(-12.8, -25.71, -23.9, 2.1, 4.8, -2.5, -22.5),
        ("CNN", "clean"): _row(-29.5, -35.7, -51.1, 5.0, 2.9, -5.4, -62.3),
        ("CNN", "augmented"): _row(-19.2, -23.0, -35.0, 5.9, -1.6, -5.1, -32.2),
    },
    # Table I's "Improvement %" rows as printed, on IEMOCAP-iCub, augmented vs clean training, in %:
    # positive = better, so for MAE the paper prints -(augmented - clean) / clean.
    "improvement": {
        "RNN": _row(134.0, 37.9, 185.4, 12.5, 24.1, 15.0, 334.2),
        "CNN": _row(11.1, 17.2, 26.3, 1.4, -4.3, -6.49, -6.45),
    },
    # Table II as printed (RNN): relative F-score change (F_removed - F_full) / F_full in %, per test set.
    "table2": {"tempo": {"clean": 2.3, "robot": -6.0}, "gain": {"clean": 5.1, "robot": -2.7},
               "noise": {"clean": 9.7, "robot": -36.8}, "ir": {"clean": 5.3, "robot": 1.9}},
    "table2_base": {"clean": 0.54, "robot": 0.411},
    # Importance on IEMOCAP-iCub, most important first (largest F-score drop when removed, Table II).
    "importance_robot": ("noise", "tempo", "gain", "ir"),
    # Sec. IV-D: augmentation changes the clean-test F-score by +0.009 (RNN) and -0.025 (CNN), "no significant
    # difference".
    "clean_f1_change": {"RNN": 0.009, "CNN": -0.025},
}
"""Lakomkin et al. 2018, "On the robustness of speech emotion recognition for human-robot interaction with
deep neural networks" (IROS): the numbers this replication compares its directions with."""


# --- statistics --------------------------------------------------------------------------------------------


def relative_change(value: float, base: float) -> float:
    """``(value - base) / |base| * 100`` (the paper's "gap %", "improvement %" and Table II); nan if base is 0."""
    if base == 0 or math.isnan(base) or math.isnan(value):
        return math.nan
    return (value - base) / abs(base) * 100.0


def _relative(values: np.ndarray, base: np.ndarray) -> np.ndarray:
    """:func:`relative_change` elementwise (nan where ``base`` is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(base == 0, np.nan, (values - base) / np.abs(base) * 100.0)


def bootstrap_statistic(values: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], *,
                        n_boot: int = 10000, seed: int = 0) -> np.ndarray:
    """Bootstrap distribution of a statistic of column means, resampling units (rows) with replacement.

    ``values``: ``(units, k)`` float, one row per unit; ``statistic`` maps column means ``(..., k)`` to
    ``(...)`` (vectorised). Returns ``(n_boot,)``. Seeded: the same input gives the same output.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ExperimentError(f"bootstrap needs a (units, k) array with at least one unit, got shape {values.shape}")
    if n_boot < 1:
        raise ExperimentError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(values), size=(n_boot, len(values)))
    return np.asarray(statistic(values[index].mean(axis=1)), dtype=np.float64)


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    samples = samples[~np.isnan(samples)]
    if not len(samples):
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return (float(low), float(high))


def sign_flip_p_value(differences: np.ndarray, *, n_boot: int = 10000, seed: int = 0) -> float:
    """Two-sided paired sign-flip permutation p of ``mean(differences) = 0``.

    Exact (every one of the ``2**n`` sign patterns) when ``2**n <= n_boot``, else ``n_boot`` random patterns
    with the ``(count + 1) / (n_boot + 1)`` estimate. nan with no unit.
    """
    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    if n == 0:
        return math.nan
    observed = abs(d.mean())
    tolerance = 1e-12 * max(1.0, float(np.abs(d).max()))
    if 2 ** n <= n_boot:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ d / n) >= observed - tolerance))
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_boot, n))
    count = int(np.sum(np.abs(signs @ d / n) >= observed - tolerance))
    return (count + 1) / (n_boot + 1)


def _t_test_p(differences: np.ndarray) -> float:
    """Two-sided paired t-test p (scipy; nan without scipy, with fewer than 2 units or zero variance)."""
    scale = max(1.0, float(np.abs(differences).max())) if len(differences) else 1.0
    if len(differences) < 2 or np.ptp(differences) <= 1e-12 * scale:
        return math.nan
    try:
        from scipy import stats
    except ImportError:
        return math.nan
    return float(stats.ttest_1samp(differences, 0.0).pvalue)


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of ``b`` with ``a`` over ``units``.

    ``difference``: ``mean(b - a)`` in the metric's units, ``ci`` its percentile bootstrap interval;
    ``relative``: ``(mean(b) - mean(a)) / |mean(a)|`` in %, ``relative_ci`` from the same resamples;
    ``p_value``: two-sided sign-flip permutation test; ``t_p_value``: paired t-test (extra; nan without scipy).
    Intervals are nan with fewer than :data:`MIN_UNITS` units.
    """

    units: int
    mean_a: float
    mean_b: float
    difference: float
    ci: tuple[float, float]
    relative: float
    relative_ci: tuple[float, float]
    p_value: float
    t_p_value: float


def paired_bootstrap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, n_boot: int = 10000,
                     seed: int = 0, confidence: float = 0.95) -> Comparison:
    """Compare ``b`` with ``a``, paired by position (one unit each): mean difference, relative change of the
    means, percentile bootstrap intervals over units, sign-flip permutation p (see the module docstring)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ExperimentError(f"paired values must be two 1-d arrays of one length, got shapes {a.shape} and {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ExperimentError("paired values contain nan; drop the units without a value before comparing")
    if not 0 < confidence < 1:
        raise ExperimentError(f"confidence must lie in (0, 1), got {confidence}")
    n = len(a)
    if n == 0:
        nan2 = (math.nan, math.nan)
        return Comparison(0, math.nan, math.nan, math.nan, nan2, math.nan, nan2, math.nan, math.nan)
    d = b - a
    mean_a, mean_b = float(a.mean()), float(b.mean())
    ci = relative_ci = (math.nan, math.nan)
    if n >= MIN_UNITS:
        means = bootstrap_statistic(np.stack([a, b], axis=1), lambda m: m, n_boot=n_boot, seed=seed)
        ci = _interval(means[:, 1] - means[:, 0], confidence)
        relative_ci = _interval(_relative(means[:, 1], means[:, 0]), confidence)
    return Comparison(n, mean_a, mean_b, float(d.mean()), ci, relative_change(mean_b, mean_a), relative_ci,
                      sign_flip_p_value(d, n_boot=n_boot, seed=seed), _t_test_p(d))


def kendall_tau(x: np.ndarray, y: Sequence[float]) -> np.ndarray:
    """Kendall's tau-a between the last axis of ``x`` (``(..., items)``) and ``y`` (``(items,)``); ties count 0."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    pairs = list(itertools.combinations(range(len(y)), 2))
    if not pairs:
        raise ExperimentError(f"Kendall's tau needs at least 2 items, got {len(y)}")
    total = sum(np.sign(x[..., i] - x[..., j]) * np.sign(y[i] - y[j]) for i, j in pairs)
    return np.asarray(total / len(pairs))


def verdict(ci: tuple[float, float], expected: str, units: int, margin: float = NON_INFERIORITY_MARGIN) -> str:
    """The verdict on a claim about ``b - a`` from its interval ``ci`` (see the module docstring).

    ``expected``: "lower" or "higher" (directional), or "not lower" (non-inferiority with ``margin``).
    """
    low, high = ci
    if units < MIN_VERDICT_UNITS or math.isnan(low) or math.isnan(high):
        return CANNOT_TELL
    if expected == HIGHER:
        return HOLDS if low > 0 else DOES_NOT_HOLD if high < 0 else CANNOT_TELL
    if expected == LOWER:
        return HOLDS if high < 0 else DOES_NOT_HOLD if low > 0 else CANNOT_TELL
    if expected == NOT_LOWER:
        return HOLDS if low > -margin else DOES_NOT_HOLD if high < -margin else CANNOT_TELL
    raise ExperimentError(f"expected direction must be {LOWER!r}, {HIGHER!r} or {NOT_LOWER!r}, got {expected!r}")


# --- effects ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """One effect the paper claims, as measured here.

    ``estimate``/``ci``: mean paired difference ``b - a`` (metric units; Kendall's tau for a ranking) and its 95 %
    interval; ``relative``/``relative_ci``: the same as a relative change of the means in % (percentage points
    for a change of gap %; nan for a ranking); ``expected``: the paper's direction of ``b - a`` ("lower",
    "higher", "not lower"); ``paper``: the paper's number, as text.
    """

    name: str
    description: str
    metric: str
    paper: str
    expected: str
    units: int
    estimate: float
    ci: tuple[float, float]
    relative: float
    relative_ci: tuple[float, float]
    p_value: float
    verdict: str


EFFECT_COLUMNS: tuple[str, ...] = ("name", "description", "metric", "paper", "expected", "units", "estimate",
                                   "ci_low", "ci_high", "relative", "relative_ci_low", "relative_ci_high",
                                   "p_value", "verdict")
"""The columns of ``effects.csv``."""

Unit = tuple[int, str]


def _unit_values(runs: Sequence[Mapping[str, Any]], label: str, head: str, training: str, removed: str | None,
                 test_set: str, metric: str) -> dict[Unit, float]:
    """``{(repetition, fold): value}`` of the first arm that fits (rows with no value left out)."""
    arms = list(dict.fromkeys(r["arm"] for r in runs if r.get("label") == label and r.get("head") == head
                              and r.get("training") == training and (r.get("removed") or None) == removed))
    if not arms:
        return {}
    values: dict[Unit, float] = {}
    for run in runs:
        if run["arm"] != arms[0] or run.get("test_set") != test_set or run.get(metric) is None:
            continue
        value = float(run[metric])
        if math.isnan(value):
            continue
        unit = (int(run["repetition"]), str(run["fold"]))
        if unit in values:
            raise ExperimentError(f"arm {arms[0]!r} has two {test_set} rows for repetition {unit[0]}, "
                                  f"fold {unit[1]!r}; runs.csv must hold one row per job and test set")
        values[unit] = value
    return values


def _common(*columns: Mapping[Unit, float]) -> np.ndarray:
    """``(units, len(columns))``: the values of the units present in every column, in sorted unit order."""
    units = sorted(set.intersection(*(set(c) for c in columns))) if columns else []
    return np.array([[c[u] for c in columns] for u in units], dtype=np.float64).reshape(len(units), len(columns))


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.1f} %"


def _direction(value: float, fallback: str) -> str:
    return fallback if math.isnan(value) or value == 0 else HIGHER if value > 0 else LOWER


def _effect(name: str, description: str, metric: str, paper: str, expected: str, comparison: Comparison) -> Effect:
    return Effect(name, description, metric, paper, expected, comparison.units, comparison.difference, comparison.ci,
                  comparison.relative, comparison.relative_ci, comparison.p_value,
                  verdict(comparison.ci, expected, comparison.units))


def _higher_is_better(metric: str) -> bool:
    return not metric.endswith("_mae")


def _arm_values(runs: Sequence[Mapping[str, Any]], arm: str, test_set: str, metric: str) -> dict[Unit, float]:
    """``{(repetition, fold): value}`` of arm ``arm`` on ``test_set`` (rows without a value left out)."""
    values: dict[Unit, float] = {}
    for run in runs:
        if run["arm"] == arm and run.get("test_set") == test_set and run.get(metric) is not None:
            value = float(run[metric])
            if not math.isnan(value):
                values[(int(run["repetition"]), str(run["fold"]))] = value
    return values


def arm_effects(runs: Sequence[Mapping[str, Any]], specs: Sequence[Mapping[str, Any]], *, n_boot: int = 10000,
                seed: int = 0) -> list[Effect]:
    """The effects an experiment's ``effects`` list names (:class:`~ser_robot.experiments.config.EffectSpec`
    as dicts): arm ``b`` (on ``test_set_b`` when given) against arm ``a`` on the units both have."""
    effects = []
    for spec in specs:
        test_b = spec.get("test_set_b") or spec["test_set"]
        pairs = _common(_arm_values(runs, spec["a"], spec["test_set"], spec["metric"]),
                        _arm_values(runs, spec["b"], test_b, spec["metric"]))
        comparison = paired_bootstrap(pairs[:, 0], pairs[:, 1], n_boot=n_boot, seed=seed)
        description = spec.get("description") or f"{spec['b']} vs {spec['a']}"
        tested = spec["test_set"] if test_b == spec["test_set"] else f"{spec['test_set']} vs {test_b}"
        effects.append(_effect(spec["name"], f"{description} ({tested} test)", spec["metric"],
                               spec.get("paper") or "", spec["expected"], comparison))
    return effects


def lakomkin_effects(runs: Sequence[Mapping[str, Any]], *, n_boot: int = 10000, seed: int = 0) -> list[Effect]:
    """The effects Lakomkin et al. 2018 claim, for the arms present in ``runs`` (``runs.csv`` rows).

    Per model label: (a) the drop from the clean to the robot test set, per training condition (macro-F1, UAR,
    arousal/valence MAE); (b) the recovery with augmentation on the robot test set (augmented - clean-trained)
    and whether the robot gap shrinks (macro-F1, UAR); (d) no loss on the clean test set with augmentation
    (macro-F1, non-inferiority). Table II: (c) per removed augmentation, macro-F1 removed - full on each test set;
    the paper's importance ranking on the robot set as adjacent-rank comparisons and Kendall's tau.
    Expected directions are the signs of the paper's own numbers (:data:`LAKOMKIN2018`).
    """
    effects: list[Effect] = []
    labels = list(dict.fromkeys(r["label"] for r in runs))
    paper = LAKOMKIN2018
    kinds: dict[tuple[Any, ...], list[str]] = {}
    for run in runs:
        kind = (run.get("label"), run.get("head"), run.get("training"), run.get("removed") or None)
        arms = kinds.setdefault(kind, [])
        if run["arm"] not in arms:
            arms.append(run["arm"])
    for kind, arms in kinds.items():
        if len(arms) > 1:
            log.warning("arms %s are all %s; the effects use %s", arms, " ".join(str(k) for k in kind), arms[0])
    for label in labels:
        effects += _table1_effects(runs, label, paper, n_boot, seed)
    for label in labels:
        effects += _table2_effects(runs, label, paper, n_boot, seed)
    return effects


def _table1_effects(runs: Sequence[Mapping[str, Any]], label: str, paper: Mapping[str, Any], n_boot: int,
                    seed: int) -> list[Effect]:
    effects: list[Effect] = []
    metrics = (("categorical", "macro_f1"), ("categorical", "uar"), ("dimensional", "arousal_mae"),
               ("dimensional", "valence_mae"))

    def values(head: str, training: str, test: str, metric: str) -> dict[Unit, float]:
        return _unit_values(runs, label, head, training, None, test, metric)

    for training in ("clean", "augmented"):  # (a) robot - clean test
        for head, metric in metrics:
            pair = _common(values(head, training, "clean", metric), values(head, training, "robot", metric))
            if not len(pair):
                continue
            printed = paper["gap"].get((label, training), {}).get(metric, math.nan)
            worse = LOWER if _higher_is_better(metric) else HIGHER
            effects.append(_effect(
                f"{label}, {training} training: robot − clean test", "drop from the clean to the robot test set",
                metric, _pct(printed), _direction(printed, worse),
                paired_bootstrap(pair[:, 0], pair[:, 1], n_boot=n_boot, seed=seed)))
    for head, metric in metrics:  # (b) augmented - clean training, robot test
        pair = _common(values(head, "clean", "robot", metric), values(head, "augmented", "robot", metric))
        if not len(pair):
            continue
        printed = paper["improvement"].get(label, {}).get(metric, math.nan)
        printed = printed if _higher_is_better(metric) else -printed  # the paper prints MAE decreases as positive
        better = HIGHER if _higher_is_better(metric) else LOWER
        effects.append(_effect(
            f"{label}, robot test: augmented − clean training", "recovery with augmentation on the robot test set",
            metric, _pct(printed), _direction(printed, better),
            paired_bootstrap(pair[:, 0], pair[:, 1], n_boot=n_boot, seed=seed)))
    for head, metric in metrics[:2]:  # (b) the gap shrinks: difference in differences
        effects += _gap_shrinks(label, metric, [values(head, t, s, metric) for t in ("clean", "augmented")
                                                 for s in ("clean", "robot")], paper, n_boot, seed)
    clean = _common(values("categorical", "clean", "clean", "macro_f1"),
                    values("categorical", "augmented", "clean", "macro_f1"))
    if len(clean):  # (d) no loss on clean speech
        change = paper["clean_f1_change"].get(label, math.nan)
        text = "–" if math.isnan(change) else f"{change:+.3f} (\"no significant difference\")"
        effects.append(_effect(
            f"{label}, clean test: augmented − clean training",
            f"no loss on clean speech with augmentation (non-inferiority, margin {NON_INFERIORITY_MARGIN})",
            "macro_f1", text, NOT_LOWER, paired_bootstrap(clean[:, 0], clean[:, 1], n_boot=n_boot, seed=seed)))
    return effects


def _gap_shrinks(label: str, metric: str, columns: Sequence[Mapping[Unit, float]], paper: Mapping[str, Any],
                 n_boot: int, seed: int) -> list[Effect]:
    """Gap (robot - clean) with augmentation minus gap without, per unit; relative: gap % difference in points."""
    values = _common(*columns)  # clean-trained clean, robot; augmented clean, robot
    if not len(values):
        return []
    gaps = np.stack([values[:, 1] - values[:, 0], values[:, 3] - values[:, 2]], axis=1)
    comparison = paired_bootstrap(gaps[:, 0], gaps[:, 1], n_boot=n_boot, seed=seed)

    def gap_points(means: np.ndarray) -> np.ndarray:
        return _relative(means[..., 3], means[..., 2]) - _relative(means[..., 1], means[..., 0])

    relative = float(gap_points(values.mean(axis=0)))
    relative_ci = (math.nan, math.nan)
    if len(values) >= MIN_UNITS:
        relative_ci = _interval(bootstrap_statistic(values, gap_points, n_boot=n_boot, seed=seed), 0.95)
    before = paper["gap"].get((label, "clean"), {}).get(metric, math.nan)
    after = paper["gap"].get((label, "augmented"), {}).get(metric, math.nan)
    text = "–" if math.isnan(before) or math.isnan(after) else f"gap {_pct(before)} → {_pct(after)}"
    expected = _direction(after - before, HIGHER)
    comparison = Comparison(comparison.units, comparison.mean_a, comparison.mean_b, comparison.difference,
                            comparison.ci, relative, relative_ci, comparison.p_value, comparison.t_p_value)
    return [_effect(f"{label}: robot gap, augmented − clean training",
                    "the robot gap shrinks with augmentation (difference of gaps; relative: gap % in points)",
                    metric, text, expected, comparison)]


def _table2_effects(runs: Sequence[Mapping[str, Any]], label: str, paper: Mapping[str, Any], n_boot: int,
                    seed: int) -> list[Effect]:
    effects: list[Effect] = []
    prefix = "" if label == "RNN" else "RNN: "  # the paper's ablation is of the RNN only
    removed_values: dict[str, dict[Unit, float]] = {}
    full = {test: _unit_values(runs, label, "categorical", "augmented", None, test, "macro_f1")
            for test in ("clean", "robot")}
    for removed in paper["table2"]:  # the paper's row order
        for test in ("clean", "robot"):
            without = _unit_values(runs, label, "categorical", "augmented", removed, test, "macro_f1")
            pair = _common(full[test], without)
            if not len(pair):
                continue
            if test == "robot":
                removed_values[removed] = without
            printed = paper["table2"][removed][test]
            effects.append(_effect(
                f"{label}, {test} test: {_ABLATION_NAMES[removed]} − full augmentation",
                f"macro-F1 change when {_ABLATION_NAMES[removed][1:]} is removed from the augmentation",
                "macro_f1", prefix + _pct(printed), _direction(printed, LOWER),
                paired_bootstrap(pair[:, 0], pair[:, 1], n_boot=n_boot, seed=seed)))
    order = [r for r in paper["importance_robot"] if r in removed_values]
    for more, less in zip(order, order[1:]):  # adjacent ranks: removing the more important one costs more
        pair = _common(removed_values[less], removed_values[more])
        if not len(pair):
            continue
        text = f"{prefix}{_pct(paper['table2'][more]['robot'])} vs {_pct(paper['table2'][less]['robot'])}"
        effects.append(_effect(
            f"{label}, robot test: {_ABLATION_NAMES[more]} − {_ABLATION_NAMES[less]}",
            f"{_ABLATION_NAMES[more][1:]} matters more than {_ABLATION_NAMES[less][1:]} on the robot set "
            "(macro-F1 without the first minus without the second)",
            "macro_f1", text, LOWER, paired_bootstrap(pair[:, 0], pair[:, 1], n_boot=n_boot, seed=seed)))
    if len(order) >= 3:
        effects += _ranking(label, order, removed_values, paper, prefix, n_boot, seed)
    return effects


def _ranking(label: str, order: Sequence[str], removed_values: Mapping[str, Mapping[Unit, float]],
             paper: Mapping[str, Any], prefix: str, n_boot: int, seed: int) -> list[Effect]:
    """Kendall's tau between the measured and the paper's robot-set macro-F1 without each augmentation
    (the same order as the importance ranking); p: exact permutation over every ordering, two-sided."""
    values = _common(*(removed_values[r] for r in order))
    if not len(values):
        return []
    reference = [paper["table2"][r]["robot"] for r in order]
    tau = float(kendall_tau(values.mean(axis=0), reference))
    ci = (math.nan, math.nan)
    if len(values) >= MIN_UNITS:
        ci = _interval(bootstrap_statistic(values, lambda m: kendall_tau(m, reference), n_boot=n_boot, seed=seed), 0.95)
    orderings = np.array(list(itertools.permutations(range(len(order)))), dtype=np.float64)
    taus = kendall_tau(orderings, reference)
    p = float(np.mean(np.abs(taus) >= abs(tau) - 1e-12))
    names = " > ".join(_ABLATION_NAMES[r] for r in order)
    effects = [Effect(f"{label}, robot test: importance ranking", f"the paper's order of importance {names} "
                      "(Kendall's τ of macro-F1 without each augmentation, measured vs paper)", "kendall_tau",
                      f"{prefix}{names}", HIGHER, len(values), tau, ci, math.nan, (math.nan, math.nan), p,
                      verdict(ci, HIGHER, len(values)))]
    return effects


# --- output ------------------------------------------------------------------------------------------------


def _number(value: float, digits: int) -> str:
    return "–" if math.isnan(value) else f"{value:+.{digits}f}"


def _measured(effect: Effect) -> str:
    low, high = effect.ci
    if effect.metric == "kendall_tau":
        text = f"τ {_number(effect.estimate, 2)} [{_number(low, 2)}, {_number(high, 2)}]"
    else:
        text = f"Δ {_number(effect.estimate, 3)} [{_number(low, 3)}, {_number(high, 3)}]"
        if not math.isnan(effect.relative):
            unit = " pp" if "gap %" in effect.description else " %"
            r_low, r_high = effect.relative_ci
            text += (f"; {_number(effect.relative, 1)}{unit} [{_number(r_low, 1)}, {_number(r_high, 1)}]")
    return f"{text} (n = {effect.units})"


def _p(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}" if value >= 0.001 else "<0.001"


def effects_markdown(effects: Sequence[Effect]) -> str:
    """The effects as a Markdown table (Effect | Paper | Measured (mean, 95 % CI) | p | Verdict) and its caption."""
    if not effects:
        return ("No effect the paper claims can be measured from these arms (each needs both arms or test sets "
                "of a comparison).\n")
    lines = ["| Effect | Paper | Measured (mean, 95 % CI) | p | Verdict |", "|---|---|---|---|---|"]
    for effect in effects:
        lines.append(f"| {effect.name}, {_METRIC_NAMES.get(effect.metric, effect.metric)} | {effect.paper} | "
                     f"{_measured(effect)} | {_p(effect.p_value)} | {effect.verdict} |")
    ranking = any(effect.metric == "kendall_tau" for effect in effects)
    margins = sorted({_METRIC_NAMES.get(e.metric, e.metric) for e in effects if e.expected == NOT_LOWER})
    mae = any("mae" in e.metric for e in effects)
    gap = any("gap %" in e.description for e in effects)
    caption = (
        "Unit: one (repetition, fold) pair present in both sides of a comparison (n units); Δ: mean paired "
        "difference, second minus first, in the metric's units" + (" (MAE: lower is better)" if mae else "")
        + "; %: relative change of the means, (second − first) / |first|"
        + (" (pp: change of the gap % in percentage points)" if gap else "") + ", the convention of the Paper column"
        + (" (the paper's improvement % of an MAE is printed with the opposite sign; flipped here)" if mae else "")
        + ". 95 % CI: percentile bootstrap over units (10000 resamples, seeded). p: two-sided paired sign-flip "
        "permutation test of Δ = 0 (exact when 2^n ≤ 10000; n units cannot give p below 2 / 2^n, 0.0625 for 5)"
        + ("; for the ranking, Kendall's τ between the measured and the paper's macro-F1 without each augmentation, "
           "p exact over every ordering" if ranking else "")
        + ". Verdict: *holds* when the CI of Δ" + (" (τ)" if ranking else "") + " excludes 0 on the paper's side, "
        "*does not hold* when it excludes 0 on the other side, otherwise *cannot tell at this size*; fewer than "
        f"{MIN_VERDICT_UNITS} units: cannot tell."
        + (f" A claim of no loss is non-inferiority: holds when the CI's lower end is above −{NON_INFERIORITY_MARGIN} "
           f"({', '.join(margins)}), does not hold when the whole CI is below it." if margins else "")
        + " The expected direction is the paper's (the sign of its own number, or the experiment's `expected`). With few "
        "units the percentile interval is narrow: "
        "read *holds* as \"(nearly) every unit agrees\", and the p-value beside it. Every number: `effects.csv`.")
    return "\n".join(lines) + "\n\n" + caption + "\n"


def write_effects(path: str | pathlib.Path, effects: Iterable[Effect]) -> pathlib.Path:
    """``effects.csv`` with :data:`EFFECT_COLUMNS` (floats with full precision, nan as empty)."""
    path = pathlib.Path(path)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(EFFECT_COLUMNS))
        writer.writeheader()
        for effect in effects:
            row = asdict(effect)
            row["ci_low"], row["ci_high"] = row.pop("ci")
            row["relative_ci_low"], row["relative_ci_high"] = row.pop("relative_ci")
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else
                             repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return path
