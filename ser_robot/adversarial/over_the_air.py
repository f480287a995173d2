"""Over-the-air attacks: a perturbation that survives being played into a room and picked up by the robot.

Threat model: the attacker plays a recording, the utterance plus a perturbation of at most ``epsilon`` of
full scale per sample (threat domain ``waveform``), through a loudspeaker; the robot's ear hears it through
a room it does not know (an impulse response) with background noise. An attack optimised on the clean
waveform alone is tuned to that exact signal and rarely survives the room; expectation over transformation
(EOT, Athalye et al. 2018) optimises the mean loss over random rooms instead.

- :class:`AcousticChannel`: a random room transfer ``(batch, samples) -> (batch, samples)``: one ear of an
  impulse response drawn from a list (:meth:`AcousticChannel.from_bank` takes a split of a
  :class:`~ser_robot.acoustics.rooms.RirBank`: its ``train`` rooms to optimise over, its disjoint ``test``
  rooms to evaluate in), the direct path normalised to unit gain, then white noise at an SNR drawn from
  ``snr_db``. Differentiable (an FFT convolution in torch).
- :func:`channel_loss`: the mean loss over ``draws`` random channels per evaluation (EOT), to hand to
  :func:`~ser_robot.adversarial.attacks.pgd`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ser_robot.adversarial.attacks import Loss
from ser_robot.errors import ConfigError

__all__ = ["AcousticChannel", "channel_loss"]


@dataclass
class AcousticChannel:
    """Random rooms and noise (see the module docstring). ``irs``: mono impulse responses ``(taps,)``;
    ``snr_db``: the range of the speech-to-noise ratio in dB (``None``: no noise)."""

    irs: Sequence[torch.Tensor]
    snr_db: tuple[float, float] | None = (20.0, 40.0)

    def __post_init__(self) -> None:
        if not self.irs:
            raise ConfigError("an acoustic channel needs at least one impulse response")
        self.irs = [self._unit_direct_path(ir.float()) for ir in self.irs]

    @staticmethod
    def _unit_direct_path(ir: torch.Tensor) -> torch.Tensor:
        peak = ir.abs().max()
        if not torch.isfinite(peak) or float(peak) == 0.0:
            raise ConfigError("an impulse response is silent or not finite")
        return ir / peak

    @classmethod
    def from_bank(cls, bank: object, split: str, ear: int = 0, snr_db: tuple[float, float] | None = (20.0, 40.0),
                  limit: int | None = None) -> AcousticChannel:
        """The ``split`` rooms (``"train"`` or ``"test"``) of a :class:`~ser_robot.acoustics.rooms.RirBank`,
        ``ear`` 0 (left) or 1 (right), at most ``limit`` responses."""
        subset = bank.subset(split)  # type: ignore[attr-defined]
        records = subset.records[:limit] if limit else subset.records
        return cls([torch.from_numpy(np.array(subset.ir(r)[ear])) for r in records], snr_db)

    def play(self, waves: torch.Tensor, ir: torch.Tensor, snr_db: float | None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """``waves`` ``(batch, samples)`` through ``ir`` (FFT convolution, cut to the input's length), plus white
        noise at ``snr_db`` below each wave's power (None: none)."""
        n = waves.shape[-1] + ir.shape[-1] - 1
        size = 1 << (n - 1).bit_length()
        heard = torch.fft.irfft(torch.fft.rfft(waves, size) * torch.fft.rfft(ir.to(waves), size), size)
        heard = heard[..., : waves.shape[-1]]
        if snr_db is None:
            return heard
        power = heard.detach().square().mean(dim=-1, keepdim=True).clamp_min(1e-12)
        noise = torch.randn(heard.shape, generator=generator, dtype=heard.dtype, device="cpu").to(heard.device)
        return heard + noise * torch.sqrt(power / 10 ** (snr_db / 10))

    def __call__(self, waves: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``waves`` through one randomly drawn room and noise level (the same for the whole batch)."""
        index = int(torch.randint(len(self.irs), (1,), generator=generator))
        snr = None
        if self.snr_db is not None:
            low, high = self.snr_db
            snr = low + (high - low) * float(torch.rand((), generator=generator))
        return self.play(waves, self.irs[index], snr, generator)


def channel_loss(model: torch.nn.Module, extractor: torch.nn.Module, normalizer, labels: torch.Tensor,
                 channel: AcousticChannel, draws: int = 4, generator: torch.Generator | None = None) -> Loss:
    """``loss(waves (batch, samples)) -> (batch,)``: the cross-entropy against ``labels`` averaged over ``draws``
    random channels (EOT); the model sees what the robot would hear."""
    if draws < 1:
        raise ConfigError(f"channel_loss needs draws >= 1, got {draws}")

    def loss(waves: torch.Tensor) -> torch.Tensor:
        total = waves.new_zeros(waves.shape[0])
        for _ in range(draws):
            frames = extractor(channel(waves, generator))
            lengths = torch.full((frames.shape[0],), frames.shape[1], dtype=torch.int64, device=frames.device)
            total = total + F.cross_entropy(model(normalizer(frames), lengths).float(), labels, reduction="none")
        return total / draws

    return loss
