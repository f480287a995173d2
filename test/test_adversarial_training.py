"""Adversarial training (Ren et al. 2020): the vanilla and similarity losses as the paper writes them, nothing
before the start iteration, the attack leaves batch-normalisation statistics alone, and a run trains."""

from __future__ import annotations

import contextlib
import copy
import pathlib

import numpy as np
import pytest
import torch

from ser_robot.adversarial import ThreatModel, feature_loss, fgsm
from ser_robot.errors import ConfigError
from ser_robot.models import build_model
from ser_robot.adversarial.objectives import last_layer_inputs
from ser_robot.train.adversarial import adversarial_step_loss
from ser_robot.train.config import AdversarialConfig, load_train_config

REPO = pathlib.Path(__file__).resolve().parent.parent
F = 6


@pytest.fixture()
def batch():
    torch.manual_seed(0)
    model = build_model("lakomkin_cnn", F, "categorical", seed=0, channels=[8, 8], kernel_sizes=[3, 3], dropout=0.0)
    return model.train(), torch.randn(5, 20, F), torch.tensor([20, 18, 12, 20, 7]), torch.tensor([0, 1, 2, 3, 1])


def _plain(model, x, lengths, labels):
    return torch.nn.functional.cross_entropy(model(x, lengths), labels, reduction="none")


def test_vanilla_is_alpha_real_plus_one_minus_alpha_adversarial(batch):
    model, x, lengths, labels = batch
    config = AdversarialConfig(kind="vanilla", epsilon=0.1, start_iteration=0, alpha=0.3)
    reference = copy.deepcopy(model)  # a train-mode forward moves the running statistics the attack uses
    loss = adversarial_step_loss(model, model, x, lengths, labels, config, 0, contextlib.nullcontext)
    model = reference
    model.eval()
    x_adv = fgsm(feature_loss(model, labels, lengths), x, ThreatModel("features", 0.1))
    model.train()
    both = _plain(model, torch.cat([x, x_adv]), torch.cat([lengths, lengths]), torch.cat([labels, labels]))
    real, fake = both.chunk(2)
    torch.testing.assert_close(loss, 0.3 * real + 0.7 * fake)
    assert bool((fake > real).any())  # the twin is harder


def test_similarity_adds_the_distance_of_the_last_layers_inputs(batch):
    model, x, lengths, labels = batch
    config = AdversarialConfig(kind="similarity", epsilon=0.1, start_iteration=0, beta=0.4, gamma=0.4)
    vanilla_model, reference = copy.deepcopy(model), copy.deepcopy(model)
    loss = adversarial_step_loss(model, model, x, lengths, labels, config, 0, contextlib.nullcontext)
    vanilla = adversarial_step_loss(vanilla_model, vanilla_model, x, lengths, labels,
                                    AdversarialConfig(kind="vanilla", epsilon=0.1, start_iteration=0, alpha=0.5),
                                    0, contextlib.nullcontext)
    model = reference
    with last_layer_inputs(model) as seen:
        model.eval()
        x_adv = fgsm(feature_loss(model, labels, lengths), x, ThreatModel("features", 0.1))
        model.train()
        model(torch.cat([x, x_adv]), torch.cat([lengths, lengths]))
    v, v_adv = seen[-1].chunk(2)
    distance = (v - v_adv).norm(dim=1)
    torch.testing.assert_close(loss, 0.8 * vanilla + 0.2 * distance, rtol=1e-5, atol=1e-6)


def test_nothing_changes_before_the_start_iteration_and_the_attack_leaves_batch_statistics_alone(batch):
    model, x, lengths, labels = batch
    config = AdversarialConfig(kind="vanilla", epsilon=0.1, start_iteration=1000)
    torch.testing.assert_close(adversarial_step_loss(model, model, x, lengths, labels, config, 999,
                                                     contextlib.nullcontext), _plain(model, x, lengths, labels))
    before = [b.clone() for b in model.buffers()]
    model.eval()
    fgsm(feature_loss(model, labels, lengths), x, ThreatModel("features", 0.1))
    model.train()
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers()))


def test_bad_configurations_are_named():
    with pytest.raises(ConfigError, match="beta \\+ gamma must be at most 1"):
        AdversarialConfig(kind="similarity", beta=0.7, gamma=0.4)
    with pytest.raises(ConfigError, match="categorical head of utterance models"):
        load_train_config(REPO / "config/train/lakomkin.yaml", {"head": "dimensional",
                                                                  "adversarial": {"kind": "vanilla"}})


def test_a_similarity_run_trains(tiny_corpus, tmp_path):
    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.train.trainer import train

    fold = leave_one_speaker_out(read_manifest(tiny_corpus))[0]
    config = load_train_config(REPO / "config/train/lakomkin.yaml", {
        "model": "lakomkin_cnn", "epochs": 2, "batch_size": 8, "augmentation": {"kind": "none"},
        "adversarial": {"kind": "similarity", "epsilon": 0.1, "start_iteration": 2}})
    result = train(config, fold, out_dir=tmp_path, progress=False)
    assert len(result.history) == 2 and all(np.isfinite(h["train_loss"]) for h in result.history)
    assert result.config.adversarial.kind == "similarity"


def test_rens_rate_decays_by_iteration_not_by_plateau(tiny_corpus, tmp_path):
    """lr_decay_every: the rate is lr x 0.5^(iteration // 2) at each step, whatever validation does, and a
    configuration at its default leaves the key out (old fingerprints unchanged)."""
    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.train.trainer import train

    fold = leave_one_speaker_out(read_manifest(tiny_corpus))[0]
    config = load_train_config(REPO / "config/train/lakomkin.yaml", {
        "model": "lakomkin_cnn", "epochs": 3, "batch_size": 8, "augmentation": {"kind": "none"}, "lr": 1e-3,
        "lr_decay_every": 2, "lr_decay": 0.5, "lr_patience": 0})
    result = train(config, fold, out_dir=tmp_path, progress=False)
    per_epoch = -(-len(fold.train) // 8)
    last_iteration = [(epoch + 1) * per_epoch - 1 for epoch in range(3)]
    assert [h["lr"] for h in result.history] == pytest.approx([1e-3 * 0.5 ** (i // 2) for i in last_iteration])
    assert "lr_decay_every" not in load_train_config(REPO / "config/train/lakomkin.yaml").to_dict()
    assert load_train_config(REPO / "config/train/ren2020.yaml").lr_decay_every == 100
