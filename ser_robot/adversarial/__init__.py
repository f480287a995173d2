"""Adversarial audio: the attack surface of the emotion model (seeds/001, Ren et al. 2020; FGSM and BIM of
seeds/000 and seeds/002).

- :mod:`~ser_robot.adversarial.attacks`: :class:`ThreatModel` (epsilon in documented units, the valid
  range), :func:`fgsm` (with Ren et al.'s clip, eq. 2), :func:`bim`, :func:`pgd`, and the gradient-free :func:`spsa` (a check for gradient masking);
  untargeted and targeted.
- :mod:`~ser_robot.adversarial.objectives`: the losses they raise, on model inputs or on the waveform
  through the differentiable feature extraction.
- :mod:`~ser_robot.adversarial.over_the_air`: :class:`AcousticChannel` (random rooms of an RIR bank's split
  and noise, differentiable) and :func:`channel_loss` (expectation over transformation) for perturbations
  played into a room.
- :mod:`~ser_robot.adversarial.detector`: :class:`MahalanobisDetector` (a score for adversarial or
  out-of-distribution input), :func:`roc_auc`, and the loss of an attacker who knows the detector.
- :mod:`~ser_robot.adversarial.ssad`: SSAD (Su and Lee): self-supervised adversaries, the purifier's losses,
  :class:`~ser_robot.adversarial.ssad.PurifiedModel`, protection efficacy and recovery rate.
"""

from ser_robot.adversarial.attacks import DOMAINS, ThreatModel, bim, fgsm, pgd, spsa
from ser_robot.adversarial.detector import MahalanobisDetector, adaptive_loss, embeddings, roc_auc
from ser_robot.adversarial.objectives import feature_loss, waveform_loss
from ser_robot.adversarial.over_the_air import AcousticChannel, channel_loss

__all__ = ["DOMAINS", "AcousticChannel", "MahalanobisDetector", "ThreatModel", "adaptive_loss", "bim", "channel_loss",
           "embeddings", "feature_loss", "fgsm", "pgd", "roc_auc", "spsa", "waveform_loss"]
