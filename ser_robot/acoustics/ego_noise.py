"""Robot ego-noise models: cooling fans and joint servos.

A robot hears itself: the cooling fan(s) in its head or torso run all the time, and every
joint motion adds the whine of its motors and gearboxes. The ego-noise literature describes
the structure these models reproduce (references from memory, check before citing):

- Nakadai, Lourens, Okuno, Kitano, "Active audition for humanoid", AAAI 2000: motor noise of a
  moving head masks the sound the robot attends to.
- Ince, Nakadai, Rodemann, Hasegawa, Tsujino, Imura, "Ego noise suppression of a robot using
  template subtraction", IROS 2009: joint-motion noise is non-stationary but repeatable given
  the joint's motion (position/velocity), hence templates indexed by motor state.
- Schmidt, Löllmann, Kellermann, "A novel ego-noise suppression algorithm for acoustic signal
  enhancement in autonomous systems", ICASSP 2018, and Schmidt, Deleforge, Kellermann,
  "Ego-noise reduction using a motor data-guided multichannel dictionary", IROS 2016: ego-noise
  (NAO) is harmonic motor whine whose frequencies move with motor speed, plus broadband
  gear/fan noise.
- Lakomkin et al. 2018 (seed 004): the iCub head's fan and the lab's projectors/computers.

Models:

- :func:`fan_ego_noise`: a cooling fan; tones at the blade-pass frequency BPF = rpm / 60 x
  blades and its harmonics, whose speed drifts slowly (a few percent over seconds, as the fan
  controller follows temperature), plus broadband turbulence (pink, band-limited) modulated at
  the shaft rate.
- :func:`servo_ego_noise`: joint motions with minimum-jerk velocity profiles; during each
  motion a motor whine at ``f = f_min + (f_max - f_min) * |v| / v_peak`` (Hz) with harmonics,
  broadband gear noise whose level follows the speed, and gear clicks (backlash impacts: short
  damped resonances at 2-6 kHz) at motion start and stop and at random during motion.

Both return unit-RMS float64 samples at ``fs`` Hz plus the parameters drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ser_robot.acoustics._dsp import (
    SAMPLE_RATE,
    add_at,
    bandpass,
    coloured_noise,
    damped_modes,
    n_samples,
    slow_drift,
    tone,
    unit_rms,
)

__all__ = ["fan_ego_noise", "minimum_jerk_profile", "robot_ego_noise", "servo_ego_noise"]


def fan_ego_noise(rng: np.random.Generator, seconds: float, fs: int = SAMPLE_RATE, rpm: float | None = None,
                  blades: int | None = None, drift: float | None = None, harmonics: int = 4,
                  tonal_db: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """A small cooling fan with slowly drifting speed: ``(samples (n,), parameters)``.

    ``rpm``: shaft speed, rev/min (drawn in 2400-5400 if ``None``); ``blades``: 5-9; ``drift``:
    standard deviation of the relative speed drift (0.005-0.03); ``tonal_db``: level of the
    blade-pass tones above the broadband part, dB (drawn in 0-10). Blade-pass frequency
    ``rpm / 60 * blades`` Hz, harmonics ``k * BPF`` for k = 1..``harmonics`` at -6 dB per step.
    """
    rpm = float(rng.uniform(2400, 5400)) if rpm is None else float(rpm)
    blades = int(rng.integers(5, 10)) if blades is None else int(blades)
    drift = float(rng.uniform(0.005, 0.03)) if drift is None else float(drift)
    tonal_db = float(rng.uniform(0.0, 10.0)) if tonal_db is None else float(tonal_db)
    n = n_samples(seconds, fs)
    speed = 1.0 + slow_drift(rng, n, fs, time_constant_s=3.0, depth=drift)
    shaft_hz = rpm / 60.0 * speed
    bpf = shaft_hz * blades
    tonal = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * bpf.max() < 0.45 * fs:
            tonal += 0.5 ** (k - 1) * tone(k * bpf, n, fs, rng.uniform(0, 2 * np.pi))
    broadband = bandpass(coloured_noise(rng, n, 1.0, fs), 150.0, 7000.0, fs)
    broadband *= 1.0 + 0.15 * tone(shaft_hz, n, fs)  # unbalance: modulation at the shaft rate
    samples = unit_rms(broadband) + 10 ** (tonal_db / 20.0) * unit_rms(tonal)
    params = {"rpm": round(rpm, 2), "blades": blades, "blade_pass_hz": round(rpm / 60.0 * blades, 2),
              "drift": round(drift, 4), "harmonics": harmonics, "tonal_db": round(tonal_db, 2)}
    return unit_rms(samples), params


def minimum_jerk_profile(n: int) -> np.ndarray:
    """Normalised speed of a minimum-jerk point-to-point motion over ``n`` samples, peak 1 (shape ``(n,)``)."""
    tau = np.linspace(0.0, 1.0, n)
    speed = 30 * tau ** 2 - 60 * tau ** 3 + 30 * tau ** 4  # derivative of 10t^3 - 15t^4 + 6t^5
    return speed / speed.max() if n > 2 else np.ones(n)


def _gear_click(rng: np.random.Generator, fs: int) -> np.ndarray:
    freqs = rng.uniform(2000, 6000, size=3)
    return damped_modes(freqs, rng.uniform(0.0008, 0.003, size=3), rng.uniform(0.3, 1.0, size=3), 0.015, fs,
                        rng.uniform(0, 2 * np.pi, size=3))


def servo_ego_noise(rng: np.random.Generator, seconds: float, fs: int = SAMPLE_RATE, motions_per_s: float | None = None,
                    whine_hz: tuple[float, float] | None = None, click_rate_hz: float | None = None,
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """Joint servos moving now and then: ``(samples (n,), parameters)``.

    ``motions_per_s``: rate of point-to-point motions (0.3-1.0 per s); each lasts 0.3-1.5 s with a
    minimum-jerk speed profile. ``whine_hz``: motor whine frequency at rest speed and at peak
    speed (Hz; drawn around 300-900 and 1500-4000). ``click_rate_hz``: gear clicks per second of
    motion at peak speed (5-30). Between motions: near silence (-60 dB hiss) so a bank clip's RMS
    is set by the motion.
    """
    motions_per_s = float(rng.uniform(0.3, 1.0)) if motions_per_s is None else float(motions_per_s)
    if whine_hz is None:
        whine_hz = (float(rng.uniform(300, 900)), float(rng.uniform(1500, 4000)))
    click_rate_hz = float(rng.uniform(5, 30)) if click_rate_hz is None else float(click_rate_hz)
    n = n_samples(seconds, fs)
    speed = np.zeros(n)
    onsets: list[float] = []
    t = float(rng.uniform(0.0, 1.0 / motions_per_s))
    while t < seconds:
        length = n_samples(rng.uniform(0.3, 1.5), fs)
        start = int(t * fs)
        profile = minimum_jerk_profile(length) * rng.uniform(0.5, 1.0)
        stop = min(n, start + length)
        speed[start:stop] = np.maximum(speed[start:stop], profile[: stop - start])
        onsets.append(round(t, 3))
        t += length / fs + rng.exponential(1.0 / motions_per_s)
    moving = speed > 1e-3
    freq = whine_hz[0] + (whine_hz[1] - whine_hz[0]) * speed
    whine = np.zeros(n)
    for k, amp in ((1, 1.0), (2, 0.5), (3, 0.3)):
        partial = tone(np.minimum(k * freq, 0.45 * fs), n, fs, rng.uniform(0, 2 * np.pi))
        whine += amp * partial
    whine *= np.sqrt(speed)
    gear = bandpass(rng.standard_normal(n), 800.0, 6000.0, fs) * speed
    samples = unit_rms(whine) + 0.5 * unit_rms(gear) if moving.any() else np.zeros(n)
    clicks = np.zeros(n)
    click = 0
    for onset in onsets:  # backlash at the start and end of each motion
        start = int(onset * fs)
        ends = np.flatnonzero(~moving[start:])
        for position in (start, start + (int(ends[0]) if ends.size else n - start)):
            add_at(clicks, _gear_click(rng, fs), position, rng.uniform(2.0, 4.0))
            click += 1
    random_clicks = rng.random(n) < click_rate_hz / fs * speed
    for position in np.flatnonzero(random_clicks):
        add_at(clicks, _gear_click(rng, fs), int(position), rng.uniform(0.5, 2.0))
        click += 1
    samples = samples + clicks + 1e-3 * rng.standard_normal(n)
    params = {"motions": len(onsets), "motion_onsets_s": onsets, "motions_per_s": round(motions_per_s, 3),
              "whine_hz": [round(whine_hz[0], 1), round(whine_hz[1], 1)], "click_rate_hz": round(click_rate_hz, 2),
              "clicks": click}
    return unit_rms(samples), params


def robot_ego_noise(rng: np.random.Generator, seconds: float, fs: int = SAMPLE_RATE,
                    fan_to_servo_db: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """A robot head moving while its fan runs: fan + servo models, ``fan_to_servo_db`` dB apart (-12..0)."""
    fan, fan_params = fan_ego_noise(rng, seconds, fs)
    servo, servo_params = servo_ego_noise(rng, seconds, fs)
    ratio = float(rng.uniform(-12.0, 0.0)) if fan_to_servo_db is None else float(fan_to_servo_db)
    samples = 10 ** (ratio / 20.0) * fan + servo
    return unit_rms(samples), {"fan": fan_params, "servo": servo_params, "fan_to_servo_db": round(ratio, 2)}
