"""Live capture from a sounddevice (PortAudio) input stream into a bounded queue.

The PortAudio callback only copies the block and its ADC time into a queue (never blocks,
never allocates beyond the copy); a consumer thread calls :meth:`SoundDeviceCapture.read`,
which stamps the block with a :class:`~ser_robot.audio.clock.SampleClock`. A stream that
stops delivering (device unplugged, sound server gone) is detected by :meth:`read` and
reopened with exponential back-off. Each opening of the stream is a generation: the first
block read from a new generation starts a new time line (its clock re-anchors) and is marked
``restart``, so that consumers do not take the outage for continuous audio.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_robot.audio.chunk import AudioChunk
from ser_robot.audio.clock import SampleClock
from ser_robot.audio.devices import InputDevice, _sounddevice, open_streams, resolve_input_device, track_stream
from ser_robot.audio.pcm import DTYPES
from ser_robot.errors import AudioDeviceError

__all__ = ["Backoff", "CaptureStats", "SoundDeviceCapture"]

RESYNC_BLOCKS = 4
"""A callback time this many blocks (and at least 50 ms) off the sample count re-anchors the stamps."""

class Backoff:
    """Exponential back-off: ``initial_s``, doubled after each failure, capped at ``max_s``."""

    def __init__(self, initial_s: float = 0.25, max_s: float = 10.0) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.delay_s = initial_s
        self.next_attempt = 0.0

    def failed(self, now: float) -> float:
        """Record a failure at ``now`` (monotonic s); return the delay until the next attempt."""
        delay = self.delay_s
        self.next_attempt = now + delay
        self.delay_s = min(self.delay_s * 2.0, self.max_s)
        return delay

    def ready(self, now: float) -> bool:
        return now >= self.next_attempt

    def reset(self) -> None:
        self.delay_s, self.next_attempt = self.initial_s, 0.0


@dataclass(frozen=True)
class CaptureStats:
    """Counters of a capture since it was created."""

    chunks: int
    overflows: int
    queue_drops: int
    queue_depth: int
    reconnects: int
    clock_resyncs: int
    connected: bool
    last_error: str


class SoundDeviceCapture:
    """A PortAudio input stream delivering :class:`AudioChunk` blocks of ``chunk_ms``.

    Args:
        device: index, case-insensitive name substring, or "" for the default input.
        sample_rate: Hz; 0 = the device's default rate.
        channels: input channels to capture.
        chunk_ms: block duration in ms (the PortAudio block size).
        encoding: ``s16le`` (blocks are int16) or ``f32le`` (float32).
        queue_size: blocks held between callback and reader; more are dropped and counted.
        reconnect_max_s: cap of the reconnect back-off, in seconds.
        stall_s: a stream silent (no callback) this long is considered lost; default
            ``max(1 s, 50 chunks)``.
    """

    def __init__(
        self,
        device: str = "",
        sample_rate: int = 0,
        channels: int = 2,
        chunk_ms: float = 10.0,
        encoding: str = "s16le",
        queue_size: int = 200,
        reconnect_max_s: float = 10.0,
        stall_s: float | None = None,
    ) -> None:
        if encoding not in DTYPES:
            raise ValueError(f"encoding must be one of {list(DTYPES)}, got {encoding!r}")
        self.device_spec = device
        self.requested_rate = sample_rate
        self.channels = channels
        self.chunk_ms = chunk_ms
        self.dtype = DTYPES[encoding].name  # PortAudio sample format: int16 or float32
        self.stall_s = stall_s
        # (block, first-sample time on the system clock, callback time.monotonic(), stream generation)
        self._queue: queue.Queue[tuple[np.ndarray, float, float, int]] = queue.Queue(maxsize=queue_size)
        self._backoff = Backoff(max_s=reconnect_max_s)
        self._lock = threading.Lock()
        self._stream: Any = None
        self.device: InputDevice | None = None
        self.sample_rate = 0
        self.blocksize = 0
        self._clock: SampleClock | None = None
        self._chunks = self._overflows = self._drops = self._reconnects = 0
        self._last_callback = 0.0
        self._last_error = ""
        self._generation = 0  # openings of the stream so far
        self._read_generation = 0  # generation of the last block read

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        """Find the device and start the stream; raise :class:`AudioDeviceError` if impossible."""
        try:
            self.device = resolve_input_device(self.device_spec)
        except AudioDeviceError:  # perhaps added since PortAudio started (a sound server started later)
            self.device = resolve_input_device(self.device_spec, refresh=True)
        if self.channels > self.device.max_input_channels:
            raise AudioDeviceError(
                f"input device {self.device.describe()} has {self.device.max_input_channels} "
                f"input channel(s); 'channels' asks for {self.channels}"
            )
        self._start_stream()

    def _start_stream(self) -> None:
        sd = _sounddevice()
        assert self.device is not None
        rate = self.requested_rate or int(round(self.device.default_sample_rate))
        blocksize = max(1, int(round(rate * self.chunk_ms / 1000.0)))
        try:
            stream = sd.InputStream(
                device=self.device.index,
                samplerate=rate,
                channels=self.channels,
                dtype=self.dtype,
                blocksize=blocksize,
                callback=functools.partial(self._callback, self._generation + 1),
            )
            stream.start()
            track_stream(stream)
        except Exception as exc:  # PortAudioError, ValueError for unsupported settings
            raise AudioDeviceError(
                f"cannot open input device {self.device.describe()} at {rate} Hz with "
                f"{self.channels} channel(s): {exc}"
            ) from None
        with self._lock:
            self._generation += 1
            self._stream, self.sample_rate, self.blocksize = stream, rate, blocksize
            self._last_callback = time.monotonic()
            self._last_error = ""

    def close(self) -> None:
        """Stop and close the stream; pending blocks stay readable."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001 - a lost device may fail to close; it is gone anyway
                pass

    @property
    def connected(self) -> bool:
        return self._stream is not None

    # -- real-time callback ----------------------------------------------------------------
    def _callback(self, generation: int, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now_wall, now_mono = time.time(), time.monotonic()
        self._last_callback = now_mono
        if status.input_overflow:
            self._overflows += 1
        adc = time_info.inputBufferAdcTime
        first_sample = adc + (now_wall - time_info.currentTime) if adc > 0 else now_wall - frames / self.sample_rate
        try:
            self._queue.put_nowait((indata.copy(), first_sample, now_mono, generation))
        except queue.Full:
            self._drops += 1

    # -- consumer side ---------------------------------------------------------------------
    def read(self, timeout: float = 0.1) -> tuple[AudioChunk, float] | None:
        """Next block and the monotonic time its callback ran, or None after ``timeout`` s.

        The first block of each opening of the stream has ``restart`` set (module docstring).
        Also supervises the stream: a stream that stopped is closed and reopened with back-off;
        :attr:`stats` shows ``connected=False`` and the error meanwhile.
        """
        try:
            samples, measured, received, generation = self._queue.get(timeout=timeout)
        except queue.Empty:
            self._supervise()
            return None
        restart = generation != self._read_generation
        if restart:
            self._read_generation = generation
            # A resync means lost samples; PulseAudio's callback times jitter by a few blocks when the
            # stream starts (three 20 ms blocks measured here), so the threshold grows with the block.
            if self._clock is None or self._clock.sample_rate != self.sample_rate:
                self._clock = SampleClock(self.sample_rate,
                                          resync_s=max(0.05, RESYNC_BLOCKS * self.blocksize / self.sample_rate))
            else:
                self._clock.reset()
        self._chunks += 1
        stamp = self._clock.stamp(samples.shape[0], measured)
        return AudioChunk(samples=samples, sample_rate=self.sample_rate, time=stamp, restart=restart), received

    def _supervise(self) -> None:
        now = time.monotonic()
        if self._stream is not None:
            stall = self.stall_s or max(1.0, 50 * self.chunk_ms / 1000.0)
            if self._stream.active and now - self._last_callback < stall:
                return
            self._last_error = (
                f"input device {self.device.describe() if self.device else self.device_spec!r} "
                f"stopped delivering audio (no block for {now - self._last_callback:.1f} s)"
            )
            self.close()
            self._backoff.failed(now)
            return
        if not self._backoff.ready(now):
            return
        try:
            self.device = resolve_input_device(self.device_spec, refresh=True)
            self._start_stream()
        except AudioDeviceError as exc:
            others = open_streams()
            self._last_error = str(exc) + (
                f" (PortAudio's device list was not refreshed: {others} other audio stream(s) of this process "
                "are open, and re-initialising PortAudio would stop them)" if others else "")
            self._backoff.failed(now)
            return
        self._reconnects += 1
        self._backoff.reset()

    @property
    def stats(self) -> CaptureStats:
        return CaptureStats(
            chunks=self._chunks,
            overflows=self._overflows,
            queue_drops=self._drops,
            queue_depth=self._queue.qsize(),
            reconnects=self._reconnects,
            clock_resyncs=self._clock.resyncs if self._clock else 0,
            connected=self.connected,
            last_error=self._last_error,
        )
