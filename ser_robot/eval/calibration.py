"""Calibration of a categorical model's confidence: can a robot act on it?

- :func:`expected_calibration_error` (ECE): the predictions are put in ``bins`` equal-width bins
  of their confidence (the top class' probability); ECE is the mean over bins of
  ``|accuracy - mean confidence|``, weighted by the bins' shares. 0 = calibrated.
- :func:`reliability_diagram`: accuracy against confidence per bin (PNG), with the diagonal.
- :func:`fit_temperature`: the temperature ``T`` that minimises the negative log-likelihood of
  ``softmax(logits / T)`` on held-out data (Guo et al., 2017), to apply to later outputs; fit it
  on validation data, never on the test set it is reported on.
- :func:`abstention_curve`: accuracy of the predictions kept and the share kept, for thresholds
  on the confidence (what the inference node's ``min_confidence`` trades).
"""

from __future__ import annotations

import csv
import pathlib
from dataclasses import dataclass

import numpy as np

__all__ = ["Predictions", "read_predictions", "softmax", "expected_calibration_error", "reliability_diagram",
           "fit_temperature", "abstention_curve"]


@dataclass(frozen=True)
class Predictions:
    """Logits ``(n, classes)``, true class indices ``(n,)`` and the class names."""

    logits: np.ndarray
    targets: np.ndarray
    labels: tuple[str, ...]


def read_predictions(path: str | pathlib.Path) -> Predictions:
    """A categorical predictions CSV: ``logit_<class>`` columns (``ser-robot train``, an experiment) or
    ``p_<class>`` probabilities (``ser-robot evaluate``, ``build-model``; their logs are the logits)."""
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    header = list(rows[0].keys()) if rows else []
    prefix = "logit_" if any(c.startswith("logit_") for c in header) else "p_"
    columns = [c for c in header if c.startswith(prefix)]
    if not columns:
        raise ValueError(f"{path} has no logit_<class> or p_<class> columns: only categorical predictions can be "
                         "calibrated")
    labels = tuple(c[len(prefix):] for c in columns)
    values = np.array([[float(row[c]) for c in columns] for row in rows])
    logits = values if prefix == "logit_" else np.log(np.clip(values, 1e-12, None))
    targets = np.array([labels.index(row["true"]) for row in rows])
    return Predictions(logits, targets, labels)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _bins(probabilities: np.ndarray, targets: np.ndarray, bins: int) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) of each non-empty confidence bin."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    return [(float(confidence[index == b].mean()), float(correct[index == b].mean()), int((index == b).sum()))
            for b in range(bins) if (index == b).any()]


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, bins: int = 10) -> float:
    """ECE of ``probabilities`` ``(n, classes)`` against true class indices ``targets`` ``(n,)`` (module docstring)."""
    n = len(targets)
    return sum(count / n * abs(accuracy - confidence) for confidence, accuracy, count in
               _bins(probabilities, targets, bins)) if n else float("nan")


def reliability_diagram(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | pathlib.Path,
                        bins: int = 10) -> pathlib.Path:
    """Accuracy against confidence for each ``name -> (probabilities, targets)``, as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    for name, (probabilities, targets) in curves.items():
        points = _bins(probabilities, targets, bins)
        ece = expected_calibration_error(probabilities, targets, bins)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{name} (ECE {100 * ece:.1f} %)")
    ax.set_xlabel("confidence (top class probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature in [0.05, 20] minimising the NLL of ``softmax(logits / T)`` (golden-section search on log T)."""
    def nll(log_t: float) -> float:
        p = softmax(logits, float(np.exp(log_t)))
        return float(-np.mean(np.log(p[np.arange(len(targets)), targets] + 1e-12)))

    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    for _ in range(60):
        if nll(a) < nll(b):
            high, b = b, a
            a = high - ratio * (high - low)
        else:
            low, a = a, b
            b = low + ratio * (high - low)
    return float(np.exp((low + high) / 2))


def abstention_curve(probabilities: np.ndarray, targets: np.ndarray,
                     thresholds: tuple[float, ...] = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> list[dict[str, float]]:
    """For each confidence threshold: the share of predictions kept and their accuracy."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    rows = []
    for threshold in thresholds:
        kept = confidence >= threshold
        rows.append({"threshold": threshold, "kept": float(kept.mean()),
                     "accuracy": float(correct[kept].mean()) if kept.any() else float("nan")})
    return rows
