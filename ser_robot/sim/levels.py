"""Levels and two-ear noise fields: active speech level, RMS, diffuse and near-field ear pairs.

Signals are float arrays, full scale 1; levels are dBFS (``20 log10`` of an RMS). Two-ear
signals have shape ``(2, time)`` (left, right); their level is that of the mean power of the ears.
"""

from __future__ import annotations

import math

import numpy as np

from ser_robot.acoustics.rooms import SPEED_OF_SOUND

__all__ = ["FRAME_S", "active_level_db", "diffuse_pair", "near_field_pair", "rms_db", "scale_to_db"]

FRAME_S = 0.01
"""Frame length (s) of :func:`active_level_db`."""

_FLOOR = 1e-20


def rms_db(x: np.ndarray) -> float:
    """RMS level of ``x`` (any shape; mean power over every sample and channel), dBFS."""
    power = float(np.mean(np.square(x, dtype=np.float64))) if np.size(x) else 0.0
    return 10.0 * math.log10(max(power, _FLOOR))


def active_level_db(x: np.ndarray, fs: int, range_db: float = 35.0) -> float:
    """Active level of ``x`` (``(time,)`` or ``(channels, time)``), dBFS: the power of the 10 ms frames
    (channel powers averaged) within ``range_db`` dB of the loudest frame -- a simplified ITU-T P.56
    that leaves pauses out. Falls back to :func:`rms_db` for signals shorter than one frame."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    frame = max(1, int(round(FRAME_S * fs)))  # noqa: RUF046
    count = x.shape[-1] // frame
    if count == 0:
        return rms_db(x)
    power = np.mean(np.square(x[:, : count * frame]).reshape(x.shape[0], count, frame), axis=(0, 2))
    peak = float(power.max())
    if peak <= _FLOOR:
        return rms_db(x)
    active = power >= peak * 10.0 ** (-range_db / 10.0)
    return 10.0 * math.log10(float(power[active].mean()))


def scale_to_db(x: np.ndarray, current_db: float, target_db: float) -> np.ndarray:
    """``x`` scaled from level ``current_db`` to ``target_db`` (dB)."""
    return x * 10.0 ** ((target_db - current_db) / 20.0)


def diffuse_pair(a: np.ndarray, b: np.ndarray, spacing_m: float, fs: int) -> np.ndarray:
    """Two ears in a spherically isotropic (diffuse) noise field, ``(2, n)``, from two independent
    noise signals ``a``, ``b`` (``(n,)``, same spectrum and level).

    Left = ``a``; right = ``rho a + sqrt(1 - rho^2) b`` per frequency, with the diffuse-field
    coherence ``rho(f) = sin(k d) / (k d)``, ``k = 2 pi f / c``, ``d = spacing_m`` (Habets & Gannot
    2007, "Generating sensor signals in isotropic noise fields", JASA 122(6)): correlated below
    about ``c / (2 d)`` Hz, independent above. Both ears keep the level of ``a``.
    """
    n = len(a)
    rho = np.sinc(2.0 * np.fft.rfftfreq(n, 1.0 / fs) * spacing_m / SPEED_OF_SOUND)
    right = np.fft.irfft(rho * np.fft.rfft(a) + np.sqrt(np.maximum(1.0 - rho ** 2, 0.0)) * np.fft.rfft(b), n)
    return np.stack([np.asarray(a, dtype=np.float64), right])


def near_field_pair(common: np.ndarray, left: np.ndarray, right: np.ndarray, coherence: float,
                    level_difference_db: float) -> np.ndarray:
    """Two ears close to a noise source, ``(2, n)``: each ear ``sqrt(c) common + sqrt(1 - c) own``
    (``c`` = ``coherence``, the power share common to both ears), the left ear ``level_difference_db``
    dB louder than the right, mean ear power that of the inputs (all ``(n,)``, same level)."""
    c = float(np.clip(coherence, 0.0, 1.0))
    pair = np.stack([math.sqrt(c) * common + math.sqrt(1.0 - c) * left,
                     math.sqrt(c) * common + math.sqrt(1.0 - c) * right])
    gains = np.array([10.0 ** (level_difference_db / 40.0), 10.0 ** (-level_difference_db / 40.0)])
    gains /= math.sqrt(np.mean(gains ** 2))
    return pair * gains[:, None]
