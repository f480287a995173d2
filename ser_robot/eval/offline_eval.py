"""Offline evaluation of a checkpoint on a manifest: each utterance through the feature node's front
end and the model (:func:`~ser_robot.inference.offline.predict_whole`), scored against its label.

Conditions (``condition``, :func:`parse_condition`):

- ``clean``: as recorded;
- ``gain=DB``: every utterance scaled by DB decibels (float: nothing clips);
- ``snr=DB:NOISE``: noise of the noise bank's category NOISE (one that needs no speech, e.g.
  ``pink``, ``fan``, ``kitchen_standin``) added at DB dB below the utterance's active speech
  level, a clip of its own per utterance (seeded by the utterance id);
- ``robot``: the utterances re-recorded by the simulated robot (``config/sim/icub_lab.yaml``, or
  ``robot=SIM.yaml``), rendered once into the report folder (``robot_twin/``) with
  :func:`~ser_robot.sim.simulator.simulate_robot`.

Each utterance is its own stream for the level normaliser, which sees it from its start. For a
model trained with speaker normalisation, one speaker's utterances form one stream of statistics,
in manifest order, as a robot listening to that person would build them: each utterance is
scored with the statistics of the ones before it
(:class:`~ser_robot.features.stream_normalization.StreamNormalizer`). The report folder holds
``README.md`` (scores, per-class recall, confusion), ``metrics.json``, ``predictions.csv`` and
``confusion.png``.
"""

from __future__ import annotations

import csv
import json
import pathlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ser_robot.errors import ConfigError
from ser_robot.eval.noisy_twin import mix_at_snr

__all__ = ["Condition", "parse_condition", "condition_utterances", "evaluate_manifest", "write_evaluation",
           "write_rows"]


@dataclass(frozen=True)
class Condition:
    """A parsed ``--condition``: ``kind`` clean, gain, snr or robot, with its settings."""

    text: str
    kind: str
    gain_db: float = 0.0
    snr_db: float = float("nan")
    noise: str = ""
    sim_config: str | None = None


def _number(text: str, low: float, high: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) and low <= value <= high else None


def parse_condition(text: str) -> Condition:
    """A :class:`Condition` from its text; :class:`ConfigError` naming the fix otherwise."""
    if text == "clean":
        return Condition(text, "clean")
    if text.startswith("gain="):
        gain = _number(text[len("gain="):], -60, 40)
        if gain is not None:
            return Condition(text, "gain", gain_db=gain)
    if text.startswith("snr="):
        from ser_robot.acoustics.noise import CATEGORIES

        value, _, noise = text[len("snr="):].partition(":")
        snr = _number(value, -20, 60)
        usable = sorted(name for name, category in CATEGORIES.items() if not category.needs_speech)
        if snr is not None and noise in usable:
            return Condition(text, "snr", snr_db=snr, noise=noise)
        raise ConfigError(f"condition {text!r}: use snr=DB:NOISE with DB in -20..60 and NOISE one of {usable} "
                          "(e.g. snr=10:pink)")
    if text == "robot" or text.startswith("robot="):
        config = text[len("robot="):] if "=" in text else None
        if config is not None and not pathlib.Path(config).is_file():
            raise ConfigError(f"condition {text!r}: simulator configuration {config} not found "
                              "(e.g. robot=config/sim/icub_lab.yaml)")
        return Condition(text, "robot", sim_config=config)
    raise ConfigError(f"condition {text!r}: use clean, gain=DB (DB in -60..40, e.g. gain=-20), snr=DB:NOISE "
                      "(e.g. snr=10:pink) or robot[=SIM.yaml]")


def condition_utterances(utterances: Sequence[Any], condition: Condition, work: str | pathlib.Path,
                         progress: bool = False) -> list[Any]:
    """The utterances to score under ``condition``: the robot twin's (rendered into ``work/robot_twin``,
    reused when there), the given ones otherwise."""
    if condition.kind != "robot":
        return list(utterances)
    from ser_robot.data.manifest import Manifest, write_manifest
    from ser_robot.sim.simulator import simulate_robot

    work = pathlib.Path(work)
    work.mkdir(parents=True, exist_ok=True)
    source = work / "robot_source.jsonl"
    write_manifest(source, Manifest(list(utterances)))
    twin = simulate_robot(source, work / "robot_twin", config_path=condition.sim_config, workers=1,
                          progress=progress)
    return list(twin)


