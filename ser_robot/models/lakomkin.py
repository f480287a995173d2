"""The two models of Lakomkin et al. 2018 (seeds/004, section III-D/E and Fig. 2).

- :class:`LakomkinRNN`: two bidirectional GRU layers, temporal averaging of their outputs
  over the valid frames ("uniform attention"), dropout, one linear layer: 4 class logits
  (softmax applied by the loss / the inference node) or 2 linear outputs (arousal, valence).
- :class:`LakomkinCNN`: three 1-D convolutions over time, each followed by batch
  normalisation and ReLU, max pooling over the valid frames, dropout, one linear layer.

Input: ``(batch, frames, num_features)`` frames of the paper's eGEMAPS LLDs with 13 MFCCs (our
``egemaps`` set has 34), globally z-normalised; ``lengths`` ``(batch,)`` int64. Sizes the
paper does not give (GRU units, channels, kernel sizes, dropout) are our choices, recorded
and commented in ``config/models/lakomkin_rnn.yaml`` / ``lakomkin_cnn.yaml``.

Padding never changes a prediction: the GRU runs on the zero-padded batch one layer and one
direction at a time, the backward direction on each sequence reversed within its own length
(:func:`reverse_within_lengths`), so no valid output ever sees a padded frame, and the mean
covers valid frames only (the same outputs and gradients as a packed sequence, to float
rounding, several times faster on a CPU than ``PackedSequence``: see ``docs/results/``); the CNN
zeroes padded frames before every convolution ('same' zero padding then sees exactly what it sees
at the end of the unpadded utterance), takes its batch-norm statistics over valid frames
(:class:`MaskedBatchNorm1d`) and its max over valid frames only.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F

from ser_robot.errors import ConfigError
from ser_robot.models.base import HyperSpec, SerModel
from ser_robot.models.masking import (
    MaskedBatchNorm1d,
    lengths_to_mask,
    masked_max,
    masked_mean,
)

__all__ = ["LakomkinCNN", "LakomkinRNN", "reverse_within_lengths"]

_DROPOUT = HyperSpec(
    "dropout",
    float,
    "Dropout probability on the pooled utterance vector (and, for the RNN, between GRU layers).",
    min=0.0,
    max=0.9,
)


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(batch, frames, dims)`` with each item's first ``lengths[b]`` frames reversed, padding left in place.

    Its own inverse. ``lengths`` ``(batch,)`` int64, each in ``[1, frames]``.
    """
    frames = x.shape[1]
    steps = torch.arange(frames, device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (batch, frames)
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[2]))


@functools.lru_cache(maxsize=None)
def _gru_template(input_size: int, hidden_size: int) -> nn.GRU:
    """A one-layer unidirectional batch-first GRU whose own weights live on the meta device (no memory):
    ``functional_call`` runs it with one direction's weights of the model's ``nn.GRU``."""
    return nn.GRU(input_size, hidden_size, batch_first=True, device="meta")


