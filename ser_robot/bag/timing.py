"""Timing of bag playback: each message is due at its original offset from the first, / rate."""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["PlaybackClock"]


class PlaybackClock:
    """Waits until each recorded message is due.

    The first message of a pass is due at once; message ``i`` is due ``(t_i - t_0) / rate``
    seconds later, ``t`` being the recorded receive times in ns. :meth:`restart` begins a new
    pass (a loop) from the current time.
    """

    def __init__(
        self,
        rate: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"playback rate must be positive, got {rate}")
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._first_ns: int | None = None
        self._start = 0.0

    def restart(self) -> None:
        self._first_ns = None

    def due(self, timestamp_ns: int) -> float:
        """Clock time (s) at which the message recorded at ``timestamp_ns`` is due."""
        if self._first_ns is None:
            self._first_ns, self._start = timestamp_ns, self._clock()
        return self._start + (timestamp_ns - self._first_ns) / 1e9 / self.rate

    def wait(self, timestamp_ns: int) -> None:
        delay = self.due(timestamp_ns) - self._clock()
        if delay > 0:
            self._sleep(delay)
