"""Padding-aware building blocks: length masks, masked pooling, masked batch normalisation.

A padded batch is ``(batch, frames, ...)`` with ``lengths`` ``(batch,)``; frame ``t`` of item
``b`` is valid when ``t < lengths[b]``. Everything here gives each item the result it would
get alone, unpadded.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MaskedBatchNorm1d", "lengths_to_mask", "masked_max", "masked_mean"]


def lengths_to_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """``(batch,)`` lengths -> ``(batch, frames)`` bool, True on valid frames."""
    steps = torch.arange(frames, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames: ``x`` ``(batch, frames, channels)``, mask ``(batch, frames)`` -> ``(batch, channels)``.

    Padded frames contribute nothing, whatever they hold (NaN included).
    """
    weights = mask.to(x.dtype).unsqueeze(-1)
    total = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(1)
    return total / weights.sum(1).clamp(min=1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over valid frames: ``x`` ``(batch, channels, frames)``, mask ``(batch, frames)`` -> ``(batch, channels)``.

    Padded positions are set to -inf before the max, so they can never win (every item needs
    at least one valid frame).
    """
    neg_inf = torch.full((), float("-inf"), dtype=x.dtype, device=x.device)
    return torch.where(mask.unsqueeze(1), x, neg_inf).amax(dim=2)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over ``(batch, channels, frames)`` whose batch statistics use valid frames only.

    ``forward(x, mask)``: ``mask`` ``(batch, frames)`` bool. In training mode (or without
    running statistics) the mean and (biased) variance per channel are taken over the valid
    frames of the whole batch, exactly as :class:`torch.nn.BatchNorm1d` would over those frames
    concatenated; running statistics are updated with them (unbiased variance, ``momentum``,
    cumulative average when ``momentum`` is None). In evaluation mode normalisation uses the
    running statistics, per frame, so padding is irrelevant. Padded output positions hold
    unspecified values: mask them afterwards. ``mask=None`` is plain BatchNorm1d.
    Parameters and buffers are those of BatchNorm1d (same ``state_dict`` keys).
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if mask is None:
            return super().forward(x)
        if x.dim() != 3:
            raise ValueError(f"MaskedBatchNorm1d expects (batch, channels, frames), got {tuple(x.shape)}")
        use_batch_stats = self.training or not self.track_running_stats or self.running_mean is None
        if not use_batch_stats:
            return super().forward(x)
        m = mask.unsqueeze(1).to(x.dtype)  # (batch, 1, frames)
        count = m.sum()
        mean = (x * m).sum(dim=(0, 2)) / count.clamp(min=1.0)
        centred = (x - mean[None, :, None]) * m
        var = centred.square().sum(dim=(0, 2)) / count.clamp(min=1.0)
        if self.training and self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr]
                factor = (
                    1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                )
                unbiased = var * (count / (count - 1).clamp(min=1.0))
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), factor)  # type: ignore[union-attr]
        y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None] + self.bias[None, :, None]
        return y
