"""Streaming polyphase resampling: chunks of any size in, the same samples as the whole signal out.

The filter is a Kaiser-windowed sinc low-pass at the lower of the two Nyquist rates (``up`` and
``down`` from the reduced ratio ``target / source``). Output sample ``n`` is
``sum_k h[k] * x_up[n * down + delay - k]`` where ``x_up`` is the input zero-stuffed by ``up``
and ``delay`` the filter's group delay, so output sample ``n`` is aligned with time
``n / target`` seconds after the first input sample (no shift); samples before the start of the
stream count as zeros. The last ``delay / up`` input samples' worth of output is only produced
by :meth:`StreamingResampler.flush`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy.signal import firwin

__all__ = ["StreamingResampler", "resample"]

BLOCK = 4096  # outputs computed at once (bounds the gather matrix to BLOCK x taps)


class StreamingResampler:
    """Resample a mono stream from ``source_rate`` to ``target_rate`` Hz, chunk by chunk."""

    def __init__(self, source_rate: int, target_rate: int, taps_per_phase: int = 32, beta: float = 8.0):
        if source_rate <= 0 or target_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {source_rate} -> {target_rate} Hz")
        ratio = Fraction(target_rate, source_rate)
        self.source_rate, self.target_rate = source_rate, target_rate
        self.up, self.down = ratio.numerator, ratio.denominator
        self.identity = self.up == self.down == 1
        length = 2 * taps_per_phase * max(self.up, self.down) + 1
        if self.identity:
            self._taps = np.zeros(length)
            self._taps[taps_per_phase] = 1.0
        else:
            self._taps = firwin(length, 1.0 / max(self.up, self.down), window=("kaiser", beta)) * self.up
        self._delay = (length - 1) // 2  # in up-sampled samples
        self._phase_taps = math.ceil(length / self.up)
        padded = np.zeros(self._phase_taps * self.up)
        padded[:length] = self._taps
        # polyphase[p, t] = h[p + t * up]
        self._polyphase = padded.reshape(self._phase_taps, self.up).T.copy()
        self._decimation_taps = self._polyphase[0][::-1].copy()  # up == 1: taps newest-last, for window @ taps
        self.reset()

    @property
    def latency_s(self) -> float:
        """How far the output lags the input while streaming (filter look-ahead), seconds."""
        return self._delay / (self.up * self.source_rate)

    def reset(self) -> None:
        """Forget the stream (after a gap or a rate change): the next sample is time 0 again."""
        self._history = np.zeros(self._phase_taps - 1, np.float64)  # zeros before the stream start
        self._consumed = 0  # input samples seen
        self._produced = 0  # output samples emitted

    def _complete(self, available: int) -> int:
        """How many outputs (from the start) have their newest needed input index < ``available``."""
        # newest input index used by output n: floor((n * down + delay) / up)
        return max(0, (available * self.up - 1 - self._delay) // self.down + 1) if available else 0

    def _outputs(self, available: int) -> np.ndarray:
        """Output indices not produced yet whose newest needed input index is < ``available``."""
        return np.arange(self._produced, max(self._produced, self._complete(available)))

    def produced_after(self, more: int) -> int:
        """Output samples produced since the start (or :meth:`reset`) once ``more`` further input samples are pushed."""
        if self.identity:
            return self._consumed + more
        return max(self._produced, self._complete(self._consumed + more))

    def _compute(self, indices: np.ndarray, signal: np.ndarray, offset: int) -> np.ndarray:
        """Outputs ``indices`` from ``signal``, whose element 0 is input index ``offset``."""
        if len(indices) > BLOCK:
            return np.concatenate([self._compute(indices[i:i + BLOCK], signal, offset)
                                   for i in range(0, len(indices), BLOCK)])
        if self.up == 1 and len(indices):  # decimation (48 -> 16 kHz): one phase, windows are strided views
            first = indices[0] * self.down + self._delay - offset - (self._phase_taps - 1)
            end = indices[-1] * self.down + self._delay - offset + 1
            if first >= 0 and end <= len(signal):
                windows = np.lib.stride_tricks.sliding_window_view(signal[first:end], self._phase_taps)[::self.down]
                return (windows @ self._decimation_taps).astype(np.float32)
        position = indices * self.down + self._delay
        phase, newest = position % self.up, position // self.up
        gather = newest[:, None] - np.arange(self._phase_taps)[None, :] - offset
        values = np.where(gather >= 0, signal[np.clip(gather, 0, len(signal) - 1)], 0.0)
        return np.einsum("nt,nt->n", values, self._polyphase[phase]).astype(np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed mono samples ``(n,)``; returns the output samples now complete ``(m,)`` float32."""
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        if self.identity:
            self._consumed += len(samples)
            self._produced = self._consumed
            return samples.astype(np.float32)
        offset = self._consumed - len(self._history)
        signal = np.concatenate([self._history, samples])
        self._consumed += len(samples)
        indices = self._outputs(self._consumed)
        out = self._compute(indices, signal, offset)
        self._produced += len(indices)
        keep = self._phase_taps - 1 + self.up  # enough history for the next outputs
        self._history = signal[-keep:] if len(signal) >= keep else signal
        return out

    def flush(self) -> np.ndarray:
        """The remaining outputs up to the end of the input (zeros assumed after it)."""
        if self.identity:
            return np.zeros(0, np.float32)
        total = -(-self._consumed * self.up // self.down)  # ceil(consumed * up / down)
        indices = np.arange(self._produced, total)
        offset = self._consumed - len(self._history)
        out = self._compute(indices, self._history, offset)
        self._produced = total
        return out


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample a whole mono signal ``(n,)``: exactly what the streaming resampler gives, flushed."""
    resampler = StreamingResampler(source_rate, target_rate)
    return np.concatenate([resampler.push(samples), resampler.flush()])
