"""Over-the-air attack on a shipped model (ser_robot.eval.over_the_air): the attacker's surrogate is the
inference path, the crafted files respect their bound, and every arm is scored directly and through the
robot twin."""

import csv
import json

import numpy as np
import pytest
import soundfile
import torch

from ser_robot.data.manifest import read_manifest
from ser_robot.errors import ConfigError
from ser_robot.eval.over_the_air import ARMS, OverTheAirSettings, PipelineSurrogate, craft, markdown_table
from ser_robot.inference.model import EmotionModel
from ser_robot.inference.offline import read_audio, recording_frames
from conftest import ser_robot


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return EmotionModel(tiny_checkpoint("lakomkin_rnn", "egemaps"), device="cpu", backend="torch")


@pytest.fixture(scope="module")
def utterances(tiny_corpus):
    return list(read_manifest(tiny_corpus))


def _surrogate(model, utterance):
    samples, rate = read_audio(utterance.path)
    frames = torch.from_numpy(recording_frames(samples, rate, model.feature_set))
    mean, std = frames.double().mean(0), frames.double().std(0).clamp_min(1e-3)
    return PipelineSurrogate(model, mean, std), torch.from_numpy(samples[:, 0]), frames, mean, std


def test_the_surrogate_computes_what_the_inference_path_computes(model, utterances):
    surrogate, wave, frames, mean, std = _surrogate(model, utterances[0])
    with torch.no_grad():
        expected = model.model(((frames - mean) / std).float()[None], torch.tensor([len(frames)]))
        got = surrogate(wave[None])
    assert got.shape == expected.shape
    assert torch.allclose(got, expected.float(), atol=2e-3), (got, expected)


def test_pgd_raises_the_loss_within_the_bound_and_eot_needs_rooms(model, utterances):
    surrogate, wave, *_ = _surrogate(model, utterances[0])
    label = model.labels.index(utterances[0].label)
    settings = OverTheAirSettings(epsilons=(0.01,), steps=3)
    adversarial = craft(surrogate, wave, label, "digital", 0.01, settings, generator=torch.Generator().manual_seed(0))
    assert float((adversarial - wave).abs().max()) <= 0.01 + 1e-6 and float(adversarial.abs().max()) <= 1.0
    with torch.no_grad():
        losses = [float(torch.nn.functional.cross_entropy(surrogate(w[None]), torch.tensor([label])))
                  for w in (wave, adversarial)]
    assert losses[1] > losses[0]
    with pytest.raises(ConfigError, match="acoustic channel"):
        craft(surrogate, wave, label, "eot", 0.01, settings)
    with pytest.raises(ConfigError, match="epsilons"):
        OverTheAirSettings(epsilons=(0.0,))


def test_every_arm_is_crafted_and_scored_directly_and_through_the_robot(model, tiny_corpus, tmp_path):
    """Through the command line (ser-robot attack-over-the-air), one utterance per class."""
    from ser_robot.acoustics.noise_bank import build_noise_bank
    from ser_robot.acoustics.rooms import build_rir_bank

    build_noise_bank(tmp_path / "noise_bank", seed=0, seconds_per_clip=2.0, clips_per_category=4)
    build_rir_bank(tmp_path / "rir_bank", count=4, seed=0, sources_per_room=1, max_order_cap=10)
    done = ser_robot("attack-over-the-air", str(tiny_corpus), "--model", str(model.path), "--rir-bank",
                     str(tmp_path / "rir_bank"), "--noise-bank", str(tmp_path / "noise_bank"), "--out",
                     str(tmp_path / "ota"), "--epsilons", "0.005", "--steps", "2", "--draws", "2", "--per-class", "1",
                     timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "ota" / "results.json").read_text())
    assert "attack-over-the-air" in (tmp_path / "ota" / "README.md").read_text()

    assert report["utterances"] == 4
    got = {(row["arm"], row["condition"]) for row in report["rows"]}
    assert got == {(arm, condition) for arm in ("clean", *ARMS) for condition in ("direct", "robot")}
    for arm in ARMS:
        crafted = read_manifest(tmp_path / "ota" / "audio" / f"{arm}_eps0.005" / "manifest.jsonl")
        for original, attacked in zip(read_manifest(tmp_path / "ota" / "audio" / "clean" / "manifest.jsonl"), crafted):
            a, _ = soundfile.read(original.path, dtype="float64")
            b, _ = soundfile.read(attacked.path, dtype="float64")
            assert original.id == attacked.id and np.abs(a - b).max() <= 0.005 + 2 / 32768
    robot = read_manifest(tmp_path / "ota" / "robot" / "eot_eps0.005" / "manifest.jsonl")
    assert len(robot) == 4 and soundfile.info(robot[0].path).channels == 2
    with (tmp_path / "ota" / "results.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(report["rows"]) and all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)
    assert "| eot | 0.005 |" in markdown_table(report["rows"])
