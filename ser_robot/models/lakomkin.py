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

Padding never changes a prediction: the GRU runs on a packed sequence and the mean covers
valid frames only; the CNN zeroes padded frames before every convolution ('same' zero
padding then sees exactly what it sees at the end of the unpadded utterance), takes its
batch-norm statistics over valid frames (:class:`MaskedBatchNorm1d`) and its max over valid
frames only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ser_robot.errors import ConfigError
from ser_robot.models.base import HyperSpec, SerModel
from ser_robot.models.masking import (
    MaskedBatchNorm1d,
    lengths_to_mask,
    masked_max,
    masked_mean,
)

__all__ = ["LakomkinCNN", "LakomkinRNN"]

_DROPOUT = HyperSpec(
    "dropout",
    float,
    "Dropout probability on the pooled utterance vector (and, for the RNN, between GRU layers).",
    min=0.0,
    max=0.9,
)


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
        frames = features.shape[1]
        packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True, enforce_sorted=False)
        encoded, _ = self.gru(packed)
        encoded, _ = pad_packed_sequence(encoded, batch_first=True, total_length=frames)  # (B, T, 2H)
        pooled = masked_mean(encoded, lengths_to_mask(lengths.to(features.device), frames))
        return self.output(self.dropout(pooled))

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
