"""The simple baseline a user would try first: utterance functionals and logistic regression.

Each utterance's eGeMAPS-like frames (the model's own feature set, after the level normaliser)
are summarised by their mean and standard deviation, the mean over voiced frames and the voiced
share (``3 x dims + 1`` values), standardised and classified by multinomial logistic regression
(scikit-learn). With ``normalization="speaker"`` every frame is first normalised by its stream's
statistics exactly as a speaker-normalised model's are: each training speaker by its own, each
test speaker causally (a :class:`~ser_robot.features.stream_normalization.StreamNormalizer` per
speaker, utterances in the given order, each scored before it is added).

The default model's card reports it side by side with the model, on the same held-out sets
(issue "A default model that survives the world outside its corpus").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["utterance_functionals", "utterance_frames", "FunctionalsBaseline"]


def utterance_functionals(frames: np.ndarray, voiced_column: int) -> np.ndarray:
    """``(frames, dims)`` -> ``(3 dims + 1,)``: mean, std, mean over voiced frames, voiced share."""
    voiced = frames[:, voiced_column] > 0
    voiced_mean = frames[voiced].mean(axis=0) if voiced.any() else np.zeros(frames.shape[1])
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0), voiced_mean, [voiced.mean()]])


def utterance_frames(utterances: Sequence[Any], feature_set: str, gain_db: float = 0.0,
                     progress: bool = False) -> list[np.ndarray]:
    """Raw feature frames ``(frames, dims)`` of each utterance (float64): its file at ``gain_db``, through the
    feature node's front end as one stream (:func:`~ser_robot.inference.offline.recording_frames`)."""
    from tqdm import tqdm

    from ser_robot.inference.offline import read_audio, recording_frames

    gain = np.float32(10 ** (gain_db / 20))
    out = []
    for utterance in tqdm(utterances, desc="functionals", unit="utt", disable=not progress):
        samples, rate = read_audio(utterance.path)
        out.append(recording_frames(samples * gain, rate, feature_set).astype(np.float64))
    return out


class FunctionalsBaseline:
    """Logistic regression on :func:`utterance_functionals`; ``normalization``: ``global`` or ``speaker``.

    ``voiced_column``: the feature holding F0 (0 when unvoiced); ``prior_frames``: weight of the
    population statistics at a test stream's start (as the model's stream normalisation).
    """

    def __init__(self, voiced_column: int, normalization: str = "global", prior_frames: float = 500.0,
                 c: float = 0.5) -> None:
        if normalization not in ("global", "speaker"):
            raise ValueError(f"normalization must be global or speaker, got {normalization!r}")
        self.voiced_column, self.normalization, self.prior_frames, self.c = voiced_column, normalization, \
            prior_frames, c

    def fit(self, frames: Sequence[np.ndarray], labels: Sequence[str], speakers: Sequence[str]) -> FunctionalsBaseline:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        from ser_robot.features.stream_normalization import speaker_statistics

        every = np.concatenate(frames)
        self.mean, self.std = every.mean(axis=0), every.std(axis=0)
        if self.normalization == "speaker":
            by_speaker: dict[str, list[int]] = {}
            for index, speaker in enumerate(speakers):
                by_speaker.setdefault(speaker, []).append(index)
            frames = list(frames)
            for indices in by_speaker.values():
                mean, std = (t.numpy() for t in speaker_statistics(torch.from_numpy(frames[i]) for i in indices))
                for i in indices:  # onto the population's scale, as EmotionModel.predict maps a stream
                    frames[i] = (frames[i] - mean) / std * self.std + self.mean
        x = np.nan_to_num(np.stack([utterance_functionals(f, self.voiced_column) for f in frames]))
        self.scaler = StandardScaler().fit(x)
        self.classifier = LogisticRegression(max_iter=3000, C=self.c).fit(self.scaler.transform(x), list(labels))
        return self

    def predict(self, frames: Sequence[np.ndarray], speakers: Sequence[str]) -> list[str]:
        """Labels of test utterances; with speaker normalisation each speaker is a stream, in the given order."""
        from ser_robot.features.stream_normalization import StreamNormalization, StreamNormalizer

        streams: dict[str, StreamNormalizer] = {}
        rows = []
        for utterance_frames_, speaker in zip(frames, speakers):
            if self.normalization == "speaker":
                if speaker not in streams:
                    streams[speaker] = StreamNormalizer(torch.from_numpy(self.mean), torch.from_numpy(self.std),
                                                        StreamNormalization(prior_frames=self.prior_frames))
                stream = streams[speaker]
                tensor = torch.from_numpy(utterance_frames_)
                mapped = (stream.normalize(tensor).numpy() * self.std + self.mean)
                stream.update(tensor)
            else:
                mapped = utterance_frames_
            rows.append(utterance_functionals(mapped, self.voiced_column))
        return list(self.classifier.predict(self.scaler.transform(np.nan_to_num(np.stack(rows)))))

    def scores(self, tests: Mapping[str, tuple[Sequence[np.ndarray], Sequence[str], Sequence[str]]]) -> dict[str, float]:
        """UAR per named test set ``(frames, labels, speakers)``."""
        from ser_robot.metrics import unweighted_average_recall

        classes = list(self.classifier.classes_)
        return {name: float(unweighted_average_recall(list(labels), self.predict(frames, speakers), labels=classes))
                for name, (frames, labels, speakers) in tests.items()}
