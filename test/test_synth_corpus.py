"""The synthetic emotional corpus: voices, prosody rules, reproducibility, manifest, command line."""

from __future__ import annotations

import json
import re
import statistics

import numpy as np
import pytest
import soundfile
import torch

from conftest import ser_robot
from ser_robot.errors import DataError
from ser_robot.eval.describe import describe_samples
from ser_robot.data.manifest import EMOTIONS, read_manifest
from ser_robot.data.synth.corpus import generate_corpus
from ser_robot.data.synth.prosody import PROFILES, draw_prosody
from ser_robot.data.synth.render import render_utterance
from ser_robot.data.synth.sentences import SENTENCES, sentences_for
from ser_robot.data.synth.voices import (SAMPLE_RATE, VOICES, Phrase, available_voices, diverse_voices,
                                         voice_by_id, voice_set)
from ser_robot.features.pitch import yin

SPEAKERS = 4  # two sessions: flite slt/awb, espeak en-us+f2, flite rms (pitch by the speed trick)
SENTENCE_COUNT = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate_corpus(out, speakers=SPEAKERS, sentences=SENTENCE_COUNT, seed=7, workers=2, progress=False)
    return out


def test_at_least_ten_speakers_in_female_male_sessions():
    voices = available_voices()
    assert len(voices) >= 10
    first_ten = VOICES[:10]
    assert sorted(v.gender for v in first_ten) == ["F"] * 5 + ["M"] * 5
    sessions: dict[str, list[str]] = {}
    for voice in VOICES:
        sessions.setdefault(voice.session, []).append(voice.gender)
    assert all(sorted(genders) == ["F", "M"] for genders in sessions.values())
    assert len({(v.engine, v.name) for v in VOICES}) == len(VOICES)


def test_sentences_are_many_unique_and_neutral():
    assert len(SENTENCES) >= 100 and len(set(SENTENCES)) == len(SENTENCES)
    emotional = re.compile(r"\b(angry|anger|happy|happiness|sad|sadness|glad|upset|love|hate|afraid|"
                           r"wonderful|terrible|awful|great|lovely|cry|laugh|"  # and the other languages'
                           r"wütend|glücklich|traurig|froh|fâché|heureux|heureuse|triste|content|"
                           r"enfadado|feliz|contento|alegre)\b", re.IGNORECASE)
    for language in ("en", "de", "fr", "es"):
        sentences = sentences_for(language)
        assert len(sentences) >= 30 and len(set(sentences)) == len(sentences), language
        for sentence in sentences:
            assert sentence.endswith(".") and not re.search(r"[!?¡¿0-9]", sentence), sentence
            assert not emotional.search(sentence), sentence


def test_diverse_voices_hold_out_whole_engines_and_languages():
    """The default model's voice set: many voices, F/M sessions of one engine and language each."""
    voices = diverse_voices()
    assert voices == diverse_voices()  # deterministic
    assert len(voices) >= 40 and len({v.id for v in voices}) == len(voices)
    assert len({(v.engine, v.name, v.warp) for v in voices}) == len(voices)
    by_language = {lang: [v for v in voices if v.language == lang] for lang in {v.language for v in voices}}
    assert set(by_language) == {"en", "de", "fr", "es"}
    assert all(len(group) >= 4 for group in by_language.values())
    assert {v.engine for v in voices} == {"espeak-ng", "flite"}
    assert all(v.language == "en" for v in voices if v.engine == "flite")
    sessions: dict[str, set] = {}
    for voice in voices:
        sessions.setdefault(voice.session, set()).add((voice.engine, voice.language))
    assert all(len(kinds) == 1 for kinds in sessions.values())  # a session never mixes engines or languages
    assert min(v.warp for v in voices) < 0.95 and max(v.warp for v in voices) > 1.05


def test_the_festival_set_adds_a_third_engine_without_the_held_out_engines_speakers():
    voices = voice_set("diverse_festival")
    assert voices[: len(diverse_voices())] == diverse_voices()  # the diverse corpus is a prefix: same voices
    festival = [v for v in voices if v.engine == "festival"]
    assert len(festival) == 4 and {v.gender for v in festival} == {"F", "M"}
    assert all(v.language == "en" for v in festival)
    assert {v.name for v in festival}.isdisjoint({"kal", "slt"})  # flite's kal16 and slt are those speakers
    female, male = (voice_by_id(i).render([Phrase("The library opens at nine each morning")])
                    for i in ("ft01f_ked", "ft01m_ked"))
    f0 = [float(torch.median(f[v])) for f, v in (yin(torch.from_numpy(x), SAMPLE_RATE) for x in (female, male))]
    assert f0[0] > 1.4 * f0[1]


