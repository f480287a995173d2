"""Gradient attacks under an L-infinity bound: FGSM (with the clip of Ren et al. eq. 2), BIM and PGD.

Every attack perturbs a tensor ``x`` of any shape whose first axis is the batch, to raise (untargeted) or
lower (targeted) a per-example ``loss(x) -> (batch,)`` that the caller builds around a model
(:mod:`ser_robot.adversarial.objectives`: on model inputs, or on waveforms through the differentiable
feature extraction). A :class:`ThreatModel` says how far each value may move (``epsilon``, in the units of
its ``domain``) and the valid range every value must stay in; the result always satisfies both:
``|x_adv - x| <= epsilon`` element-wise and ``lower <= x_adv <= upper``.

- :func:`fgsm`: ``x' = x + epsilon sign(grad)`` (Ren et al. eq. 1; Goodfellow et al. 2015), then
  ``clip(x', x - eta, x + eta)`` (eq. 2; ``eta`` defaults to ``epsilon``) and the valid range.
- :func:`bim`: ``steps`` FGSM steps of ``step_size``, each projected back into the epsilon ball and the
  range (Kurakin et al. 2017); no random start.
- :func:`pgd`: BIM from a uniform random start in the ball, ``restarts`` times, keeping per example the
  perturbation with the worst loss for the model (Madry et al. 2018).
- :func:`spsa`: the same projected signed steps on a gradient *estimated from loss values only* (SPSA,
  Uesato et al. 2018): a defence that only breaks gradients (gradient masking) does not stop it, so a
  defence that holds against PGD but not against SPSA is masking, not robust.

Gradients are taken with ``torch.autograd.grad``, so the model's own parameter gradients are untouched;
put the model in ``eval()`` mode first (batch normalisation and dropout otherwise change with the attack).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ser_robot.errors import ConfigError

__all__ = ["DOMAINS", "Loss", "ThreatModel", "bim", "fgsm", "pgd", "spsa"]

DOMAINS: dict[str, str] = {
    "logmel_db": "dB of a log-Mel frame (the feature extractor's output, before normalisation)",
    "features": "standard deviations of the training population (normalised model inputs)",
    "waveform": "fraction of digital full scale (samples in [-1, 1])",
}
"""Where a perturbation lives, and the unit of its epsilon."""

Loss = Callable[[torch.Tensor], torch.Tensor]
"""``loss(x (batch, ...)) -> (batch,)``: the per-example loss the attack raises (or lowers, targeted)."""


@dataclass(frozen=True)
class ThreatModel:
    """An L-infinity threat model: ``epsilon`` in the unit of ``domain`` (:data:`DOMAINS`) and the valid
    range ``[lower, upper]`` of the input (``None``: unbounded on that side; a waveform's is [-1, 1])."""

    domain: str
    epsilon: float
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ConfigError(f"threat model domain {self.domain!r} is unknown; use one of {', '.join(DOMAINS)}")
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon >= 0):
            raise ConfigError(f"threat model epsilon must be a finite number >= 0 ({DOMAINS[self.domain]}), "
                              f"got {self.epsilon!r}")
        for name in ("lower", "upper"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"threat model {name} must be finite or None, got {value!r}")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ConfigError(f"threat model range is empty: lower {self.lower} >= upper {self.upper}")

    @classmethod
    def waveform(cls, epsilon: float) -> ThreatModel:
        """A perturbation of the samples, ``epsilon`` a fraction of full scale, samples kept in [-1, 1]."""
        return cls("waveform", epsilon, -1.0, 1.0)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor, radius: float | None = None) -> torch.Tensor:
        """``x_adv`` moved into the ball of ``radius`` (default ``epsilon``) around ``x`` and into the range."""
        radius = self.epsilon if radius is None else radius
        out = torch.max(torch.min(x_adv, x + radius), x - radius)
        if self.lower is not None or self.upper is not None:
            out = out.clamp(min=self.lower, max=self.upper)
        return out


