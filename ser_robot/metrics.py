"""Metrics of speech emotion recognition, computed the way the papers report them.

Categorical emotions (labels are strings or integers, inputs of shape ``(n,)``):

* :func:`accuracy`: fraction of utterances classified correctly, what most papers call
  *weighted accuracy* (WA). :func:`unweighted_average_recall` (UAR) is the mean of the
  per-class recalls, their *unweighted accuracy* (UA). A few papers swap the two names:
  compare definitions, not names.
* :func:`per_class_recall`, :func:`macro_f1`, :func:`confusion_matrix`,
  :func:`classification_report`.

Dimensional emotions (arousal, valence, dominance; float inputs of shape ``(n,)``, or
``(n, dims)`` in :func:`regression_report`): :func:`mae`, :func:`pearson_r`,
:func:`concordance_correlation` (CCC).

Over folds or repeated runs: :func:`aggregate` gives mean ± sample std, :func:`format_mean_std`
the "61.3 ± 2.1" text of a table.

Inputs may be lists, NumPy arrays or torch tensors (any device; they are copied to the CPU).
Only NumPy is needed at run time. Bad inputs raise :class:`ValueError` naming the argument,
the offending value and what to do.
"""

from __future__ import annotations

import math
import numbers
import collections
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "LatencyStats",
    "MeanStd",
    "accuracy",
    "aggregate",
    "classification_report",
    "concordance_correlation",
    "confusion_matrix",
    "format_mean_std",
    "macro_f1",
    "mae",
    "pearson_r",
    "per_class_recall",
    "regression_report",
    "unweighted_average_recall",
]

_NORMALISE = (None, "true", "pred", "all")


# --------------------------------------------------------------------------- input checks


def _as_array(values: Any) -> np.ndarray:
    """A NumPy array of ``values``; torch tensors are detached and copied to the CPU first."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu()
    return np.asarray(values)


def _kind(array: np.ndarray) -> str | None:
    """What an array of labels holds: 'strings', 'bytes', 'numbers', or None (object array)."""
    if array.dtype.kind == "U":
        return "strings"
    if array.dtype.kind == "S":
        return "bytes"
    if array.dtype.kind in "biuf":
        return "numbers"
    return None


def _class_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D label arrays ``(n,)`` of equal, non-zero length."""
    arrays = []
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        array = _as_array(values)
        if array.ndim != 1:
            raise ValueError(
                f"{name} must hold one class label per utterance, shape (n,), got shape {array.shape}; "
                "for scores or logits of shape (n, n_classes) pass scores.argmax(axis=1)")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            index = int(np.flatnonzero(~np.isfinite(array))[0])
            raise ValueError(
                f"{name} holds the non-finite label {array[index]!r} at index {index}; labels must be classes")
        arrays.append(array)
    y_true_array, y_pred_array = arrays
    if len(y_true_array) != len(y_pred_array):
        raise ValueError(
            "y_true and y_pred must have one label per utterance each, "
            f"got lengths {len(y_true_array)} and {len(y_pred_array)}")
    if len(y_true_array) == 0:
        raise ValueError("y_true and y_pred are empty; a metric needs at least one utterance")
    kinds = _kind(y_true_array), _kind(y_pred_array)
    if None not in kinds and kinds[0] != kinds[1]:
        raise ValueError(
            f"y_true holds {kinds[0]} and y_pred holds {kinds[1]}; map both to the same label set "
            "(class names, or class indices) before comparing them")
    return y_true_array, y_pred_array


def _label_list(labels: Any) -> list[Any]:
    """The ``labels`` argument as a list of distinct Python values, in the order given."""
    array = _as_array(labels)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"labels must be a non-empty sequence of classes, got {labels!r}")
    values = array.tolist()
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"labels lists class {value!r} more than once: {values}; each class must appear once")
        seen.add(value)
    return values


