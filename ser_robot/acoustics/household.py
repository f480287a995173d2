"""Household acoustic events: synthesised knocks, beeps, ring tones, dish clatter, and recorded sounds.

Lakomkin et al. (seed 004) played door knocks, phone ring tones, an air conditioner and TV
babble around the iCub. No such recordings can be downloaded here, so events are either
synthesised (physically motivated, parameters drawn from an rng) or taken from Debian's
``sound-theme-freedesktop`` (real recorded event sounds, Ogg Vorbis, resampled to 16 kHz):

- :func:`door_knock`: 2-4 knuckle impacts 0.12-0.3 s apart, each the damped low modes of a
  wooden panel (80-400 Hz, 15-60 ms decay) plus a brief bright contact click.
- :func:`alarm_beeps`: a kitchen timer / smoke alarm: a 2-4 kHz square-ish tone gated on/off.
- :func:`ring_tone`: a telephone ring, either a two-tone cadence (e.g. 400 + 450 Hz) or an
  electronic melody of harmonic notes.
- :func:`dish_clatter`: clusters of ceramic/metal impacts (damped high modes 1-8 kHz).
- :func:`recorded_event`: one of :data:`RECORDED_EVENTS` from the freedesktop theme.
- :func:`place_events`: events placed sparsely (Poisson onsets, 0.5 s minimum gap) over a
  quiet pink-noise floor (-45 dB relative to the events' RMS) so they stand out as in a home.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ser_robot.acoustics._dsp import (
    SAMPLE_RATE,
    add_at,
    coloured_noise,
    damped_modes,
    fade,
    n_samples,
    resample,
    tone,
    unit_rms,
)

__all__ = [
    "FREEDESKTOP_SOUNDS",
    "RECORDED_EVENTS",
    "alarm_beeps",
    "dish_clatter",
    "door_knock",
    "load_recorded_event",
    "place_events",
    "recorded_event",
    "recorded_household",
    "ring_tone",
    "synthetic_household",
]

FREEDESKTOP_SOUNDS = pathlib.Path("/usr/share/sounds/freedesktop/stereo")
"""Where Debian's ``sound-theme-freedesktop`` installs its event sounds."""

RECORDED_EVENTS: tuple[str, ...] = (
    "alarm-clock-elapsed", "bell", "complete", "message", "message-new-instant", "phone-incoming-call",
    "phone-outgoing-calling", "phone-outgoing-busy", "dialog-warning", "dialog-error", "window-attention",
    "camera-shutter", "trash-empty", "service-login", "device-added", "power-plug", "suspend-error")
"""Freedesktop sounds used as household events (the ``audio-channel-*`` speech clips and test signals are left out)."""


def door_knock(rng: np.random.Generator, fs: int = SAMPLE_RATE) -> np.ndarray:
    """2-4 knocks on a wooden door, unit peak, shape ``(n,)``."""
    knocks = int(rng.integers(2, 5))
    gap = rng.uniform(0.12, 0.3)
    modes = rng.uniform(80, 400, size=4)
    out = np.zeros(n_samples(knocks * gap + 0.3, fs))
    for k in range(knocks):
        body = damped_modes(modes * rng.uniform(0.97, 1.03, size=4), rng.uniform(0.015, 0.06, size=4),
                            rng.uniform(0.4, 1.0, size=4), 0.25, fs, rng.uniform(0, 2 * np.pi, size=4))
        click = damped_modes(rng.uniform(1000, 2500, size=2), np.full(2, 0.003), np.full(2, 0.5), 0.02, fs)
        start = int((k * gap + rng.uniform(-0.01, 0.01) + 0.01) * fs)
        gain = rng.uniform(0.7, 1.0)
        add_at(out, body, start, gain)
        add_at(out, click, start, gain)
    return out / np.max(np.abs(out))


def alarm_beeps(rng: np.random.Generator, fs: int = SAMPLE_RATE) -> np.ndarray:
    """A beeping alarm (2-4 kHz, 3-10 beeps of 0.08-0.25 s), unit peak, shape ``(n,)``."""
    freq = rng.uniform(2000, 4000)
    on, off = rng.uniform(0.08, 0.25), rng.uniform(0.06, 0.25)
    beeps = int(rng.integers(3, 11))
    n_on = n_samples(on, fs)
    beep = fade(np.tanh(3.0 * tone(freq, n_on, fs)), fs, 0.003)  # soft-clipped sine: odd harmonics like a piezo
    out = np.zeros(n_samples(beeps * (on + off), fs))
    for k in range(beeps):
        add_at(out, beep, int(k * (on + off) * fs))
    return out / np.max(np.abs(out))


def ring_tone(rng: np.random.Generator, fs: int = SAMPLE_RATE) -> np.ndarray:
    """A telephone ringing: two-tone cadence or a melody, unit peak, shape ``(n,)``."""
    if rng.random() < 0.5:
        low = rng.choice([400.0, 425.0, 440.0])
        pair = np.array([low, low + rng.choice([0.0, 25.0, 40.0, 50.0])])
        burst = n_samples(0.4, fs)
        segment = fade(sum(tone(f, burst, fs) for f in pair), fs, 0.01)
        pattern = [0.0, 0.6] if rng.random() < 0.5 else [0.0]
        out = np.zeros(n_samples(2 * 3.0, fs))
        for cycle in range(2):
            for offset in pattern:
                add_at(out, segment, int((cycle * 3.0 + offset) * fs))
        return out / np.max(np.abs(out))
    root = rng.uniform(500, 900)
    steps = rng.choice([0, 2, 4, 5, 7, 9, 12], size=int(rng.integers(4, 9)))
    note_s = rng.uniform(0.1, 0.2)
    out = np.zeros(n_samples(2 * len(steps) * note_s + 0.5, fs))
    n_note = n_samples(note_s, fs)
    envelope = np.exp(-np.arange(n_note) / fs / (note_s / 2.5))
    for repeat in range(2):
        for k, step in enumerate(steps):
            f = root * 2 ** (step / 12)
            note = sum(0.6 ** h * tone(h * f, n_note, fs) for h in range(1, 4)) * envelope
            add_at(out, fade(note, fs, 0.003), int(((repeat * len(steps) + k) * note_s + repeat * 0.2) * fs))
    return out / np.max(np.abs(out))


