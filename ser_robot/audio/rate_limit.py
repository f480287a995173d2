"""A per-stream budget of audio seconds: bounds the work one stream (one ``frame_id``) can cause.

A token bucket whose tokens are seconds of audio: it holds at most ``burst_s`` and refills at
``speed`` seconds of audio per second of wall time. A frame is admitted if its duration fits in
what is left. A source at real time (``speed`` >= 1) is never refused; a flood on one stream is
cut to ``speed`` times real time after its first ``burst_s`` seconds of audio, so the feature
work it causes is bounded whatever its sender does.
"""

from __future__ import annotations

__all__ = ["AudioBudget"]


class AudioBudget:
    """Token bucket of audio seconds; ``speed`` 0 admits everything (no limit)."""

    def __init__(self, speed: float, burst_s: float, now: float) -> None:
        """``speed``: audio seconds per wall second (0 = unlimited); ``burst_s``: bucket size, s of audio;
        ``now``: wall time, s (``time.monotonic()``)."""
        if speed < 0 or burst_s <= 0:
            raise ValueError(f"need speed >= 0 and burst_s > 0, got speed {speed}, burst_s {burst_s}")
        self.speed, self.burst_s = speed, burst_s
        self._tokens, self._last = burst_s, now

    def admit(self, duration_s: float, now: float) -> bool:
        """Whether a frame of ``duration_s`` seconds arriving at ``now`` (s) fits the budget; takes its tokens if so."""
        if self.speed == 0:
            return True
        self._tokens = min(self.burst_s, self._tokens + (now - self._last) * self.speed)
        self._last = now
        if duration_s > self._tokens:
            return False
        self._tokens -= duration_s
        return True
