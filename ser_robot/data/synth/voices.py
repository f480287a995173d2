"""The synthetic corpus' speakers: Debian TTS voices, and how each renders prosody controls.

A :class:`Voice` turns a list of :class:`Phrase` (text plus pitch shift, pitch range and rate)
into 16 kHz mono float32 samples through its engine's own controls:

- **espeak-ng** (formant synthesis, voice variants ``+f1``.. ``+m7`` change pitch, formants and
  breathiness), amplitude 60 of 200 so loud settings never clip: one SSML document, each phrase in a ``<prosody rate pitch range>`` element,
  phrases separated by ``<break time>``. Output 22.05 kHz, resampled to 16 kHz.
- **flite** (diphone ``kal16``, clustergen ``awb``, ``rms``, ``slt``): one call per phrase with
  ``duration_stretch``, ``int_f0_target_mean`` and ``int_f0_target_stddev``; phrases are trimmed
  and joined with silences. ``rms`` ignores the F0 targets, so its pitch is shifted after
  synthesis by the speed trick (stretch duration by q, then play q times faster), which also
  scales formants by q; its pitch range cannot be changed.
- **festival** (diphone ``ked``, Debian festvox-kdlpc16k): as flite, one ``text2wave`` call per phrase
  (text on stdin) with ``Duration_Stretch`` and the linear-regression intonation's target F0 mean and
  standard deviation (``int_lr_params``); the voice's own model F0 statistics are kept.

Speakers come in sessions of one female and one male voice, like IEMOCAP's dyads, so the
"session partner as validation speaker" protocol of Lakomkin et al. applies unchanged.

Voice sets: :data:`VOICES`, the 12 voices of the experiments' corpus (English; espeak-ng and
flite), and :func:`diverse_voices`, the default model's corpus: 32 English espeak-ng voices
(8 accents x 2 female and 2 male variants), 4 voices each of German, French and Spanish, and the
4 flite voices, each with its own vocal-tract-length and pitch warp (``warp``) and rate. There,
whole engines (flite) and languages can be kept out of training as held-out conditions.
``diverse_festival`` adds a third engine: two English festival sessions of the ``ked`` diphones, the
female of each made by warp (vocal-tract length and F0 up, as in VTLP) and a higher F0 target. Festival's
other English voices are not used: ``kal`` and ``slt`` are the speakers of flite's ``kal16`` and ``slt``,
the held-out engine's voices.

``warp`` (vocal-tract-length and pitch perturbation): the voice speaks ``warp`` times slower and
is then played ``warp`` times faster, so duration is kept while F0 and every formant are scaled
by ``warp``.
"""

from __future__ import annotations

import io
import math
import pathlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence
from xml.sax.saxutils import escape

import numpy as np

from ser_robot.errors import DataError

__all__ = ["SAMPLE_RATE", "Phrase", "Voice", "VOICES", "VOICE_SETS", "diverse_voices", "festival_voices", "voice_set",
           "voice_by_id", "available_voices", "engine_installed"]

SAMPLE_RATE = 16000
"""Output rate of every voice, Hz."""

ESPEAK_PERCENT_PER_SEMITONE = 12.5
"""espeak-ng's SSML ``pitch="+N%"`` scales its own pitch parameter, not F0: measured with YIN on
en-us+f2, en-us+m3 and en-gb-x-rp+m1 (2026-11-22), +25 % / +50 % raise the median F0 by 1.9-2.0 /
4.1-4.3 semitones and -50 % lowers it by 3.6-3.9, i.e. about 12.5 % per semitone, saturating
at +100 % (about +8.5 semitones)."""


@dataclass(frozen=True)
class Phrase:
    """A stretch of text and how to say it, relative to the voice's neutral delivery.

    ``pitch_st``: F0 level shift in semitones. ``range_factor``: F0 range multiplier (1 =
    the voice's own). ``rate``: speech rate multiplier (1.2 = 20 % faster). ``pause_s``:
    silence after the phrase, seconds.
    """

    text: str
    pitch_st: float = 0.0
    range_factor: float = 1.0
    rate: float = 1.0
    pause_s: float = 0.0