def dish_clatter(rng: np.random.Generator, fs: int = SAMPLE_RATE) -> np.ndarray:
    """A cluster of 1-6 ceramic/metal impacts within about 1 s, unit peak, shape ``(n,)``."""
    hits = int(rng.integers(1, 7))
    out = np.zeros(n_samples(1.5, fs))
    for _ in range(hits):
        modes = rng.uniform(1000, 8000, size=5)
        hit = damped_modes(modes, rng.uniform(0.03, 0.3, size=5), rng.uniform(0.2, 1.0, size=5), 0.4, fs,
                           rng.uniform(0, 2 * np.pi, size=5))
        add_at(out, hit, int(rng.uniform(0.0, 1.0) * fs), rng.uniform(0.3, 1.0))
    return out / np.max(np.abs(out))


@functools.lru_cache(maxsize=64)
def load_recorded_event(name: str, fs: int = SAMPLE_RATE) -> np.ndarray:
    """The freedesktop sound ``name`` (see :data:`RECORDED_EVENTS`) as mono at ``fs`` Hz, unit peak, ``(n,)``.

    Raises :class:`~ser_robot.acoustics.noise.AcousticsError` if the theme is not installed.
    """
    import soundfile

    from ser_robot.errors import AcousticsError

    path = FREEDESKTOP_SOUNDS / f"{name}.oga"
    if not path.is_file():
        raise AcousticsError(f"recorded event sound {path} not found: install Debian's sound-theme-freedesktop "
                             "(make setup), or leave the household_recorded category out") from None
    audio, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    mono = resample(audio.mean(axis=1), int(rate), fs)
    mono.setflags(write=False)
    return mono / np.max(np.abs(mono))


def recorded_event(rng: np.random.Generator, fs: int = SAMPLE_RATE) -> tuple[np.ndarray, str]:
    """A random recorded freedesktop event sound (unit peak) and its name."""
    name = str(rng.choice(RECORDED_EVENTS))
    return load_recorded_event(name, fs), name


def place_events(rng: np.random.Generator, seconds: float, make_event: Callable[[np.random.Generator], tuple[np.ndarray, str]],
                 events_per_s: float, fs: int = SAMPLE_RATE, floor_db: float = -45.0, min_gap_s: float = 0.5,
                 ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Events from ``make_event(rng) -> (event, name)`` at Poisson onsets over a quiet floor.

    ``events_per_s``: mean onset rate (1/s); at least one event per clip. Each event's gain is drawn
    in -6..0 dB. The floor is pink noise ``floor_db`` dB below the events' RMS (``-inf``: silence).
    Returns ``(samples (n,), [{"name", "onset_s", "gain_db"}, ...])``.
    """
    n = n_samples(seconds, fs)
    out = np.zeros(n)
    placed: list[dict[str, Any]] = []
    t = float(rng.uniform(0.0, min(seconds * 0.5, 1.0 / max(events_per_s, 1e-6))))
    while t < seconds:
        event, name = make_event(rng)
        gain_db = float(rng.uniform(-6.0, 0.0))
        add_at(out, event, int(t * fs), 10 ** (gain_db / 20.0))
        placed.append({"name": name, "onset_s": round(t, 3), "gain_db": round(gain_db, 2)})
        t += len(event) / fs + min_gap_s + rng.exponential(1.0 / events_per_s)
    if np.isfinite(floor_db):
        level = np.sqrt(np.mean(out ** 2))
        out += coloured_noise(rng, n, 1.0, fs) * level * 10 ** (floor_db / 20.0)
    return out, placed


_SYNTHETIC = {"door_knock": door_knock, "alarm_beeps": alarm_beeps, "ring_tone": ring_tone, "dish_clatter": dish_clatter}


def synthetic_household(rng: np.random.Generator, seconds: float, fs: int = SAMPLE_RATE,
                        events_per_s: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Synthesised knocks, alarms, ring tones and dish clatter placed sparsely: ``(samples, parameters)``."""
    rate = float(rng.uniform(0.15, 0.4)) if events_per_s is None else float(events_per_s)

    def make(r: np.random.Generator) -> tuple[np.ndarray, str]:
        name = str(r.choice(sorted(_SYNTHETIC)))
        return _SYNTHETIC[name](r, fs), name

    samples, events = place_events(rng, seconds, make, rate, fs)
    return unit_rms(samples), {"events_per_s": round(rate, 3), "events": events}


def recorded_household(rng: np.random.Generator, seconds: float, fs: int = SAMPLE_RATE,
                       events_per_s: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Recorded freedesktop event sounds placed sparsely: ``(samples, parameters)``."""
    rate = float(rng.uniform(0.15, 0.4)) if events_per_s is None else float(events_per_s)
    samples, events = place_events(rng, seconds, lambda r: recorded_event(r, fs), rate, fs)
    return unit_rms(samples), {"events_per_s": round(rate, 3), "events": events,
                               "source": "Debian sound-theme-freedesktop"}


