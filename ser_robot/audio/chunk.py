"""One block of consecutive samples from an audio stream."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AudioChunk"]


@dataclass(frozen=True)
class AudioChunk:
    """A block of samples and the time of its first sample.

    Attributes:
        samples: ``(frames, channels)``; int16 (full scale 32768) or float32 (full scale 1.0).
        sample_rate: Hz.
        time: capture time of the first sample, in seconds on the system (wall) clock.
        restart: the source's time line starts anew at this chunk (e.g. the first block of a
            device reopened after an outage): it does not follow the previous chunk.
    """

    samples: np.ndarray
    sample_rate: int
    time: float
    restart: bool = False

    @property
    def num_frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Seconds covered by the chunk."""
        return self.num_frames / self.sample_rate