def _default_labels(*arrays: np.ndarray) -> list[Any]:
    """The sorted union of the classes found in ``arrays``."""
    values: set[Any] = set()
    try:
        for array in arrays:
            values.update(np.unique(array).tolist())
        return sorted(values)
    except TypeError:
        raise ValueError(
            "y_true and y_pred mix label types that cannot be sorted (e.g. strings and numbers); "
            "pass labels=[...] or use one label type") from None


def _encode(array: np.ndarray, labels: list[Any], name: str) -> np.ndarray:
    """Class indices ``(n,)`` into ``labels`` of the values of ``array``; unknown values raise."""
    index = {label: i for i, label in enumerate(labels)}
    try:
        uniques, inverse = np.unique(array, return_inverse=True)
    except TypeError:
        raise ValueError(f"{name} mixes label types that cannot be compared (e.g. strings and numbers)") from None
    codes = np.empty(len(uniques), dtype=np.intp)
    for position, value in enumerate(uniques.tolist()):
        if value not in index:
            raise ValueError(
                f"{name} holds the label {value!r}, which is not in labels {labels}; "
                "pass every class that occurs in y_true and y_pred")
        codes[position] = index[value]
    return codes[inverse.reshape(-1)]


def _counts(y_true: Any, y_pred: Any, labels: Any | None) -> tuple[np.ndarray, list[Any]]:
    """Confusion counts ``(n_classes, n_classes)`` (rows true, columns predicted) and the label list."""
    y_true_array, y_pred_array = _class_pair(y_true, y_pred)
    label_list = _default_labels(y_true_array, y_pred_array) if labels is None else _label_list(labels)
    true_codes = _encode(y_true_array, label_list, "y_true")
    pred_codes = _encode(y_pred_array, label_list, "y_pred")
    n_classes = len(label_list)
    counts = np.bincount(true_codes * n_classes + pred_codes, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64), label_list


def _recalls(counts: np.ndarray) -> np.ndarray:
    """Per-class recall ``(n_classes,)`` of confusion counts; nan where a class has no true utterance."""
    support = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(counts) / support, np.nan)


def _uar(counts: np.ndarray) -> float:
    recalls = _recalls(counts)
    return float(np.mean(recalls[counts.sum(axis=1) > 0]))


def _macro_f1(counts: np.ndarray) -> float:
    true_positives = np.diag(counts).astype(np.float64)
    denominator = counts.sum(axis=0) + counts.sum(axis=1)  # 2 TP + FP + FN
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denominator > 0, 2.0 * true_positives / denominator, 0.0)
    return float(np.mean(f1))


