"""The networks of SSAD (Su and Lee, seeds/003, section 2 and 3.1): the purify network and its discriminator.

- :class:`Purifier` P: a transformer encoder over log-Mel frames, ``(batch, frames, bands) -> (batch, frames,
  bands)`` (6 layers, 8 heads, model width = the 64 bands, section 3.1). Sinusoidal positions are added to its
  input (ours: the paper names none), and it predicts a correction added to its input (ours: a residual
  output, so an untrained purifier starts as the identity). Attention sees only the valid frames of each
  utterance (a key padding mask), so padding never changes a purified frame.
- :class:`Discriminator` D: five 3 x 3 convolutions with residual connections, average pooling, then fully
  connected layers of (4096, 1024, 64, 1) (section 3.1), one logit ``(batch,)`` that the input is an
  original, not a purified, spectrogram.

Hyper-parameters and their sources: ``config/models/ssad.yaml`` (:func:`load_ssad_config`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ser_robot.config_io import config_file, from_mapping, read_yaml_mapping, setting
from ser_robot.models.masking import lengths_to_mask

__all__ = ["Discriminator", "Purifier", "SsadConfig", "load_ssad_config"]


@dataclass(frozen=True)
class SsadConfig:
    """``config/models/ssad.yaml``: the purifier's and the discriminator's sizes and the training weights."""

    bands: int = setting(64, min=1, max=1024)
    layers: int = setting(6, min=1, max=48)
    heads: int = setting(8, min=1, max=64)
    feedforward: int = setting(256, min=1, max=16384)
    dropout: float = setting(0.1, min=0.0, max=0.9)
    disc_channels: int = setting(32, min=1, max=1024)
    disc_dense: tuple[int, ...] = setting((4096, 1024, 64), min_items=1, min=1, max=65536)
    step_size: float = setting(0.01, above=0.0)
    budget: float = setting(0.06, above=0.0)
    alpha: float = setting(1.0, min=0.0)
    beta: float = setting(1.0, min=0.0)
    gamma: float = setting(1.0, min=0.0)


def load_ssad_config(path: str | None = None, **changes: object) -> SsadConfig:
    """The SSAD configuration (``config/models/ssad.yaml`` unless ``path``), with ``changes`` over it; checked."""
    data = read_yaml_mapping(config_file("models/ssad.yaml") if path is None else path, "SSAD configuration")
    return from_mapping(SsadConfig, {**data, **changes}, "SSAD configuration")


def _positions(frames: int, width: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal position encodings ``(frames, width)`` (Vaswani et al. 2017)."""
    position = torch.arange(frames, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / width))
    out = torch.zeros(frames, width, device=device)
    out[:, 0::2] = torch.sin(position * rate)
    out[:, 1::2] = torch.cos(position * rate[: width // 2])
    return out


class Purifier(nn.Module):
    """P: ``(batch, frames, bands)`` normalised log-Mel, ``lengths (batch,)`` -> purified frames, same shape."""

    def __init__(self, config: SsadConfig) -> None:
        super().__init__()
        if config.bands % config.heads:
            raise ValueError(f"the purifier's width ({config.bands} bands) must divide by its {config.heads} heads")
        self.config = config
        layer = nn.TransformerEncoderLayer(config.bands, config.heads, config.feedforward, config.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.correction = nn.Linear(config.bands, config.bands)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = lengths_to_mask(lengths.to(frames.device), frames.shape[1])
        hidden = self.encoder(frames + _positions(frames.shape[1], frames.shape[2], frames.device),
                              src_key_padding_mask=~valid)
        return torch.where(valid[..., None], frames + self.correction(hidden), frames)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Discriminator(nn.Module):
    """D: ``(batch, frames, bands)`` -> ``(batch,)`` logit that the spectrogram is an original one."""

    def __init__(self, config: SsadConfig) -> None:
        super().__init__()
        c = config.disc_channels
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.LeakyReLU(0.2))
        self.blocks = nn.Sequential(*(_Residual(c) for _ in range(4)))  # with the stem: five convolutions
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        widths = [c * 16, *config.disc_dense]
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(0.2)]
        self.dense = nn.Sequential(*layers, nn.Linear(widths[-1], 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(frames.transpose(1, 2).unsqueeze(1))))
        return self.dense(x.flatten(1)).squeeze(1)
