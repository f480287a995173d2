"""Conversions between library objects and ROS messages."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time

from ser_robot.audio.chunk import AudioChunk
from ser_robot.audio.pcm import decode, encode
from ser_robot.errors import AudioFormatError
from ser_robot_msgs.msg import AudioFrame

__all__ = ["seconds_to_time", "time_to_seconds", "chunk_to_audio_frame", "audio_frame_samples"]


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


def audio_frame_samples(msg: AudioFrame) -> np.ndarray:
    """float32 samples ``(frames, channels)`` of an ``AudioFrame``; :class:`AudioFormatError` if malformed."""
    if msg.sample_rate == 0:
        raise AudioFormatError("AudioFrame.sample_rate is 0")
    if msg.channel_ids and len(msg.channel_ids) != msg.channels:
        raise AudioFormatError(
            f"AudioFrame has {len(msg.channel_ids)} channel_ids for {msg.channels} channel(s)"
        )
    return decode(bytes(msg.data), msg.channels, msg.encoding)
