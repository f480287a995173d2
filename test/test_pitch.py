"""YIN pitch: accurate on harmonic tones, unvoiced on noise and silence, batched."""

from __future__ import annotations

import math

import pytest
import torch

from ser_robot.features.pitch import yin


@pytest.mark.parametrize("f0", [70.0, 123.4, 220.0, 410.0])
def test_harmonic_tone_within_half_a_percent(f0):
    t = torch.arange(16000) / 16000
    tone = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in (1, 2, 3))
    estimate, voiced = yin(tone, 16000)
    assert voiced.float().mean() > 0.95
    assert estimate[voiced].median().item() == pytest.approx(f0, rel=0.005)


def test_noise_and_silence_unvoiced_and_batch_shapes():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(16000, generator=generator)
    t = torch.arange(16000) / 16000
    batch = torch.stack([torch.sin(2 * math.pi * 150 * t), noise, torch.zeros(16000)])
    f0, voiced = yin(batch, 16000)
    frames = 1 + (16000 - (400 + 16000 // 60 + 1)) // 160  # analysis span = window + longest period
    assert f0.shape == voiced.shape == (3, frames)
    assert voiced[0].float().mean() > 0.95 and voiced[1].float().mean() < 0.1 and not voiced[2].any()
    assert (f0[~voiced] == 0).all()
    with pytest.raises(ValueError, match="0 < f0_min < f0_max"):
        yin(noise, 16000, f0_min=600, f0_max=500)