def test_warp_scales_pitch_and_keeps_duration():
    """warp 1.08: F0 up by 12*log2(1.08) = 1.33 semitones, duration within 5 %."""
    base = voice_by_id("s02f_us_f2")
    warped = type(base)(**{**base.__dict__, "id": "warped", "warp": 1.08})
    text = "The library opens at nine each morning"

    def measure(voice):
        samples = voice.render([Phrase(text)])
        f0, voiced = yin(torch.from_numpy(samples), SAMPLE_RATE)
        return float(torch.median(12 * torch.log2(f0[voiced] / 27.5))), len(samples) / SAMPLE_RATE

    (base_st, base_s), (warp_st, warp_s) = measure(base), measure(warped)
    assert 0.8 < warp_st - base_st < 1.9
    assert abs(warp_s / base_s - 1) < 0.05


@pytest.mark.parametrize("voice_id", ["s01f_slt", "s02f_us_f2", "s02m_rms", "s03m_kal", "ft01m_ked", "ft02f_ked"])
def test_engine_controls_move_pitch_and_rate(voice_id):
    """Each engine's controls do what the prosody rules ask: +4 st raises F0 by ~4 st, rate 1.3 shortens."""
    voice = voice_by_id(voice_id)
    text = "The library opens at nine each morning"

    def render(pitch_st=0.0, rate=1.0):
        samples = voice.render([Phrase(text, pitch_st=pitch_st, rate=rate)])
        f0, voiced = yin(torch.from_numpy(samples), SAMPLE_RATE)
        return float(torch.median(12 * torch.log2(f0[voiced] / 27.5))), len(samples) / SAMPLE_RATE

    base_st, base_s = render()
    high_st, _ = render(pitch_st=4.0)
    _, fast_s = render(rate=1.3)
    assert 2.5 < high_st - base_st < 5.5
    assert fast_s < 0.88 * base_s


def test_prosody_draws_follow_the_rules_and_overlap():
    rng = np.random.default_rng(0)
    draws = {e: [draw_prosody(e, rng) for _ in range(400)] for e in EMOTIONS}

    def mean(emotion, field):
        return statistics.fmean(getattr(p, field) for p in draws[emotion])

    assert mean("angry", "level_db") > mean("happy", "level_db") > mean("neutral", "level_db") > mean("sad", "level_db")
    assert mean("happy", "contour_st") > mean("neutral", "contour_st") > mean("sad", "contour_st")
    assert mean("sad", "rate") < mean("neutral", "rate") < mean("angry", "rate")
    assert mean("angry", "arousal") > mean("neutral", "arousal") > mean("sad", "arousal")
    assert mean("happy", "valence") > mean("neutral", "valence") > mean("angry", "valence")
    # classes overlap: some neutral utterances are louder than some angry ones
    assert max(p.level_db for p in draws["neutral"]) > min(p.level_db for p in draws["angry"])
    assert set(PROFILES) == set(EMOTIONS)
    with pytest.raises(ValueError, match="unknown emotion 'bored'"):
        draw_prosody("bored", rng)