def evaluate_manifest(model: Any, utterances: Sequence[Any], condition: str = "clean",
                      progress: bool = False) -> dict[str, Any]:
    """Scores and per-utterance predictions of categorical ``model`` on ``utterances`` under ``condition``
    (clean, gain or snr; for ``robot`` pass the twin's utterances, :func:`condition_utterances`)."""
    from tqdm import tqdm

    from ser_robot.metrics import classification_report
    from ser_robot.inference.offline import predict_whole, read_audio

    if not model.labels:
        raise ConfigError(f"model {model.model_id} is dimensional; ser-robot evaluate scores categorical models")
    parsed = parse_condition(condition)
    gain = np.float32(10 ** (parsed.gain_db / 20))
    outside = sorted({u.label for u in utterances} - set(model.labels))
    if outside:
        raise ConfigError(f"labels {outside} of the manifest are not classes of model {model.model_id} "
                          f"{list(model.labels)}")
    rows, streams = [], {}
    for utterance in tqdm(utterances, desc="evaluate", unit="utt", disable=not progress):
        samples, rate = read_audio(utterance.path)
        if parsed.kind == "snr":
            samples = mix_at_snr(samples, rate, parsed.noise, parsed.snr_db, utterance.id)
        if utterance.speaker not in streams:
            streams[utterance.speaker] = model.new_stream()
        probabilities = predict_whole(model, samples * gain, rate, stream=streams[utterance.speaker]).probabilities
        rows.append({"id": utterance.id, "speaker": utterance.speaker, "true": utterance.label,
                     "predicted": model.labels[int(np.argmax(probabilities))],
                     **{f"p_{c}": float(p) for c, p in zip(model.labels, probabilities)}})
    report = classification_report([r["true"] for r in rows], [r["predicted"] for r in rows], list(model.labels))
    return {"model_id": model.model_id, "condition": condition, "utterances": len(rows),
            "uar": report["uar"], "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
            "recall": report["recall"], "labels": list(model.labels),
            "confusion": np.asarray(report["confusion_matrix"]).tolist(), "predictions": rows}


def write_rows(path: str | pathlib.Path, rows: Sequence[dict[str, Any]]) -> pathlib.Path:
    """``rows`` (dicts with the same keys, at least one) as a CSV file with a header; its folder is made."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_evaluation(result: dict[str, Any], out: str | pathlib.Path, command: str) -> pathlib.Path:
    """The report folder of :func:`evaluate_manifest`'s ``result``; returns its ``README.md``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, labels = result["predictions"], result["labels"]
    write_rows(out / "predictions.csv", rows)
    (out / "metrics.json").write_text(json.dumps({k: v for k, v in result.items() if k != "predictions"} |
                                                 {"command": command}, indent=2) + "\n", encoding="utf-8")
    confusion = np.asarray(result["confusion"])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(confusion, cmap="Blues")
    for (i, j), n in np.ndenumerate(confusion):
        ax.text(j, i, str(n), ha="center", va="center")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result['condition']}: UAR {100 * result['uar']:.1f} %")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=100)
    plt.close(fig)
    lines = [f"# Evaluation of {result['model_id']} ({result['condition']})", "", f"- Command: `{command}`",
             f"- {result['utterances']} utterances: UAR {100 * result['uar']:.1f} %, accuracy "
             f"{100 * result['accuracy']:.1f} %, macro-F1 {100 * result['macro_f1']:.1f} %", "",
             "| class | recall |", "|---|---:|",
             *(f"| {c} | {100 * r:.1f} % |" for c, r in result["recall"].items()), "",
             "Confusion (rows true, columns predicted):", "", "| | " + " | ".join(labels) + " |",
             "|---|" + "---:|" * len(labels),
             *(f"| {labels[i]} | " + " | ".join(str(n) for n in row) + " |" for i, row in enumerate(confusion)),
             "", "![confusion](confusion.png)", ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    return out / "README.md"