# --------------------------------------------------------------------------- classification


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of utterances whose predicted class is the true one (the papers' WA), in [0, 1].

    ``y_true``, ``y_pred``: class labels ``(n,)``.
    """
    y_true_array, y_pred_array = _class_pair(y_true, y_pred)
    return float(np.mean(y_true_array == y_pred_array))


def unweighted_average_recall(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> float:
    """Unweighted average recall (UAR, the papers' UA): the mean of the per-class recalls, in [0, 1].

    ``y_true``, ``y_pred``: class labels ``(n,)``. The mean is over the classes present in
    ``y_true``; a class absent from ``y_true`` has no recall and is left out (the convention of
    scikit-learn's ``balanced_accuracy_score``), while predictions of it still count as errors.
    ``labels`` only checks that every value is a known class; it does not change the result.
    """
    counts, _ = _counts(y_true, y_pred, labels)
    return _uar(counts)


def per_class_recall(y_true: Any, y_pred: Any, labels: Sequence[Any]) -> dict[Any, float]:
    """Recall of each class, ``{label: recall}`` in the order of ``labels``.

    ``y_true``, ``y_pred``: class labels ``(n,)``; ``labels``: every class, ``(n_classes,)``.
    A class absent from ``y_true`` gets nan.
    """
    counts, label_list = _counts(y_true, y_pred, labels)
    return {label: float(recall) for label, recall in zip(label_list, _recalls(counts))}


def macro_f1(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> float:
    """Mean over classes of the F1 score, in [0, 1]; scikit-learn's ``f1_score(average="macro", zero_division=0)``.

    ``y_true``, ``y_pred``: class labels ``(n,)``. The mean is over ``labels`` (default: the
    sorted classes found in ``y_true`` or ``y_pred``). A class never true and never predicted
    has F1 0 and still counts in the mean, as in scikit-learn with ``labels`` given.
    """
    counts, _ = _counts(y_true, y_pred, labels)
    return _macro_f1(counts)


def confusion_matrix(y_true: Any, y_pred: Any, labels: Sequence[Any], normalise: str | None = None) -> np.ndarray:
    """Confusion matrix ``(n_classes, n_classes)``: rows true class, columns predicted, in ``labels`` order.

    ``y_true``, ``y_pred``: class labels ``(n,)``. ``normalise=None`` gives int64 counts;
    ``"true"`` row-normalised rates (the diagonal is the per-class recall), ``"pred"``
    column-normalised rates (the diagonal is the precision), ``"all"`` fractions of all
    utterances, as float64. A row (column) without utterances is nan, not scikit-learn's 0,
    so that an absent class cannot pass for a recall of 0.
    """
    if normalise not in _NORMALISE:
        raise ValueError(f"normalise must be one of {_NORMALISE}, got {normalise!r}")
    counts, _ = _counts(y_true, y_pred, labels)
    if normalise is None:
        return counts
    if normalise == "true":
        totals = counts.sum(axis=1, keepdims=True)
    elif normalise == "pred":
        totals = counts.sum(axis=0, keepdims=True)
    else:
        totals = np.array(counts.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / totals, np.nan)


def classification_report(y_true: Any, y_pred: Any, labels: Sequence[Any]) -> dict[str, Any]:
    """Every categorical metric of one evaluation.

    ``y_true``, ``y_pred``: class labels ``(n,)``; ``labels``: every class ``(n_classes,)``.
    Returns ``{"accuracy": float, "uar": float, "macro_f1": float, "recall": {label: float},
    "confusion_matrix": int64 (n_classes, n_classes), "labels": list}`` with the conventions of
    :func:`accuracy`, :func:`unweighted_average_recall`, :func:`macro_f1` (over ``labels``),
    :func:`per_class_recall` and :func:`confusion_matrix`. :func:`aggregate` takes a list of them.
    """
    counts, label_list = _counts(y_true, y_pred, labels)
    return {
        "accuracy": float(np.trace(counts) / counts.sum()),
        "uar": _uar(counts),
        "macro_f1": _macro_f1(counts),
        "recall": {label: float(recall) for label, recall in zip(label_list, _recalls(counts))},
        "confusion_matrix": counts,
        "labels": label_list,
    }


# --------------------------------------------------------------------------- regression


def _real_values(values: Any, name: str) -> np.ndarray:
    """``values`` as finite float64; raises naming the first non-finite entry."""
    array = _as_array(values)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    finite = np.isfinite(array)
    if not np.all(finite):
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name} holds the non-finite value {array[index]} at index {index}; drop or fix that utterance")
    return array


def _real_pair(
        y_true: Any, y_pred: Any, names: tuple[str, str], ndims: tuple[int, ...] = (1,)) -> tuple[np.ndarray, np.ndarray]:
    """Validated finite float64 arrays of equal shape, ``ndim`` in ``ndims``, with at least one row."""
    first, second = _real_values(y_true, names[0]), _real_values(y_pred, names[1])
    for name, array in zip(names, (first, second)):
        if array.ndim not in ndims:
            shapes = " or ".join(("(n,)", "(n, dims)")[d - 1] for d in ndims)
            raise ValueError(f"{name} must have shape {shapes}, got shape {array.shape}")
    if first.shape != second.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {first.shape} and {second.shape}")
    if first.shape[0] == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty; a metric needs at least one utterance")
    return first, second


def _centred(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean and deviations of ``x``; exactly zero deviations when ``x`` is constant."""
    if np.all(x == x[0]):
        return float(x[0]), np.zeros_like(x)
    mean = float(np.mean(x))
    return mean, x - mean


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, in the unit of the inputs. ``y_true``, ``y_pred``: real values ``(n,)``."""
    first, second = _real_pair(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.mean(np.abs(first - second)))


def pearson_r(x: Any, y: Any) -> float:
    """Pearson correlation coefficient of ``x`` and ``y``, real values ``(n,)``, in [-1, 1].

    Matches ``scipy.stats.pearsonr``. If ``x`` or ``y`` is constant (always so for n = 1)
    the correlation is undefined and the result is nan, without a warning or an error.
    """
    first, second = _real_pair(x, y, ("x", "y"))
    _, x_dev = _centred(first)
    _, y_dev = _centred(second)
    x_norm, y_norm = np.linalg.norm(x_dev), np.linalg.norm(y_dev)
    if x_norm == 0 or y_norm == 0:
        return math.nan
    r = float(np.dot(x_dev / x_norm, y_dev / y_norm))
    return max(-1.0, min(1.0, r))


def concordance_correlation(x: Any, y: Any) -> float:
    """Lin's (1989) concordance correlation coefficient (CCC) of ``x`` and ``y``, real values ``(n,)``.

    ``2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)`` with population (ddof=0)
    variances and covariance, in [-1, 1]; 1 only when ``y == x``. It is the Pearson
    correlation scaled down for any shift or scale difference between ``x`` and ``y``. When
    ``x`` and ``y`` are the same constant, the formula is 0/0 and the result is nan.
    """
    first, second = _real_pair(x, y, ("x", "y"))
    x_mean, x_dev = _centred(first)
    y_mean, y_dev = _centred(second)
    denominator = float(np.mean(x_dev**2) + np.mean(y_dev**2) + (x_mean - y_mean) ** 2)
    if denominator == 0:
        return math.nan
    return float(2.0 * np.mean(x_dev * y_dev) / denominator)


def regression_report(y_true: Any, y_pred: Any, names: Sequence[str] | None = None) -> dict[str, Any]:
    """MAE, Pearson r and CCC of one evaluation of dimensional emotions.

    ``y_true``, ``y_pred``: shape ``(n,)``, giving ``{"mae", "pearson_r", "ccc"}`` of floats;
    or ``(n, dims)``, giving ``{name: {"mae", "pearson_r", "ccc"}}`` per dimension, with
    ``names`` of length ``dims`` (e.g. ``("arousal", "valence")``; default ``"dim0"``, ...).
    Conventions of :func:`mae`, :func:`pearson_r` and :func:`concordance_correlation`.
    """
    first, second = _real_pair(y_true, y_pred, ("y_true", "y_pred"), ndims=(1, 2))
    if first.ndim == 1:
        if names is not None:
            raise ValueError(
                f"names {list(names)} given for 1-D inputs of shape {first.shape}; names are for (n, dims) inputs")
        return _regression_scores(first, second)
    dims = first.shape[1]
    name_list = [f"dim{i}" for i in range(dims)] if names is None else [str(name) for name in names]
    if len(name_list) != dims or len(set(name_list)) != dims:
        raise ValueError(
            f"names must be {dims} distinct names, one per column of y_true {first.shape}, got {list(names or [])}")
    return {name: _regression_scores(first[:, i], second[:, i]) for i, name in enumerate(name_list)}


def _regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "mae": mae(y_true, y_pred),
        "pearson_r": pearson_r(y_true, y_pred),
        "ccc": concordance_correlation(y_true, y_pred),
    }


# --------------------------------------------------------------------------- over runs


class MeanStd(NamedTuple):
    """Mean, sample standard deviation (ddof=1) and number of values of one metric over runs."""

    mean: float
    std: float
    n: int

    def format(self, digits: int = 1, scale: float = 1.0) -> str:
        """The "61.3 ± 2.1" text; see :func:`format_mean_std`."""
        return format_mean_std(self.mean, self.std, digits, scale)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _flatten(report: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The real-number values of a (nested) report, keys joined with '/'; other values left out."""
    flat: dict[str, float] = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}/"))
        elif _is_number(value):
            flat[name] = float(value)
    return flat


def aggregate(runs: Sequence[Mapping[str, Any]]) -> dict[str, MeanStd]:
    """Mean ± std of every metric over folds or repeated runs (the papers' "mean ± std over 10 runs").

    ``runs``: one metrics mapping per run, e.g. :func:`classification_report` or
    :func:`regression_report` results. Nested mappings are flattened with '/'
    (``"recall/angry"``, ``"arousal/ccc"``); values that are not real numbers (the confusion
    matrix, the label list) are left out. Every run must have the same metrics.

    Returns ``{metric: MeanStd(mean, std, n)}`` in the order of the first run. ``std`` is the
    sample standard deviation (ddof=1); ``n`` counts the runs whose value is not nan (a nan,
    e.g. the recall of a class absent from a fold, is left out, not propagated). With n = 1 the
    std is nan (one run says nothing about the spread), with n = 0 mean and std are nan.
    """
    if isinstance(runs, Mapping) or len(runs) == 0:
        raise ValueError("runs must be a non-empty sequence of metric mappings, one per run or fold")
    flat_runs = []
    for index, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise TypeError(f"run {index} is a {type(run).__name__}, not a mapping of metric names to values")
        flat_runs.append(_flatten(run))
    keys = list(flat_runs[0])
    for index, flat in enumerate(flat_runs[1:], start=1):
        if set(flat) != set(keys):
            missing, extra = sorted(set(keys) - set(flat)), sorted(set(flat) - set(keys))
            raise ValueError(
                f"run {index} has other metrics than run 0 (missing {missing}, extra {extra}); "
                "every run must report the same metrics (the same labels and dimension names)")
    result: dict[str, MeanStd] = {}
    for key in keys:
        values = np.array([flat[key] for flat in flat_runs], dtype=np.float64)
        values = values[~np.isnan(values)]
        n = len(values)
        mean = float(np.mean(values)) if n else math.nan
        std = float(np.std(values, ddof=1)) if n >= 2 else math.nan
        result[key] = MeanStd(mean, std, n)
    return result


def format_mean_std(mean: float, std: float, digits: int = 1, scale: float = 1.0) -> str:
    """``"61.3 ± 2.1"``: mean and std times ``scale`` (100 for percent) with ``digits`` decimals.

    A nan std (a single run) gives the mean alone, ``"61.3"``.
    """
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer, got {digits!r}")
    text = f"{mean * scale:.{digits}f}"
    if math.isnan(std):
        return text
    return f"{text} ± {std * scale:.{digits}f}"


class LatencyStats:
    """Latencies, s: the last ``window`` of them (``None``: all), their count and percentiles.

    The one latency statistic of the project: a live node adds each result's latency and reports
    p50/p99 on ``diagnostics``; ``evaluate-bag`` builds it from a bag's results. Percentiles
    interpolate linearly and are NaN before the first latency.
    """

    def __init__(self, latencies_s: Iterable[float] = (), window: int | None = 1000) -> None:
        self._values: collections.deque[float] = collections.deque(latencies_s, maxlen=window)

    def add(self, latency_s: float) -> None:
        self._values.append(latency_s)

    @property
    def count(self) -> int:
        return len(self._values)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100), s."""
        return float(np.percentile(self._values, q)) if self._values else float("nan")

    @property
    def p50_ms(self) -> float:
        return 1e3 * self.percentile(50)

    @property
    def p90_ms(self) -> float:
        return 1e3 * self.percentile(90)

    @property
    def p99_ms(self) -> float:
        return 1e3 * self.percentile(99)

    @property
    def max_ms(self) -> float:
        return 1e3 * max(self._values) if self._values else float("nan")
