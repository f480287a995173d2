"""Latif et al. 2020 (seeds/000), "Deep architectural enhancement for robust SER": the proposed
DenseNet-LSTM-Highway model and its four baselines, on spectrogram segments of 256 frames.

Every model here is a :class:`~ser_robot.models.segments.SegmentModel` with ``POOLING = "posteriors"``:
it scores segments of ``segment_frames`` frames ``(N, frames, bands)`` and an utterance's prediction is
the mean of its segments' posteriors (section 4.2).

- :class:`DenseNetSer` (section 3 and 4.4), three registry names that are switches of one module:

  - ``densenet``: initial convolution, three DenseBlocks (L = 6, G = 16) with a transition after
    each but the last, global average pooling to 3 x 3, fully connected 1000, softmax;
  - ``densenet_lstm``: the same with an LSTM in place of the global average pooling;
  - ``densenet_lstm_highway`` (proposed): initial convolution, two DenseBlocks (L = 6, G = 24) with a
    transition between them, a reshape feeding an LSTM, dropout 0.5; each DenseBlock's features
    (averaged over its map and projected to the LSTM's width) summed through two skip connections and
    concatenated with the LSTM's features; a highway block of three fully connected layers of 128 with
    ReLU (eq. 2), softmax.

  A DenseBlock layer is BN, ReLU, 3 x 3 convolution of G maps (eq. 1; batch normalisation before every
  non-linearity, section 4.4); a transition is BN, 1 x 1 convolution, 2 x 2 average pooling of stride 2.
- :class:`ConvSer` (section 4.4, after Satt et al. 2017 [37]): ``latif_cnn_lstm``, convolution blocks
  then an LSTM over time; ``latif_cnn``, the same with a fully connected layer in place of the LSTM.

The reshape: a map ``(channels, bands', frames')`` is read as ``frames'`` steps of ``channels * bands'``
values; the LSTM's last output summarises the segment. Every choice the paper leaves open is in
``config/models/<name>.yaml`` with its source.
"""

from __future__ import annotations

import torch
from torch import nn

from ser_robot.errors import ConfigError
from ser_robot.models.base import HyperSpec
from ser_robot.models.segments import SegmentModel

__all__ = ["ConvSer", "DenseNet", "DenseNetLstm", "DenseNetLstmHighway", "DenseNetSer", "LatifCnn",
           "LatifCnnLstm", "TEMPORAL"]

TEMPORAL: tuple[str, ...] = ("pool", "lstm")
"""What reads the last feature map: global average pooling to a grid, or an LSTM over frames."""


# -- building blocks -------------------------------------------------------------------------------


class DenseLayer(nn.Module):
    """H_{l,G} of eq. 1: BN, ReLU, 3 x 3 convolution to ``growth`` maps; its output is concatenated to its input."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(),
                                  nn.Conv2d(channels, growth, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def dense_block(channels: int, layers: int, growth: int) -> nn.Sequential:
    """DenseBlock(L, G): ``(B, channels, H, W)`` -> ``(B, channels + layers * growth, H, W)``."""
    return nn.Sequential(*(DenseLayer(channels + i * growth, growth) for i in range(layers)))


def transition(channels: int, out_channels: int) -> nn.Sequential:
    """BN, 1 x 1 convolution, 2 x 2 average pooling of stride 2 (section 3.1)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.Conv2d(channels, out_channels, 1, bias=False),
                         nn.AvgPool2d(2, stride=2))


class Highway(nn.Module):
    """One highway layer (eq. 2, Srivastava et al. 2015): ``y = H(x) T(x) + x (1 - T(x))``, H a fully
    connected layer with ReLU, T a sigmoid gate (the carry gate C = 1 - T, as in [10])."""

    def __init__(self, units: int, gate_bias: float = -1.0) -> None:
        super().__init__()
        self.transform = nn.Linear(units, units)
        self.gate = nn.Linear(units, units)
        nn.init.constant_(self.gate.bias, gate_bias)  # [10]: a negative bias starts close to carrying x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(x))
        return torch.relu(self.transform(x)) * t + x * (1.0 - t)


def _sequence(z: torch.Tensor) -> torch.Tensor:
    """The reshape: ``(B, C, bands', frames')`` -> ``(B, frames', C * bands')``."""
    return z.flatten(1, 2).transpose(1, 2)


def _check_temporal(hyper: dict, where: str) -> None:
    """Raise :class:`ConfigError` unless hyper-parameter ``temporal`` is one of :data:`TEMPORAL`."""
    if hyper["temporal"] not in TEMPORAL:
        raise ConfigError(f"hyper-parameter 'temporal' of {where} must be one of {', '.join(TEMPORAL)}, "
                          f"got {hyper['temporal']!r}") from None


def _map_size(module: nn.Module, channels: int, bands: int, frames: int) -> tuple[int, int, int]:
    """``(channels, bands', frames')`` of ``module``'s output for one ``(channels, bands, frames)`` input."""
    with torch.no_grad():
        was_training = module.training
        module.eval()
        out = module(torch.zeros(1, channels, bands, frames))
        module.train(was_training)
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