@dataclass(frozen=True)
class Voice:
    """One speaker of the corpus: an engine, its voice name, gender and session."""

    id: str
    engine: str  # "espeak-ng", "flite" or "festival"
    name: str  # espeak-ng voice+variant, flite voice, or festival diphone voice (ked)
    gender: str  # "F" or "M"
    session: str
    f0_hz: float = 0.0  # flite, festival: neutral F0 target mean, Hz
    f0_sd_hz: float = 0.0  # flite, festival: neutral F0 target standard deviation, Hz
    fixed_pitch: bool = False  # flite voice that ignores F0 targets (shift after synthesis)
    words_per_minute: int = 165  # espeak-ng: neutral rate
    language: str = "en"  # ISO 639-1 code of the sentences this voice reads
    warp: float = 1.0  # F0 and formant scale (vocal-tract-length and pitch perturbation), duration kept

    def render(self, phrases: Sequence[Phrase]) -> np.ndarray:
        """Samples ``(samples,)`` float32 at :data:`SAMPLE_RATE` of the phrases, in order."""
        if not phrases:
            raise ValueError("render needs at least one phrase")
        if self.engine == "espeak-ng":
            return self._render_espeak(phrases)
        return self._render_per_phrase(phrases)

    # --- espeak-ng: one SSML document -------------------------------------------------------
    def _render_espeak(self, phrases: Sequence[Phrase]) -> np.ndarray:
        parts = []
        for phrase in phrases:
            pitch = min(max(ESPEAK_PERCENT_PER_SEMITONE * phrase.pitch_st, -90.0), 100.0)
            parts.append(
                f'<prosody rate="{100 * phrase.rate:.0f}%" pitch="{pitch:+.0f}%" '
                f'range="{100 * (phrase.range_factor - 1):+.0f}%">{escape(phrase.text)}</prosody>'
            )
            if phrase.pause_s > 0:
                parts.append(f'<break time="{1000 * phrase.pause_s:.0f}ms"/>')
        ssml = "<speak>" + "".join(parts) + "</speak>"
        words_per_minute = max(80, round(self.words_per_minute / self.warp))
        audio, rate = _run_engine(
            ["espeak-ng", "-m", "-a", "60", "-v", self.name, "-s", str(words_per_minute), "--stdout", ssml], self.id)
        return _resample(audio, rate * self.warp, SAMPLE_RATE)

    # --- flite and festival: one call per phrase ------------------------------------------
    def _render_per_phrase(self, phrases: Sequence[Phrase]) -> np.ndarray:
        pieces = []
        for phrase in phrases:
            shift = 2 ** (phrase.pitch_st / 12)
            stretch = self.warp / phrase.rate
            if self.fixed_pitch:
                stretch *= shift  # played ``shift`` times faster below: duration kept, pitch shifted
            f0, f0_sd = self.f0_hz * shift, self.f0_sd_hz * shift * phrase.range_factor
            if self.engine == "festival":
                audio, rate = _run_engine(
                    ["text2wave", "-eval", f"(voice_{self.name}_diphone)",
                     "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.4f})",
                     "-eval", f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {f0_sd:.1f}) "
                              f"(model_f0_mean 170) (model_f0_std 34)))"], self.id, text=phrase.text)
            else:
                command = ["flite", "-voice", self.name, "--setf", f"duration_stretch={stretch:.4f}"]
                if not self.fixed_pitch:
                    command += ["--setf", f"int_f0_target_mean={f0:.1f}", "--setf", f"int_f0_target_stddev={f0_sd:.1f}"]
                audio, rate = _run_engine(command + ["-t", phrase.text, "-o", "/dev/stdout"], self.id)
            rate = rate * self.warp
            if self.fixed_pitch:
                rate = rate * shift  # the speed trick: same samples, faster clock
            pieces.append(_trim(_resample(audio, rate, SAMPLE_RATE)))
            pieces.append(np.zeros(int(round(phrase.pause_s * SAMPLE_RATE)), np.float32))
        return np.concatenate(pieces)


