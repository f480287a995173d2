"""Per-stream (speaker) normalisation: running statistics, training with speaker statistics, and a
speaker-normalised model served the same way offline and live."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ser_robot.features.stream_normalization import StreamNormalization, StreamNormalizer, speaker_statistics


def test_prior_then_the_streams_own_statistics():
    prior_mean, prior_std = torch.zeros(3), torch.ones(3)
    stream = StreamNormalizer(prior_mean, prior_std, StreamNormalization(prior_frames=100, half_life_frames=0))
    x = torch.tensor([[10.0, -4.0, 2.0]])
    assert torch.allclose(stream.normalize(x), x)  # prior only: the population's statistics
    rng = np.random.default_rng(0)
    speaker = torch.from_numpy(rng.normal([5.0, -2.0, 1.0], [2.0, 0.5, 3.0], size=(20000, 3)))
    stream.update(speaker)
    assert torch.allclose(stream.mean, torch.tensor([5.0, -2.0, 1.0], dtype=torch.float64), atol=0.1)
    assert torch.allclose(stream.std, torch.tensor([2.0, 0.5, 3.0], dtype=torch.float64), atol=0.12)
    # normalize uses the statistics before the frames it is given: scoring does not see its own frames
    before = stream.normalize(x)
    stream.update(x)
    assert not torch.allclose(before, stream.normalize(x))


def test_forgetting_lets_a_new_speaker_take_over():
    stream = StreamNormalizer(torch.zeros(1), torch.ones(1), StreamNormalization(prior_frames=10, half_life_frames=500))
    stream.update(torch.full((5000, 1), 10.0))
    stream.update(torch.full((5000, 1), -10.0) + torch.randn(5000, 1))
    assert float(stream.mean[0]) < -9.5
    assert 0 < stream.frames_seen <= 10000


def test_non_finite_frames_are_not_learnt():
    stream = StreamNormalizer(torch.zeros(2), torch.ones(2))
    stream.update(torch.tensor([[float("nan"), 1.0], [float("inf"), 2.0]]))
    assert torch.isfinite(stream.mean).all() and stream.frames_seen == 0


def test_speaker_statistics_over_chunks():
    chunks = [torch.arange(6, dtype=torch.float64).reshape(3, 2), torch.full((1, 2), 8.0)]
    mean, std = speaker_statistics(chunks)
    every = torch.cat(chunks)
    assert torch.allclose(mean, every.mean(0)) and torch.allclose(std, every.std(0, unbiased=False))
    with pytest.raises(ValueError, match="finite frame"):
        speaker_statistics([torch.full((2, 2), float("nan"))])


@pytest.mark.parametrize("settings", [dict(prior_frames=0), dict(half_life_frames=-1), dict(min_std=float("nan"))])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        StreamNormalization(**settings)
