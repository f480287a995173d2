"""``ser-robot predict`` and the offline prediction API: files, folders, manifests, long recordings, bad input."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import soundfile

from conftest import ser_robot


@pytest.fixture(scope="module")
def utterances(tiny_corpus):
    from ser_robot.data.manifest import read_manifest

    return list(read_manifest(tiny_corpus))


def test_predict_waveform_and_file_agree_at_any_rate_and_channel_count(utterances, tmp_path):
    from ser_robot.audio.resample import resample
    from ser_robot.inference import EmotionModel

    model = EmotionModel(device="cpu")
    mono, rate = soundfile.read(utterances[0].path, dtype="float32")
    reference = model.predict_file(utterances[0].path).probabilities
    assert np.allclose(model.predict_waveform(mono, rate).probabilities, reference, atol=1e-6)
    assert np.allclose(model.predict_waveform(np.stack([mono, mono], axis=1), rate).probabilities, reference,
                       atol=1e-5)  # two identical ears, reduced by their mean
    stereo_48k = tmp_path / "stereo_48k.wav"
    soundfile.write(stereo_48k, np.stack([resample(mono, rate, 48000)] * 2, axis=1), 48000, subtype="FLOAT")
    assert np.allclose(model.predict_file(stereo_48k).probabilities, reference, atol=0.05)
    assert abs(reference.sum() - 1) < 1e-5


def test_predict_command_on_a_folder_a_manifest_and_a_long_recording(utterances, tiny_corpus, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    chosen = utterances[:4]
    for u in chosen:
        (folder / f"{u.id}.wav").write_bytes(open(u.path, "rb").read())
    done = ser_robot("predict", str(folder), "--segment", "whole", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 4 and {r["label"] for r in rows} <= {"angry", "happy", "neutral", "sad"}
    assert all(abs(sum(float(r[f"p_{c}"]) for c in ("angry", "happy", "neutral", "sad")) - 1) < 1e-3 for r in rows)

    listed = ser_robot("predict", str(tiny_corpus), "--segment", "whole", "--format", "json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == len(utterances)

    # a long recording: the utterances one after the other, 1.5 s apart, as a robot hears them
    parts = []
    for u in utterances[:8]:
        audio, rate = soundfile.read(u.path, dtype="float32")
        parts += [audio, np.zeros(int(1.5 * rate), np.float32)]
    long = tmp_path / "long.wav"
    soundfile.write(long, np.concatenate(parts), rate)
    segmented = ser_robot("predict", str(long), "--format", "json", "--out", str(tmp_path / "long.json"))
    assert segmented.returncode == 0, segmented.stderr
    segments = json.loads((tmp_path / "long.json").read_text())
    assert 6 <= len(segments) <= 10, segments  # one per utterance (VAD may split or merge one)
    starts = [s["start_s"] for s in segments]
    assert starts == sorted(starts) and segments[-1]["end_s"] <= len(np.concatenate(parts)) / rate + 0.1


def test_bad_input_is_named_and_skipped(utterances, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.wav").write_bytes(open(utterances[0].path, "rb").read())
    (folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    done = ser_robot("predict", str(folder), "--segment", "whole")
    assert done.returncode == 1 and "skipped" in done.stderr and "broken.wav" in done.stderr
    assert "good.wav" in done.stdout
    only_broken = ser_robot("predict", str(folder / "broken.wav"))
    assert only_broken.returncode == 2 and "none of the 1 file(s) could be read" in only_broken.stderr
    (tmp_path / "empty").mkdir()
    empty = ser_robot("predict", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "no audio file" in empty.stderr
    missing = ser_robot("predict", str(tmp_path / "nowhere.wav"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_evaluate_command_scores_a_manifest(tiny_corpus, tmp_path):
    done = ser_robot("evaluate", str(tiny_corpus), "--sessions", "s01", "--condition", "gain=-10",
                     "--out", str(tmp_path / "eval"))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["utterances"] == 16 and metrics["condition"] == "gain=-10" and 0 <= metrics["uar"] <= 1
    assert np.sum(metrics["confusion"]) == 16 and (tmp_path / "eval" / "confusion.png").stat().st_size > 0
    assert "UAR" in (tmp_path / "eval" / "README.md").read_text()
    bad = ser_robot("evaluate", str(tiny_corpus), "--condition", "loud", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "condition 'loud': use clean, gain=DB" in bad.stderr
    bad_noise = ser_robot("evaluate", str(tiny_corpus), "--condition", "snr=5:babble", "--out", str(tmp_path / "x"))
    assert bad_noise.returncode == 2 and "NOISE one of" in bad_noise.stderr  # babble needs speech


def test_evaluate_in_noise_and_on_the_robot(tiny_corpus, tmp_path):
    """snr=DB:NOISE mixes a seeded clip per utterance; robot renders the simulated twin once and scores it."""
    from ser_robot.data.manifest import read_manifest
    from ser_robot.eval.noisy_twin import mix_at_snr
    from ser_robot.inference.offline import read_audio

    utterance = next(iter(read_manifest(tiny_corpus)))
    samples, rate = read_audio(utterance.path)
    noisy = mix_at_snr(samples, rate, "pink", 0.0, utterance.id)  # what --condition snr=0:pink adds
    again = mix_at_snr(samples, rate, "pink", 0.0, utterance.id)
    np.testing.assert_array_equal(noisy, again)
    added = (noisy - samples)[:, 0].astype(np.float64)
    from ser_robot.data.synth.render import active_level_db

    noise_db = 10 * np.log10(np.mean(added**2))
    assert abs(noise_db - active_level_db(samples[:, 0].astype(np.float64))) < 0.1  # 0 dB re the active speech level
    for condition in ("snr=10:pink", "robot"):
        out = tmp_path / condition.replace(":", "_").replace("=", "_")
        done = ser_robot("evaluate", str(tiny_corpus), "--sessions", "s01", "--condition", condition, "--out", str(out),
                         timeout=600)
        assert done.returncode == 0, done.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["utterances"] == 16 and metrics["condition"] == condition
    twin = read_manifest(tmp_path / "robot" / "robot_twin" / "manifest.jsonl")
    assert len(twin) == 16 and all("robot_sim" in u.extra for u in twin)
