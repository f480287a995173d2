"""The contract every frame-based feature extractor keeps, so one streaming wrapper serves them all.

A :class:`FrameExtractor` maps ``(batch, samples)`` at ``sample_rate`` Hz to
``(batch, frames, len(names))``. Frames are left-aligned and never centre-padded: frame ``i``
is computed from the samples ``[i * hop_length - context[0] * hop_length,
i * hop_length + window_length + context[1] * hop_length)`` and from nothing else, and a signal
of ``n`` samples gives ``frame_count(n) = 1 + (n - window_length) // hop_length`` frames
(0 if ``n < window_length``). ``context`` counts the extra frames of past and future a frame
depends on beyond its own window (for example ``(1, 1)`` for a centred 3-frame moving
average such as openSMILE's ``sma3``); frames closer than that to either end of the signal are
computed with the extractor's documented edge rule.

With this contract, :mod:`ser_robot.features.streaming` reproduces the offline output exactly
(up to float rounding) from chunks of any size while keeping only
``window_length + (context[0] + context[1] + 1) * hop_length`` samples of history.
"""

from __future__ import annotations

import abc

import torch

__all__ = ["FrameExtractor"]


class FrameExtractor(torch.nn.Module, abc.ABC):
    """Base class: subclasses set the attributes below in ``__init__`` and implement ``forward``."""

    sample_rate: int  # Hz of the input
    window_length: int  # samples of one frame's longest analysis window
    hop_length: int  # samples between frame starts
    context: tuple[int, int] = (0, 0)  # frames of past / future a frame depends on beyond its window
    names: tuple[str, ...]  # one name per output dimension

    @property
    def num_features(self) -> int:
        return len(self.names)

    def frame_count(self, samples: int) -> int:
        """Frames produced from ``samples`` samples (left-aligned, no padding)."""
        if samples < self.window_length:
            return 0
        return 1 + (samples - self.window_length) // self.hop_length

    @abc.abstractmethod
    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` float -> ``(batch, frames, num_features)``."""
