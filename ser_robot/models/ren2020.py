"""Ren et al. 2020 (seeds/001), section 3.3: CNN-4, VGG-16 and ResNet-50 on 64-band log-Mel "images".

The paper feeds each model one log-Mel image of 373 frames x 64 bands (512-sample windows, 256-sample hop
at 16 kHz: the ``logmel_ren2020`` preset), shorter utterances brought to that length. Here every model is a
:class:`~ser_robot.models.segments.SegmentModel` with ``segment_frames = 373``: an utterance is zero-padded
to 373 frames (0 is the training mean after normalisation), and a longer one is the mean of its 373-frame
segments' logits, so padding never changes a prediction and the live window is scored like an utterance.
They train with the utterance trainer (``SEGMENT_TRAINED = False``), which has Ren et al.'s adversarial
training; the segment machinery only cuts and pads.

- :class:`Cnn4`: four convolutions of 5 x 5 ([64, 128, 256, 512] maps), each followed by 2 x 2 max pooling,
  global max pooling, the fully connected output layer (section 3.3).
- :class:`Vgg16`: VGG-16's thirteen 3 x 3 convolutions in five blocks with 2 x 2 max pooling (Simonyan and
  Zisserman 2015, configuration D), batch normalisation after each convolution (ours: VGG-16-BN, which
  trains without the original's staged initialisation), global average pooling, a fully connected layer of
  ``dense_units`` and the output layer (ours: the ImageNet head's 4096 x 4096 fits 224 x 224 images).
- :class:`ResNet50`: the bottleneck residual network of He et al. 2016 ([3, 4, 6, 3] blocks, 64-512 inner
  maps, expansion 4), the 7 x 7 stride-2 stem and max pooling, global average pooling, the output layer.

``width`` scales every convolution's maps uniformly (1.0: the paper's models; the `cpu` experiments use a
smaller one and say so). Every model's last fully connected layer is ``output``: its input is the feature
vector ``v`` of Ren et al.'s similarity-based training.
"""

from __future__ import annotations

import torch
from torch import nn

from ser_robot.models.base import HyperSpec
from ser_robot.models.segments import SegmentModel

__all__ = ["Cnn4", "ResNet50", "Vgg16"]

VGG16_BLOCKS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
                                             (512, 512, 512))
"""VGG-16 (configuration D): the maps of each convolution, block by block (2 x 2 max pooling after each)."""
RESNET50_STAGES: tuple[tuple[int, int], ...] = ((64, 3), (128, 4), (256, 6), (512, 3))
"""ResNet-50: (inner maps, bottleneck blocks) of each stage; a block's output has 4 x its inner maps."""


def _scaled(maps: int, width: float) -> int:
    return max(1, int(round(maps * width)))


class _RenModel(SegmentModel):
    """What the three share: 373-frame segments of logits, the utterance trainer, ``width``."""

    SEGMENT_TRAINED = False
    POOLING = "logits"

    def embed(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, padded_frames, bands)`` -> ``(logits (N, classes), v (N, units))``; each subclass's
        ``features(images (N, 1, bands, frames)) -> v`` is its network up to the output layer."""
        v = self.features(segments.transpose(1, 2).unsqueeze(1))
        return self.output(v), v


class Cnn4(_RenModel):
    """CNN-4 (section 3.3): ``config/models/ren_cnn4.yaml``."""

    NAME = "ren_cnn4"
    HYPER = (
        HyperSpec("segment_frames", int, "Frames of the input image (paper: 373).", min=8, max=100_000),
        HyperSpec("channels", list, "Maps of the four convolutions (paper: 64, 128, 256, 512).", min=1, max=4096,
                  item_kind=int),
        HyperSpec("kernel_size", int, "Square kernel of every convolution (paper: 5).", min=1, max=15, odd=True),
        HyperSpec("width", float, "Uniform scale of every convolution's maps (1.0: the paper's).", min=0.01,
                  max=4.0),
    )

    def __init__(self, num_features: int, head: str, num_classes: int | None = None, **hyper: object) -> None:
        super().__init__(num_features, head, num_classes, hyper)
        h = self.hyper
        widths = [1, *(_scaled(c, h["width"]) for c in h["channels"])]
        k = h["kernel_size"]
        self.convs = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.BatchNorm2d(c_out), nn.ReLU(),
                          nn.MaxPool2d(2, ceil_mode=True))
            for c_in, c_out in zip(widths[:-1], widths[1:])))
        self.output = nn.Linear(widths[-1], self.num_outputs)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.convs(images).amax(dim=(2, 3))  # global max pooling


class Vgg16(_RenModel):
    """VGG-16 with batch normalisation: ``config/models/ren_vgg16.yaml``."""

    NAME = "ren_vgg16"
    HYPER = (
        HyperSpec("segment_frames", int, "Frames of the input image (paper: 373).", min=8, max=100_000),
        HyperSpec("width", float, "Uniform scale of every convolution's maps (1.0: VGG-16's).", min=0.01, max=4.0),
        HyperSpec("dense_units", int, "Units of the fully connected layer before the output.", min=1, max=8192),
        HyperSpec("dropout", float, "Dropout before the output layer.", min=0.0, max=0.9),
    )

    def __init__(self, num_features: int, head: str, num_classes: int | None = None, **hyper: object) -> None:
        super().__init__(num_features, head, num_classes, hyper)
        h = self.hyper
        layers: list[nn.Module] = []
        c_in = 1
        for block in VGG16_BLOCKS:
            for maps in block:
                c_out = _scaled(maps, h["width"])
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
                c_in = c_out
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Linear(c_in, h["dense_units"]), nn.ReLU(), nn.Dropout(h["dropout"]))
        self.output = nn.Linear(h["dense_units"], self.num_outputs)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(images).mean(dim=(2, 3)))


class _Bottleneck(nn.Module):
    """1 x 1, 3 x 3 (carrying the stride), 1 x 1 convolutions, each with batch normalisation, and the shortcut."""

    def __init__(self, c_in: int, inner: int, stride: int) -> None:
        super().__init__()
        c_out = 4 * inner
        self.body = nn.Sequential(
            nn.Conv2d(c_in, inner, 1, bias=False), nn.BatchNorm2d(inner), nn.ReLU(),
            nn.Conv2d(inner, inner, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(inner), nn.ReLU(),
            nn.Conv2d(inner, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet50(_RenModel):
    """ResNet-50: ``config/models/ren_resnet50.yaml``."""

    NAME = "ren_resnet50"
    HYPER = (
        HyperSpec("segment_frames", int, "Frames of the input image (paper: 373).", min=8, max=100_000),
        HyperSpec("width", float, "Uniform scale of every convolution's maps (1.0: ResNet-50's).", min=0.01,
                  max=4.0),
    )

    def __init__(self, num_features: int, head: str, num_classes: int | None = None, **hyper: object) -> None:
        super().__init__(num_features, head, num_classes, hyper)
        width = self.hyper["width"]
        stem = _scaled(64, width)
        layers: list[nn.Module] = [nn.Conv2d(1, stem, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(stem),
                                   nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)]
        c_in = stem
        for index, (inner, blocks) in enumerate(RESNET50_STAGES):
            inner = _scaled(inner, width)
            for block in range(blocks):
                stride = 2 if block == 0 and index > 0 else 1
                layers.append(_Bottleneck(c_in, inner, stride))
                c_in = 4 * inner
        self.convs = nn.Sequential(*layers)
        self.output = nn.Linear(c_in, self.num_outputs)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.convs(images).mean(dim=(2, 3))
