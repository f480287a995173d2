"""Adversarial training (Ren et al. 2020, seeds/001, section 3.2): the loss of one batch on real and FGSM inputs.

From iteration ``adversarial.start_iteration`` on (paper: 1000), every training batch also gets its FGSM
twin ``x' = clip(x + epsilon sign(grad_x L), x - epsilon, x + epsilon)`` (eq. 1-2), generated against the
model being trained, in evaluation mode (batch normalisation's running statistics and dropout are not
touched by the attack), on the normalised model inputs: ``epsilon`` is in standard deviations of the
training population (threat domain ``features``). The per-example loss is then

- ``vanilla``: ``alpha L(x) + (1 - alpha) L(x')`` (section 3.2.1, alpha = 0.5);
- ``similarity``: ``beta L(x) + gamma L(x') + (1 - beta - gamma) ||v - v'||_2`` (section 3.2.2, beta = gamma
  = 0.4), ``v`` and ``v'`` the inputs of the model's last fully connected layer (``model.output``) for the
  real and the adversarial example (a segment model's: the mean over the utterance's segments).

Before ``start_iteration``, and with ``kind: none``, the loss is ``L(x)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from ser_robot.adversarial import ThreatModel, feature_loss, fgsm
from ser_robot.adversarial.objectives import last_layer_inputs, utterance_rows
from ser_robot.train.config import AdversarialConfig

__all__ = ["adversarial_step_loss"]


def adversarial_step_loss(model: torch.nn.Module, net: Callable[..., torch.Tensor], features: torch.Tensor,
                          lengths: torch.Tensor, labels: torch.Tensor, config: AdversarialConfig,
                          iteration: int, forward: Callable[[], contextlib.AbstractContextManager]) -> torch.Tensor:
    """The per-example training loss ``(batch,)`` of one batch (module docstring).

    ``model`` is the network (for the attack and the hook), ``net`` what the step calls (``model`` or its DDP
    wrapper), ``features`` ``(batch, frames, F)`` normalised inputs with ``lengths``, ``labels`` ``(batch,)``
    class indices, ``iteration`` the global optimiser step, ``forward`` the autocast context of the step.
    """
    active = config.kind != "none" and iteration >= config.start_iteration
    if not active:
        with forward():
            outputs = net(features, lengths)
        return torch.nn.functional.cross_entropy(outputs.float(), labels, reduction="none")
    was_training = model.training
    model.eval()
    try:
        adversarial = fgsm(feature_loss(model, labels, lengths), features, ThreatModel("features", config.epsilon))
    finally:
        model.train(was_training)
    both, both_lengths = torch.cat([features, adversarial]), torch.cat([lengths, lengths])
    hook = last_layer_inputs(model) if config.kind == "similarity" else contextlib.nullcontext([])
    with hook as seen, forward():
        outputs = net(both, both_lengths)
    losses = torch.nn.functional.cross_entropy(outputs.float(), torch.cat([labels, labels]), reduction="none")
    real, fake = losses.chunk(2)
    if config.kind == "vanilla":
        return config.alpha * real + (1 - config.alpha) * fake
    v, v_adv = utterance_rows(model, seen[-1].float(), both, both_lengths).chunk(2)
    distance = (v - v_adv).norm(p=2, dim=1)
    return config.beta * real + config.gamma * fake + (1 - config.beta - config.gamma) * distance