def test_corpus_layout_and_manifest(corpus):
    manifest = read_manifest(corpus / "manifest.jsonl", labels=EMOTIONS)
    assert len(manifest) == SPEAKERS * SENTENCE_COUNT * len(EMOTIONS)
    assert manifest.speakers == [v.id for v in VOICES[:SPEAKERS]]
    assert manifest.label_counts() == {e: SPEAKERS * SENTENCE_COUNT for e in EMOTIONS}
    settings = json.loads((corpus / "corpus.json").read_text())
    assert settings["seed"] == 7 and settings["utterances"] == len(manifest)
    for utterance in manifest:
        info = soundfile.info(utterance.path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert utterance.duration_s == pytest.approx(info.frames / 16000, abs=1e-3)
        assert utterance.gender in ("F", "M") and utterance.session
        assert -1 <= utterance.arousal <= 1 and -1 <= utterance.valence <= 1
        assert utterance.text in SENTENCES and utterance.extra["prosody"]["emotion"] == utterance.label


def test_every_utterance_reproducible_alone(corpus):
    manifest = read_manifest(corpus / "manifest.jsonl")
    utterance = next(u for u in manifest if u.speaker == "s02f_us_f2" and u.label == "sad")
    stored, _ = soundfile.read(utterance.path, dtype="float32")
    again = render_utterance(voice_by_id(utterance.speaker), utterance.text, SENTENCES.index(utterance.text),
                             utterance.label, seed=7).samples
    assert len(again) == len(stored)
    assert np.max(np.abs(again - stored)) <= 1 / 32768 + 1e-6  # PCM_16 quantisation only
    other = render_utterance(voice_by_id(utterance.speaker), utterance.text, SENTENCES.index(utterance.text),
                             utterance.label, seed=8).samples
    assert len(other) != len(stored) or not np.allclose(other, stored, atol=1e-3)


def test_classes_differ_acoustically(corpus):
    """Measured on the audio: angry louder than sad, sad slower and lower than angry and happy."""
    manifest = read_manifest(corpus / "manifest.jsonl")
    rows = {u.id: describe_samples(*soundfile.read(u.path, dtype="float32")) for u in manifest}

    def mean(label, name):
        return statistics.fmean(rows[u.id][name] for u in manifest if u.label == label)

    assert mean("angry", "level_dbfs") > mean("neutral", "level_dbfs") + 2 > mean("sad", "level_dbfs") + 4
    assert mean("sad", "duration_s") > mean("neutral", "duration_s") > mean("happy", "duration_s")
    assert mean("sad", "f0_mean_st") < mean("neutral", "f0_mean_st") < mean("happy", "f0_mean_st")


def test_cli_generates_and_describes(tmp_path):
    out = tmp_path / "c"
    result = ser_robot("synth-corpus", "--out", str(out), "--speakers", "2", "--sentences", "1", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "8 utterances, 2 speakers" in result.stdout
    result = ser_robot("describe-corpus", str(out / "manifest.jsonl"), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert "| angry | 2 |" in result.stdout and (tmp_path / "report" / "descriptors.csv").is_file()


@pytest.mark.parametrize("args, message", [
    (["--speakers", "0"], "--speakers must be between 1 and"),
    (["--sentences", "100000"], "--sentences must be between 1 and"),
])
def test_cli_rejects_bad_sizes(tmp_path, args, message):
    result = ser_robot("synth-corpus", "--out", str(tmp_path), *args)
    assert result.returncode == 2 and message in result.stderr


def test_prosodic_baseline_runs_leave_one_speaker_out(corpus):
    from ser_robot.eval.describe import describe_manifest
    from ser_robot.eval.prosodic_baseline import prosodic_baseline

    manifest = read_manifest(corpus / "manifest.jsonl")
    result = prosodic_baseline(manifest, describe_manifest(manifest, progress=False))
    assert [fold["speaker"] for fold in result["folds"]] == manifest.speakers
    assert 0.0 <= result["summary"]["uar"].mean <= 1.0 and result["summary"]["uar"].n == SPEAKERS


def test_a_second_corpus_shares_no_voice_and_no_sentence(tmp_path):
    """first_voice and first_sentence give a distinct corpus (a cross-corpus test), not a split of the first."""
    from ser_robot.data.synth.corpus import generate_corpus

    first = generate_corpus(tmp_path / "a", speakers=2, sentences=1, seed=0, workers=1, progress=False,
                            voices="diverse", emotions=("neutral",))
    second = generate_corpus(tmp_path / "b", speakers=2, sentences=1, seed=1, workers=1, progress=False,
                             voices="diverse", emotions=("neutral",), first_voice=8, first_sentence=10)
    assert not set(first.speakers) & set(second.speakers)
    assert not {u.text for u in first} & {u.text for u in second}
    assert [u.id.split("_")[-2] for u in second] == ["010", "010"]
    with pytest.raises(DataError, match="from sentence 155 on"):
        generate_corpus(tmp_path / "c", speakers=2, sentences=6, voices="diverse", first_sentence=155, progress=False)
