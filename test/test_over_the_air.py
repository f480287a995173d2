"""Over-the-air attacks: the acoustic channel (room and noise, differentiable) and expectation over
transformation: a perturbation of 1 % of full scale optimised over training rooms fools a model through rooms
it never saw. (Whether EOT beats an attack on the clean waveform depends on the model: on this room-invariant
toy both fare alike; the experiments measure it on the real models.)"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ser_robot.adversarial import ThreatModel, pgd
from ser_robot.adversarial.over_the_air import AcousticChannel, channel_loss
from ser_robot.errors import ConfigError


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    from ser_robot.acoustics.rooms import build_rir_bank

    bank = build_rir_bank(tmp_path_factory.mktemp("rirs"), count=8, seed=3, rt60_range=(0.3, 0.6),
                          sources_per_room=2, test_fraction=0.5)
    return AcousticChannel.from_bank(bank, "train"), AcousticChannel.from_bank(bank, "test")


def test_the_channel_convolves_and_adds_noise_at_its_snr():
    impulse = torch.zeros(50)
    impulse[0], impulse[10] = 2.0, 1.0
    channel = AcousticChannel([impulse], snr_db=None)
    wave = torch.randn(2, 400)
    heard = channel(wave)
    torch.testing.assert_close(heard[:, 10:], wave[:, 10:] + 0.5 * wave[:, :-10], rtol=1e-4, atol=1e-4)
    noisy = AcousticChannel([impulse], snr_db=(10.0, 10.0))(wave, torch.Generator().manual_seed(0))
    snr = 10 * torch.log10(heard.square().mean() / (noisy - heard).square().mean())
    assert abs(float(snr) - 10.0) < 1.0
    with pytest.raises(ConfigError, match="silent"):
        AcousticChannel([torch.zeros(5)])


def test_an_attack_optimised_over_training_rooms_fools_the_model_in_unseen_rooms(rooms):
    from ser_robot.features.logmel import LogMel
    from ser_robot.features.normalization import FeatureNormalizer

    train_rooms, test_rooms = rooms
    assert len(train_rooms.irs) and len(test_rooms.irs)
    torch.manual_seed(0)
    extractor = LogMel("ren2020")
    t = torch.arange(16000) / 16000
    waves = torch.stack([0.3 * torch.sin(2 * torch.pi * f * t + p) for f in (300.0, 2000.0)
                         for p in torch.rand(8).tolist()]) + 0.003 * torch.randn(16, 16000)
    labels = torch.tensor([0] * 8 + [1] * 8)
    generator = torch.Generator().manual_seed(0)
    heard = torch.cat([train_rooms(waves, generator) for _ in range(4)])  # trained on reverberant speech
    frames = extractor(heard)
    normalizer = FeatureNormalizer(extractor.names)
    normalizer.update(frames, torch.ones(frames.shape[:2], dtype=torch.bool))
    linear = nn.Linear(64, 2)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05)

    class Model(nn.Module):
        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return linear(x.mean(dim=1))

    model = Model()
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(normalizer(frames), None), labels.repeat(4))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def accuracy_in(channel: AcousticChannel, x: torch.Tensor) -> float:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            hits = [(model(normalizer(extractor(channel(x, g))), None).argmax(1) == labels).float().mean()
                    for _ in range(6)]
        return float(torch.stack(hits).mean())

    assert accuracy_in(test_rooms, waves) > 0.9
    threat = ThreatModel.waveform(0.01)
    eot = pgd(channel_loss(model, extractor, normalizer, labels, train_rooms, draws=3,
                           generator=torch.Generator().manual_seed(2)), waves, threat, steps=10,
              generator=torch.Generator().manual_seed(0))
    assert float((eot - waves).abs().max()) <= 0.01 + 1e-7 and float(eot.abs().max()) <= 1.0
    assert accuracy_in(test_rooms, eot) < 0.6
