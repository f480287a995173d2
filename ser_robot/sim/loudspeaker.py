"""The loudspeaker that plays the corpus in the lab: band limits, response ripple, soft saturation.

Pure functions: :func:`peaking_sos` (one RBJ-cookbook peaking biquad), :func:`loudspeaker_sos`
(the linear response as second-order sections) and :func:`loudspeaker` (filter, then
``tanh(drive * x) / drive``). Signals are float arrays ``(..., time)`` at ``fs`` Hz, full scale 1.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from ser_robot.errors import ConfigError

__all__ = ["loudspeaker", "loudspeaker_sos", "peaking_sos", "soft_clip"]


def peaking_sos(centre_hz: float, gain_db: float, q: float, fs: int) -> np.ndarray:
    """One peaking-EQ biquad (R. Bristow-Johnson, "Audio EQ cookbook"), shape ``(1, 6)``.

    ``gain_db`` dB at ``centre_hz`` Hz, bandwidth set by ``q``; unity gain far from the centre.
    """
    if not 0 < centre_hz < fs / 2:
        raise ConfigError(f"peaking EQ centre {centre_hz} Hz must lie between 0 and Nyquist ({fs / 2} Hz)")
    if q <= 0:
        raise ConfigError(f"peaking EQ Q must be positive, got {q}")
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * centre_hz / fs
    alpha = math.sin(w0) / (2.0 * q)
    b = np.array([1.0 + alpha * a, -2.0 * math.cos(w0), 1.0 - alpha * a])
    den = np.array([1.0 + alpha / a, -2.0 * math.cos(w0), 1.0 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def loudspeaker_sos(highpass_hz: float, highpass_order: int, lowpass_hz: float, lowpass_order: int,
                    ripple: tuple[tuple[float, float, float], ...], fs: int) -> np.ndarray:
    """The loudspeaker's linear response as second-order sections ``(k, 6)``.

    Butterworth high-pass (``highpass_hz`` Hz, ``highpass_order``) and low-pass (``lowpass_hz`` Hz,
    ``lowpass_order``) and one peaking biquad per ``(centre Hz, gain dB, Q)`` of ``ripple``.
    """
    if not 0 < highpass_hz < lowpass_hz < fs / 2:
        raise ConfigError(f"loudspeaker band {highpass_hz}-{lowpass_hz} Hz must satisfy 0 < high-pass < low-pass < "
                          f"Nyquist ({fs / 2} Hz)")
    sections = [signal.butter(highpass_order, highpass_hz, btype="highpass", fs=fs, output="sos"),
                signal.butter(lowpass_order, lowpass_hz, btype="lowpass", fs=fs, output="sos")]
    sections += [peaking_sos(centre, gain, q, fs) for centre, gain, q in ripple]
    return np.concatenate(sections, axis=0)


def soft_clip(x: np.ndarray, drive: float) -> np.ndarray:
    """``tanh(drive * x) / drive``: linear for small ``x``, saturating towards ``1 / drive``."""
    if drive <= 0:
        raise ConfigError(f"soft-clip drive must be positive, got {drive}")
    return np.tanh(drive * x) / drive


def loudspeaker(x: np.ndarray, sos: np.ndarray, drive: float) -> np.ndarray:
    """Play ``x`` (``(..., time)``, full scale 1) through the loudspeaker: ``sos`` filter, then :func:`soft_clip`.

    Returns float64 of the same shape (causal filtering: the output is as long as the input).
    """
    return soft_clip(signal.sosfilt(sos, np.asarray(x, dtype=np.float64), axis=-1), drive)
