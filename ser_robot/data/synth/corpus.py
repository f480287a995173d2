"""Generate the synthetic emotional corpus: every speaker says every sentence in every class.

Layout of ``out``::

    out/manifest.jsonl            one line per utterance (ser_robot.data.manifest)
    out/corpus.json               the generation settings (seed, speakers, sentences, classes)
    out/wav/<speaker>/<id>.wav    16 kHz mono 16-bit PCM

Utterance ids are ``<speaker>_<sentence:03d>_<class>``. Two voice sets
(:data:`~ser_robot.data.synth.voices.VOICE_SETS`): ``core`` (12 English voices, the experiments')
and ``diverse`` (48 voices, 2 engines, 4 languages: the default model's; ``diverse_festival`` adds 4
festival voices, a third engine); each voice reads the
sentences of its language. Each utterance depends only on the seed,
its voice, its sentence and its class (:func:`render_utterance`), so generation runs in
parallel processes in any order, and a
corpus of 4 speakers is the first 4 speakers of a corpus of 10 with the same seed.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from ser_robot.data.manifest import EMOTIONS, Manifest, Utterance, write_manifest
from ser_robot.data.synth.sentences import sentences_for
from ser_robot.data.synth.voices import SAMPLE_RATE, Voice, engine_installed, voice_set
from ser_robot.errors import DataError

__all__ = ["CORPUS_NAME", "generate_corpus", "select_voices"]

CORPUS_NAME = "synth"


@dataclass(frozen=True)
class _Job:
    voice: Voice
    sentence_index: int
    emotion: str
    seed: int
    path: pathlib.Path


def select_voices(count: int, voices: str = "core", first: int = 0) -> list[Voice]:
    """``count`` voices of the set ``voices`` from its voice ``first`` on (whole sessions first), all engines
    installed."""
    pool = voice_set(voices)
    if not 0 <= first < len(pool) or not 1 <= count <= len(pool) - first:
        raise DataError(f"--speakers must be between 1 and {len(pool) - min(first, len(pool))} (the {voices!r} voice "
                        f"set has {len(pool)} voices, from voice {first} on), got {count}")
    chosen = list(pool[first: first + count])
    missing = sorted({voice.engine for voice in chosen if not engine_installed(voice.engine)})
    if missing:
        raise DataError(f"TTS engine(s) {missing} not installed: run make setup (Debian packages espeak-ng, flite, "
                        "festival, festvox-kdlpc16k)")
    return chosen


def _render(job: _Job) -> Utterance:
    import soundfile

    from ser_robot.data.synth.render import render_utterance

    text = sentences_for(job.voice.language)[job.sentence_index]
    result = render_utterance(job.voice, text, job.sentence_index, job.emotion, job.seed)
    job.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.path.with_suffix(".tmp.wav")
    soundfile.write(str(tmp), result.samples, SAMPLE_RATE, subtype="PCM_16")
    tmp.replace(job.path)
    prosody = result.prosody
    return Utterance(
        id=job.path.stem, path=str(job.path), speaker=job.voice.id, corpus=CORPUS_NAME,
        duration_s=round(len(result.samples) / SAMPLE_RATE, 4), sample_rate=SAMPLE_RATE, label=job.emotion,
        original_label=job.emotion, session=job.voice.session, gender=job.voice.gender,
        arousal=round(prosody.arousal, 4), valence=round(prosody.valence, 4), text=text,
        extra={"prosody": prosody.as_dict(), "recording_gain_db": round(result.recording_gain_db, 3),
               "peak_guard_db": round(result.guard_db, 3), "engine": job.voice.engine, "voice": job.voice.name,
               "language": job.voice.language, "warp": job.voice.warp, "seed": job.seed},
    )


def generate_corpus(
    out: str | pathlib.Path,
    speakers: int = 10,
    sentences: int = 100,
    seed: int = 0,
    emotions: tuple[str, ...] = EMOTIONS,
    workers: int | None = None,
    progress: bool = True,
    only_speakers: Sequence[str] | None = None,
    voices: str = "core",
    first_voice: int = 0,
    first_sentence: int = 0,
) -> Manifest:
    """Generate ``speakers x sentences x len(emotions)`` utterances under ``out``; returns the manifest.

    ``workers``: processes (default: all CPUs). Existing files of the same ids are replaced.
    ``only_speakers``: render only these of the ``speakers`` voices (ids such as ``s06f_rp_f1``);
    each utterance is the same as in the full corpus. ``voices``: the voice set (``core`` or
    ``diverse``). ``first_voice``, ``first_sentence``: start at this voice of the set and this sentence of
    each language's list, so that a second corpus has voices and sentences the first never used (a
    cross-corpus test; with another ``seed`` its prosody draws differ too).
    """
    from tqdm import tqdm

    chosen = select_voices(speakers, voices, first_voice)
    available = min(len(sentences_for(voice.language)) for voice in chosen) - first_sentence
    if first_sentence < 0 or not 1 <= sentences <= available:
        raise DataError(f"--sentences must be between 1 and {max(available, 0)} (the sentences every chosen voice's "
                        f"language has from sentence {first_sentence} on), got {sentences}")
    unknown = sorted(set(emotions) - set(EMOTIONS))
    if unknown or not emotions:
        raise DataError(f"unknown class(es) {unknown or emotions!r}; the classes are {list(EMOTIONS)}")
    out = pathlib.Path(out).resolve()
    if only_speakers is not None:
        unknown = sorted(set(only_speakers) - {voice.id for voice in chosen})
        if unknown:
            raise DataError(f"speakers {unknown} are not among the corpus' {speakers} voices "
                            f"{[voice.id for voice in chosen]}")
        chosen = [voice for voice in chosen if voice.id in set(only_speakers)]
    jobs = [
        _Job(voice, index, emotion, seed, out / "wav" / voice.id / f"{voice.id}_{index:03d}_{emotion}.wav")
        for voice in chosen for index in range(first_sentence, first_sentence + sentences) for emotion in emotions
    ]
    workers = max(1, workers or os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), desc="synth-corpus", unit="utt", disable=not progress)
    utterances: list[Utterance] = []
    if workers == 1:
        for job in jobs:
            utterances.append(_render(job))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for utterance in pool.map(_render, jobs, chunksize=4):
                utterances.append(utterance)
                bar.update()
    bar.close()
    manifest = Manifest(sorted(utterances, key=lambda u: u.id), labels=EMOTIONS)
    write_manifest(out / "manifest.jsonl", manifest)
    settings = {"corpus": CORPUS_NAME, "seed": seed, "voices": voices, "speakers": [v.id for v in chosen],
                "sentences": sentences, **({"first_sentence": first_sentence} if first_sentence else {}),
                "classes": list(emotions), "sample_rate": SAMPLE_RATE, "utterances": len(manifest)}
    (out / "corpus.json").write_text(json.dumps(settings, indent=2) + "\n")
    return manifest