# Five sessions of a female and a male voice (IEMOCAP's shape), then one spare session.
VOICES: tuple[Voice, ...] = (
    Voice("s01f_slt", "flite", "slt", "F", "s01", f0_hz=170.0, f0_sd_hz=25.0),
    Voice("s01m_awb", "flite", "awb", "M", "s01", f0_hz=125.0, f0_sd_hz=18.0),
    Voice("s02f_us_f2", "espeak-ng", "en-us+f2", "F", "s02", words_per_minute=170),
    Voice("s02m_rms", "flite", "rms", "M", "s02", fixed_pitch=True),
    Voice("s03f_scot_f4", "espeak-ng", "en-gb-scotland+f4", "F", "s03", words_per_minute=160),
    Voice("s03m_kal", "flite", "kal16", "M", "s03", f0_hz=105.0, f0_sd_hz=15.0),
    Voice("s04f_carib_f5", "espeak-ng", "en-029+f5", "F", "s04", words_per_minute=165),
    Voice("s04m_us_m3", "espeak-ng", "en-us+m3", "M", "s04", words_per_minute=160),
    Voice("s05f_us_f1", "espeak-ng", "en-us+f1", "F", "s05", words_per_minute=155),
    Voice("s05m_lanc_m7", "espeak-ng", "en-gb-x-gbclan+m7", "M", "s05", words_per_minute=170),
    Voice("s06f_rp_f1", "espeak-ng", "en-gb-x-rp+f1", "F", "s06", words_per_minute=150),
    Voice("s06m_rp_m1", "espeak-ng", "en-gb-x-rp+m1", "M", "s06", words_per_minute=175),
)


# The diverse set's espeak-ng voices: accents (English) or languages, and the variants drawn from.
_ENGLISH_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-029",
                    "en-us-nyc")
_OTHER_LANGUAGES = (("de", "de"), ("fr", "fr-fr"), ("es", "es"))  # (language code, espeak-ng voice)
_FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Annie", "Alicia", "belinda", "linda", "steph", "anika", "aunty")
_MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "Denis", "travis", "adam")
_FLITE_VOICES = (("slt", "F", 170.0, 25.0, False), ("awb", "M", 125.0, 18.0, False), ("kal16", "M", 105.0, 15.0, False),
                 ("rms", "M", 0.0, 0.0, True))


def diverse_voices() -> tuple[Voice, ...]:
    """The default model's voices: 44 espeak-ng voices in 4 languages and the 4 flite voices.

    Deterministic: variant, warp (0.92-1.08) and rate (145-185 words per minute) of each voice come
    from a fixed generator. Sessions pair a female and a male voice of one engine and language.
    """
    rng = np.random.default_rng(20261207)
    voices: list[Voice] = []
    slots = [(accent, "en") for accent in _ENGLISH_ACCENTS for _ in range(2)]
    slots += [(espeak_voice, language) for language, espeak_voice in _OTHER_LANGUAGES for _ in range(2)]
    female = list(rng.permutation(_FEMALE_VARIANTS))
    male = list(rng.permutation(_MALE_VARIANTS))
    for index, (espeak_voice, language) in enumerate(slots):
        session = f"{language}{index + 1:02d}"
        for gender, pool in (("F", female), ("M", male)):
            variant = pool[index % len(pool)]
            voices.append(Voice(
                f"{session}{gender.lower()}_{espeak_voice}+{variant}", "espeak-ng", f"{espeak_voice}+{variant}", gender,
                session, words_per_minute=int(rng.integers(145, 186)), language=language,
                warp=round(float(rng.uniform(0.92, 1.08)), 3)))
    for index, (name, gender, f0, f0_sd, fixed) in enumerate(_FLITE_VOICES):
        voices.append(Voice(f"fl{index // 2 + 1:02d}{gender.lower()}_{name}", "flite", name, gender,
                            f"fl{index // 2 + 1:02d}", f0_hz=f0, f0_sd_hz=f0_sd, fixed_pitch=fixed))
    return tuple(voices)


_FESTIVAL_VOICES = (  # (session, gender, F0 target mean and sd in Hz, warp): ked's diphones, female by warp
    ("ft01", "F", 175.0, 26.0, 1.16), ("ft01", "M", 105.0, 15.0, 0.97),
    ("ft02", "F", 190.0, 30.0, 1.2), ("ft02", "M", 115.0, 17.0, 1.04),
)