# -- DenseNet family -------------------------------------------------------------------------------


class DenseNetSer(SegmentModel):
    """DenseNet, DenseNet-LSTM and DenseNet-LSTM-Highway (see the module docstring); the registry names are
    the subclasses :class:`DenseNet`, :class:`DenseNetLstm` and :class:`DenseNetLstmHighway`, whose YAMLs
    set the switches ``temporal``, ``skip`` and ``highway``."""

    POOLING = "posteriors"
    HYPER = (
        HyperSpec("segment_frames", int, "Frames of one segment (paper: 256).", min=8, max=100_000),
        HyperSpec("stem_channels", int, "Maps of the initial convolution.", min=1, max=1024),
        HyperSpec("stem_kernel", int, "Square kernel of the initial convolution (odd).", min=1, max=15, odd=True),
        HyperSpec("stem_stride", int, "Stride of the initial convolution on both axes.", min=1, max=4),
        HyperSpec("stem_pool", int, "Max pooling after the initial convolution (1: none).", min=1, max=4),
        HyperSpec("blocks", list, "Layers L of each DenseBlock; a transition follows each but the last.",
                  min=1, max=64, item_kind=int),
        HyperSpec("growth", int, "Growth rate G: maps added by each DenseBlock layer.", min=1, max=256),
        HyperSpec("compression", float, "Maps kept by a transition, as a share of its input's.", min=0.1, max=1.0),
        HyperSpec("temporal", str, "What reads the last map: 'pool' (global average pooling to a grid) or "
                  "'lstm' (the reshape feeding an LSTM)."),
        HyperSpec("pool_grid", int, "Side of the grid of the global average pooling (paper: 3 x 3).", min=1, max=16),
        HyperSpec("lstm_units", int, "Units of the LSTM.", min=1, max=4096),
        HyperSpec("dropout", float, "Dropout after the LSTM or the pooling.", min=0.0, max=0.9),
        HyperSpec("skip", bool, "Sum each DenseBlock's features through skip connections into the head."),
        HyperSpec("highway", bool, "A highway block before the softmax; off: one fully connected layer."),
        HyperSpec("dense_units", int, "Units of the fully connected (or each highway) layer.", min=1, max=8192),
        HyperSpec("highway_layers", int, "Highway layers (paper: three of 128).", min=1, max=16),
    )

    def __init__(self, num_features: int, head: str, num_classes: int | None = None, **hyper: object) -> None:
        super().__init__(num_features, head, num_classes, hyper)
        h = self.hyper
        self.stem = nn.Sequential(
            nn.Conv2d(1, h["stem_channels"], h["stem_kernel"], stride=h["stem_stride"],
                      padding=h["stem_kernel"] // 2, bias=False),
            *([nn.BatchNorm2d(h["stem_channels"]), nn.ReLU(), nn.MaxPool2d(h["stem_pool"])] if h["stem_pool"] > 1
              else []))
        shape = _map_size(self.stem, 1, num_features, h["segment_frames"])
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        block_shapes: list[tuple[int, int, int]] = []
        for index, layers in enumerate(h["blocks"]):
            block = dense_block(shape[0], layers, h["growth"])
            shape = (shape[0] + layers * h["growth"], shape[1], shape[2])
            self.blocks.append(block)
            block_shapes.append(shape)
            if index < len(h["blocks"]) - 1:
                kept = max(1, int(shape[0] * h["compression"]))
                if min(shape[1], shape[2]) < 2:
                    raise ConfigError(f"model '{self.NAME}': the map after DenseBlock {index + 1} is "
                                      f"{shape[1]} x {shape[2]}, too small for a transition's 2 x 2 pooling; "
                                      "use fewer blocks, a smaller stem stride or longer segments") from None
                self.transitions.append(transition(shape[0], kept))
                shape = (kept, shape[1] // 2, shape[2] // 2)
        self.final = nn.Sequential(nn.BatchNorm2d(shape[0]), nn.ReLU())  # BN-ReLU before reading the map
        if h["temporal"] == "lstm":
            self.lstm = nn.LSTM(shape[0] * shape[1], h["lstm_units"], batch_first=True)
            self.grid = None
            width = h["lstm_units"]
        else:
            self.lstm = None
            self.grid = nn.AdaptiveAvgPool2d(h["pool_grid"])
            width = shape[0] * h["pool_grid"] ** 2
        self.dropout = nn.Dropout(h["dropout"])
        self.skips = None
        if h["skip"]:  # each block's map, averaged, projected to the temporal features' width, then summed
            self.skips = nn.ModuleList(nn.Linear(c, width) for c, _, _ in block_shapes)
            width *= 2  # concatenated with the temporal features
        if h["highway"]:
            self.classifier = nn.Sequential(nn.Linear(width, h["dense_units"]), nn.ReLU(),
                                      *(Highway(h["dense_units"]) for _ in range(h["highway_layers"])))
        else:
            self.classifier = nn.Sequential(nn.Linear(width, h["dense_units"]), nn.ReLU())
        self.output = nn.Linear(h["dense_units"], self.num_outputs)

    @classmethod
    def _check_together(cls, hyper: dict, where: str) -> None:
        _check_temporal(hyper, where)

    def embed(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, padded_frames, bands)`` -> ``(logits (N, classes), embedding (N, dense_units))``."""
        x = self.stem(segments.transpose(1, 2).unsqueeze(1))  # (N, C, bands, frames)
        skip_features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if self.skips is not None:
                skip_features.append(self.skips[index](x.mean(dim=(2, 3))))
            if index < len(self.transitions):
                x = self.transitions[index](x)
        x = self.final(x)
        if self.lstm is not None:
            outputs, _ = self.lstm(_sequence(x))
            features = outputs[:, -1]
        else:
            features = self.grid(x).flatten(1)
        features = self.dropout(features)
        if skip_features:
            features = torch.cat([features, torch.stack(skip_features).sum(dim=0)], dim=1)
        embedding = self.classifier(features)
        return self.output(embedding), embedding


class DenseNet(DenseNetSer):
    """The DenseNet baseline (section 4.4): ``config/models/densenet.yaml``."""

    NAME = "densenet"


class DenseNetLstm(DenseNetSer):
    """The DenseNet-LSTM baseline (section 4.4): ``config/models/densenet_lstm.yaml``."""

    NAME = "densenet_lstm"


class DenseNetLstmHighway(DenseNetSer):
    """The proposed model (sections 3 and 4.4): ``config/models/densenet_lstm_highway.yaml``."""

    NAME = "densenet_lstm_highway"


# -- CNN and CNN-LSTM ------------------------------------------------------------------------------


class ConvSer(SegmentModel):
    """CNN-LSTM (Satt et al. 2017 [37]) and CNN (the same with a fully connected layer in place of the LSTM):
    convolution blocks (convolution, BN, ReLU, max pooling), then an LSTM over frames or a mean over frames
    and a fully connected layer, then a fully connected layer and the softmax."""

    POOLING = "posteriors"
    HYPER = (
        HyperSpec("segment_frames", int, "Frames of one segment (paper: 256).", min=8, max=100_000),
        HyperSpec("channels", list, "Output maps of each convolution block.", min=1, max=1024, item_kind=int),
        HyperSpec("kernel_sizes", list, "Square kernel of each convolution (odd).", min=1, max=31,
                  item_kind=int, odd=True),
        HyperSpec("pool", int, "Max-pooling factor on both axes after each convolution.", min=1, max=4),
        HyperSpec("temporal", str, "'lstm' (CNN-LSTM) or 'pool' (CNN: mean over frames, then fully connected)."),
        HyperSpec("lstm_units", int, "Units of the LSTM, or of the fully connected layer that replaces it.",
                  min=1, max=4096),
        HyperSpec("dense_units", int, "Units of the fully connected layer before the softmax.", min=1, max=4096),
        HyperSpec("dropout", float, "Dropout before that layer.", min=0.0, max=0.9),
    )

    def __init__(self, num_features: int, head: str, num_classes: int | None = None, **hyper: object) -> None:
        super().__init__(num_features, head, num_classes, hyper)
        h = self.hyper
        widths = [1, *h["channels"]]
        self.encoder = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                          nn.MaxPool2d(h["pool"]))
            for c_in, c_out, k in zip(widths[:-1], widths[1:], h["kernel_sizes"])))
        channels, bands, frames = _map_size(self.encoder, 1, num_features, h["segment_frames"])
        if bands < 1 or frames < 1:
            raise ConfigError(f"model '{self.NAME}': the encoder's pooling leaves no map from {num_features} bands "
                              f"x {h['segment_frames']} frames; use fewer blocks or a smaller pool") from None
        if h["temporal"] == "lstm":
            self.temporal = nn.LSTM(channels * bands, h["lstm_units"], batch_first=True)
        else:
            self.temporal = nn.Sequential(nn.Linear(channels * bands, h["lstm_units"]), nn.ReLU())
        self.dropout = nn.Dropout(h["dropout"])
        self.dense = nn.Sequential(nn.Linear(h["lstm_units"], h["dense_units"]), nn.ReLU())
        self.output = nn.Linear(h["dense_units"], self.num_outputs)

    @classmethod
    def _check_together(cls, hyper: dict, where: str) -> None:
        _check_temporal(hyper, where)

    def embed(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, padded_frames, bands)`` -> ``(logits (N, classes), embedding (N, dense_units))``."""
        sequence = _sequence(self.encoder(segments.transpose(1, 2).unsqueeze(1)))  # (N, frames', C * bands')
        if isinstance(self.temporal, nn.LSTM):
            outputs, _ = self.temporal(sequence)
            features = outputs[:, -1]
        else:
            features = self.temporal(sequence.mean(dim=1))
        embedding = self.dense(self.dropout(features))
        return self.output(embedding), embedding


class LatifCnnLstm(ConvSer):
    """The CNN-LSTM baseline (section 4.4, [37]): ``config/models/latif_cnn_lstm.yaml``."""

    NAME = "latif_cnn_lstm"


class LatifCnn(ConvSer):
    """The CNN baseline (section 4.4): ``config/models/latif_cnn.yaml``."""

    NAME = "latif_cnn"
