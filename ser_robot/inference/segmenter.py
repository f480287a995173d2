"""Speech segments (utterances) from a stream of voice-activity probabilities.

A window is speech when its probability is at least ``threshold``. A segment starts at the
first speech window and ends after ``hangover_s`` of non-speech windows (its end is the end of
its last speech window); segments shorter than ``min_speech_s`` are dropped (clicks, coughs); a
segment that reaches ``max_utterance_s`` is ended there and the next speech window starts a new
one. With ``interim_s`` > 0 an interim segment (``final=False``: from the start to now) is
reported every ``interim_s`` while a segment grows. Everything counts in whole VAD windows, so
the segments depend only on the probabilities, never on how they were chunked into messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Segment", "VadSegmenter"]


@dataclass(frozen=True)
class Segment:
    """Windows ``[start, end)`` (indices into the VAD stream); ``final``: the whole utterance (else interim)."""

    start: int
    end: int
    final: bool


class VadSegmenter:
    """Feed probabilities with :meth:`push`; get :class:`Segment` lists. ``window_s``: one VAD window, s."""

    def __init__(self, window_s: float, threshold: float = 0.5, hangover_s: float = 0.3, min_speech_s: float = 0.3,
                 max_utterance_s: float = 15.0, interim_s: float = 0.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.threshold = threshold
        self.hangover = max(1, math.ceil(hangover_s / window_s - 1e-9))  # silent windows that end a segment
        self.min_windows = math.ceil(min_speech_s / window_s - 1e-9)
        self.max_windows = max(1, math.floor(max_utterance_s / window_s + 1e-9))
        self.interim_windows = math.ceil(interim_s / window_s - 1e-9) if interim_s > 0 else 0
        self.reset()

    def reset(self) -> None:
        """Forget the stream (start a new one at window 0)."""
        self.index = 0  # windows seen
        self.start: int | None = None  # first window of the open segment
        self.last_speech = -1
        self.next_interim = 0

    def push(self, probabilities: np.ndarray) -> list[Segment]:
        """Consume ``(windows,)`` probabilities; segments that ended or reached an interim point."""
        out: list[Segment] = []
        for p in np.asarray(probabilities, dtype=np.float64).reshape(-1):
            k = self.index
            self.index += 1
            speech = bool(p >= self.threshold)  # NaN is not speech
            if self.start is None:
                if speech:
                    self.start, self.last_speech = k, k
                    self.next_interim = k + self.interim_windows
                continue
            if speech:
                self.last_speech = k
            if not speech and k - self.last_speech >= self.hangover:
                self._close(self.last_speech + 1, out)
            elif k + 1 - self.start >= self.max_windows:
                self._close(k + 1, out)
            elif self.interim_windows and k + 1 >= self.next_interim:
                out.append(Segment(self.start, k + 1, final=False))
                self.next_interim += self.interim_windows
        return out

    def finish(self) -> list[Segment]:
        """End of the stream: the open segment, if long enough."""
        out: list[Segment] = []
        if self.start is not None:
            self._close(self.last_speech + 1, out)
        return out

    def _close(self, end: int, out: list[Segment]) -> None:
        if end - self.start >= max(1, self.min_windows):
            out.append(Segment(self.start, end, final=True))
        self.start = None
