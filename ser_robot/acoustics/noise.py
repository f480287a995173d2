"""Noise categories for augmentation and noisy testing: generators and their registry.

No noise corpus can be downloaded (DESIGN.md section 5), so every category is synthesised or
assembled from what Debian ships. Each category is a function ``(rng, seconds, speech) ->
(samples, parameters)``; :func:`generate_noise` runs one and normalises the clip:

- 16 kHz mono float32, deterministic from the ``numpy.random.Generator`` given;
- RMS :data:`CLIP_RMS_DBFS` dBFS (-30 dBFS, 0.0316 linear), unless the clip's crest factor
  would then exceed the peak limit :data:`PEAK_LIMIT` (0.99): such clips (sparse events) are
  scaled down to that peak instead, and their RMS is recorded. No clip ever clips.

Categories (:data:`CATEGORIES`, family in brackets):

- [coloured] ``white``, ``pink`` (-3 dB/octave), ``brown`` (-6 dB/octave), ``blue`` (+3 dB/octave):
  spectral shaping of Gaussian noise, 20 Hz high-pass.
- [machine] ``hvac_hum``: air-handling rumble (brown noise low-passed at 300-900 Hz), a large
  fan's blade-pass tone (40-180 Hz), mains hum at 50 Hz and harmonics (100 Hz strongest:
  transformer magnetostriction). ``computer_fan``: projector / PC fan as in the iCub lab of
  Lakomkin et al.: broadband band-passed noise, blade-pass tone rpm/60 x blades (150-600 Hz)
  and harmonics, power-supply hum (50/100 Hz).
- [ego] ``ego_fan``, ``ego_servo``, ``ego_robot``: :mod:`ser_robot.acoustics.ego_noise`.
- [babble] ``babble``: 4-8 synthetic-corpus talkers overlapped, never a speaker in
  ``exclude_speakers`` (pass the test fold's speakers).
- [household] ``household_synth`` (knocks, alarms, ring tones, dish clatter, synthesised) and
  ``household_recorded`` (freedesktop recordings): :mod:`ser_robot.acoustics.household`.
- [scene] ``kitchen_standin``, ``park_standin``, ``station_standin``, ``traffic_standin``,
  ``cafeteria_standin``: STAND-INS for the five DEMAND scenes Latif et al. (seed 000) mixed at
  SNR 0/10/20 dB. They are assembled from the parts above plus simple sources (birds, wind,
  passing vehicles); they are NOT DEMAND recordings and results on them must say so.

Categories that need speech (``babble``, ``station_standin``, ``cafeteria_standin``) need a
speech manifest; see :func:`speech_pool`.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_robot.acoustics import ego_noise, household
from ser_robot.acoustics._dsp import (
    SAMPLE_RATE,
    add_at,
    bandpass,
    coloured_noise,
    damped_modes,
    fade,
    lowpass,
    n_samples,
    resample,
    rms,
    simple_reverb,
    slow_drift,
    tone,
    unit_rms,
)
from ser_robot.data.manifest import Utterance
from ser_robot.errors import AcousticsError

__all__ = [
    "CATEGORIES",
    "CLIP_RMS_DBFS",
    "COLOUR_EXPONENTS",
    "PEAK_LIMIT",
    "SAMPLE_RATE",
    "SCENE_STANDINS",
    "AcousticsError",
    "NoiseCategory",
    "NoiseClip",
    "babble",
    "category_rng",
    "coloured",
    "fan_noise",
    "generate_noise",
    "hvac_hum",
    "speech_pool",
]

CLIP_RMS_DBFS = -30.0
"""RMS level of every generated clip, dB relative to full scale (unless peak-limited)."""

PEAK_LIMIT = 0.99
"""Largest absolute sample value of a generated clip (linear, full scale 1)."""

COLOUR_EXPONENTS: dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0}
"""Power spectral density exponent per colour: PSD ~ f ** -exponent (3 dB/octave per unit)."""

Speech = Sequence[Utterance]


@dataclass(frozen=True)
class NoiseClip:
    """One generated clip: ``samples`` (n,) float32 at 16 kHz and the parameters that made it (JSON-able)."""

    samples: np.ndarray
    params: dict[str, Any]


Generator = Callable[[np.random.Generator, float, "Speech | None"], tuple[np.ndarray, dict[str, Any]]]


@dataclass(frozen=True)
class NoiseCategory:
    """A named noise category: its family, a one-line description and its generator."""

    name: str
    family: str
    description: str
    generate: Generator
    needs_speech: bool = False


# -- coloured and machine noise ------------------------------------------------------------------

def coloured(rng: np.random.Generator, seconds: float, colour: str, fs: int = SAMPLE_RATE) -> np.ndarray:
    """Coloured Gaussian noise (``colour`` in :data:`COLOUR_EXPONENTS`), unit RMS, shape ``(n,)``."""
    if colour not in COLOUR_EXPONENTS:
        raise AcousticsError(f"unknown noise colour {colour!r}; known colours are {sorted(COLOUR_EXPONENTS)}")
    return coloured_noise(rng, n_samples(seconds, fs), COLOUR_EXPONENTS[colour], fs)


def _mains(n: int, fs: int, rng: np.random.Generator, mains_hz: float, amps: Sequence[float]) -> np.ndarray:
    return sum(a * tone(k * mains_hz * (1 + slow_drift(rng, n, fs, 5.0, 2e-4)), n, fs, rng.uniform(0, 2 * np.pi))
               for k, a in enumerate(amps, start=1))


def fan_noise(rng: np.random.Generator, seconds: float, fs: int = SAMPLE_RATE, rpm: float | None = None,
              blades: int | None = None, tonal_db: float | None = None, hum_db: float | None = None,
              mains_hz: float = 50.0) -> tuple[np.ndarray, dict[str, Any]]:
    """A computer or projector fan: ``(samples (n,), parameters)``, unit RMS.

    Blade-pass frequency ``rpm / 60 * blades`` Hz (rpm drawn in 1500-3600, blades 7-9 when
    ``None``) and harmonics 2, 3 at -6/-12 dB, ``tonal_db`` dB (3-12) above broadband noise
    (pink, band-passed 100-6000 Hz); power-supply hum at ``mains_hz`` and its 2nd harmonic,
    ``hum_db`` dB (-20..-8) relative to the broadband part. Speed drift 0.3 %.
    """
    rpm = float(rng.uniform(1500, 3600)) if rpm is None else float(rpm)
    blades = int(rng.integers(7, 10)) if blades is None else int(blades)
    tonal_db = float(rng.uniform(3.0, 12.0)) if tonal_db is None else float(tonal_db)
    hum_db = float(rng.uniform(-20.0, -8.0)) if hum_db is None else float(hum_db)
    n = n_samples(seconds, fs)
    bpf = rpm / 60.0 * blades * (1.0 + slow_drift(rng, n, fs, 4.0, 0.003))
    tonal = sum(0.5 ** (k - 1) * tone(k * bpf, n, fs, rng.uniform(0, 2 * np.pi)) for k in (1, 2, 3))
    broadband = unit_rms(bandpass(coloured_noise(rng, n, 1.0, fs), 100.0, 6000.0, fs))
    hum = unit_rms(_mains(n, fs, rng, mains_hz, (0.5, 1.0)))
    samples = broadband + 10 ** (tonal_db / 20) * unit_rms(tonal) + 10 ** (hum_db / 20) * hum
    params = {"rpm": round(rpm, 2), "blades": blades, "blade_pass_hz": round(rpm / 60.0 * blades, 2),
              "tonal_db": round(tonal_db, 2), "hum_db": round(hum_db, 2), "mains_hz": mains_hz}
    return unit_rms(samples), params


def hvac_hum(rng: np.random.Generator, seconds: float, fs: int = SAMPLE_RATE, mains_hz: float = 50.0,
             ) -> tuple[np.ndarray, dict[str, Any]]:
    """Air conditioning / ventilation: ``(samples (n,), parameters)``, unit RMS.

    Airflow rumble (brown noise low-passed at 300-900 Hz, slowly fluctuating by ~1 dB), a large
    fan's blade-pass tone (rpm 600-1200, 4-9 blades: 40-180 Hz) and mains hum at ``mains_hz``
    (50 Hz) with harmonics 100 Hz (strongest) and 150 Hz, -18..-6 dB relative to the rumble.
    """
    n = n_samples(seconds, fs)
    cutoff = float(rng.uniform(300, 900))
    rumble = unit_rms(lowpass(coloured_noise(rng, n, 2.0, fs), cutoff, fs, 2))
    rumble *= 1.0 + slow_drift(rng, n, fs, 2.0, 0.1)
    rpm, blades = float(rng.uniform(600, 1200)), int(rng.integers(4, 10))
    bpf = rpm / 60 * blades * (1.0 + slow_drift(rng, n, fs, 6.0, 0.002))
    fan = unit_rms(tone(bpf, n, fs) + 0.4 * tone(2 * bpf, n, fs))
    hum = unit_rms(_mains(n, fs, rng, mains_hz, (0.4, 1.0, 0.25)))
    fan_db, hum_db = float(rng.uniform(-15, -5)), float(rng.uniform(-18, -6))
    samples = rumble + 10 ** (fan_db / 20) * fan + 10 ** (hum_db / 20) * hum
    params = {"rumble_cutoff_hz": round(cutoff, 1), "fan_rpm": round(rpm, 1), "fan_blades": blades,
              "blade_pass_hz": round(rpm / 60 * blades, 2), "fan_db": round(fan_db, 2), "hum_db": round(hum_db, 2),
              "mains_hz": mains_hz}
    return unit_rms(samples), params


# -- babble --------------------------------------------------------------------------------------

def speech_pool(utterances: Speech, exclude_speakers: Sequence[str] = ()) -> list[Utterance]:
    """The utterances whose speaker is not in ``exclude_speakers``, sorted by id (for determinism).

    Raises :class:`AcousticsError` when none is left.
    """
    excluded = set(exclude_speakers)
    pool = sorted((u for u in utterances if u.speaker not in excluded), key=lambda u: u.id)
    if not pool:
        speakers = sorted({u.speaker for u in utterances})
        raise AcousticsError(f"no speech left for babble: the manifest's speakers {speakers} are all in "
                             f"exclude_speakers {sorted(excluded)}; use a manifest with other speakers")
    return pool


@functools.lru_cache(maxsize=256)
def _read_speech(path: str, fs: int) -> np.ndarray:
    import soundfile

    try:
        audio, rate = soundfile.read(path, dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AcousticsError(f"cannot read speech file {path} for babble: {error}") from None
    mono = resample(audio.mean(axis=1), int(rate), fs)
    mono.setflags(write=False)
    return mono


def babble(rng: np.random.Generator, seconds: float, speech: Speech, talkers: int = 6, fs: int = SAMPLE_RATE,
           ) -> tuple[np.ndarray, dict[str, Any]]:
    """``talkers`` talkers from ``speech`` (already filtered: :func:`speech_pool`) overlapped: ``(samples, parameters)``.

    Each talker is one speaker (distinct while the pool has enough speakers) saying random
    utterances back to back with 0.1-0.6 s pauses, entering at a random point of its first
    utterance; talkers are summed at equal RMS +-3 dB. Parameters list the speakers and
    utterance ids used.
    """
    if talkers < 1:
        raise AcousticsError(f"babble needs at least 1 talker, got {talkers}")
    n = n_samples(seconds, fs)
    by_speaker: dict[str, list[Utterance]] = {}
    for utterance in speech:
        by_speaker.setdefault(utterance.speaker, []).append(utterance)
    speakers = sorted(by_speaker)
    chosen = list(rng.choice(speakers, size=talkers, replace=talkers > len(speakers)))
    out = np.zeros(n)
    used: list[str] = []
    for speaker in chosen:
        stream = np.zeros(n)
        position = -1
        while position < n:
            utterance = by_speaker[speaker][int(rng.integers(len(by_speaker[speaker])))]
            audio = _read_speech(utterance.path, fs)
            if position < 0:
                position = -int(rng.integers(0, max(1, len(audio) // 2)))
            add_at(stream, audio, position)
            used.append(utterance.id)
            position += len(audio) + n_samples(rng.uniform(0.1, 0.6), fs)
        out += unit_rms(stream) * 10 ** (rng.uniform(-3, 3) / 20)
    return unit_rms(out), {"talkers": talkers, "speakers": sorted(set(map(str, chosen))), "utterances": used}


# -- scene stand-ins -----------------------------------------------------------------------------

def _events(rng: np.random.Generator, seconds: float, make: Callable[[np.random.Generator], np.ndarray],
            per_s: float, fs: int, name: str) -> np.ndarray:
    samples, _ = household.place_events(rng, seconds, lambda r: (make(r), name), per_s, fs, floor_db=-np.inf,
                                        min_gap_s=0.1)
    return unit_rms(samples)


def _mix(parts: dict[str, tuple[np.ndarray, float]]) -> tuple[np.ndarray, dict[str, float]]:
    """Sum unit-RMS parts at their levels (dB); return the mix and the levels for the parameters."""
    total = sum(unit_rms(x) * 10 ** (db / 20) for x, db in parts.values())
    return unit_rms(total), {name: round(db, 2) for name, (_, db) in parts.items()}


def _running_water(rng: np.random.Generator, seconds: float, fs: int) -> np.ndarray:
    n = n_samples(seconds, fs)
    water = bandpass(rng.standard_normal(n), 800.0, 7000.0, fs) * np.exp(slow_drift(rng, n, fs, 0.05, 0.5))
    gate = np.zeros(n)
    start = rng.uniform(0, seconds * 0.5)
    length = rng.uniform(seconds * 0.3, seconds)
    gate[int(start * fs):int(min(seconds, start + length) * fs)] = 1.0
    return water * lowpass(gate, 5.0, fs, 2)


def _bird_chirp(rng: np.random.Generator, fs: int) -> np.ndarray:
    out = np.zeros(n_samples(1.2, fs))
    f0, f1 = rng.uniform(2500, 7000), rng.uniform(2000, 7000)
    for k in range(int(rng.integers(2, 8))):
        length = n_samples(rng.uniform(0.04, 0.12), fs)
        sweep = np.linspace(f0, f1, length)
        chirp = tone(sweep, length, fs) * np.hanning(length)
        add_at(out, chirp + 0.2 * tone(2 * sweep, length, fs) * np.hanning(length), int(k * 0.15 * fs))
    return out


def _wind(rng: np.random.Generator, seconds: float, fs: int) -> np.ndarray:
    n = n_samples(seconds, fs)
    gusts = np.exp(slow_drift(rng, n, fs, 1.5, 0.6))
    return lowpass(coloured_noise(rng, n, 2.0, fs), rng.uniform(200, 600), fs, 2) * gusts


def _passing_vehicle(rng: np.random.Generator, fs: int) -> np.ndarray:
    """One vehicle passing at ``v`` m/s, ``d`` m from the listener: engine harmonics with Doppler + tyre noise."""
    speed, distance = rng.uniform(8, 20), rng.uniform(3, 15)
    duration = rng.uniform(4, 8)
    n = n_samples(duration, fs)
    t = np.arange(n) / fs - duration / 2
    x = speed * t
    r = np.sqrt(x ** 2 + distance ** 2)
    radial = speed * x / r  # m/s, positive when moving away
    doppler = 343.0 / (343.0 + radial)
    engine_hz = rng.uniform(25, 60)
    engine = sum(0.7 ** k * tone(k * engine_hz * doppler, n, fs, rng.uniform(0, 6.3)) for k in range(1, 7))
    tyres = bandpass(rng.standard_normal(n), 400.0, 2500.0, fs)
    return (unit_rms(engine) + 1.5 * unit_rms(tyres)) * distance / r


def _horn(rng: np.random.Generator, fs: int) -> np.ndarray:
    length = n_samples(rng.uniform(0.3, 1.0), fs)
    f = rng.uniform(350, 500)
    return fade(np.tanh(2 * (tone(f, length, fs) + tone(f * 1.26, length, fs))), fs, 0.02)


def _chime(rng: np.random.Generator, fs: int) -> np.ndarray:
    """A public-address ding-dong: two or three bell notes."""
    notes = rng.uniform(500, 900) * np.array([1.0, 0.8, 0.667])[: int(rng.integers(2, 4))]
    out = np.zeros(n_samples(0.7 * len(notes) + 1.5, fs))
    for k, f in enumerate(notes):
        add_at(out, _bell(f, fs), int(k * 0.7 * fs))
    return out


def _bell(freq_hz: float, fs: int) -> np.ndarray:
    """A struck bell note at ``freq_hz`` Hz (inharmonic partials, up to 0.8 s decay); shape ``(n,)``."""
    ratios = np.array([1.0, 2.0, 2.76, 5.4])
    return damped_modes(freq_hz * ratios, np.array([0.8, 0.5, 0.3, 0.15]), np.array([1.0, 0.5, 0.3, 0.15]), 2.0, fs)


def _rumble(rng: np.random.Generator, seconds: float, fs: int) -> np.ndarray:
    n = n_samples(seconds, fs)
    swell = np.clip(1.0 + slow_drift(rng, n, fs, 3.0, 0.7), 0.1, None)
    return lowpass(coloured_noise(rng, n, 2.0, fs), rng.uniform(100, 250), fs, 2) * swell


def kitchen_standin(rng: np.random.Generator, seconds: float, speech: Speech | None, fs: int = SAMPLE_RATE,
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """Stand-in for DEMAND DKITCHEN: fridge/extractor hum, dish clatter, running water, a timer beep."""
    hum, _ = hvac_hum(rng, seconds, fs)
    parts = {"hum": (hum, rng.uniform(-6, 0)),
             "dishes": (_events(rng, seconds, lambda r: household.dish_clatter(r, fs), 0.4, fs, "dishes"), 0.0),
             "water": (_running_water(rng, seconds, fs), rng.uniform(-6, 0)),
             "beeps": (_events(rng, seconds, lambda r: household.alarm_beeps(r, fs), 0.05, fs, "beeps"),
                       rng.uniform(-12, -6))}
    samples, levels = _mix(parts)
    return samples, {"levels_db": levels, "standin_for": "DEMAND DKITCHEN"}


def park_standin(rng: np.random.Generator, seconds: float, speech: Speech | None, fs: int = SAMPLE_RATE,
                 ) -> tuple[np.ndarray, dict[str, Any]]:
    """Stand-in for DEMAND PPARK: gusty wind, bird chirps, distant traffic rumble."""
    parts = {"wind": (_wind(rng, seconds, fs), 0.0),
             "birds": (_events(rng, seconds, lambda r: _bird_chirp(r, fs), 0.8, fs, "birds"), rng.uniform(-10, -3)),
             "distant_traffic": (_rumble(rng, seconds, fs), rng.uniform(-10, -4))}
    samples, levels = _mix(parts)
    return samples, {"levels_db": levels, "standin_for": "DEMAND PPARK"}


def station_standin(rng: np.random.Generator, seconds: float, speech: Speech | None, fs: int = SAMPLE_RATE,
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """Stand-in for DEMAND PSTATION: reverberant crowd babble (10 talkers), train rumble, PA chime, brake squeal."""
    crowd, babble_params = babble(rng, seconds, _need_speech(speech, "station_standin"), talkers=10, fs=fs)
    crowd = simple_reverb(crowd, rng, rt60_s=1.8, fs=fs, wet=0.7)
    n = n_samples(seconds, fs)
    squeal = np.zeros(n)
    if rng.random() < 0.5:
        length = n_samples(rng.uniform(0.5, 2.0), fs)
        f = rng.uniform(2500, 5000) * (1 + 0.01 * tone(6.0, length, fs))
        add_at(squeal, fade(tone(f, length, fs), fs, 0.2), int(rng.uniform(0, max(0.0, seconds - 1)) * fs))
    parts = {"crowd": (crowd, 0.0), "rumble": (_rumble(rng, seconds, fs), rng.uniform(-6, 0)),
             "chime": (_events(rng, seconds, lambda r: _chime(r, fs), 0.05, fs, "chime"), rng.uniform(-8, -2))}
    if squeal.any():
        parts["squeal"] = (squeal, rng.uniform(-12, -6))
    samples, levels = _mix(parts)
    return samples, {"levels_db": levels, "babble": babble_params, "standin_for": "DEMAND PSTATION"}


def traffic_standin(rng: np.random.Generator, seconds: float, speech: Speech | None, fs: int = SAMPLE_RATE,
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """Stand-in for DEMAND STRAFFIC: brown-noise road roar, passing vehicles with Doppler, an occasional horn."""
    n = n_samples(seconds, fs)
    roar = lowpass(coloured_noise(rng, n, 2.0, fs), 1200.0, fs, 2)
    vehicles, placed = household.place_events(rng, seconds, lambda r: (_passing_vehicle(r, fs), "vehicle"),
                                              0.4, fs, floor_db=-np.inf, min_gap_s=-2.0)
    parts = {"roar": (roar, 0.0), "vehicles": (vehicles, rng.uniform(0, 6)),
             "horn": (_events(rng, seconds, lambda r: _horn(r, fs), 0.03, fs, "horn"), rng.uniform(-10, -4))}
    samples, levels = _mix(parts)
    return samples, {"levels_db": levels, "vehicles": len(placed), "standin_for": "DEMAND STRAFFIC"}


def cafeteria_standin(rng: np.random.Generator, seconds: float, speech: Speech | None, fs: int = SAMPLE_RATE,
                      ) -> tuple[np.ndarray, dict[str, Any]]:
    """Stand-in for DEMAND PCAFETER: babble (8 talkers, some reverberation), dish clatter, HVAC."""
    crowd, babble_params = babble(rng, seconds, _need_speech(speech, "cafeteria_standin"), talkers=8, fs=fs)
    crowd = simple_reverb(crowd, rng, rt60_s=0.8, fs=fs, wet=0.4)
    hum, _ = hvac_hum(rng, seconds, fs)
    parts = {"crowd": (crowd, 0.0),
             "dishes": (_events(rng, seconds, lambda r: household.dish_clatter(r, fs), 0.5, fs, "dishes"),
                        rng.uniform(-6, 0)),
             "hvac": (hum, rng.uniform(-12, -6))}
    samples, levels = _mix(parts)
    return samples, {"levels_db": levels, "babble": babble_params, "standin_for": "DEMAND PCAFETER"}


def _need_speech(speech: Speech | None, category: str) -> Speech:
    if not speech:
        raise AcousticsError(f"noise category {category!r} mixes babble and needs speech: pass speech_manifest "
                             "(e.g. out/synth/manifest.jsonl) or leave the category out")
    return speech


# -- registry ------------------------------------------------------------------------------------

def _colour_generator(colour: str) -> Generator:
    def generate(rng: np.random.Generator, seconds: float, speech: Speech | None) -> tuple[np.ndarray, dict[str, Any]]:
        return coloured(rng, seconds, colour), {"colour": colour, "psd_exponent": COLOUR_EXPONENTS[colour],
                                                "highpass_hz": 20.0}
    return generate


def _no_speech(function: Callable[..., tuple[np.ndarray, dict[str, Any]]]) -> Generator:
    return lambda rng, seconds, speech: function(rng, seconds)


def _babble_category(rng: np.random.Generator, seconds: float, speech: Speech | None) -> tuple[np.ndarray, dict[str, Any]]:
    return babble(rng, seconds, _need_speech(speech, "babble"), talkers=int(rng.integers(4, 9)))


_ALL = [
    NoiseCategory("white", "coloured", "white Gaussian noise (flat PSD)", _colour_generator("white")),
    NoiseCategory("pink", "coloured", "pink noise, -3 dB/octave", _colour_generator("pink")),
    NoiseCategory("brown", "coloured", "brown noise, -6 dB/octave", _colour_generator("brown")),
    NoiseCategory("blue", "coloured", "blue noise, +3 dB/octave", _colour_generator("blue")),
    NoiseCategory("hvac_hum", "machine", "ventilation rumble, large-fan tone, 50/100/150 Hz mains hum", _no_speech(hvac_hum)),
    NoiseCategory("computer_fan", "machine", "computer/projector fan: blade-pass tones, broadband, PSU hum",
                  _no_speech(fan_noise)),
    NoiseCategory("ego_fan", "ego", "robot cooling fan, blade-pass tones with slow speed drift",
                  _no_speech(ego_noise.fan_ego_noise)),
    NoiseCategory("ego_servo", "ego", "robot joint servos: speed-following whine bursts, gear noise and clicks",
                  _no_speech(ego_noise.servo_ego_noise)),
    NoiseCategory("ego_robot", "ego", "robot fan plus joint servos", _no_speech(ego_noise.robot_ego_noise)),
    NoiseCategory("babble", "babble", "4-8 overlapped synthetic-corpus talkers (excluded speakers never used)",
                  _babble_category, needs_speech=True),
    NoiseCategory("household_synth", "household", "synthesised knocks, alarm beeps, ring tones, dish clatter",
                  _no_speech(household.synthetic_household)),
    NoiseCategory("household_recorded", "household", "recorded freedesktop event sounds (alarm clock, bell, phone...)",
                  _no_speech(household.recorded_household)),
    NoiseCategory("kitchen_standin", "scene", "STAND-IN for DEMAND kitchen (not DEMAND)", kitchen_standin),
    NoiseCategory("park_standin", "scene", "STAND-IN for DEMAND park (not DEMAND)", park_standin),
    NoiseCategory("station_standin", "scene", "STAND-IN for DEMAND station (not DEMAND)", station_standin,
                  needs_speech=True),
    NoiseCategory("traffic_standin", "scene", "STAND-IN for DEMAND traffic (not DEMAND)", traffic_standin),
    NoiseCategory("cafeteria_standin", "scene", "STAND-IN for DEMAND cafeteria (not DEMAND)", cafeteria_standin,
                  needs_speech=True),
]

CATEGORIES: dict[str, NoiseCategory] = {category.name: category for category in _ALL}
"""Every noise category by name, in a stable order."""

SCENE_STANDINS: tuple[str, ...] = tuple(name for name, c in CATEGORIES.items() if c.family == "scene")
"""The five DEMAND stand-ins (Latif et al.'s kitchen, park, station, traffic, cafeteria)."""


def category_rng(seed: int, category: str, index: int) -> np.random.Generator:
    """The generator of clip ``index`` of ``category`` under ``seed``: independent of every other clip."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(category.encode()), int(index)]))


def generate_noise(category: str, rng: np.random.Generator, seconds: float, speech: Speech | None = None,
                   rms_dbfs: float = CLIP_RMS_DBFS, peak_limit: float = PEAK_LIMIT) -> NoiseClip:
    """One clip of ``category``: ``seconds`` s of 16 kHz mono float32 at ``rms_dbfs`` dBFS RMS.

    If that level would put a sample above ``peak_limit`` (linear), the clip is scaled to that
    peak instead (its RMS is then lower; ``params["rms_dbfs"]`` says what it is). ``speech``:
    utterances for babble, already filtered by :func:`speech_pool`.
    """
    if category not in CATEGORIES:
        raise AcousticsError(f"unknown noise category {category!r}; known categories are {list(CATEGORIES)}")
    if not seconds > 0:
        raise AcousticsError(f"noise clip length must be positive seconds, got {seconds!r}")
    samples, params = CATEGORIES[category].generate(rng, float(seconds), speech)
    samples = np.nan_to_num(np.asarray(samples, dtype=np.float64))
    level = rms(samples)
    gain = 10 ** (rms_dbfs / 20) / level if level > 0 else 0.0
    peak = float(np.max(np.abs(samples))) * gain
    peak_limited = peak > peak_limit
    if peak_limited:
        gain *= peak_limit / peak
    samples = (samples * gain).astype(np.float32)
    out_rms = rms(samples)
    params = dict(params, rms_dbfs=round(20 * np.log10(out_rms), 3) if out_rms > 0 else None,
                  peak=round(float(np.max(np.abs(samples))), 4), peak_limited=bool(peak_limited))
    return NoiseClip(samples, params)
