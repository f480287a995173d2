"""The report folder of a bag evaluation: ``report.md``, ``metrics.json``, ``timeline.png``, ``confusion.png``.

``timeline.png``: on top, each class probability of the final results over time (utterance mode: a
line across each result's window; window mode: a line through the window centres, broken where no
speech was detected) with interim results as faint dots, over bands of the ground-truth
utterances; below, the true class of each utterance, the predicted class (misses hatched grey)
and the false alarms (red). ``confusion.png``: the counts, rows true class, columns predicted plus
``(none)`` for misses. Matplotlib with the Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np

from ser_robot.eval.bag_eval import MISS, BagEvaluation, Scores
from ser_robot.metrics import LatencyStats

__all__ = ["metrics_dict", "plot_confusion", "plot_timeline", "report_markdown", "summary_lines", "write_bag_report"]

ALIGNMENT_RULE = (
    "Each ground-truth utterance is matched with the final speech results whose window overlaps it "
    "(interim results are not used). Utterance mode: the result with the largest overlap (ties: the later "
    "one). Window mode: the mean probabilities of the windows overlapping it by at least half the window "
    "(or half the utterance, if shorter); predicted class = argmax. An utterance without such a result "
    f"is a miss, predicted `{MISS}`. A final speech result overlapping no utterance is a false alarm.")


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.1f} %"


def _finite(value: float) -> float | None:
    """``value``, or None for nan (JSON has no nan)."""
    return None if math.isnan(value) else value


def _scores_dict(scores: Scores | None) -> dict[str, Any] | None:
    if scores is None:
        return None
    return {"utterances": scores.count, "uar": scores.uar, "accuracy": scores.accuracy, "macro_f1": scores.macro_f1,
            "recall": {label: _finite(value) for label, value in scores.recall.items()}}


def _latency_dict(stats: LatencyStats) -> dict[str, float]:
    return {"count": stats.count, "p50": stats.p50_ms, "p90": stats.p90_ms, "p99": stats.p99_ms, "max": stats.max_ms}


def metrics_dict(evaluation: BagEvaluation, command: str | None = None) -> dict[str, Any]:
    """Everything of ``evaluation`` as JSON-ready values; times in s (ROS time), latencies in ms."""
    finals = sum(r.final for r in evaluation.results)
    return {
        "bag": str(evaluation.bag),
        "command": command,
        "emotion_topic": evaluation.emotion_topic,
        "ground_truth_topic": evaluation.ground_truth_topic,
        "mode": evaluation.mode,
        "labels": list(evaluation.labels),
        "model_ids": list(evaluation.model_ids),
        "ground_truth_utterances": len(evaluation.matches),
        "matched": evaluation.n_matched,
        "missed": evaluation.n_missed,
        "coverage": evaluation.coverage,
        "false_alarms": len(evaluation.false_alarms),
        "emotion_messages": {"final": finals, "interim": len(evaluation.results) - finals,
                             "non_speech": evaluation.n_non_speech},
        "all_ground_truth": _scores_dict(evaluation.overall),
        "matched_only": _scores_dict(evaluation.matched),
        "confusion_matrix": {"rows_true": list(evaluation.labels), "columns_predicted": [*evaluation.labels, MISS],
                             "counts": evaluation.confusion.tolist()},
        "latency_ms": {kind: _latency_dict(stats) for kind, stats in evaluation.latency.items()},
        "utterances": [
            {"id": m.ground_truth.id, "label": m.ground_truth.label, "start_s": m.ground_truth.start_ns / 1e9,
             "end_s": m.ground_truth.end_ns / 1e9, "predicted": m.predicted,
             "probabilities": list(m.probabilities) if m.probabilities else None, "results": len(m.results)}
            for m in evaluation.matches],
    }


def _table(header: list[str], rows: list[list[str]], align: str) -> str:
    """A Markdown table; ``align`` has one character per column, 'l' or 'r'."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report_markdown(evaluation: BagEvaluation, command: str | None = None) -> str:
    """The text of ``report.md``."""
    e = evaluation
    finals = sum(r.final for r in e.results)
    lines = [
        f"# Bag evaluation: {e.bag.name}\n",
        f"- Bag: `{e.bag}`",
        *([f"- Command: `{command}`"] if command else []),
        f"- Model(s): {', '.join(f'`{m}`' for m in e.model_ids) or '(none)'}",
        f"- Topics: `{e.emotion_topic}` ({finals} final and {len(e.results) - finals} interim results, "
        f"{e.n_non_speech} without speech), `{e.ground_truth_topic}` ({len(e.matches)} utterances)",
        f"- Mode: {e.mode}",
        f"- Coverage: {e.n_matched} of {len(e.matches)} ground-truth utterances matched ({_percent(e.coverage)}); "
        f"{e.n_missed} missed; {len(e.false_alarms)} false alarm(s) (results overlapping no utterance)",
        "",
        "## Metrics\n",
        "Over all ground-truth utterances a miss counts as a wrong prediction; 'matched only' leaves misses out.\n",
    ]
    columns = [("all ground truth", e.overall), ("matched only", e.matched)]
    rows = [[name, *(_percent(getattr(s, key)) if s else "–" for _, s in columns)]
            for name, key in (("UAR", "uar"), ("accuracy", "accuracy"), ("macro-F1", "macro_f1"))]
    rows.append(["utterances", *(str(s.count) if s else "0" for _, s in columns)])
    lines.append(_table(["metric", *(name for name, _ in columns)], rows, "lrr"))
    lines.append("Recall per class (all ground truth):\n")
    lines.append(_table(["class", "recall", "utterances"],
                        [[label, _percent(e.overall.recall[label]), str(int(e.confusion[i].sum()))]
                         for i, label in enumerate(e.labels)], "lrr"))
    lines.append("## Confusion matrix\n")
    lines.append(f"Rows: true class; columns: predicted class, `{MISS}` = missed (no result).\n")
    lines.append(_table(["true \\ predicted", *e.labels, MISS],
                        [[label, *(str(int(c)) for c in e.confusion[i])] for i, label in enumerate(e.labels)],
                        "l" + "r" * (len(e.labels) + 1)))
    lines.append("## Latency\n")
    lines.append("Receive time in the bag minus `header.stamp` (the end of the analysed audio), ms.\n")
    lines.append(_table(["results", "count", "p50", "p90", "p99", "max"],
                        [[kind, str(s.count), *(f"{v:.1f}" for v in (s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms))]
                         for kind, s in e.latency.items()], "lrrrrr"))
    lines.append("## Alignment\n")
    lines.append(ALIGNMENT_RULE + "\n")
    lines.append("## Figures\n")
    lines.append("![class probabilities and ground truth over time](timeline.png)\n")
    lines.append("![confusion matrix](confusion.png)\n")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(labels: tuple[str, ...]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)} | {MISS: "lightgrey"}


