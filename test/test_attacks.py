"""Adversarial attacks (ser_robot.adversarial): bounds and ranges respected, a zero epsilon changes nothing,
targeted attacks move toward their target, and an attack lowers the accuracy of a trained model, on its
inputs and on the waveform through the differentiable log-Mel extraction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ser_robot.adversarial import ThreatModel, bim, feature_loss, fgsm, pgd, spsa, waveform_loss
from ser_robot.errors import ConfigError

ATTACKS = {
    "fgsm": lambda loss, x, threat, **kw: fgsm(loss, x, threat, **kw),
    "bim": lambda loss, x, threat, **kw: bim(loss, x, threat, steps=5, **kw),
    "pgd": lambda loss, x, threat, **kw: pgd(loss, x, threat, steps=5, restarts=2,
                                            generator=torch.Generator().manual_seed(0), **kw),
    "spsa": lambda loss, x, threat, **kw: spsa(loss, x, threat, steps=8, samples=16,
                                              generator=torch.Generator().manual_seed(0), **kw),
}


class Linear(nn.Module):
    """A fixed linear classifier of frame means: ``(batch, frames, 3) -> (batch, 3)``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[2.0, -1.0, 0.0], [-1.0, 2.0, 0.5], [0.0, 0.5, 1.0]]))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1) @ self.weight.T


@pytest.fixture()
def problem():
    torch.manual_seed(0)
    model = Linear().eval()
    x = torch.randn(16, 5, 3) * 0.2
    lengths = torch.full((16,), 5)
    with torch.no_grad():
        labels = model(x, lengths).argmax(1)  # the model is right on every example
    return model, x, lengths, labels


@pytest.mark.parametrize("name", ATTACKS)
def test_the_perturbation_respects_its_bound_and_the_range(name, problem):
    model, x, lengths, labels = problem
    threat = ThreatModel("features", 0.3, lower=-0.25, upper=0.5)
    x = x.clamp(-0.25, 0.5)
    x_adv = ATTACKS[name](feature_loss(model, labels, lengths), x, threat)
    assert float((x_adv - x).abs().max()) <= 0.3 + 1e-6
    assert float(x_adv.min()) >= -0.25 and float(x_adv.max()) <= 0.5
    assert not torch.equal(x_adv, x)


@pytest.mark.parametrize("name", ATTACKS)
def test_a_zero_epsilon_changes_nothing(name, problem):
    model, x, lengths, labels = problem
    x_adv = ATTACKS[name](feature_loss(model, labels, lengths), x, ThreatModel("features", 0.0))
    assert torch.equal(x_adv, x)


@pytest.mark.parametrize("name", ATTACKS)
def test_untargeted_attacks_lower_accuracy_and_targeted_ones_reach_their_target(name, problem):
    model, x, lengths, labels = problem
    threat = ThreatModel("features", 1.0)
    x_adv = ATTACKS[name](feature_loss(model, labels, lengths), x, threat)
    with torch.no_grad():
        assert float((model(x_adv, lengths).argmax(1) == labels).float().mean()) < 0.5
    target = (labels + 1) % 3
    x_target = ATTACKS[name](feature_loss(model, target, lengths), x, threat, targeted=True)
    with torch.no_grad():
        hit = float((model(x_target, lengths).argmax(1) == target).float().mean())
    assert hit > 0.5


def test_fgsm_is_ren_et_al_eq_1_and_2(problem):
    model, x, lengths, labels = problem
    loss = feature_loss(model, labels, lengths)
    x_req = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(loss(x_req).sum(), x_req)[0]
    expected = x + 0.1 * grad.sign()
    torch.testing.assert_close(fgsm(loss, x, ThreatModel("features", 0.1)), expected)
    clipped = fgsm(loss, x, ThreatModel("features", 0.1), eta=0.04)  # eq. 2: clip to [x - eta, x + eta]
    torch.testing.assert_close(clipped, x + 0.04 * grad.sign())
    assert model.weight.grad is None  # the model's parameters are not touched


