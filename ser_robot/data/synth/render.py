"""One utterance of the synthetic corpus: phrasing, engine rendering and post-processing.

Everything an utterance is made of is drawn from a generator seeded by (corpus seed, voice,
sentence, class), so any utterance can be re-made alone, in any order, in any process.

Post-processing, after the engine (units: dBFS = dB relative to digital full scale):

1. active speech level set to ``REFERENCE_DBFS`` (RMS over frames within 30 dB of the loudest),
2. spectral tilt: RBJ high-shelf biquad at 1 kHz with the drawn gain (tense / lax voice),
3. aspiration noise (breathy voice): high-passed white noise following the speech envelope,
4. level: the class' intensity change plus a class-independent recording gain (distance to
   the microphone), ``RECORDING_GAIN_SD`` dB,
5. leading and trailing silence of 0.1-0.3 s and a microphone noise floor at ``NOISE_FLOOR_DBFS``,
6. a peak guard: if a peak would pass ``PEAK_LIMIT`` the whole utterance is scaled down, and
   the scaling is recorded (never clipped).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from ser_robot.data.manifest import EMOTIONS
from ser_robot.data.synth.prosody import Prosody, draw_prosody
from ser_robot.data.synth.voices import SAMPLE_RATE, Phrase, Voice

__all__ = ["RenderedUtterance", "utterance_rng", "speaker_expressiveness", "phrases_for", "render_utterance",
           "active_level_db"]

REFERENCE_DBFS = -35.0
RECORDING_GAIN_SD = 2.5
NOISE_FLOOR_DBFS = -72.0
PEAK_LIMIT = 0.95
PHRASE_WORDS = 4  # phrases longer than this are split in two (contour steps and pauses)
BASE_PAUSE_S = {",": 0.16, "": 0.05}  # pause after a phrase ending in a comma / inside a clause


@dataclass(frozen=True)
class RenderedUtterance:
    samples: np.ndarray  # (samples,) float32 at SAMPLE_RATE
    prosody: Prosody
    recording_gain_db: float
    guard_db: float  # <= 0: scaling applied by the peak guard


def _key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def utterance_rng(seed: int, voice_id: str, sentence_index: int, emotion: str) -> np.random.Generator:
    """The generator of one utterance: independent of generation order and process."""
    return np.random.default_rng(np.random.SeedSequence([seed, _key(voice_id), sentence_index, EMOTIONS.index(emotion)]))


def speaker_expressiveness(seed: int, voice_id: str) -> float:
    """How strongly a speaker expresses emotion: uniform in [0.75, 1.25], fixed per (seed, voice)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _key(voice_id), 1 << 20]))
    return float(rng.uniform(0.75, 1.25))


def phrases_for(sentence: str, prosody: Prosody, rng: np.random.Generator) -> list[Phrase]:
    """Split a sentence into phrases and give each its pitch step (contour) and following pause."""
    chunks: list[tuple[str, str]] = []  # (text, punctuation ending it)
    for clause in re.split(r"(?<=,)\s+", sentence.strip()):
        words = clause.split()
        while len(words) > PHRASE_WORDS:
            half = (len(words) + 1) // 2
            chunks.append((" ".join(words[:half]), ""))
            words = words[half:]
        chunks.append((" ".join(words), "," if clause.endswith(",") else ""))
    count = len(chunks)
    phrases = []
    for index, (text, ending) in enumerate(chunks):
        position = index / (count - 1) - 0.5 if count > 1 else 0.0
        last = index == count - 1
        pause = 0.0 if last else BASE_PAUSE_S[ending] * prosody.pause_factor * float(rng.uniform(0.7, 1.3))
        phrases.append(Phrase(text=text, pitch_st=prosody.pitch_st + prosody.contour_st * position,
                              range_factor=prosody.range_factor, rate=prosody.rate, pause_s=pause))
    return phrases


def active_level_db(samples: np.ndarray, frame_s: float = 0.02, window_db: float = 30.0) -> float:
    """RMS level in dBFS over the frames within ``window_db`` of the loudest frame."""
    size = int(frame_s * SAMPLE_RATE)
    count = len(samples) // size
    if count == 0:
        return 20 * math.log10(float(np.sqrt(np.mean(samples**2))) + 1e-12)
    power = np.mean(samples[: count * size].reshape(count, size) ** 2, axis=1) + 1e-20
    frame_db = 10 * np.log10(power)
    active = power[frame_db > frame_db.max() - window_db]
    return float(10 * np.log10(np.mean(active)))


def _high_shelf(gain_db: float, corner_hz: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook high-shelf biquad (shelf slope 1): ``(b, a)``."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * corner_hz / SAMPLE_RATE
    alpha = math.sin(w0) / 2 * math.sqrt(2)
    cos_w0, root = math.cos(w0), 2 * math.sqrt(a_gain) * alpha
    b = np.array([a_gain * ((a_gain + 1) + (a_gain - 1) * cos_w0 + root),
                  -2 * a_gain * ((a_gain - 1) + (a_gain + 1) * cos_w0),
                  a_gain * ((a_gain + 1) + (a_gain - 1) * cos_w0 - root)])
    a = np.array([(a_gain + 1) - (a_gain - 1) * cos_w0 + root,
                  2 * ((a_gain - 1) - (a_gain + 1) * cos_w0),
                  (a_gain + 1) - (a_gain - 1) * cos_w0 - root])
    return b / a[0], a / a[0]


def _breath(samples: np.ndarray, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """Aspiration noise: white noise above 2 kHz, following the speech envelope, ``level_db`` re speech RMS."""
    noise = sosfilt(butter(2, 2000, "highpass", fs=SAMPLE_RATE, output="sos"), rng.standard_normal(len(samples)))
    envelope = sosfilt(butter(1, 30, "lowpass", fs=SAMPLE_RATE, output="sos"), np.abs(samples))
    shaped = noise * envelope
    scale = np.sqrt(np.mean(samples**2) / (np.mean(shaped**2) + 1e-20)) * 10 ** (level_db / 20)
    return shaped * scale


def render_utterance(voice: Voice, sentence: str, sentence_index: int, emotion: str, seed: int) -> RenderedUtterance:
    """Render one utterance of the corpus (deterministic in its arguments)."""
    rng = utterance_rng(seed, voice.id, sentence_index, emotion)
    prosody = draw_prosody(emotion, rng, speaker_expressiveness(seed, voice.id))
    speech = voice.render(phrases_for(sentence, prosody, rng)).astype(np.float64)

    speech *= 10 ** ((REFERENCE_DBFS - active_level_db(speech)) / 20)
    b, a = _high_shelf(prosody.tilt_db)
    speech = lfilter(b, a, speech)
    speech = speech + _breath(speech, prosody.breath_db, rng)
    recording_gain = RECORDING_GAIN_SD * float(rng.standard_normal())
    speech *= 10 ** ((prosody.level_db + recording_gain) / 20)

    lead, tail = (int(rng.uniform(0.1, 0.3) * SAMPLE_RATE) for _ in range(2))
    speech = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    speech += 10 ** (NOISE_FLOOR_DBFS / 20) * rng.standard_normal(len(speech))
    peak = float(np.max(np.abs(speech)))
    guard = min(1.0, PEAK_LIMIT / peak)
    return RenderedUtterance(samples=(speech * guard).astype(np.float32), prosody=prosody,
                             recording_gain_db=recording_gain, guard_db=20 * math.log10(guard))
