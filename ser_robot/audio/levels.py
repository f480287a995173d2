"""Level and continuity statistics of an audio stream, over report periods."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LevelReport", "StreamMonitor", "rms_dbfs"]

SILENCE_DBFS = -120.0


def rms_dbfs(samples: np.ndarray) -> np.ndarray:
    """RMS level per channel of float samples ``(frames, channels)`` (full scale 1.0), in dBFS.

    A full-scale sine reads -3.01 dBFS. Silence reads -120 dBFS.
    """
    power = np.mean(np.square(samples, dtype=np.float64), axis=0)
    with np.errstate(divide="ignore"):
        level = 10.0 * np.log10(power)
    return np.maximum(level, SILENCE_DBFS)


@dataclass(frozen=True)
class LevelReport:
    """One period of a stream: frames, sequence gaps, and per-channel levels in dBFS."""

    frames: int
    samples: int
    seq_gaps: int
    frames_lost: int
    rms_dbfs: tuple[float, ...]
    peak_dbfs: tuple[float, ...]


class StreamMonitor:
    """Accumulates frames of one stream; :meth:`report` returns and resets the period's figures.

    A ``seq`` jump of more than one counts one gap and ``jump - 1`` lost frames; a ``seq`` that
    goes backwards is a stream restart and counts nothing.
    """

    def __init__(self) -> None:
        self._last_seq: int | None = None
        self.total_gaps = 0
        self.total_lost = 0
        self._reset_period()

    def _reset_period(self) -> None:
        self._frames = self._samples = self._gaps = self._lost = 0
        self._power: np.ndarray | None = None
        self._peak: np.ndarray | None = None

    def update(self, seq: int, samples: np.ndarray) -> None:
        """Add one frame: its ``seq`` and float samples ``(frames, channels)``."""
        if self._last_seq is not None and seq > self._last_seq + 1:
            self._gaps += 1
            self._lost += seq - self._last_seq - 1
            self.total_gaps += 1
            self.total_lost += seq - self._last_seq - 1
        self._last_seq = seq
        energy = np.sum(np.square(samples, dtype=np.float64), axis=0)
        peak = np.max(np.abs(samples), axis=0) if samples.size else np.zeros(samples.shape[1])
        if self._power is None or self._power.shape != energy.shape:
            self._power, self._peak = energy, peak
        else:
            self._power = self._power + energy
            self._peak = np.maximum(self._peak, peak)
        self._frames += 1
        self._samples += samples.shape[0]

    def report(self) -> LevelReport:
        if self._power is None or self._samples == 0:
            rms: tuple[float, ...] = ()
            peak: tuple[float, ...] = ()
        else:
            with np.errstate(divide="ignore"):
                rms = tuple(np.maximum(10 * np.log10(self._power / self._samples), SILENCE_DBFS).tolist())
                peak = tuple(np.maximum(20 * np.log10(self._peak), SILENCE_DBFS).tolist())
        report = LevelReport(self._frames, self._samples, self._gaps, self._lost, rms, peak)
        self._reset_period()
        return report
