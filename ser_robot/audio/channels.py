"""Reduce the robot's ears (several channels) to the one signal the features are computed from.

Methods: ``mean`` (average of all channels), ``left`` / ``right`` (one ear: the channel whose
id contains "left" / "right", else channel 0 / 1), and ``delay_and_sum``: a far-field
delay-and-sum beam steered to ``azimuth_deg`` (0 = straight ahead, positive = to the left) for
two ears ``spacing_m`` apart. The ear nearer to the steering direction hears the source
``spacing_m * sin(azimuth) / c`` earlier; it is delayed by that (rounded to a sample) before the
ears are averaged, so sound from the steering direction adds coherently. Steered to the front
the delay is 0 and the beam equals ``mean``; with ears it mostly attenuates sound from the
sides at high frequencies. The reducer keeps the few samples of history the delay needs, so
chunks of any size give the same output as the whole signal.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ser_robot.errors import AudioFormatError

__all__ = ["REDUCTIONS", "SPEED_OF_SOUND", "ChannelReducer"]

REDUCTIONS = ("mean", "left", "right", "delay_and_sum")
SPEED_OF_SOUND = 343.0  # m/s at 20 °C


class ChannelReducer:
    """``(frames, channels)`` chunks -> ``(frames,)`` mono, by ``method`` (see module docstring)."""

    def __init__(self, method: str, sample_rate: int, azimuth_deg: float = 0.0, spacing_m: float = 0.18):
        if method not in REDUCTIONS:
            raise ValueError(f"unknown channel reduction {method!r}; choose one of {REDUCTIONS}")
        self.method = method
        delay_s = spacing_m * math.sin(math.radians(azimuth_deg)) / SPEED_OF_SOUND
        self.delay = int(round(abs(delay_s) * sample_rate))  # samples
        self.delayed_ear = "left" if delay_s > 0 else "right"  # the ear nearer the steering direction
        self._history: np.ndarray | None = None

    def reset(self) -> None:
        self._history = None

    @staticmethod
    def ear_index(side: str, channel_ids: Sequence[str], channels: int) -> int:
        """Index of the ``left`` or ``right`` channel: by id when ids name it, else 0 / 1."""
        for index, name in enumerate(channel_ids):
            if side in name.lower():
                return index
        index = 0 if side == "left" else 1
        if index >= channels:
            raise AudioFormatError(f"no {side} channel: the stream has {channels} channel(s) {list(channel_ids)}")
        return index

    def __call__(self, samples: np.ndarray, channel_ids: Sequence[str] = ()) -> np.ndarray:
        if samples.ndim != 2:
            raise AudioFormatError(f"expected (frames, channels) samples, got shape {samples.shape}")
        channels = samples.shape[1]
        if self.method == "mean" or channels == 1:
            return samples.mean(axis=1)
        if self.method in ("left", "right"):
            return samples[:, self.ear_index(self.method, channel_ids, channels)]
        left = samples[:, self.ear_index("left", channel_ids, channels)]
        right = samples[:, self.ear_index("right", channel_ids, channels)]
        if self.delay == 0:
            return 0.5 * (left + right)
        early = left if self.delayed_ear == "left" else right
        late = right if self.delayed_ear == "left" else left
        history = np.zeros(self.delay, samples.dtype) if self._history is None else self._history
        stream = np.concatenate([history, early])
        self._history = stream[len(stream) - self.delay:]
        return 0.5 * (stream[: len(early)] + late)
