"""A score for adversarial or out-of-distribution input: how far an utterance's deep feature lies from the
training data's classes (Lee et al. 2018, the Mahalanobis detector, without its input pre-processing).

:class:`MahalanobisDetector` is fitted on the inputs ``v`` of a model's last fully connected layer
(``model.output``) for the training utterances: one mean per class and one shared covariance. Its score
for a new ``v`` is the smallest Mahalanobis distance to a class mean (higher: less like the training data);
:func:`embeddings` collects ``v`` for a batch; :func:`roc_auc` measures how well a score separates clean from
attacked (or out-of-distribution) input: 0.5 is chance, 1.0 perfect.

An attacker who knows the detector can attack it as well (minimise the score while flipping the class):
evaluate it against that adaptive attack too (:func:`adaptive_loss`), not only against attacks that ignore it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from ser_robot.adversarial.objectives import last_layer_inputs, utterance_rows
from ser_robot.errors import ConfigError

__all__ = ["MahalanobisDetector", "adaptive_loss", "embeddings", "roc_auc"]


def embeddings(model: torch.nn.Module, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """``(logits (batch, classes), v (batch, units))``: the model's outputs and the input of its ``output``
    layer, one row per utterance (a segment model's rows averaged over the utterance's segments)."""
    with last_layer_inputs(model) as seen:
        logits = model(features, lengths)
    return logits, utterance_rows(model, seen[-1], features, lengths)


class MahalanobisDetector:
    """Class means and a shared, shrunk covariance of training features; :meth:`score` is the distance to the
    nearest class (see the module docstring). ``shrinkage`` in [0, 1) blends the covariance with its diagonal's
    mean (a few hundred utterances do not pin down a covariance of hundreds of dimensions)."""

    def __init__(self, shrinkage: float = 0.1) -> None:
        if not 0.0 <= shrinkage < 1.0:
            raise ConfigError(f"detector shrinkage must be in [0, 1), got {shrinkage}")
        self.shrinkage = shrinkage
        self.means: torch.Tensor | None = None
        self.precision: torch.Tensor | None = None

    def fit(self, v: torch.Tensor, labels: torch.Tensor) -> MahalanobisDetector:
        """Fit on training features ``v`` ``(n, units)`` with class ``labels`` ``(n,)``; returns itself."""
        v, labels = v.detach().double(), labels.detach()
        classes = sorted(set(labels.tolist()))
        if len(classes) < 2 or v.shape[0] <= len(classes):
            raise ConfigError(f"the detector needs several utterances of at least two classes, got {v.shape[0]} "
                              f"of {len(classes)}")
        self.means = torch.stack([v[labels == c].mean(dim=0) for c in classes])
        centred = v - self.means[torch.tensor([classes.index(c) for c in labels.tolist()])]
        covariance = centred.T @ centred / (v.shape[0] - len(classes))
        target = torch.eye(v.shape[1], dtype=v.dtype) * covariance.diagonal().mean()
        self.precision = torch.linalg.pinv((1 - self.shrinkage) * covariance + self.shrinkage * target)
        return self

    def score(self, v: torch.Tensor) -> torch.Tensor:
        """``(n,)`` smallest Mahalanobis distance of each row of ``v`` to a class mean (differentiable in ``v``)."""
        if self.means is None or self.precision is None:
            raise ConfigError("fit the detector before scoring")
        diff = v.double()[:, None, :] - self.means[None].to(v.device)  # (n, classes, units)
        distances = torch.einsum("ncu,uw,ncw->nc", diff, self.precision.to(v.device), diff)
        return distances.clamp_min(0).sqrt().min(dim=1).values.to(v.dtype)


def adaptive_loss(model: torch.nn.Module, detector: MahalanobisDetector, labels: torch.Tensor,
                  lengths: torch.Tensor, weight: float = 1.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """``loss(features) -> (batch,)`` for an attacker who knows the detector: raise the cross-entropy of the true
    ``labels`` while keeping the detector's score low (``CE - weight * score``)."""

    def loss(features: torch.Tensor) -> torch.Tensor:
        logits, v = embeddings(model, features, lengths)
        return F.cross_entropy(logits.float(), labels, reduction="none") - weight * detector.score(v).float()

    return loss


def roc_auc(negatives: np.ndarray | torch.Tensor, positives: np.ndarray | torch.Tensor) -> float:
    """Area under the ROC curve of a score that should be higher for ``positives`` (attacked) than for
    ``negatives`` (clean): the probability that a random positive outscores a random negative, ties half."""
    neg = np.asarray(negatives, dtype=np.float64).ravel()
    pos = np.asarray(positives, dtype=np.float64).ravel()
    if not len(neg) or not len(pos):
        raise ConfigError("roc_auc needs at least one score on each side")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))
