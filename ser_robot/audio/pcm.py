"""Interleaved PCM byte encodings used by ``AudioFrame.data``.

Samples are float32 in [-1, 1] (full scale 1.0) in memory, shaped ``(frames, channels)``.
``s16le`` is signed 16-bit little-endian (full scale 32768); ``f32le`` is 32-bit float.
"""

from __future__ import annotations

import numpy as np

from ser_robot.errors import AudioFormatError

__all__ = ["ENCODINGS", "DTYPES", "bytes_per_sample", "decode", "encode", "to_float32"]

DTYPES: dict[str, np.dtype] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
ENCODINGS = tuple(DTYPES)
_S16_SCALE = 32768.0


def bytes_per_sample(encoding: str) -> int:
    """Bytes per sample of ``encoding``."""
    return _dtype(encoding).itemsize


def _dtype(encoding: str) -> np.dtype:
    try:
        return DTYPES[encoding]
    except KeyError:
        raise AudioFormatError(
            f"unknown audio encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        ) from None


def to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 or float samples ``(frames, channels)`` -> float32 with full scale 1.0."""
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / _S16_SCALE
    return samples.astype(np.float32, copy=False)


def encode(samples: np.ndarray, encoding: str) -> bytes:
    """Interleave ``(frames, channels)`` samples into bytes of ``encoding``.

    int16 input is written as is for ``s16le``; float input is scaled and rounded, and values
    outside [-1, 1) saturate at the int16 limits (the only place a level can clip).
    """
    if samples.ndim != 2:
        raise AudioFormatError(f"samples must be (frames, channels), got shape {samples.shape}")
    dtype = _dtype(encoding)
    if encoding == "s16le" and samples.dtype != np.int16:
        scaled = np.rint(np.asarray(samples, dtype=np.float64) * _S16_SCALE)
        samples = np.clip(scaled, -32768, 32767)
    elif encoding == "f32le" and samples.dtype == np.int16:
        samples = to_float32(samples)
    return np.ascontiguousarray(samples, dtype=dtype).tobytes()


def decode(data: bytes | bytearray | memoryview, channels: int, encoding: str) -> np.ndarray:
    """Bytes of ``encoding`` with ``channels`` interleaved channels -> float32 ``(frames, channels)``."""
    dtype = _dtype(encoding)
    if channels < 1:
        raise AudioFormatError(f"channel count must be >= 1, got {channels}")
    frame_bytes = dtype.itemsize * channels
    if len(data) % frame_bytes:
        raise AudioFormatError(
            f"{len(data)} bytes is not a whole number of {encoding} frames of {channels} "
            f"channel(s) ({frame_bytes} bytes each)"
        )
    samples = np.frombuffer(bytes(data), dtype=dtype).reshape(-1, channels)
    return to_float32(samples)
