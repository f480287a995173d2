"""Figures of an experiment, laid out like Lakomkin et al.'s Fig. 4 and Fig. 5 (matplotlib, Agg, PNG).

- :func:`confusion_figures`: per categorical arm and test set a row-normalised confusion matrix
  (rows: true class, columns: predicted; counts summed over folds and repetitions before
  normalising, cells annotated with the rate), plus ``confusion_all.png``: every categorical arm
  (rows) x test set (columns), as Fig. 4 puts clean-/augmented-trained x clean/iCub side by side.
- :func:`violin_figures`: per model label and test set, Fig. 5: ground-truth arousal (top) and
  valence (bottom) binned on the x axis, the distribution of predictions on the y axis, one
  violin colour per training condition (clean-trained blue, augmented orange), predictions of all
  folds and repetitions pooled.
- :func:`labelled_fraction_figure`: MTL-AUG's Fig. 3, UAR against the share of labelled training utterances.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["VIOLIN_BINS", "arm_fractions", "bin_edges", "confusion_figures", "labelled_fraction_figure", "plot_confusion",
           "violin_figures"]

VIOLIN_BINS = 5
"""Ground-truth bins of the violin plots (equal width over the labels' range; IEMOCAP's 1-5 scale has
about as many distinct values)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _counts(true: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(true, predicted):
        counts[index[t], index[p]] += 1
    return counts


def plot_confusion(ax: Any, counts: np.ndarray, labels: Sequence[str], title: str) -> None:
    """Draw row-normalised ``counts`` ``(classes, classes)`` (rows true, columns predicted) on ``ax``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = counts / counts.sum(axis=1, keepdims=True)
    ax.imshow(np.nan_to_num(rates), vmin=0.0, vmax=1.0, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            value = rates[i, j]
            text = "–" if np.isnan(value) else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if not np.isnan(value) and value > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)


def confusion_figures(collected: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
                      out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Write the confusion matrices of the categorical arms in ``collected`` (``(job, {test: Predictions})``)."""
    plt = _pyplot()
    sums: dict[tuple[str, str], np.ndarray] = {}
    labels_of: dict[str, list[str]] = {}
    for job, predictions in collected:
        if job["head"] != "categorical":
            continue
        labels_of[job["arm"]] = list(job["labels"])
        for test, pred in predictions.items():
            counts = _counts(pred.true, pred.predicted, job["labels"])
            key = (job["arm"], test)
            sums[key] = sums[key] + counts if key in sums else counts
    files = []
    for (arm, test), counts in sums.items():
        fig, ax = plt.subplots(figsize=(3.6, 3.4))
        plot_confusion(ax, counts, labels_of[arm], f"{arm}\ntested {test}")
        fig.tight_layout()
        path = out_dir / f"confusion_{_slug(arm)}_{test}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        files.append(path)
    arms = list(dict.fromkeys(arm for arm, _ in sums))
    tests = list(dict.fromkeys(test for _, test in sums))
    if arms:
        fig, axes = plt.subplots(len(arms), len(tests), figsize=(3.4 * len(tests), 3.2 * len(arms)), squeeze=False)
        for r, arm in enumerate(arms):
            for c, test in enumerate(tests):
                if (arm, test) in sums:
                    plot_confusion(axes[r][c], sums[(arm, test)], labels_of[arm], f"{arm}, tested {test}")
                else:
                    axes[r][c].axis("off")
        fig.tight_layout()
        path = out_dir / "confusion_all.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def bin_edges(values: np.ndarray, bins: int = VIOLIN_BINS) -> np.ndarray:
    """``bins + 1`` equal-width edges over the range of ``values`` (a unit range around a constant)."""
    low, high = float(np.min(values)), float(np.max(values))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def _violin(ax: Any, data: np.ndarray, position: float, width: float, color: str) -> None:
    """One violin, or a dot and bar when the data cannot make a density (fewer than 2 distinct values)."""
    if len(data) >= 2 and np.ptp(data) > 1e-9:
        parts = ax.violinplot([data], positions=[position], widths=width, showmedians=True, showextrema=False)
        for body in parts["bodies"]:
            body.set_facecolor(color)
            body.set_edgecolor(color)
            body.set_alpha(0.6)
        parts["cmedians"].set_color(color)
    elif len(data):
        ax.plot([position], [float(np.median(data))], "o", color=color, markersize=4)


def violin_figures(collected: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], out_dir: pathlib.Path,
                   bins: int = VIOLIN_BINS) -> list[pathlib.Path]:
    """Write Fig. 5-style violin plots of the dimensional arms in ``collected``, per model label and test set."""
    plt = _pyplot()
    pooled: dict[tuple[str, str], dict[str, list[np.ndarray]]] = {}
    arms_of: dict[str, list[tuple[str, str]]] = {}
    for job, predictions in collected:
        if job["head"] != "dimensional":
            continue
        name = f"{job['arm']} ({job['training']})"
        entry = arms_of.setdefault(job["label"], [])
        if (job["arm"], name) not in entry:
            entry.append((job["arm"], name))
        for test, pred in predictions.items():
            store = pooled.setdefault((job["arm"], test), {"true": [], "pred": []})
            store["true"].append(pred.true)
            store["pred"].append(pred.predicted)
    files = []
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for label, arms in arms_of.items():
        tests = [t for t in ("clean", "robot") if any((arm, t) in pooled for arm, _ in arms)]
        for test in tests:
            fig, axes = plt.subplots(2, 1, figsize=(7.0, 6.0), sharex=False)
            for d, dim in enumerate(("arousal", "valence")):
                ax = axes[d]
                truth_all = np.concatenate([np.concatenate(pooled[(a, test)]["true"])[:, d]
                                            for a, _ in arms if (a, test) in pooled])
                edges = bin_edges(truth_all, bins)
                centres = (edges[:-1] + edges[1:]) / 2
                step = edges[1] - edges[0]
                width = step * 0.8 / max(1, len(arms))
                for k, (arm, name) in enumerate(arms):
                    if (arm, test) not in pooled:
                        continue
                    true = np.concatenate(pooled[(arm, test)]["true"])[:, d]
                    pred = np.concatenate(pooled[(arm, test)]["pred"])[:, d]
                    which = np.clip(np.digitize(true, edges[1:-1]), 0, bins - 1)
                    offset = (k - (len(arms) - 1) / 2) * width
                    for b in range(bins):
                        _violin(ax, pred[which == b], centres[b] + offset, width, colors[k % len(colors)])
                    ax.plot([], [], color=colors[k % len(colors)], linewidth=6, alpha=0.6, label=name)
                ax.plot(centres, centres, "k--", linewidth=0.8, label="prediction = truth (bin centre)")
                ax.set_xticks(centres, [f"{c:.2f}" for c in centres])
                ax.set_xlabel(f"ground-truth {dim} (bin centre)")
                ax.set_ylabel(f"predicted {dim}")
                ax.grid(alpha=0.3)
                if d == 0:
                    ax.legend(fontsize=7, loc="best")
            fig.suptitle(f"{label}: predicted vs true arousal and valence, tested {test}", fontsize=10)
            fig.tight_layout()
            path = out_dir / f"violin_{_slug(label)}_{test}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            files.append(path)
    return files


