"""Timestamps for a sample stream: follow the sample count, anchored to the sound card clock."""

from __future__ import annotations

__all__ = ["SampleClock"]


class SampleClock:
    """Stamps for consecutive chunks of one stream.

    Each chunk's stamp is ``anchor + samples_so_far / rate``, so stamps advance exactly with the
    sample count. ``anchor`` starts at the first chunk's measured time (the ADC time of its first
    sample mapped to the system clock) and follows the measured times slowly (``tracking`` per
    chunk) to absorb drift between the sound card and system clocks without passing on their
    per-callback jitter. When ``resync_after`` chunks in a row are measured more than ``resync_s``
    away from the predicted time, on the same side (samples were lost in an overflow, or the
    stream restarted), the clock re-anchors at the last of them and counts a resync; fewer such
    outliers are ignored (neither followed nor tracked). Seen on a fresh PulseAudio server: its
    first stream reports capture times that stair-step ahead of the samples (+20 ms every two
    10 ms blocks) for a few hundred ms, then run steady at the new offset; a clock resyncing on
    every outlier re-anchored up to 11 times there, this one 4 times.
    """

    def __init__(self, sample_rate: int, resync_s: float = 0.05, tracking: float = 0.0005,
                 resync_after: int = 3) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = sample_rate
        self.resync_s = resync_s
        self.tracking = tracking
        self.resync_after = max(1, resync_after)
        self.resyncs = 0
        self._outliers = 0  # consecutive chunks beyond resync_s, signed: + late, - early
        self._anchor: float | None = None
        self._samples = 0

    def reset(self) -> None:
        """Forget the anchor: the next chunk starts a new time line (e.g. after a reconnect)."""
        self._anchor = None
        self._samples = 0
        self._outliers = 0

    def stamp(self, num_frames: int, measured_time: float) -> float:
        """Return the stamp of a chunk of ``num_frames`` whose first sample was measured at ``measured_time`` (s)."""
        if self._anchor is None:
            self._anchor, self._samples = measured_time, 0
        predicted = self._anchor + self._samples / self.sample_rate
        error = measured_time - predicted
        if abs(error) > self.resync_s:
            side = 1 if error > 0 else -1
            self._outliers = self._outliers + side if self._outliers * side > 0 else side
            if abs(self._outliers) >= self.resync_after:
                self.resyncs += 1
                self._anchor, self._samples, self._outliers = measured_time, 0, 0
                predicted = measured_time
        else:
            self._outliers = 0
            self._anchor += self.tracking * error
        self._samples += num_frames
        return predicted
