"""SSAD (Su and Lee, seeds/003): self-supervised adversarial augmentation, the purifier's losses, the
purified model, and the metrics of the paper (protection efficacy, recovery rate).

- :func:`ssa_adversaries`: eq. 1-3, adversaries that move a frozen feature extractor's representation as far
  as a budget allows (signed steps of ``step_size`` within ``budget`` from a random start, no classifier or
  label involved), regenerated for every batch.
- :func:`ssad_losses`: eq. 4-7, ``L_pix = ||x - P(x*)||_2`` and ``L_feat = |F(x) - F(P(x*))|`` (per example,
  averaged), the discriminator's loss and the purifier's adversarial term (the non-saturating form of eq. 6,
  ``-log D(P(x*))``), and ``total = alpha L_adv + beta L_pix + gamma L_feat`` for the purifier.
- :class:`PurifiedModel`: the purifier as a front end of any model on the same log-Mel frames,
  ``model(P(x), lengths)``. It is differentiable end to end, so the adaptive attacker (one who knows the
  defence) attacks this composition directly; BPDA is only needed for a purifier without gradients.
- :func:`protection_efficacy` (eq. 12) and :func:`recovery_rate` (eq. 13).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from ser_robot.adversarial.attacks import ThreatModel, pgd
from ser_robot.errors import ConfigError
from ser_robot.models.ssad import Discriminator, Purifier, SsadConfig

__all__ = ["PurifiedModel", "protection_efficacy", "recovery_rate", "ssa_adversaries", "ssad_losses"]

FeatureFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``feature(frames (batch, frames, bands), lengths) -> (batch, units)``: the frozen representation F_phi."""


def ssa_adversaries(feature: FeatureFn, frames: torch.Tensor, lengths: torch.Tensor, step_size: float,
                    budget: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Eq. 1-3: ``ceil(budget / step_size)`` signed steps that raise ``||F(x*) - F(x)||_2``, each clipped to
    ``[x - budget, x + budget]``, from a uniform random point of that box (ours: at ``x`` itself the distance
    is 0 and so is its gradient, so steps from ``x`` would never move)."""
    with torch.no_grad():
        reference = feature(frames, lengths).detach()

    def distortion(x: torch.Tensor) -> torch.Tensor:
        return (feature(x, lengths) - reference).norm(dim=1)

    steps = max(1, math.ceil(budget / step_size - 1e-9))
    return pgd(distortion, frames, ThreatModel("features", budget), steps=steps, step_size=step_size,
               generator=generator)


def ssad_losses(purifier: Purifier, discriminator: Discriminator, feature: FeatureFn, frames: torch.Tensor,
                adversarial: torch.Tensor, lengths: torch.Tensor, config: SsadConfig) -> dict[str, torch.Tensor]:
    """The losses of one batch (module docstring): ``pix``, ``feat``, ``adv`` and ``total`` train the purifier,
    ``discriminator`` trains D (on the purified frames detached)."""
    purified = purifier(adversarial, lengths)
    valid = (torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths[:, None].to(frames.device))
    difference = (frames - purified) * valid[..., None]
    pix = difference.flatten(1).norm(dim=1).mean()
    feat = (feature(frames, lengths).detach() - feature(purified, lengths)).abs().mean(dim=1).mean()
    adv = F.binary_cross_entropy_with_logits(discriminator(purified), torch.ones(frames.shape[0],
                                                                                 device=frames.device))
    real = discriminator(frames)
    fake = discriminator(purified.detach())
    disc = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    total = config.alpha * adv + config.beta * pix + config.gamma * feat
    return {"pix": pix, "feat": feat, "adv": adv, "total": total, "discriminator": disc}


class PurifiedModel(torch.nn.Module):
    """``model(purifier(features, lengths), lengths)``: SSAD's purifier as the front end of ``model``."""

    def __init__(self, purifier: Purifier, model: torch.nn.Module) -> None:
        super().__init__()
        self.purifier = purifier
        self.model = model

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(self.purifier(features, lengths), lengths)


def _as_bool(values: np.ndarray | torch.Tensor) -> np.ndarray:
    return np.asarray(values, dtype=bool).ravel()


def protection_efficacy(correct_clean: np.ndarray, correct_attacked: np.ndarray,
                        correct_protected: np.ndarray) -> float:
    """Eq. 12, ``(R_no-protect - R_protected) / R_no-protect``; R is the share of the utterances the model gets
    right on clean input that it gets wrong once attacked, without and with the defence (boolean arrays, one
    entry per utterance). Raises when the attack harms nothing (R_no-protect = 0)."""
    clean, attacked, protected = (_as_bool(a) for a in (correct_clean, correct_attacked, correct_protected))
    if not clean.any():
        raise ConfigError("protection efficacy needs utterances the model gets right on clean input")
    unprotected = float(np.mean(~attacked[clean]))
    if unprotected == 0.0:
        raise ConfigError("protection efficacy is undefined: the attack turned no correct prediction wrong")
    return (unprotected - float(np.mean(~protected[clean]))) / unprotected


def recovery_rate(correct_clean: np.ndarray, correct_protected: np.ndarray) -> float:
    """Eq. 13, ``N_wrong->correct / N_wrong``: of the utterances the model gets wrong on clean input, the share
    it gets right with the defence under attack (our reading of "originally predicted wrongly ... but
    correctly after applying a defense method")."""
    clean, protected = _as_bool(correct_clean), _as_bool(correct_protected)
    if clean.all():
        raise ConfigError("recovery rate needs utterances the model gets wrong on clean input")
    return float(np.mean(protected[~clean]))
