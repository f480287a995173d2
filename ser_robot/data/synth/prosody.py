"""Prosody rules for the four emotion classes, and per-utterance random draws from them.

The rules are the direction and rough size of the acoustic changes that the literature on
vocal emotion reports relative to neutral speech:

============  =========  ===========  ===========  =========  ============  =============  ==========
class         rate       F0 level     F0 range     intensity  spectral      F0 contour     pauses
                                                              tilt (>1 kHz)
============  =========  ===========  ===========  =========  ============  =============  ==========
angry (hot)   faster     much higher  much wider   higher     flatter       falling,       fewer,
                                                              (tense)       abrupt         shorter
happy         faster     much higher  much wider   higher     flatter       rising         shorter
neutral       --         --           --           --         --            declining      --
sad           slower     lower        narrower     lower      steeper       falling        more,
                                                              (lax/breathy)                longer
============  =========  ===========  ===========  =========  ============  =============  ==========

Sources:

- I. R. Murray, J. L. Arnott, "Toward the simulation of emotion in synthetic speech: a review
  of the literature on human vocal emotion", JASA 93(2):1097-1108, 1993 (Table I: rate, pitch
  average and range, intensity, voice quality, pitch changes: anger abrupt on stressed
  syllables, happiness smooth upward inflections, sadness downward inflections).
- R. Banse, K. R. Scherer, "Acoustic profiles in vocal emotion expression", J. Personality and
  Social Psychology 70(3):614-636, 1996 (hot anger and elation: F0 mean and energy up,
  high-frequency energy up; sadness: F0 and energy down, less high-frequency energy).
- P. N. Juslin, P. Laukka, "Communication of emotions in vocal expression and music
  performance: different channels, same code?", Psychological Bulletin 129(5):770-814, 2003
  (Table 7: anger and happiness fast, loud, high and variable F0, more high-frequency energy;
  happiness rising contours; sadness slow, soft, low and flat F0, falling contours, pauses).
- F. Burkhardt, W. F. Sendlmeier, "Verification of acoustical correlates of emotional speech
  using formant synthesis", ISCA Workshop on Speech and Emotion, 2000 (rate and F0 settings
  verified by listeners; sadness: slower, lower, narrower, breathy/lax phonation).
- C. Gobl, A. Ní Chasaide, "The role of voice quality in communicating emotion, mood and
  attitude", Speech Communication 40:189-212, 2003 (tense voice for anger and joy,
  lax/breathy voice for sadness: rendered here as spectral tilt and aspiration noise).
- M. Schröder, "Emotional speech synthesis: a review", Eurospeech 2001, and "Dimensional
  emotion representation as a basis for speech synthesis with non-extreme emotions", 2004
  (arousal is the dimension with the strongest prosodic correlates; emotions of weaker
  intensity are scaled-down versions of the full-blown profile: our ``intensity``).

Sizes are chosen inside the ranges those studies report, and every draw adds per-utterance
noise and a per-speaker expressiveness so that classes overlap (angry and happy differ mainly
in contour, tilt and loudness, as in real speech, and are the hardest pair). A class profile is
a deviation from neutral; an utterance of emotional intensity ``k`` gets ``k`` times it plus
noise, and arousal / valence ``k`` times the class centre plus noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ser_robot.data.manifest import EMOTIONS

__all__ = ["ProsodyProfile", "PROFILES", "NOISE", "CENTRES", "Prosody", "draw_prosody"]


@dataclass(frozen=True)
class ProsodyProfile:
    """Deviation of one class from neutral delivery (neutral = all zeros / ones).

    ``rate``: log2 of the speech-rate factor. ``pitch_st``: F0 level, semitones.
    ``range``: log2 of the F0-range factor. ``contour_st``: F0 change from the first to the last
    phrase, semitones, on top of the voice's own declination. ``level_db``: intensity, dB.
    ``tilt_db``: gain above 1 kHz (high shelf), dB. ``pause``: log2 of the pause-length factor.
    ``breath_db``: aspiration noise relative to the speech level, dB (-inf = none).
    """

    rate: float = 0.0
    pitch_st: float = 0.0
    range: float = 0.0
    contour_st: float = 0.0
    level_db: float = 0.0
    tilt_db: float = 0.0
    pause: float = 0.0
    breath_db: float = -60.0


PROFILES: dict[str, ProsodyProfile] = {
    "angry": ProsodyProfile(rate=0.12, pitch_st=3.0, range=0.55, contour_st=-1.5, level_db=6.0, tilt_db=5.0,
                            pause=-0.5),
    "happy": ProsodyProfile(rate=0.10, pitch_st=3.5, range=0.65, contour_st=2.5, level_db=3.0, tilt_db=2.5,
                            pause=-0.3),
    "neutral": ProsodyProfile(),
    "sad": ProsodyProfile(rate=-0.28, pitch_st=-2.0, range=-0.8, contour_st=-2.5, level_db=-5.0, tilt_db=-5.0,
                          pause=0.7, breath_db=-30.0),
}
"""Full-intensity class profiles (intensity ``k = 1``)."""

NOISE = ProsodyProfile(rate=0.09, pitch_st=1.5, range=0.3, contour_st=1.5, level_db=2.5, tilt_db=2.0, pause=0.3,
                       breath_db=4.0)
"""Standard deviation of the per-utterance Gaussian noise added to each field."""

CENTRES: dict[str, tuple[float, float]] = {
    "angry": (0.75, -0.6),
    "happy": (0.6, 0.7),
    "neutral": (0.0, 0.0),
    "sad": (-0.55, -0.6),
}
"""(arousal, valence) of each class at full intensity, on a -1..1 scale (circumplex positions)."""

INTENSITY_SD = 0.3
"""Standard deviation of the per-utterance emotional intensity ``k`` around 1 (clipped to 0.3..1.7)."""

AFFECT_SD = 0.12
"""Standard deviation of the noise on arousal and valence."""


@dataclass(frozen=True)
class Prosody:
    """The drawn delivery of one utterance, in physical units."""

    emotion: str
    intensity: float  # k
    rate: float  # speech-rate factor
    pitch_st: float  # F0 level shift, semitones
    range_factor: float  # F0 range factor
    contour_st: float  # F0 change across the sentence, semitones
    level_db: float  # intensity change, dB
    tilt_db: float  # gain above 1 kHz, dB
    pause_factor: float  # pause-length factor
    breath_db: float  # aspiration noise relative to speech, dB
    arousal: float  # -1..1
    valence: float  # -1..1

    def as_dict(self) -> dict[str, float | str]:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def draw_prosody(emotion: str, rng: np.random.Generator, expressiveness: float = 1.0) -> Prosody:
    """Draw one utterance's delivery of ``emotion``; ``expressiveness`` scales the speaker's intensity."""
    if emotion not in PROFILES:
        raise ValueError(f"unknown emotion {emotion!r}; the classes are {list(EMOTIONS)}")
    profile, noise = PROFILES[emotion], NOISE
    k = float(np.clip(expressiveness * (1 + INTENSITY_SD * rng.standard_normal()), 0.3, 1.7))

    def value(field: str) -> float:
        return k * getattr(profile, field) + getattr(noise, field) * rng.standard_normal()

    rate, pitch, span, contour, level, tilt, pause = (
        value(f) for f in ("rate", "pitch_st", "range", "contour_st", "level_db", "tilt_db", "pause"))
    breath = profile.breath_db + noise.breath_db * rng.standard_normal()
    arousal_centre, valence_centre = CENTRES[emotion]
    arousal = float(np.clip(k * arousal_centre + AFFECT_SD * rng.standard_normal(), -1, 1))
    valence = float(np.clip(k * valence_centre + AFFECT_SD * rng.standard_normal(), -1, 1))
    return Prosody(
        emotion=emotion, intensity=k, rate=float(np.clip(2**rate, 0.6, 1.6)), pitch_st=pitch,
        range_factor=float(np.clip(2**span, 0.25, 3.0)), contour_st=contour, level_db=level, tilt_db=tilt,
        pause_factor=float(np.clip(2**pause, 0.3, 3.0)), breath_db=breath, arousal=arousal, valence=valence,
    )
