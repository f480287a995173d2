"""SSAD (Su and Lee): the purifier and discriminator of the paper's sizes, padding never changes a purified
frame, self-supervised adversaries stay within their budget and move the representation, a training step
lowers the purifier's loss, the purified model is a differentiable front end, and PE / RR follow eq. 12-13."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

from ser_robot.adversarial.ssad import (PurifiedModel, protection_efficacy, recovery_rate, ssa_adversaries,
                                        ssad_losses)
from ser_robot.errors import ConfigError
from ser_robot.models import build_model
from ser_robot.models.ssad import Discriminator, Purifier, load_ssad_config

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture()
def parts():
    torch.manual_seed(0)
    config = load_ssad_config(layers=2, feedforward=64, disc_dense=[64, 16], disc_channels=4, dropout=0.0)
    extractor = build_model("ren_vgg16", 64, "categorical", seed=0, width=0.0625, segment_frames=40).eval()
    for p in extractor.parameters():
        p.requires_grad_(False)

    def feature(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return extractor.embed(extractor._padded(frames[:, :40]))[1]

    return config, Purifier(config), Discriminator(config), feature, extractor


def test_the_papers_sizes():
    config = load_ssad_config()
    purifier, discriminator = Purifier(config), Discriminator(config)
    assert len(purifier.encoder.layers) == 6 and purifier.encoder.layers[0].self_attn.num_heads == 8
    linears = [m for m in discriminator.dense if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [4096, 1024, 64, 1]
    assert sum(isinstance(m, torch.nn.Conv2d) for m in discriminator.modules()) == 5
    assert (config.step_size, config.budget, config.alpha, config.beta, config.gamma) == (0.01, 0.06, 1, 1, 1)


def test_padding_never_changes_a_purified_frame_and_an_untrained_purifier_is_the_identity(parts):
    config, purifier, _, _, _ = parts
    purifier.eval()
    x, lengths = torch.randn(2, 30, 64), torch.tensor([30, 18])
    torch.testing.assert_close(purifier(x, lengths), x)  # the correction starts at zero
    torch.nn.init.normal_(purifier.correction.weight, std=0.1)
    batch = purifier(x, lengths)
    alone = purifier(x[1:, :18], lengths[1:])
    torch.testing.assert_close(batch[1:, :18], alone, rtol=1e-5, atol=1e-5)


def test_ssa_adversaries_stay_within_the_budget_and_move_the_representation(parts):
    config, _, _, feature, _ = parts
    x, lengths = torch.randn(3, 40, 64), torch.full((3,), 40)
    adversarial = ssa_adversaries(feature, x, lengths, config.step_size, config.budget)
    assert float((adversarial - x).abs().max()) <= config.budget + 1e-6
    assert bool(((feature(adversarial, lengths) - feature(x, lengths)).norm(dim=1) > 0).all())


def test_a_training_step_lowers_the_purifiers_loss(parts):
    config, purifier, discriminator, feature, _ = parts
    x, lengths = torch.randn(4, 40, 64), torch.full((4,), 40)
    adversarial = ssa_adversaries(feature, x, lengths, config.step_size, config.budget)
    optimizer = torch.optim.Adam(purifier.parameters(), lr=1e-3)
    first = None
    for _ in range(15):
        losses = ssad_losses(purifier, discriminator, feature, x, adversarial, lengths, config)
        first = float(losses["pix"].detach()) if first is None else first
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
    assert float(ssad_losses(purifier, discriminator, feature, x, adversarial, lengths, config)["pix"].detach()) < first
    assert {"pix", "feat", "adv", "total", "discriminator"} <= set(losses)


def test_the_purified_model_is_a_differentiable_front_end(parts):
    _, purifier, _, _, extractor = parts
    composed = PurifiedModel(purifier.eval(), extractor)
    x = torch.randn(2, 40, 64, requires_grad=True)
    composed(x, torch.full((2,), 40)).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0  # the adaptive attacker's gradient exists


def test_protection_efficacy_and_recovery_rate_follow_eq_12_and_13():
    clean = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    attacked = np.array([0, 0, 1, 1, 0, 0], dtype=bool)  # half the correct ones flipped: R_no-protect 0.5
    protected = np.array([1, 0, 1, 1, 1, 0], dtype=bool)  # one flipped: R_protected 0.25
    assert protection_efficacy(clean, attacked, protected) == pytest.approx(0.5)
    assert recovery_rate(clean, protected) == pytest.approx(0.5)  # one of the two clean-wrong ones corrected
    with pytest.raises(ConfigError, match="turned no correct prediction wrong"):
        protection_efficacy(clean, clean, clean)


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory):
    """A narrow CNN-4 trained one epoch on the tiny corpus, and a purifier trained two epochs against it."""
    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.train.config import load_train_config
    from ser_robot.train.purifier import train_purifier
    from ser_robot.train.trainer import train

    root = tmp_path_factory.mktemp("ssad")
    fold = leave_one_speaker_out(read_manifest(tiny_corpus), validation="partner")[0]
    target = train(load_train_config(REPO / "config/train/ren2020.yaml", {
        "model": "ren_cnn4", "epochs": 1, "batch_size": 8, "model_hyper": {"width": 0.0625, "segment_frames": 80}}),
        fold, out_dir=root / "target", progress=False)
    config = load_ssad_config(layers=1, feedforward=32, disc_dense=[32], disc_channels=4)
    purifier = train_purifier(fold, target.best_checkpoint, config, epochs=2, frames=80, out_dir=root / "ssad")
    return fold, target, purifier


def test_train_purifier_against_a_trained_log_mel_model(trained):
    _, _, result = trained
    assert len(result.history) == 2 and all(np.isfinite(h["total"]) for h in result.history)
    saved = torch.load(result.checkpoint, weights_only=True)
    assert saved["kind"] == "ssad_purifier" and saved["feature_set"] == "logmel_ren2020"


def test_the_served_model_runs_the_purifier_first_and_refuses_a_mismatch(trained, tmp_path):
    from ser_robot.errors import CheckpointError, FeatureMismatchError
    from ser_robot.features.sets import create_extractor
    from ser_robot.inference.model import EmotionModel
    from ser_robot.train.config import load_train_config
    from ser_robot.train.data import load_waveform
    from ser_robot.train.trainer import train

    fold, target, purifier = trained
    checkpoint = torch.load(purifier.checkpoint, weights_only=True)
    state = {k: v.clone() for k, v in checkpoint["state"].items()}
    torch.nn.init.normal_(state["correction.weight"], std=0.05)  # a purifier that changes its input
    checkpoint["state"] = state
    changed = tmp_path / "purifier.pt"
    torch.save(checkpoint, changed)
    served = EmotionModel(target.best_checkpoint, "cpu", backend="torch", purifier=changed)
    assert "+ssad@" in served.model_id
    frames = create_extractor("logmel_ren2020")(load_waveform(str(fold.test[0].path), 16000)[None])[0].numpy()
    plain = EmotionModel(target.best_checkpoint, "cpu", backend="torch")
    expected = plain.predict(served.purifier(frames)).probabilities
    np.testing.assert_allclose(served.predict(frames).probabilities, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain.predict(frames).probabilities, expected)
    with pytest.raises(CheckpointError, match="not an SSAD purifier"):
        EmotionModel(target.best_checkpoint, "cpu", purifier=target.best_checkpoint)
    other = train(load_train_config(REPO / "config/train/lakomkin.yaml", {
        "model": "lakomkin_cnn", "epochs": 1, "batch_size": 8, "augmentation": {"kind": "none"}}),
        fold, out_dir=tmp_path / "other", progress=False)
    with pytest.raises(FeatureMismatchError, match="must share a feature set"):
        EmotionModel(other.best_checkpoint, "cpu", purifier=changed)


def test_su_lee_table1_runs_at_tiny_size(tmp_path):
    """The SSAD arm trains a purifier against its own model, scores the defended system, the attack without the
    purifier and the adaptive attack, and the tables report PE / RR and the adaptive effect."""
    import json

    from ser_robot.experiments import run_experiment
    from ser_robot.experiments.tables import read_predictions

    path = REPO / "training/experiments/su_lee_table1_tiny.yaml"
    result = run_experiment(path, out=tmp_path / "results", workers=1, progress=False, cache=tmp_path / "cache")
    assert result.jobs_run == 3
    job_dir = next((tmp_path / "results" / "jobs" / "ssad").glob("rep0/*"))
    job = json.loads((job_dir / "job.json").read_text())
    assert (job_dir / "purifier" / "purifier.pt").is_file()
    assert {"pgd3", "pgd3_unprotected", "pgd3_adaptive", "clean_unprotected"} <= set(job["metrics"])
    logits = {}
    for name in ("pgd3", "pgd3_unprotected"):  # the same adversaries, scored with and without the purifier
        rows = (job_dir / f"predictions_{name}.csv").read_text().splitlines()[1:]
        logits[name] = [row.split(",")[4:] for row in rows]
    assert logits["pgd3"] != logits["pgd3_unprotected"]
    assert (read_predictions(job_dir / "predictions_pgd3_adaptive.csv").ids
            == read_predictions(job_dir / "predictions_clean.csv").ids)
    assert "## Protection efficacy and recovery rate" in result.markdown
    assert "| CNN-4 + SSAD | adaptive | pgd3 |" in result.markdown and "ssad_protects_adaptive" in result.markdown
    assert (tmp_path / "results" / "figures" / "protection.png").is_file()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("purifier"), "add a 'purifier' section"),
    (lambda d: d["purifier"].update(reference="ssad"), "must name an arm without a defence"),
    (lambda d: d["purifier"].update(changes={"layers": 0}), "purifier:"),
    (lambda d: d["effects"][1].update(test_set_b="pgd4_adaptive"), "its test sets are"),
    (lambda d: d.pop("attacks") and d.pop("effects"), "add 'attacks'"),
])
def test_a_defended_experiment_is_checked_on_load(tmp_path, change, message):
    import yaml

    from ser_robot.experiments import load_experiment

    data = yaml.safe_load((REPO / "training/experiments/su_lee_table1_tiny.yaml").read_text())
    change(data)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=message):
        load_experiment(path)
