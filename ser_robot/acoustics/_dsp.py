"""Small signal helpers shared by the noise generators (private to ``ser_robot.acoustics``).

Every signal is a 1-D float64 array at ``fs`` Hz unless a docstring says otherwise; the public
generators convert to float32 at the end.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy import signal

SAMPLE_RATE = 16000
"""Rate of every generated noise and impulse response, Hz."""


def n_samples(seconds: float, fs: int) -> int:
    """Number of samples in ``seconds`` s at ``fs`` Hz (at least 1)."""
    return max(1, int(round(seconds * fs)))  # noqa: RUF046 (numpy scalars)


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (linear, full scale = 1)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def unit_rms(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to RMS 1 (unchanged if silent)."""
    level = rms(x)
    return x / level if level > 0 else x


def coloured_noise(rng: np.random.Generator, n: int, exponent: float, fs: int = SAMPLE_RATE,
                   highpass_hz: float = 20.0) -> np.ndarray:
    """Gaussian noise of ``n`` samples whose power spectral density falls as ``f ** -exponent``.

    ``exponent``: 0 white, 1 pink (-3 dB/octave), 2 brown (-6 dB/octave), -1 blue (+3 dB/octave).
    Shaped in the frequency domain (one FFT of white noise), with a 2nd-order Butterworth-shaped
    high-pass at ``highpass_hz`` Hz so that sub-audio drift does not carry the RMS. Unit RMS.
    """
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    freqs[0] = freqs[1] if n > 1 else 1.0
    gain = freqs ** (-exponent / 2.0)
    if highpass_hz > 0:
        gain = gain / np.sqrt(1.0 + (highpass_hz / freqs) ** 4)
    gain[0] = 0.0
    return unit_rms(np.fft.irfft(spectrum * gain, n))


def _sos(kind: str, cutoff: float | tuple[float, float], fs: int, order: int) -> np.ndarray:
    nyquist = fs / 2.0
    if isinstance(cutoff, tuple):
        low, high = max(cutoff[0], 1.0), min(cutoff[1], 0.98 * nyquist)
        return signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    return signal.butter(order, min(cutoff, 0.98 * nyquist), btype=kind, fs=fs, output="sos")


def lowpass(x: np.ndarray, cutoff_hz: float, fs: int = SAMPLE_RATE, order: int = 4) -> np.ndarray:
    """Butterworth low-pass at ``cutoff_hz`` Hz."""
    return signal.sosfilt(_sos("lowpass", cutoff_hz, fs, order), x)


def highpass(x: np.ndarray, cutoff_hz: float, fs: int = SAMPLE_RATE, order: int = 4) -> np.ndarray:
    """Butterworth high-pass at ``cutoff_hz`` Hz."""
    return signal.sosfilt(_sos("highpass", cutoff_hz, fs, order), x)


def bandpass(x: np.ndarray, low_hz: float, high_hz: float, fs: int = SAMPLE_RATE, order: int = 2) -> np.ndarray:
    """Butterworth band-pass between ``low_hz`` and ``high_hz`` Hz."""
    return signal.sosfilt(_sos("bandpass", (low_hz, high_hz), fs, order), x)


def tone(freq_hz: np.ndarray | float, n: int, fs: int = SAMPLE_RATE, phase: float = 0.0) -> np.ndarray:
    """A sinusoid of ``n`` samples following the instantaneous frequency ``freq_hz`` (Hz, scalar or ``(n,)``)."""
    freq = np.broadcast_to(np.asarray(freq_hz, dtype=np.float64), (n,))
    return np.sin(phase + 2.0 * np.pi * np.cumsum(freq) / fs)


def slow_drift(rng: np.random.Generator, n: int, fs: int, time_constant_s: float, depth: float) -> np.ndarray:
    """A slowly wandering zero-mean curve of ``n`` samples with standard deviation ``depth``.

    Low-passed Gaussian noise drawn at 50 Hz (corner ``1 / time_constant_s`` Hz) and linearly
    interpolated to ``fs``; used for rotation-speed drift and gusts.
    """
    control_rate = 50.0
    m = math.ceil(n / fs * control_rate) + 2
    raw = rng.standard_normal(m + 200)
    corner = min(0.45 * control_rate, 1.0 / max(time_constant_s, 1e-3))
    smooth = signal.sosfiltfilt(signal.butter(2, corner, fs=control_rate, output="sos"), raw)[100:100 + m]
    smooth = smooth - smooth.mean()
    std = smooth.std()
    smooth = smooth / std * depth if std > 0 else smooth
    return np.interp(np.arange(n) / fs, np.arange(m) / control_rate, smooth)


def damped_modes(freqs_hz: np.ndarray, decays_s: np.ndarray, amps: np.ndarray, duration_s: float,
                 fs: int = SAMPLE_RATE, phases: np.ndarray | None = None) -> np.ndarray:
    """Sum of exponentially damped sinusoids (an impact's modal response), ``duration_s`` s long."""
    t = np.arange(n_samples(duration_s, fs)) / fs
    phases = np.zeros(len(freqs_hz)) if phases is None else phases
    out = np.zeros_like(t)
    for freq, decay, amp, phase in zip(freqs_hz, decays_s, amps, phases):
        out += amp * np.exp(-t / decay) * np.sin(2 * np.pi * freq * t + phase)
    return out


def add_at(out: np.ndarray, event: np.ndarray, start: int, gain: float = 1.0) -> None:
    """Add ``gain * event`` into ``out`` from sample ``start`` on, cut at the end of ``out`` (in place)."""
    if start >= len(out) or start + len(event) <= 0:
        return
    first = max(0, -start)
    stop = min(len(out), start + len(event))
    out[max(start, 0):stop] += gain * event[first:first + stop - max(start, 0)]


def fade(x: np.ndarray, fs: int, seconds: float = 0.005) -> np.ndarray:
    """``x`` with raised-cosine fades of ``seconds`` s at both ends (copy)."""
    k = min(len(x) // 2, n_samples(seconds, fs))
    y = np.array(x, dtype=np.float64)
    if k > 1:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, k))
        y[:k] *= ramp
        y[-k:] *= ramp[::-1]
    return y


def resample(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    """Polyphase resampling of ``x`` (``(time,)`` or ``(time, channels)``) from ``fs_in`` to ``fs_out`` Hz."""
    if fs_in == fs_out:
        return np.asarray(x, dtype=np.float64)
    ratio = Fraction(fs_out, fs_in)
    return signal.resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator, axis=0)


def simple_reverb(x: np.ndarray, rng: np.random.Generator, rt60_s: float, fs: int = SAMPLE_RATE,
                  wet: float = 0.5) -> np.ndarray:
    """``x`` convolved with an exponentially decaying noise tail (RT60 ``rt60_s`` s), mixed ``wet`` of 1.

    A crude diffuse-field smear for distant sources in the scene stand-ins, not a room model
    (for rooms see :mod:`ser_robot.acoustics.rooms`).
    """
    t = np.arange(n_samples(rt60_s, fs)) / fs
    tail = rng.standard_normal(len(t)) * 10.0 ** (-3.0 * t / rt60_s)
    tail = lowpass(tail, 4000.0, fs, 2)
    tail /= np.sqrt(np.sum(tail ** 2))
    smeared = signal.fftconvolve(x, tail)[: len(x)]
    return (1.0 - wet) * unit_rms(x) + wet * unit_rms(smeared)
