"""Conversions between library objects and ROS messages, and the checks an incoming ``AudioFrame`` must pass.

:func:`audio_frame_samples` rejects a malformed frame with :class:`AudioFrameRejected`, whose
``reason`` is a short key the nodes count on ``diagnostics``. The checks run in this order (a
frame gets the first reason that applies): ``bad_encoding``, ``bad_channels`` (0 or more than
``MAX_CHANNELS``), ``bad_channel_ids`` (ids given but not one per channel), ``bad_rate``
(outside ``MIN_SAMPLE_RATE`` .. ``MAX_SAMPLE_RATE``), ``bad_stamp`` (``nanosec`` >= 1e9, or
``sec`` outside 0 .. ``MAX_STAMP_SEC``), ``bad_length`` (not a whole number of frames),
``empty`` (no samples), ``too_long`` (more than ``max_frame_s`` of audio; checked before
decoding), ``non_finite`` (NaN or Inf in ``f32le``) and ``out_of_range`` (``f32le`` samples
beyond ``MAX_ABS_SAMPLE`` full scale, which would overflow the features).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time

from ser_robot.audio.chunk import AudioChunk
from ser_robot.audio.pcm import DTYPES, ENCODINGS, decode, encode
from ser_robot.errors import AudioFormatError
from ser_robot.streams import MAX_STAMP_SEC
from ser_robot_msgs.msg import AudioFrame

__all__ = [
    "seconds_to_time",
    "time_to_seconds",
    "chunk_to_audio_frame",
    "audio_frame_samples",
    "AudioFrameRejected",
    "MALFORMED_REASONS",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_CHANNELS",
    "MAX_ABS_SAMPLE",
    "MAX_STAMP_SEC",
]

MIN_SAMPLE_RATE = 4000  # Hz; AudioFrame rates outside MIN..MAX are rejected as bad_rate
MAX_SAMPLE_RATE = 384000  # Hz
MAX_CHANNELS = 64  # interleaved channels per AudioFrame (the field allows 255)
MAX_ABS_SAMPLE = 1000.0  # full scale 1.0; louder f32le samples overflow the features' power terms

# Every reason audio_frame_samples can reject a frame for, in the order the checks run.
MALFORMED_REASONS = ("bad_encoding", "bad_channels", "bad_channel_ids", "bad_rate", "bad_stamp", "bad_length",
                     "empty", "too_long", "non_finite", "out_of_range")


class AudioFrameRejected(AudioFormatError):
    """An ``AudioFrame`` that cannot be used; ``reason`` (one of ``MALFORMED_REASONS``) is the counter key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def seconds_to_time(seconds: float) -> Time:
    """Seconds since the epoch (float) -> ``builtin_interfaces/Time``."""
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def time_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def chunk_to_audio_frame(
    chunk: AudioChunk,
    seq: int,
    encoding: str,
    channel_ids: Sequence[str],
    frame_id: str,
) -> AudioFrame:
    """An ``AudioFrame`` holding ``chunk``, stamped with the time of its first sample."""
    msg = AudioFrame()
    msg.header.stamp = seconds_to_time(chunk.time)
    msg.header.frame_id = frame_id
    msg.seq = seq
    msg.sample_rate = chunk.sample_rate
    msg.channels = chunk.channels
    msg.channel_ids = list(channel_ids)
    msg.encoding = encoding
    msg.data = encode(chunk.samples, encoding)
    return msg


def audio_frame_samples(msg: AudioFrame, max_frame_s: float | None = None) -> np.ndarray:
    """float32 samples ``(frames, channels)`` of an ``AudioFrame``.

    Raises :class:`AudioFrameRejected` (an :class:`AudioFormatError`) naming the first check the
    frame fails (module docstring); ``max_frame_s`` (s of audio, ``None`` = no limit) bounds the
    frame's duration before anything is decoded.
    """
    encoding = msg.encoding
    if encoding not in DTYPES:
        raise AudioFrameRejected("bad_encoding", f"unknown AudioFrame.encoding {encoding[:40]!r}; "
                                                 f"supported: {', '.join(ENCODINGS)}")
    channels = msg.channels
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFrameRejected("bad_channels", f"AudioFrame.channels is {channels}, must be 1..{MAX_CHANNELS}")
    if msg.channel_ids and len(msg.channel_ids) != channels:
        raise AudioFrameRejected(
            "bad_channel_ids", f"AudioFrame has {len(msg.channel_ids)} channel_ids for {channels} channel(s)"
        )
    rate = msg.sample_rate
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioFrameRejected(
            "bad_rate", f"AudioFrame.sample_rate is {rate} Hz, must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )
    stamp = msg.header.stamp
    if stamp.nanosec >= 1_000_000_000 or not 0 <= stamp.sec <= MAX_STAMP_SEC:
        raise AudioFrameRejected(
            "bad_stamp", f"AudioFrame stamp {stamp.sec} s {stamp.nanosec} ns: need 0 <= sec <= {MAX_STAMP_SEC}, "
                         "nanosec < 1e9"
        )
    frame_bytes = DTYPES[encoding].itemsize * channels
    size = len(msg.data)
    if size % frame_bytes:
        raise AudioFrameRejected(
            "bad_length", f"{size} bytes is not a whole number of {encoding} frames of {channels} "
                          f"channel(s) ({frame_bytes} bytes each)"
        )
    if size == 0:
        raise AudioFrameRejected("empty", "AudioFrame holds no samples")
    duration = size // frame_bytes / rate
    if max_frame_s is not None and duration > max_frame_s:
        raise AudioFrameRejected(
            "too_long", f"AudioFrame holds {duration:.3f} s of audio, more than max_frame_s = {max_frame_s} s"
        )
    samples = decode(msg.data, channels, encoding)
    if encoding == "f32le":
        peak = float(np.max(np.abs(samples)))  # NaN if any sample is NaN
        if not math.isfinite(peak):
            raise AudioFrameRejected("non_finite", "AudioFrame holds NaN or infinite f32le samples")
        if peak > MAX_ABS_SAMPLE:
            raise AudioFrameRejected(
                "out_of_range", f"AudioFrame sample magnitude {peak:.3g} exceeds {MAX_ABS_SAMPLE:g} (full scale 1.0)"
            )
    return samples