def test_more_pgd_restarts_never_give_a_weaker_attack(problem):
    model, x, lengths, labels = problem
    loss = feature_loss(model, labels, lengths)
    threat = ThreatModel("features", 0.2)
    one = pgd(loss, x, threat, steps=3, restarts=1, generator=torch.Generator().manual_seed(1))
    three = pgd(loss, x, threat, steps=3, restarts=3, generator=torch.Generator().manual_seed(1))
    assert bool((loss(three) >= loss(one) - 1e-6).all())  # the first restart is the same draw


def test_bad_threat_models_are_named():
    with pytest.raises(ConfigError, match="domain 'db' is unknown"):
        ThreatModel("db", 1.0)
    with pytest.raises(ConfigError, match="epsilon must be a finite number >= 0"):
        ThreatModel("waveform", float("nan"))
    with pytest.raises(ConfigError, match="range is empty"):
        ThreatModel("features", 1.0, lower=1.0, upper=0.0)
    with pytest.raises(ConfigError, match="eta must be"):
        fgsm(lambda v: v.sum(dim=(1, 2)), torch.zeros(1, 2, 3), ThreatModel("features", 0.1), eta=0.2)


def test_a_waveform_attack_through_the_log_mel_extraction_fools_a_trained_model():
    """A tiny log-Mel classifier of two tones, trained here; an attack on the samples of at most 3 % of full
    scale (-30 dBFS, 20 dB below the tones) flips it, the samples stay within [-1, 1]."""
    from ser_robot.features.logmel import LogMel
    from ser_robot.features.normalization import FeatureNormalizer

    torch.manual_seed(0)
    extractor = LogMel("ren2020")
    t = torch.arange(8000) / 16000
    waves = torch.stack([0.3 * torch.sin(2 * torch.pi * f * t + phase) for f in (300.0, 2000.0) for phase in
                         torch.rand(8).tolist()])
    waves = waves + 0.003 * torch.randn(waves.shape)  # a noise floor (-50 dBFS), as any microphone has
    labels = torch.tensor([0] * 8 + [1] * 8)
    frames = extractor(waves)
    normalizer = FeatureNormalizer(extractor.names)
    normalizer.update(frames, torch.ones(frames.shape[:2], dtype=torch.bool))
    model = nn.Sequential(nn.Flatten(1), nn.LazyLinear(2))

    class Mean(nn.Module):
        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return model(x.mean(dim=1, keepdim=True))

    classifier = Mean()
    model(normalizer(frames).mean(dim=1, keepdim=True))  # materialise the lazy layer
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(50):
        loss = nn.functional.cross_entropy(classifier(normalizer(frames), None), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    classifier.eval()
    with torch.no_grad():
        assert float((classifier(normalizer(frames), None).argmax(1) == labels).float().mean()) == 1.0
    threat = ThreatModel.waveform(0.03)
    adversarial = pgd(waveform_loss(classifier, extractor, normalizer, labels), waves, threat, steps=20,
                      generator=torch.Generator().manual_seed(0))
    assert float((adversarial - waves).abs().max()) <= 0.03 + 1e-7 and float(adversarial.abs().max()) <= 1.0
    with torch.no_grad():
        accuracy = float((classifier(normalizer(extractor(adversarial)), None).argmax(1) == labels).float().mean())
    assert accuracy < 0.5


def test_spsa_breaks_a_defence_that_only_masks_gradients(problem):
    """A model whose input passes through a rounding step (zero gradient almost everywhere) defeats PGD, which
    sees no gradient, but not SPSA, which only reads loss values: what a gradient-masking defence looks like."""
    model, x, lengths, labels = problem

    class Masked(torch.nn.Module):
        def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return model(torch.round(features * 20) / 20, lengths)  # rounding: zero gradient almost everywhere

    masked = Masked()
    loss = feature_loss(masked, labels, lengths)
    threat = ThreatModel("features", 1.0)
    with torch.no_grad():
        clean = float((masked(x, lengths).argmax(1) == labels).float().mean())
        after_pgd = float((masked(pgd(loss, x, threat, steps=5, random_start=False), lengths).argmax(1) == labels)
                          .float().mean())
        after_spsa = float((masked(spsa(loss, x, threat, steps=8, samples=16, delta=0.1,
                                        generator=torch.Generator().manual_seed(0)), lengths).argmax(1) == labels)
                           .float().mean())
    assert after_pgd == clean  # no gradient: PGD does nothing
    assert after_spsa < clean - 0.3