class LakomkinRNN(SerModel):
    """Bidirectional GRU stack + masked temporal mean + linear output.

    ``forward(features (B, T, num_features), lengths (B,) int64) -> (B, num_outputs)``.
    Parameters: ``2 * num_layers`` GRU directions of ``3 * (hidden * (in + hidden) + 2 * hidden)``
    each (``in`` = num_features for the first layer, ``2 * hidden`` after), plus
    ``(2 * hidden + 1) * num_outputs``.
    """

    NAME = "lakomkin_rnn"
    HYPER = (
        HyperSpec("hidden_size", int, "GRU units per direction.", min=1, max=4096),
        HyperSpec("num_layers", int, "Stacked bidirectional GRU layers.", min=1, max=8),
        _DROPOUT,
    )

    def __init__(
        self,
        num_features: int,
        head: str,
        num_classes: int | None = None,
        *,
        hidden_size: int,
        num_layers: int,
        dropout: float,
    ) -> None:
        super().__init__(
            num_features,
            head,
            num_classes,
            {"hidden_size": hidden_size, "num_layers": num_layers, "dropout": dropout},
        )
        h = self.hyper
        self.gru = nn.GRU(
            input_size=num_features,
            hidden_size=h["hidden_size"],
            num_layers=h["num_layers"],
            batch_first=True,
            bidirectional=True,
            dropout=h["dropout"] if h["num_layers"] > 1 else 0.0,
        )
        self.dropout = nn.Dropout(h["dropout"])
        self.output = nn.Linear(2 * h["hidden_size"], self.num_outputs)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, T, num_features)`` float, ``(B,)`` int64 -> ``(B, num_outputs)`` logits or (arousal, valence)."""
        self._check_inputs(features, lengths)
        lengths = lengths.to(features.device)
        encoded = self._encode_padded(features, lengths)  # (B, T, 2H), padded frames hold junk
        pooled = masked_mean(encoded, lengths_to_mask(lengths, features.shape[1]))
        return self.output(self.dropout(pooled))

    def _direction(self, layer: int, reverse: bool) -> dict[str, torch.Tensor]:
        """The parameters of one direction of one layer of ``self.gru``, named as a 1-layer unidirectional GRU's."""
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return {f"{name}_l0": getattr(self.gru, f"{name}{suffix}") for name in names}

    def _encode_padded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The bidirectional stack of ``self.gru`` on a padded batch, exact on valid frames.

        Each direction runs as a unidirectional one-layer GRU called with this layer's weights of
        ``self.gru`` (:func:`_gru_template`; the state dict stays ``nn.GRU``'s): the forward one is
        causal, so padding after a sequence never reaches its frames; the backward one runs forward
        over the sequence reversed within its length. Dropout between layers as ``nn.GRU`` applies it (training only).
        """
        for layer in range(self.gru.num_layers):
            if layer > 0 and self.training and self.gru.dropout > 0:
                x = F.dropout(x, self.gru.dropout, training=True)
            cell = _gru_template(x.shape[2], self.gru.hidden_size)
            forward, _ = torch.func.functional_call(cell, self._direction(layer, False), (x,))
            flipped, _ = torch.func.functional_call(cell, self._direction(layer, True),
                                                    (reverse_within_lengths(x, lengths),))
            x = torch.cat([forward, reverse_within_lengths(flipped, lengths)], dim=2)
        return x

    def forward_one(self, features: torch.Tensor) -> torch.Tensor:
        """``(1, T, num_features)`` with every frame valid -> ``(1, num_outputs)``: no packing, a plain mean."""
        encoded, _ = self.gru(features)  # (1, T, 2H)
        return self.output(self.dropout(encoded.mean(dim=1)))


class LakomkinCNN(SerModel):
    """1-D convolutions (conv -> masked BN -> ReLU) + masked max over time + linear output.

    ``forward(features (B, T, num_features), lengths (B,) int64) -> (B, num_outputs)``.
    Convolutions are over time with the features as input channels, stride 1, odd kernels with
    'same' zero padding (output frame t is centred on input frame t, so an utterance keeps its
    length); no convolution bias, since batch normalisation's shift replaces it. Parameters:
    ``sum(c_in * c_out * k) + 2 * sum(c_out) + (c_last + 1) * num_outputs``.
    """

    NAME = "lakomkin_cnn"
    HYPER = (
        HyperSpec("channels", list, "Output channels of each convolution layer.", min=1, max=4096, item_kind=int),
        HyperSpec(
            "kernel_sizes", list, "Kernel width in frames of each convolution (odd).", min=1, max=255,
            item_kind=int, odd=True,
        ),
        _DROPOUT,
    )

    def __init__(
        self,
        num_features: int,
        head: str,
        num_classes: int | None = None,
        *,
        channels: list[int],
        kernel_sizes: list[int],
        dropout: float,
    ) -> None:
        super().__init__(
            num_features,
            head,
            num_classes,
            {"channels": channels, "kernel_sizes": kernel_sizes, "dropout": dropout},
        )
        h = self.hyper
        widths = [num_features, *h["channels"]]
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, k, padding=k // 2, bias=False)
            for c_in, c_out, k in zip(widths[:-1], widths[1:], h["kernel_sizes"])
        )
        self.norms = nn.ModuleList(MaskedBatchNorm1d(c) for c in h["channels"])
        self.dropout = nn.Dropout(h["dropout"])
        self.output = nn.Linear(widths[-1], self.num_outputs)

    @classmethod
    def _check_together(cls, hyper: dict, where: str) -> None:
        if len(hyper["channels"]) != len(hyper["kernel_sizes"]):
            raise ConfigError(
                f"hyper-parameters 'channels' ({len(hyper['channels'])} layers) and 'kernel_sizes' "
                f"({len(hyper['kernel_sizes'])} layers) of {where} must have the same length"
            ) from None

    @property
    def receptive_field(self) -> int:
        """Input frames that one output frame sees (before the max over time)."""
        return 1 + sum(k - 1 for k in self.hyper["kernel_sizes"])

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, T, num_features)`` float, ``(B,)`` int64 -> ``(B, num_outputs)`` logits or (arousal, valence)."""
        self._check_inputs(features, lengths)
        mask = lengths_to_mask(lengths.to(features.device), features.shape[1])  # (B, T)
        keep = mask.unsqueeze(1)  # (B, 1, T)
        zero = torch.zeros((), dtype=features.dtype, device=features.device)
        x = torch.where(keep, features.transpose(1, 2), zero)  # (B, F, T), padding = 0
        for conv, norm in zip(self.convs, self.norms):
            x = torch.where(keep, F.relu(norm(conv(x), mask)), zero)
        pooled = masked_max(x, mask)  # (B, C)
        return self.output(self.dropout(pooled))