def plot_timeline(evaluation: BagEvaluation, path: pathlib.Path) -> None:
    """Write ``timeline.png`` (see the module docstring); time axis in s from the first message."""
    plt = _pyplot()
    e = evaluation
    colours = _colours(e.labels)
    origin = min([m.ground_truth.start_ns for m in e.matches] + [r.start_ns for r in e.results])
    end = max([m.ground_truth.end_ns for m in e.matches] + [r.end_ns for r in e.results])
    span_s = max((end - origin) / 1e9, 1e-3)
    width_in = min(60.0, max(10.0, span_s / 6))
    fig, (ax, bars) = plt.subplots(2, 1, figsize=(width_in, 5.0), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1.3]})

    def seconds(ns: int) -> float:
        return (ns - origin) / 1e9

    for m in e.matches:
        ax.axvspan(seconds(m.ground_truth.start_ns), seconds(m.ground_truth.end_ns),
                   color=colours[m.ground_truth.label], alpha=0.12, linewidth=0)
    finals = sorted((r for r in e.results if r.final), key=lambda r: r.start_ns + r.end_ns)
    interim = [r for r in e.results if not r.final and r.speech]
    for c, label in enumerate(e.labels):
        if e.mode == "window":
            centres = [seconds((r.start_ns + r.end_ns) // 2) for r in finals]
            values = [r.probabilities[c] if r.speech else np.nan for r in finals]
            ax.plot(centres, values, color=colours[label], linewidth=1.4, marker=".", markersize=3, label=label)
        else:
            speech = [r for r in finals if r.speech]
            ax.hlines([r.probabilities[c] for r in speech], [seconds(r.start_ns) for r in speech],
                      [seconds(r.end_ns) for r in speech], color=colours[label], linewidth=2.0, label=label)
        if interim:
            ax.plot([seconds(r.stamp_ns) for r in interim], [r.probabilities[c] for r in interim], "o",
                    color=colours[label], alpha=0.4, markersize=3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("probability")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, ncols=min(len(e.labels), 6))
    ax.set_title(f"{e.bag.name}: class probabilities of the {e.mode}-mode results (bands: ground truth)", fontsize=10)

    def bar(row: float, start_ns: int, end_ns: int, colour: Any, text: str, **style: Any) -> None:
        start, stop = seconds(start_ns), seconds(end_ns)
        bars.broken_barh([(start, stop - start)], (row - 0.4, 0.8), facecolors=colour, **style)
        if (stop - start) / span_s * width_in > 0.35:  # room for the text (inches)
            bars.text((start + stop) / 2, row, text, ha="center", va="center", fontsize=7, clip_on=True)

    for m in e.matches:
        truth = m.ground_truth
        bar(2, truth.start_ns, truth.end_ns, colours[truth.label], truth.label)
        if m.missed:
            bar(1, truth.start_ns, truth.end_ns, colours[MISS], "miss", hatch="//", edgecolor="grey")
        else:
            bar(1, truth.start_ns, truth.end_ns, colours[m.predicted], m.predicted,
                edgecolor="black" if m.predicted != truth.label else "none")
    for i in e.false_alarms:
        result = e.results[i]
        bar(0, result.start_ns, result.end_ns, "tab:red", result.label, alpha=0.6)
    bars.set_yticks([0, 1, 2], ["false alarms", "predicted", "true"], fontsize=8)
    bars.set_ylim(-0.6, 2.6)
    bars.set_xlabel("time (s from the first message)")
    bars.set_xlim(0, span_s)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(evaluation: BagEvaluation, path: pathlib.Path) -> None:
    """Write ``confusion.png``: counts ``(n_labels, n_labels + 1)``, shaded by the row-normalised rate."""
    plt = _pyplot()
    e = evaluation
    columns = [*e.labels, MISS]
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.nan_to_num(e.confusion / e.confusion.sum(axis=1, keepdims=True))
    size = 1.0 + 0.7 * len(columns)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    ax.imshow(rates, vmin=0.0, vmax=1.0, cmap="Blues")
    for i in range(len(e.labels)):
        for j in range(len(columns)):
            ax.text(j, i, str(int(e.confusion[i, j])), ha="center", va="center", fontsize=9,
                    color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(e.labels)), e.labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{e.bag.name}: UAR {_percent(e.overall.uar)}, coverage {_percent(e.coverage)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_lines(evaluation: BagEvaluation) -> list[str]:
    """A few printable lines: coverage, UAR / accuracy / macro-F1 (all and matched only), latency."""
    e = evaluation
    lines = [f"{e.bag}: {len(e.matches)} ground-truth utterances, {e.mode} mode, coverage {100 * e.coverage:.1f} % "
             f"({e.n_missed} missed), {len(e.false_alarms)} false alarm(s)"]
    for name, scores in (("all ground truth (misses wrong)", e.overall), ("matched only", e.matched)):
        if scores is not None:
            lines.append(f"  {name}: UAR {100 * scores.uar:.1f} %  accuracy {100 * scores.accuracy:.1f} %  "
                         f"macro-F1 {100 * scores.macro_f1:.1f} %")
    if "final" in e.latency:
        lines.append(f"  latency of final results: p50 {e.latency['final'].p50_ms:.1f} ms  "
                     f"p99 {e.latency['final'].p99_ms:.1f} ms")
    return lines


def write_bag_report(evaluation: BagEvaluation, out_dir: str | pathlib.Path,
                     command: str | None = None) -> pathlib.Path:
    """Write the report folder ``out_dir`` (created if needed); returns the path of ``report.md``.

    ``command``: the command line that produced it, printed in the report when given.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics_dict(evaluation, command), indent=2) + "\n")
    plot_timeline(evaluation, out / "timeline.png")
    plot_confusion(evaluation, out / "confusion.png")
    report = out / "report.md"
    report.write_text(report_markdown(evaluation, command))
    return report
