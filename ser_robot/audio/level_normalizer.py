"""A causal, slow, per-stream level normaliser (automatic gain control) for the feature front end.

A robot's microphone gain is arbitrary, and a model trained on one corpus learns that corpus'
absolute level as a cue (a louder stream reads as anger). :class:`LevelNormalizer` removes the
stream's long-term level and keeps the short-term differences between utterances:

- the signal is cut into blocks of ``block_s`` on a fixed grid from the stream's start; a
  block whose level is above ``floor_dbfs`` and within ``gate_db`` of the tracked level counts
  as active (speech, not pauses or noise); a block louder than the tracked level by more than
  ``gate_db`` shows that what was tracked so far was not speech (the dither of a silent start,
  which only passes the floor at a high gain): the tracking starts again from it, so which
  blocks count does not depend on the gain;
- the tracked level is the mean power of the active blocks so far (in dB) while there are
  fewer than ``time_constant_s`` seconds of them (a warm start: the first utterance sets it),
  then an exponential average with that time constant;
- every sample of block ``k`` is multiplied by the gain that brings the level tracked over the
  blocks up to ``k`` to ``target_dbfs``, limited to ``max_gain_db`` either way (0 dB before the
  first active block). So a block leaves only once it is complete: the output lags the input
  by less than one block (10 ms), and :meth:`LevelNormalizer.flush` gives the last, partial one.

Block-based and causal up to that block, so the output does not depend on how the input was
chunked: a stream pushed 10 ms at a time equals the whole signal normalised at once (unit
test), and the live feature node and the offline feature extraction apply the same function.
Which blocks count does not depend on a constant input gain either (above the floor), so the
output is the same whatever the microphone's gain, while an angry utterance still reads
louder than the neutral ones around it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LevelNormalizer", "normalize_level", "LEVEL_NORMALIZATIONS"]

LEVEL_NORMALIZATIONS = ("off", "agc")


class LevelNormalizer:
    """Streaming level normaliser of one mono stream at ``sample_rate`` Hz (module docstring).

    ``target_dbfs``: level of the active blocks after normalisation, dB re full scale (RMS);
    ``time_constant_s``: seconds of active speech the tracked level averages over;
    ``gate_db``: a block quieter than the tracked level by more is not speech;
    ``floor_dbfs``: a block quieter than this is never speech; ``max_gain_db``: gain limit, dB.
    """

    def __init__(self, sample_rate: int, target_dbfs: float = -30.0, time_constant_s: float = 20.0,
                 block_s: float = 0.01, gate_db: float = 20.0, floor_dbfs: float = -100.0,
                 max_gain_db: float = 40.0) -> None:
        if sample_rate <= 0 or block_s <= 0 or time_constant_s <= 0 or max_gain_db < 0:
            raise ValueError("need sample_rate, block_s and time_constant_s > 0 and max_gain_db >= 0")
        self.block = max(1, round(block_s * sample_rate))
        self.target_dbfs, self.gate_db, self.floor_dbfs, self.max_gain_db = (
            target_dbfs, gate_db, floor_dbfs, max_gain_db)
        self.warm_blocks = max(1, round(time_constant_s * sample_rate / self.block))
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next sample starts a new one (gain 0 dB until speech is seen)."""
        self._power = 0.0  # tracked mean power of the active blocks (linear, full scale 1.0)
        self._active = 0  # active blocks so far
        self._gain = 1.0  # linear gain of the last block
        self._partial: list[np.ndarray] = []  # input samples of the current, incomplete block
        self._partial_count = 0

    @property
    def tracked_dbfs(self) -> float:
        """Tracked level of the active blocks, dBFS (NaN before the first one)."""
        return 10 * math.log10(self._power) if self._active else math.nan

    @property
    def gain_db(self) -> float:
        """Gain applied to the last block, dB."""
        return 20 * math.log10(self._gain)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Push the next mono samples ``(n,)`` of the stream (float, full scale 1.0); returns the normalised
        samples of the blocks they complete, float32 (fewer than ``n`` or more: the output lags by < 1 block)."""
        samples = np.asarray(samples, dtype=np.float32)
        out = []
        start = 0
        while start < len(samples):
            take = min(self.block - self._partial_count, len(samples) - start)
            self._partial.append(samples[start:start + take])
            self._partial_count += take
            start += take
            if self._partial_count == self.block:
                out.append(self._end_block())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        """The last, partial block, normalised (end of the stream's input); the block grid starts again after it."""
        return self._end_block() if self._partial_count else np.zeros(0, np.float32)

    def _end_block(self) -> np.ndarray:
        block = np.concatenate(self._partial)
        self._partial, self._partial_count = [], 0
        self._track(float(np.mean(np.square(block, dtype=np.float64))))
        return block * np.float32(self._gain)

    def _track(self, power: float) -> None:
        """Count a block of mean ``power`` (full scale 1.0) if it is speech, and set the gain."""
        level = 10 * math.log10(power) if power > 0 else -math.inf
        if level < self.floor_dbfs or (self._active and level < self.tracked_dbfs - self.gate_db):
            return
        if self._active and level > self.tracked_dbfs + self.gate_db:
            self._power, self._active = 0.0, 0
        self._active += 1
        weight = 1.0 / min(self._active, self.warm_blocks)
        self._power += weight * (power - self._power)
        gain_db = min(self.max_gain_db, max(-self.max_gain_db, self.target_dbfs - self.tracked_dbfs))
        self._gain = 10 ** (gain_db / 20)


def normalize_level(samples: np.ndarray, sample_rate: int, **options: float) -> np.ndarray:
    """A whole mono signal ``(n,)`` normalised as one stream from its start (see :class:`LevelNormalizer`)."""
    normalizer = LevelNormalizer(sample_rate, **options)
    return np.concatenate([normalizer(samples), normalizer.flush()])
