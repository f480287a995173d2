"""Gain sweep: does a model's answer depend on the microphone's gain?

Each speaker's utterances (seeded order) are joined into one stream with ``pause_s`` of silence
between them, as a robot hears them one after the other. The stream is scaled by each gain
(dB, float: nothing clips), optionally passed through the feature front end's level normaliser
(:class:`~ser_robot.audio.level_normalizer.LevelNormalizer`, a stream from its start), cut back
into its utterances, and each utterance is classified from its features alone. Reported per
gain: UAR, and the share of predictions equal to the 0 dB ones (agreement). The spread is the
largest UAR minus the smallest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["GAINS_DB", "GainSweep", "gain_sweep", "offline_frames", "speaker_streams", "write_sweep_report"]

GAINS_DB = (-30.0, -20.0, -10.0, 0.0, 10.0)


@dataclass
class GainSweep:
    """Predictions per gain (dB) of the same utterances; ``labels`` the true ones."""

    labels: list[str]
    classes: tuple[str, ...]
    predictions: dict[float, list[str]] = field(default_factory=dict)
    peak_dbfs: dict[float, float] = field(default_factory=dict)  # loudest sample of the scaled input

    def uar(self, gain_db: float) -> float:
        from ser_robot.metrics import unweighted_average_recall

        return float(unweighted_average_recall(self.labels, self.predictions[gain_db], labels=list(self.classes)))

    def agreement(self, gain_db: float, reference_db: float = 0.0) -> float:
        """Share of the utterances whose prediction at ``gain_db`` equals the one at ``reference_db``."""
        return float(np.mean([a == b for a, b in zip(self.predictions[gain_db], self.predictions[reference_db])]))

    @property
    def spread(self) -> float:
        """Largest minus smallest UAR over the gains (0-1)."""
        uars = [self.uar(gain) for gain in self.predictions]
        return max(uars) - min(uars)

    def rows(self) -> list[dict[str, Any]]:
        return [{"gain_db": gain, "uar": self.uar(gain), "agreement": self.agreement(gain),
                 "peak_dbfs": self.peak_dbfs[gain],
                 "most_predicted": max(self.classes, key=self.predictions[gain].count)}
                for gain in sorted(self.predictions)]

    def markdown(self) -> str:
        lines = ["| gain (dB) | UAR | agreement with 0 dB | input peak (dBFS) | most predicted |",
                 "|---:|---:|---:|---:|---|"]
        for row in self.rows():
            lines.append(f"| {row['gain_db']:+g} | {100 * row['uar']:.1f} % | {100 * row['agreement']:.1f} % | "
                         f"{row['peak_dbfs']:.1f} | {row['most_predicted']} |")
        lines.append(f"\nUAR spread: {100 * self.spread:.1f} points.")
        return "\n".join(lines)


Span = tuple[int, int, str]  # (first sample, end sample, label) of an utterance in its stream
FramesOf = Callable[[np.ndarray, list[Span]], list[np.ndarray]]


def speaker_streams(utterances: Sequence[Any], sample_rate: int, pause_s: float = 1.0,
                    seed: int = 0) -> list[tuple[np.ndarray, list[Span]]]:
    """One mono stream per speaker (sorted): its utterances in a seeded order, ``pause_s`` of silence after each."""
    from ser_robot.audio.resample import resample
    from ser_robot.inference.offline import read_audio

    rng = np.random.default_rng(seed)
    pause = np.zeros(round(pause_s * sample_rate), np.float32)
    streams = []
    for speaker in sorted({u.speaker for u in utterances}):
        own = [u for u in utterances if u.speaker == speaker]
        parts, spans, at = [], [], 0
        for index in rng.permutation(len(own)):
            audio, audio_rate = read_audio(own[index].path)
            mono = resample(audio.mean(axis=1), audio_rate, sample_rate).astype(np.float32)
            parts += [mono, pause]
            spans.append((at, at + len(mono), own[index].label))
            at += len(mono) + len(pause)
        streams.append((np.concatenate(parts), spans))
    return streams


def offline_frames(feature_set: str, level: str = "off") -> FramesOf:
    """Per-utterance feature frames of a stream, offline: the stream through the level normaliser
    (``level``: ``off`` or ``agc``), then each utterance's samples through the extractor alone."""
    import torch

    from ser_robot.audio.level_normalizer import LEVEL_NORMALIZATIONS, normalize_level
    from ser_robot.features.sets import create_extractor

    if level not in LEVEL_NORMALIZATIONS:
        raise ValueError(f"level must be one of {LEVEL_NORMALIZATIONS}, got {level!r}")
    extractor = create_extractor(feature_set).eval()

    def frames_of(stream: np.ndarray, spans: list[Span]) -> list[np.ndarray]:
        if level == "agc":
            stream = normalize_level(stream, int(extractor.sample_rate))
        with torch.inference_mode():
            return [extractor(torch.from_numpy(stream[start:end])[None])[0].numpy() for start, end, _ in spans]

    return frames_of


def gain_sweep(model: Any, utterances: Sequence[Any], gains_db: Sequence[float] = GAINS_DB, level: str = "off",
               pause_s: float = 1.0, seed: int = 0, frames_of: FramesOf | None = None) -> GainSweep:
    """Classify ``utterances`` (manifest entries with ``path``, ``speaker``, ``label``) at each gain.

    ``model``: an :class:`~ser_robot.inference.model.EmotionModel`. The features come from
    ``frames_of(scaled stream, spans)`` (default: :func:`offline_frames` with ``level``; a test
    passes the feature node's).
    """
    import torch

    if 0.0 not in gains_db:
        raise ValueError("the gains must include 0 dB (the reference of the agreement)")
    frames_of = frames_of or offline_frames(model.feature_set, level)
    streams = speaker_streams(utterances, model.sample_rate, pause_s, seed)
    sweep = GainSweep(labels=[label for _, spans in streams for _, _, label in spans], classes=model.labels)
    for gain in gains_db:
        predicted, peak = [], 0.0
        for stream, spans in streams:
            scaled = stream * np.float32(10 ** (gain / 20))
            peak = max(peak, float(np.max(np.abs(scaled))))
            statistics = model.new_stream()  # a speaker-normalised model learns the speaker as it goes
            for frames in frames_of(scaled, spans):
                predicted.append(model.labels[int(np.argmax(model.predict(frames, statistics).probabilities))])
                if statistics is not None:
                    statistics.update(torch.from_numpy(frames))
        sweep.predictions[gain] = predicted
        sweep.peak_dbfs[gain] = 20 * np.log10(peak) if peak > 0 else -np.inf
    return sweep


def write_sweep_report(sweeps: dict[str, GainSweep], out: Any, header: Sequence[str]) -> Any:
    """``README.md`` (``header`` lines, then one table per level normalisation) and ``sweep.csv`` in folder ``out``."""
    import pathlib

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [*header, ""]
    csv = ["level,gain_db,uar,agreement,peak_dbfs,most_predicted"]
    for level, sweep in sweeps.items():
        lines += [f"## level_normalization: {level}", "", sweep.markdown(), ""]
        csv += [f"{level},{r['gain_db']:g},{r['uar']:.4f},{r['agreement']:.4f},{r['peak_dbfs']:.2f},{r['most_predicted']}"
                for r in sweep.rows()]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "sweep.csv").write_text("\n".join(csv) + "\n", encoding="utf-8")
    return out / "README.md"
