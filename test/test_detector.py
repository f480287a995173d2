"""The adversarial / out-of-distribution detector: Mahalanobis distance of the last layer's inputs to the
training classes; ROC-AUC as the probability that an attacked input outscores a clean one; and an attacker
who knows the detector lowers its score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ser_robot.adversarial import (MahalanobisDetector, ThreatModel, adaptive_loss, embeddings, feature_loss, pgd,
                                   roc_auc)
from ser_robot.errors import ConfigError
from ser_robot.models import build_model

F = 6


def test_roc_auc_is_the_probability_of_ranking_a_positive_first():
    assert roc_auc([0.1, 0.2], [0.3, 0.4]) == 1.0 and roc_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert roc_auc([1.0, 2.0], [1.0, 2.0]) == 0.5
    with pytest.raises(ConfigError, match="at least one score"):
        roc_auc([], [1.0])


@pytest.fixture(scope="module")
def trained():
    """A Lakomkin CNN trained to separate four classes of shifted Gaussian frames."""
    torch.manual_seed(0)
    model = build_model("lakomkin_cnn", F, "categorical", seed=0, channels=[16, 16], kernel_sizes=[3, 3], dropout=0.0)
    centres = torch.randn(4, F) * 1.5
    labels = torch.arange(4).repeat(64)
    x = centres[labels][:, None, :] + 0.5 * torch.randn(256, 30, F)
    lengths = torch.full((256,), 30)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x, lengths), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        _, v = embeddings(model, x, lengths)
    detector = MahalanobisDetector().fit(v, labels)
    test_labels = torch.arange(4).repeat(16)
    test_x = centres[test_labels][:, None, :] + 0.5 * torch.randn(64, 30, F)
    return model, detector, test_x, torch.full((64,), 30), test_labels


def test_the_detector_flags_strong_attacks_and_the_adaptive_attacker_hides_from_it(trained):
    model, detector, x, lengths, labels = trained
    threat = ThreatModel("features", 2.0)
    with torch.no_grad():
        clean_scores = detector.score(embeddings(model, x, lengths)[1])
    attacked = pgd(feature_loss(model, labels, lengths), x, threat, steps=10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        attacked_scores = detector.score(embeddings(model, attacked, lengths)[1])
    auc = roc_auc(clean_scores.numpy(), attacked_scores.numpy())
    assert auc > 0.8
    adaptive = pgd(adaptive_loss(model, detector, labels, lengths, weight=1.0), x, threat, steps=10,
                   generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adaptive_scores = detector.score(embeddings(model, adaptive, lengths)[1])
    assert roc_auc(clean_scores.numpy(), adaptive_scores.numpy()) < auc  # knowing the detector helps the attacker
    assert np.isfinite(adaptive_scores.numpy()).all()


def test_bad_use_is_named():
    with pytest.raises(ConfigError, match="fit the detector"):
        MahalanobisDetector().score(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="at least two classes"):
        MahalanobisDetector().fit(torch.zeros(5, 3), torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ConfigError, match="shrinkage"):
        MahalanobisDetector(shrinkage=1.0)
