"""Per-stream (speaker) normalisation of feature frames: running statistics with a warm start.

A model trained on a few voices learns their absolute pitch, loudness and timbre along with the
emotion; on a voice or a TTS engine it never heard, those offsets dominate (a linear model on
eGEMAPS-like functionals, held-out engine: 43 % UAR with the training population's statistics,
58 % with each stream's running ones, 62 % with each speaker's own over all its utterances;
docs/results/stream_normalization). Normalising every frame by statistics of *its own stream*
removes what is constant in a voice and keeps what changes, which is what emotion does.

:class:`StreamNormalizer` holds one stream's running statistics: per dimension, a weighted
count, mean and second moment in float64, started from a prior (the training population's mean
and variance, weighted as ``prior_frames`` frames) and updated with the frames the model has
scored, with exponential forgetting (``half_life_frames``) so that a new speaker takes over.
``normalize`` uses the statistics *before* the frames it is given, so a prediction never depends
on its own frames' statistics; offline evaluation and the live node call the same two methods in
the same order, so they agree.

Training uses each speaker's statistics over all of its training frames
(:func:`speaker_statistics`): what the running statistics converge to on a long stream.
Units: whatever the features are in (dB, semitones, ...); shapes ``(frames, dims)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

__all__ = ["StreamNormalizer", "StreamNormalization", "speaker_statistics"]


@dataclass(frozen=True)
class StreamNormalization:
    """Settings of per-stream normalisation (the inference node's ``stream_normalization.*``).

    ``prior_frames``: weight of the population statistics at a stream's start, in frames (500 =
    5 s of speech at 10 ms; the linear baseline on the held-out engine: 58.4 % UAR with 300,
    58.1 % with 500, 55.9 % with 1000, 52.2 % with 3000; docs/results/stream_normalization). ``half_life_frames``: frames after which old statistics count half
    (0: never forget). ``min_std``: floor of a standard deviation, in the features' unit.
    """

    prior_frames: float = 500.0
    half_life_frames: float = 60000.0
    min_std: float = 1e-3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.prior_frames) and self.prior_frames > 0):
            raise ValueError(f"prior_frames must be a positive number of frames, got {self.prior_frames}")
        if not (math.isfinite(self.half_life_frames) and self.half_life_frames >= 0):
            raise ValueError(f"half_life_frames must be >= 0 (0: never forget), got {self.half_life_frames}")
        if not (math.isfinite(self.min_std) and self.min_std > 0):
            raise ValueError(f"min_std must be positive, got {self.min_std}")


class StreamNormalizer:
    """Running per-dimension statistics of one stream; ``normalize`` then ``update``.

    ``mean``, ``std``: the prior, ``(dims,)`` tensors (the training population's statistics).
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, settings: StreamNormalization | None = None) -> None:
        if mean.shape != std.shape or mean.dim() != 1:
            raise ValueError(f"prior mean and std must be (dims,) of one shape, got {tuple(mean.shape)} and "
                             f"{tuple(std.shape)}")
        self.settings = settings or StreamNormalization()
        self._prior_mean = mean.detach().double().cpu()
        self._prior_square = self._prior_mean**2 + std.detach().double().cpu() ** 2
        self.reset()

    def reset(self) -> None:
        """Back to the prior (a new stream)."""
        weight = self.settings.prior_frames
        self._decay_of_prior = 1.0
        self._weight = weight
        self._sum = self._prior_mean * weight
        self._square = self._prior_square * weight

    @property
    def frames_seen(self) -> float:
        """Weight of the stream's own frames in the statistics (decayed), in frames."""
        return self._weight - self.settings.prior_frames * self._decay_of_prior

    @property
    def mean(self) -> torch.Tensor:
        return self._sum / self._weight

    @property
    def std(self) -> torch.Tensor:
        variance = (self._square / self._weight - self.mean**2).clamp_min(0.0)
        return variance.sqrt().clamp_min(self.settings.min_std)

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """``(frames, dims)`` (or ``(batch, frames, dims)``) -> the same, ``(x - mean) / std``, in x's dtype."""
        mean, std = self.mean.to(frames.device, frames.dtype), self.std.to(frames.device, frames.dtype)
        return (frames - mean) / std

    def update(self, frames: torch.Tensor) -> None:
        """Add ``(frames, dims)`` of this stream to the statistics (after they were scored)."""
        if frames.dim() != 2 or frames.shape[1] != self._sum.shape[0]:
            raise ValueError(f"update expects (frames, {self._sum.shape[0]}), got {tuple(frames.shape)}")
        count = frames.shape[0]
        if count == 0:
            return
        x = frames.detach().double().cpu()
        finite = torch.isfinite(x).all(dim=1)
        x = x[finite]
        count = x.shape[0]
        if count == 0:
            return
        decay = self._decay(count)
        self._weight = self._weight * decay + count
        self._sum = self._sum * decay + x.sum(dim=0)
        self._square = self._square * decay + (x**2).sum(dim=0)
        self._decay_of_prior *= decay

    def _decay(self, count: int) -> float:
        half_life = self.settings.half_life_frames
        return 0.5 ** (count / half_life) if half_life > 0 else 1.0


def speaker_statistics(frames: Iterable[torch.Tensor], min_std: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std ``(dims,)`` (float64) over every frame of one speaker's ``(frames, dims)`` tensors."""
    count, total, square = 0, None, None
    for chunk in frames:
        x = chunk.detach().double().cpu()
        x = x[torch.isfinite(x).all(dim=1)]
        total = x.sum(dim=0) if total is None else total + x.sum(dim=0)
        square = (x**2).sum(dim=0) if square is None else square + (x**2).sum(dim=0)
        count += x.shape[0]
    if count == 0 or total is None or square is None:
        raise ValueError("speaker_statistics needs at least one finite frame")
    mean = total / count
    return mean, (square / count - mean**2).clamp_min(0.0).sqrt().clamp_min(min_std)
