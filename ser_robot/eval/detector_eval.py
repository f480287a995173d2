"""Does the Mahalanobis detector flag adversarial and out-of-distribution input to a shipped model?

The detector (:class:`~ser_robot.adversarial.detector.MahalanobisDetector`) is fitted on the deep features
(the input of the model's last layer) of clean utterances of the model's *training* speakers, computed
through the inference path (level normaliser, features, each speaker's stream statistics), as the live
node would compute them. Its score is then taken, the same way, for:

- ``negatives``: clean utterances of voices the model never heard (the reference);
- every other named set (attacked files of :mod:`ser_robot.eval.over_the_air`, the robot twin's
  recordings, ...), each scored against the negatives of the same condition when given as a pair.

Reported per set: ROC-AUC of the score (0.5: chance, 1: perfect), and the true-positive rate at the
score threshold that flags 5 % of the negatives. An attacker who knows the detector is measured with
:func:`adaptive_arm`: PGD on the waveform that raises the cross-entropy of the true class while lowering
the detector's score (:func:`~ser_robot.adversarial.detector.adaptive_loss` through the surrogate of
:class:`~ser_robot.eval.over_the_air.PipelineSurrogate`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ser_robot.errors import ConfigError

__all__ = ["FALSE_ALARM_RATE", "adaptive_arm", "evaluate_detector", "fit_detector", "markdown_table",
           "pipeline_embeddings", "score_sets"]

FALSE_ALARM_RATE = 0.05
"""Share of clean negatives flagged at the reported operating point."""


def pipeline_embeddings(model: Any, utterances: Sequence[Any]) -> tuple[torch.Tensor, list[str]]:
    """``(v (n, units), predicted labels)`` of ``utterances`` through ``model``'s inference path (an
    :class:`~ser_robot.inference.model.EmotionModel`), each speaker one stream in manifest order."""
    from ser_robot.adversarial.detector import embeddings
    from ser_robot.inference.offline import read_audio, recording_frames

    streams: dict[str, Any] = {}
    rows, predicted = [], []
    with torch.no_grad():
        for utterance in utterances:
            samples, rate = read_audio(utterance.path)
            frames = recording_frames(samples, rate, model.feature_set)
            stream = streams.setdefault(utterance.speaker, model.new_stream())
            inputs = model.model_inputs(frames, stream)
            if stream is not None:
                stream.update(torch.from_numpy(frames))
            logits, v = embeddings(model.model, inputs[None], torch.tensor([len(frames)]))
            rows.append(v[0].double())
            predicted.append(model.labels[int(logits[0].argmax())])
    return torch.stack(rows), predicted


def fit_detector(model: Any, utterances: Sequence[Any], shrinkage: float = 0.1) -> Any:
    """A :class:`~ser_robot.adversarial.detector.MahalanobisDetector` fitted on ``utterances`` (clean, of the
    model's training speakers, with labels)."""
    from ser_robot.adversarial.detector import MahalanobisDetector

    v, _ = pipeline_embeddings(model, utterances)
    labels = torch.tensor([model.labels.index(u.label) for u in utterances])
    return MahalanobisDetector(shrinkage).fit(v, labels)


def score_sets(model: Any, detector: Any, negatives: dict[str, Sequence[Any]],
               positives: dict[str, tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    """Rows ``{set, against, utterances, auc, tpr_at_5pct_fpr}``: ``negatives`` maps a condition name to its
    clean utterances; ``positives`` maps a set name to ``(negative condition, utterances)``."""
    from ser_robot.adversarial.detector import roc_auc

    scores = {name: detector.score(pipeline_embeddings(model, part)[0]).numpy() for name, part in negatives.items()}
    rows = []
    for name, (against, part) in positives.items():
        if against not in scores:
            raise ConfigError(f"set {name!r} is scored against {against!r}, which is not a negative set "
                              f"({sorted(scores)})")
        reference = scores[against]
        flagged = detector.score(pipeline_embeddings(model, part)[0]).numpy()
        threshold = np.quantile(reference, 1.0 - FALSE_ALARM_RATE)
        rows.append({"set": name, "against": against, "utterances": len(part), "auc": roc_auc(reference, flagged),
                     "tpr_at_5pct_fpr": float(np.mean(flagged > threshold))})
    return rows


def adaptive_arm(model: Any, detector: Any, utterances: Sequence[Any], out: str | pathlib.Path, epsilon: float,
                 steps: int = 10, weight: float = 1.0, seed: int = 0) -> list[Any]:
    """Files of a white-box attacker who knows the detector: PGD (``epsilon`` of full scale, ``steps``) on the
    waveform raising ``CE(true class) - weight * score`` through the pipeline surrogate; written under ``out``,
    returned as utterances (same ids, labels and speakers)."""
    import dataclasses

    from ser_robot.adversarial import ThreatModel, pgd
    from ser_robot.adversarial.detector import adaptive_loss
    from ser_robot.eval.over_the_air import PipelineSurrogate, stream_statistics, write_wave
    from ser_robot.inference.offline import read_audio

    stats = stream_statistics(model, utterances)
    surrogates = {speaker: PipelineSurrogate(model, mean, std) for speaker, (mean, std) in stats.items()}
    generator = torch.Generator().manual_seed(seed)
    crafted = []
    for utterance in utterances:
        surrogate = surrogates[utterance.speaker]
        samples, rate = read_audio(utterance.path)
        target = torch.tensor([model.labels.index(utterance.label)])

        def loss(waves: torch.Tensor) -> torch.Tensor:
            inputs, lengths = surrogate.inputs(waves)
            return adaptive_loss(surrogate.network, detector, target.expand(len(waves)), lengths, weight)(inputs)

        x = torch.from_numpy(samples[:, 0])[None]
        adversarial = pgd(loss, x, ThreatModel.waveform(epsilon), steps=steps, generator=generator)[0].numpy()
        path = pathlib.Path(out) / utterance.speaker / f"{utterance.id}.wav"
        write_wave(path, adversarial, rate)
        crafted.append(dataclasses.replace(utterance, path=str(path.resolve())))
    return crafted


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| set | clean reference | utterances | ROC-AUC | flagged at 5 % false alarms |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['set']} | {r['against']} | {r['utterances']} | {r['auc']:.2f} | {100 * r['tpr_at_5pct_fpr']:.0f} % |"
              for r in rows]
    return "\n".join(lines)


def evaluate_detector(model: Any, fit: Sequence[Any], clean: Sequence[Any], robot: Sequence[Any],
                      attacks: str | pathlib.Path, out: str | pathlib.Path, adaptive_epsilon: float = 0.005,
                      adaptive_steps: int = 10, seed: int = 0) -> dict[str, Any]:
    """Fit on ``fit``; negatives ``clean`` (held-out voices) and ``robot`` (their robot twin); positives the
    robot twin itself (against clean: distribution shift), every arm of the over-the-air folder ``attacks``
    (:func:`~ser_robot.eval.over_the_air.over_the_air_attack`: its files against clean, their robot
    recordings against robot) and an adaptive attack on the detector crafted on that folder's clean
    utterances (files under ``out/adaptive``). Returns ``{rows, adaptive}``."""
    import json

    from ser_robot.data.manifest import read_manifest

    attacks = pathlib.Path(attacks)
    detector = fit_detector(model, fit)
    positives: dict[str, tuple[str, Sequence[Any]]] = {"robot twin, clean": ("clean", robot)}
    for manifest in sorted((attacks / "audio").glob("*/manifest.jsonl")):
        name = manifest.parent.name
        if name == "clean":
            continue
        positives[f"{name} / direct"] = ("clean", list(read_manifest(manifest)))
        positives[f"{name} / robot"] = ("robot", list(read_manifest(attacks / "robot" / name / "manifest.jsonl")))
    originals = list(read_manifest(attacks / "audio" / "clean" / "manifest.jsonl"))
    adaptive = adaptive_arm(model, detector, originals, pathlib.Path(out) / "adaptive", adaptive_epsilon,
                            adaptive_steps, seed=seed)
    name = f"adaptive_eps{adaptive_epsilon:g} / direct"
    positives[name] = ("clean", adaptive)
    rows = score_sets(model, detector, {"clean": clean, "robot": robot}, positives)
    _, predicted = pipeline_embeddings(model, adaptive)
    accuracy = float(np.mean([p == u.label for p, u in zip(predicted, adaptive)]))
    report = {"model_id": model.model_id, "fit_utterances": len(fit), "negatives": {"clean": len(clean),
              "robot": len(robot)}, "rows": rows,
              "adaptive": {"epsilon": adaptive_epsilon, "steps": adaptive_steps, "accuracy": accuracy,
                           "utterances": len(adaptive)}}
    pathlib.Path(out).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(out) / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