def _gradient(loss: Loss, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(per-example loss (batch,), d sum(loss) / dx)`` at ``x``, detached."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        values = loss(x)
        if values.dim() != 1 or values.shape[0] != x.shape[0]:
            raise ValueError(f"an attack's loss must return one value per example, shape ({x.shape[0]},), "
                             f"got {tuple(values.shape)}")
        (grad,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), grad.detach()


def _step_sign(targeted: bool) -> float:
    return -1.0 if targeted else 1.0


def fgsm(loss: Loss, x: torch.Tensor, threat: ThreatModel, *, targeted: bool = False,
         eta: float | None = None) -> torch.Tensor:
    """One signed-gradient step of ``epsilon`` (Ren et al. eq. 1), clipped to ``[x - eta, x + eta]`` (eq. 2;
    ``eta`` defaults to ``epsilon`` and may not exceed it) and to the valid range."""
    eta = threat.epsilon if eta is None else eta
    if not 0 <= eta <= threat.epsilon:
        raise ConfigError(f"fgsm: eta must be in [0, epsilon = {threat.epsilon}], got {eta}")
    if threat.epsilon == 0:
        return x.detach().clone()
    _, grad = _gradient(loss, x)
    x_adv = x.detach() + _step_sign(targeted) * threat.epsilon * grad.sign()
    return threat.project(x_adv, x.detach(), eta)


def bim(loss: Loss, x: torch.Tensor, threat: ThreatModel, *, steps: int = 10, step_size: float | None = None,
        targeted: bool = False) -> torch.Tensor:
    """``steps`` signed-gradient steps of ``step_size`` (default ``epsilon / steps * 2.5``, capped at epsilon),
    each projected into the epsilon ball and the range, from ``x`` itself."""
    return _iterate(loss, x.detach(), x.detach(), threat, steps, step_size, targeted)


def pgd(loss: Loss, x: torch.Tensor, threat: ThreatModel, *, steps: int = 10, step_size: float | None = None,
        restarts: int = 1, random_start: bool = True, targeted: bool = False,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """BIM from a uniform random point of the epsilon ball (``random_start``), ``restarts`` times; per example the
    result with the highest loss (the lowest when ``targeted``). ``generator`` seeds the starts."""
    if restarts < 1:
        raise ConfigError(f"pgd: restarts must be >= 1, got {restarts}")
    x = x.detach()
    best = x.clone()
    best_loss = torch.full((x.shape[0],), math.inf if targeted else -math.inf, device=x.device)
    for _ in range(restarts):
        start = x
        if random_start and threat.epsilon > 0:
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
            start = threat.project(x + (2 * noise - 1) * threat.epsilon, x)
        x_adv = _iterate(loss, start, x, threat, steps, step_size, targeted)
        with torch.no_grad():
            values = loss(x_adv).detach()
        better = values < best_loss if targeted else values > best_loss
        best[better] = x_adv[better]
        best_loss = torch.where(better, values, best_loss)
    return best


def _iterate(loss: Loss, start: torch.Tensor, x: torch.Tensor, threat: ThreatModel, steps: int,
             step_size: float | None, targeted: bool) -> torch.Tensor:
    if steps < 1:
        raise ConfigError(f"an iterative attack needs steps >= 1, got {steps}")
    if threat.epsilon == 0:
        return x.clone()
    size = min(threat.epsilon, 2.5 * threat.epsilon / steps) if step_size is None else step_size
    if not (math.isfinite(size) and size > 0):
        raise ConfigError(f"an iterative attack's step_size must be a positive number, got {step_size!r}")
    x_adv = start
    for _ in range(steps):
        _, grad = _gradient(loss, x_adv)
        x_adv = threat.project(x_adv + _step_sign(targeted) * size * grad.sign(), x)
    return x_adv


@torch.no_grad()
def spsa(loss: Loss, x: torch.Tensor, threat: ThreatModel, *, steps: int = 20, samples: int = 32,
         delta: float = 0.01, step_size: float | None = None, targeted: bool = False,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """A gradient-free attack: each step estimates the gradient from ``samples`` pairs of loss values at
    ``x_adv +- delta * r`` (``r`` random signs; SPSA), then takes a signed step of ``step_size`` (default
    ``epsilon / 4``) projected into the ball and the range. ``loss`` is only evaluated, never differentiated."""
    if steps < 1 or samples < 1:
        raise ConfigError(f"spsa needs steps >= 1 and samples >= 1, got {steps} and {samples}")
    if not (math.isfinite(delta) and delta > 0):
        raise ConfigError(f"spsa's delta must be a positive number, got {delta!r}")
    x = x.detach()
    if threat.epsilon == 0:
        return x.clone()
    size = threat.epsilon / 4 if step_size is None else step_size
    x_adv = x.clone()
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    for _ in range(steps):
        estimate = torch.zeros_like(x)
        for _ in range(samples):
            r = torch.randint(0, 2, x.shape, generator=generator, device="cpu").to(x.device, x.dtype) * 2 - 1
            difference = loss(x_adv + delta * r) - loss(x_adv - delta * r)
            estimate += difference.reshape(shape) * r
        x_adv = threat.project(x_adv + _step_sign(targeted) * size * estimate.sign(), x)
    return x_adv