def festival_voices() -> tuple[Voice, ...]:
    """The festival voices of the ``diverse_festival`` set (module docstring): 2 English F/M sessions."""
    return tuple(Voice(f"{session}{gender.lower()}_ked", "festival", "ked", gender, session, f0_hz=f0,
                       f0_sd_hz=f0_sd, warp=warp) for session, gender, f0, f0_sd, warp in _FESTIVAL_VOICES)


VOICE_SETS = ("core", "diverse", "diverse_festival")
"""``core``: :data:`VOICES` (the experiments' corpus); ``diverse``: :func:`diverse_voices`;
``diverse_festival``: the diverse voices and :func:`festival_voices`, a third engine."""


def voice_set(name: str) -> tuple[Voice, ...]:
    """The voices of a set named in :data:`VOICE_SETS`."""
    if name == "core":
        return VOICES
    if name == "diverse":
        return diverse_voices()
    if name == "diverse_festival":
        return diverse_voices() + festival_voices()
    raise DataError(f"unknown voice set {name!r}; the sets are {list(VOICE_SETS)}")


def voice_by_id(voice_id: str) -> Voice:
    for voice in VOICES + diverse_voices() + festival_voices():
        if voice.id == voice_id:
            return voice
    raise DataError(f"unknown synthetic voice {voice_id!r}; known voices: {[v.id for v in VOICES]} and the "
                    "diverse set's")


ENGINE_COMMANDS = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}
"""The command each engine runs."""


def engine_installed(engine: str) -> bool:
    """True when ``engine``'s command is on the PATH (make setup installs all three)."""
    return shutil.which(ENGINE_COMMANDS[engine]) is not None


def available_voices() -> list[Voice]:
    """The voices of :data:`VOICES` whose engine is installed."""
    return [voice for voice in VOICES if engine_installed(voice.engine)]


_PACKAGES = {"text2wave": "festival and festvox-kdlpc16k"}  # the Debian package of a command, where it differs


def _run_engine(command: list[str], voice_id: str, text: str | None = None) -> tuple[np.ndarray, float]:
    """Run a TTS command: ``samples, rate Hz`` of the WAV file it writes to stdout or, given ``text`` (sent on
    its stdin), to the file named by an ``-o`` appended here (text2wave's header through a pipe says 0
    samples)."""
    import soundfile

    if shutil.which(command[0]) is None:
        raise DataError(f"{command[0]} not found (voice {voice_id}): install the Debian package "
                        f"{_PACKAGES.get(command[0], command[0])} (make setup does this)")
    with tempfile.TemporaryDirectory() as folder:
        out = pathlib.Path(folder) / "out.wav"
        result = subprocess.run(command if text is None else [*command, "-o", str(out)], capture_output=True,
                                timeout=60, input=None if text is None else text.encode())
        wav = result.stdout if text is None else (out.read_bytes() if out.is_file() else b"")
    if result.returncode != 0 or len(wav) < 100:
        raise DataError(f"{command[0]} failed for voice {voice_id}: {result.stderr.decode(errors='replace').strip()}")
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    if audio.ndim != 1:
        audio = audio.mean(axis=1)
    return audio, float(rate)


def _resample(audio: np.ndarray, rate: float, target: int) -> np.ndarray:
    """Polyphase resampling from ``rate`` to ``target`` Hz (ratio approximated to 1/1000)."""
    from scipy.signal import resample_poly

    if math.isclose(rate, target):
        return audio.astype(np.float32)
    ratio = Fraction(target / rate).limit_denominator(1000)
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def _trim(audio: np.ndarray, floor_db: float = -50.0, margin_s: float = 0.02) -> np.ndarray:
    """Cut leading and trailing silence (below ``floor_db`` relative to the peak), keeping a margin."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0:
        return audio
    loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (floor_db / 20))
    margin = int(margin_s * SAMPLE_RATE)
    return audio[max(0, loud[0] - margin): loud[-1] + margin + 1]
