"""Input faults a microphone stream can have that the model cannot see: clipping, DC offset, a
dead channel, digital silence.

A model fed such input still answers, and confidently: a clipped shout looks angry, a dead ear
halves the level. :class:`InputMonitor` accumulates one stream's chunks over a report period
and names what is wrong, so that the feature node flags it on ``diagnostics`` instead of
letting the emotion results look trustworthy:

- ``clipping``: more than ``clip_share`` of the samples within 0.1 % of full scale;
- ``dc offset``: a channel's mean beyond ``dc_dbfs`` (a constant bias the recording chain added);
- ``dead channel``: a channel more than ``dead_margin_db`` below the loudest one while that one
  carries a signal (above ``signal_dbfs``): a broken or unplugged ear;
- ``digital silence``: every channel below ``silence_dbfs`` (a muted or disconnected input;
  a quiet room still has noise well above it).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["InputMonitor"]

CLIP_LEVEL = 0.999  # |sample| at or above this (full scale 1.0) counts as clipped


def _dbfs(power: float) -> float:
    return 10 * math.log10(power) if power > 0 else -math.inf


class InputMonitor:
    """Input faults of one stream over report periods (module docstring); levels in dBFS, full scale 1.0."""

    def __init__(self, clip_share: float = 0.001, dc_dbfs: float = -30.0, dead_margin_db: float = 40.0,
                 signal_dbfs: float = -70.0, silence_dbfs: float = -100.0) -> None:
        self.clip_share, self.dc_dbfs, self.dead_margin_db = clip_share, dc_dbfs, dead_margin_db
        self.signal_dbfs, self.silence_dbfs = signal_dbfs, silence_dbfs
        self._reset(0)

    def _reset(self, channels: int) -> None:
        self._frames = 0
        self._clipped = 0
        self._sum = np.zeros(channels)
        self._squares = np.zeros(channels)

    def update(self, samples: np.ndarray) -> None:
        """Add a chunk ``(frames, channels)`` of float samples; a new channel count starts the period again."""
        if samples.shape[1] != len(self._sum):
            self._reset(samples.shape[1])
        values = samples.astype(np.float64, copy=False)
        self._frames += samples.shape[0]
        self._clipped += int(np.count_nonzero(np.abs(values) >= CLIP_LEVEL))
        self._sum += values.sum(axis=0)
        self._squares += np.square(values).sum(axis=0)

    def report(self, channel_ids: list[str] | tuple[str, ...] = ()) -> list[str]:
        """The faults of the period since the last report (empty: none, or no audio), then a new period."""
        if not self._frames:
            return []
        names = list(channel_ids) if len(channel_ids) == len(self._sum) else [f"ch{i}" for i in range(len(self._sum))]
        mean = self._sum / self._frames
        ac_dbfs = [_dbfs(max(0.0, s / self._frames - m * m)) for s, m in zip(self._squares, mean)]
        problems = []
        share = self._clipped / (self._frames * len(self._sum))
        if share > self.clip_share:
            problems.append(f"clipping: {100 * share:.1f} % of samples at full scale; lower the microphone gain")
        for name, m in zip(names, mean):
            if _dbfs(m * m) > self.dc_dbfs:
                problems.append(f"dc offset on {name}: {m:+.3f} of full scale")
        loudest = max(ac_dbfs)
        if loudest < self.silence_dbfs:
            problems.append("digital silence on every channel: is the input muted or disconnected?")
        elif loudest > self.signal_dbfs:
            for name, level in zip(names, ac_dbfs):
                if level < loudest - self.dead_margin_db:
                    problems.append(f"dead channel {name}: {level:.0f} dBFS while another has {loudest:.0f} dBFS")
        self._reset(len(self._sum))
        return problems
