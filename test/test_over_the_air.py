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


@pytest.fixture(scope="module")
def attacked(model, tiny_corpus, tmp_path_factory):
    """An attack-over-the-air run through the command line, one utterance per class: ``(folder, banks)``."""
    from ser_robot.acoustics.noise_bank import build_noise_bank
    from ser_robot.acoustics.rooms import build_rir_bank

    root = tmp_path_factory.mktemp("ota")
    build_noise_bank(root / "noise_bank", seed=0, seconds_per_clip=2.0, clips_per_category=4)
    build_rir_bank(root / "rir_bank", count=4, seed=0, sources_per_room=1, max_order_cap=10)
    done = ser_robot("attack-over-the-air", str(tiny_corpus), "--model", str(model.path), "--rir-bank",
                     str(root / "rir_bank"), "--noise-bank", str(root / "noise_bank"), "--out", str(root / "ota"),
                     "--epsilons", "0.005", "--steps", "2", "--draws", "2", "--per-class", "1", timeout=600)
    assert done.returncode == 0, done.stderr
    return root / "ota", root


def test_every_arm_is_crafted_and_scored_directly_and_through_the_robot(attacked):
    folder, _ = attacked
    report = json.loads((folder / "results.json").read_text())
    assert "attack-over-the-air" in (folder / "README.md").read_text()
    assert report["utterances"] == 4
    got = {(row["arm"], row["condition"]) for row in report["rows"]}
    assert got == {(arm, condition) for arm in ("clean", *ARMS) for condition in ("direct", "robot")}
    originals = read_manifest(folder / "audio" / "clean" / "manifest.jsonl")
    for arm in ARMS:
        crafted = read_manifest(folder / "audio" / f"{arm}_eps0.005" / "manifest.jsonl")
        for original, attacked_one in zip(originals, crafted):
            a, _ = soundfile.read(original.path, dtype="float64")
            b, _ = soundfile.read(attacked_one.path, dtype="float64")
            assert original.id == attacked_one.id and np.abs(a - b).max() <= 0.005 + 2 / 32768
    robot = read_manifest(folder / "robot" / "eot_eps0.005" / "manifest.jsonl")
    assert len(robot) == 4 and soundfile.info(robot[0].path).channels == 2
    with (folder / "results.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(report["rows"]) and all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)
    assert "| eot | 0.005 |" in markdown_table(report["rows"])


def test_the_detector_is_scored_on_every_arm_and_against_an_adaptive_attacker(attacked, model, utterances, tmp_path):
    from ser_robot.eval.detector_eval import evaluate_detector, pipeline_embeddings
    from ser_robot.eval.offline_eval import evaluate_manifest

    folder, _ = attacked
    clean = read_manifest(folder / "audio" / "clean" / "manifest.jsonl")
    robot = read_manifest(folder / "robot" / "clean" / "manifest.jsonl")
    held_out = {u.speaker for u in clean}
    fit = [u for u in utterances if u.speaker not in held_out] or utterances
    v, predicted = pipeline_embeddings(model, list(clean))
    assert v.shape[0] == len(clean)
    assert predicted == [row["predicted"] for row in evaluate_manifest(model, list(clean))["predictions"]]
    report = evaluate_detector(model, fit, list(clean), list(robot), folder, tmp_path / "detector",
                               adaptive_epsilon=0.005, adaptive_steps=2)
    sets = {row["set"] for row in report["rows"]}
    assert sets == {"robot twin, clean", "adaptive_eps0.005 / direct",
                    *(f"{arm}_eps0.005 / {c}" for arm in ARMS for c in ("direct", "robot"))}
    assert all(0.0 <= row["auc"] <= 1.0 and 0.0 <= row["tpr_at_5pct_fpr"] <= 1.0 for row in report["rows"])
    for original in clean:
        b, _ = soundfile.read(tmp_path / "detector" / "adaptive" / original.speaker / f"{original.id}.wav")
        a, _ = soundfile.read(original.path)
        assert np.abs(a - b).max() <= 0.005 + 2 / 32768