def arm_fractions(experiment: Mapping[str, Any]) -> dict[str, float]:
    """``{arm: multitask.labelled_fraction}`` of an experiment's arms (resolved dict; 1.0 where unset)."""
    fractions = {}
    for arm in experiment["arms"]:
        section = (arm.get("overrides") or {}).get("multitask") or {}
        base = (experiment["train_overrides"].get("multitask") or {}).get("labelled_fraction", 1.0)
        fractions[arm["name"]] = float(section.get("labelled_fraction", base))
    return fractions


def labelled_fraction_figure(runs: Sequence[Mapping[str, Any]], experiment: Mapping[str, Any], path: pathlib.Path,
                             metric: str = "uar", test_set: str = "clean") -> pathlib.Path:
    """MTL-AUG's Fig. 3: ``metric`` on ``test_set`` (mean ± std over units) against the labelled fraction,
    one line per model label; written to ``path`` (PNG)."""
    plt = _pyplot()
    fractions = arm_fractions(experiment)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label in dict.fromkeys(r["label"] for r in runs):
        points = []
        for arm in dict.fromkeys(r["arm"] for r in runs if r["label"] == label):
            values = [float(r[metric]) for r in runs if r["arm"] == arm and r["test_set"] == test_set]
            if values:
                points.append((fractions[arm], float(np.mean(values)), float(np.std(values))))
        points.sort()
        x, mean, std = (np.array(column) for column in zip(*points))
        ax.errorbar(100 * x, 100 * mean, yerr=100 * std, marker="o", capsize=3, label=label)
    ax.set_xlabel("labelled training utterances (%)")
    ax.set_ylabel(f"{metric.upper() if metric == 'uar' else metric} (%), {test_set} test")
    ax.set_title("Labelled-fraction sweep (synthetic corpus)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def protection_figure(rows: Sequence[Mapping[str, Any]], path: pathlib.Path) -> pathlib.Path:
    """Su and Lee's Fig. 2: protection efficacy (solid) and recovery rate (dashed), mean over units, against the
    attack (in the experiment's order), one colour per arm and attacker; ``rows`` of
    :func:`~ser_robot.experiments.tables.protection_rows`; written to ``path`` (PNG)."""
    plt = _pyplot()
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for curve in dict.fromkeys((r["label"], r["attacker"]) for r in rows):
        for name, style in (("protection_efficacy", "-"), ("recovery_rate", "--")):
            means = []
            for attack in attacks:
                values = np.array([r[name] for r in rows if (r["label"], r["attacker"]) == curve
                                   and r["attack"] == attack], dtype=float)
                means.append(np.nanmean(values) if np.isfinite(values).any() else np.nan)
            line = ax.plot(range(len(attacks)), means, style, marker="o",
                           label=f"{curve[0]} ({curve[1]}), {'PE' if name == 'protection_efficacy' else 'RR'}")
            if name == "protection_efficacy":
                colour = line[0].get_color()
            else:
                line[0].set_color(colour)
    ax.set_xticks(range(len(attacks)), attacks, rotation=30)
    ax.set_xlabel("attack")
    ax.set_ylabel("protection efficacy (solid), recovery rate (dashed)")
    ax.set_title("Protection under attack (synthetic corpus)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
