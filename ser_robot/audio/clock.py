"""Timestamps for a sample stream: follow the sample count, anchored to the sound card clock."""

from __future__ import annotations

__all__ = ["SampleClock"]


class SampleClock:
    """Stamps for consecutive chunks of one stream.

    Each chunk's stamp is ``anchor + samples_so_far / rate``, so stamps advance exactly with the
    sample count. ``anchor`` starts at the first chunk's measured time (the ADC time of its first
    sample mapped to the system clock) and follows the measured times slowly (``tracking`` per
    chunk) to absorb drift between the sound card and system clocks without passing on their
    per-callback jitter. When a measured time differs from the predicted one by more than
    ``resync_s`` (samples were lost in an overflow, or the stream restarted), the clock re-anchors
    and counts a resync.
    """

    def __init__(self, sample_rate: int, resync_s: float = 0.05, tracking: float = 0.0005) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = sample_rate
        self.resync_s = resync_s
        self.tracking = tracking
        self.resyncs = 0
        self._anchor: float | None = None
        self._samples = 0

    def reset(self) -> None:
        """Forget the anchor: the next chunk starts a new time line (e.g. after a reconnect)."""
        self._anchor = None
        self._samples = 0

    def stamp(self, num_frames: int, measured_time: float) -> float:
        """Return the stamp of a chunk of ``num_frames`` whose first sample was measured at ``measured_time`` (s)."""
        if self._anchor is None:
            self._anchor, self._samples = measured_time, 0
        predicted = self._anchor + self._samples / self.sample_rate
        error = measured_time - predicted
        if abs(error) > self.resync_s:
            self.resyncs += 1
            self._anchor, self._samples = measured_time, 0
            predicted = measured_time
        else:
            self._anchor += self.tracking * error
        self._samples += num_frames
        return predicted
