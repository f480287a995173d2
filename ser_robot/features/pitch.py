"""Fundamental frequency by YIN (de Cheveigné & Kawahara 2002), batched in PyTorch.

Used to describe corpora (mean F0 and F0 range per class) and as a utterance-level cue for the
learnability check of the synthetic corpus; the per-frame YIN is
:func:`ser_robot.features.functional.yin_frames` (shared with eGEMAPS). Steps of the paper: difference function (via FFT),
cumulative mean normalised difference, absolute threshold (first local minimum under it),
parabolic interpolation. Frames whose minimum stays above the threshold, or whose energy is
more than ``silence_db`` under the loudest frame or under ``SILENCE_FLOOR_DBFS``, are unvoiced.
"""

from __future__ import annotations

import torch

from ser_robot.features.functional import yin_frames

__all__ = ["yin"]

SILENCE_FLOOR_DBFS = -90.0
"""Frames with a mean power below this (dB re full scale 1.0) are unvoiced whatever their shape."""


def yin(
    samples: torch.Tensor,
    sample_rate: int,
    f0_min: float = 60.0,
    f0_max: float = 500.0,
    frame_s: float = 0.025,
    hop_s: float = 0.010,
    threshold: float = 0.15,
    silence_db: float = 40.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """F0 in Hz and voicing of ``samples`` ``(batch, samples)`` or ``(samples,)``.

    Returns ``(f0, voiced)``, each ``(batch, frames)`` (or ``(frames,)``): F0 in Hz (0 where
    unvoiced) and a boolean voicing mask. ``frame_s`` is the integration window; each analysis
    frame spans ``frame_s + 1 / f0_min`` seconds. Frame ``i`` starts at ``i * hop`` samples.
    """
    squeeze = samples.dim() == 1
    x = samples.unsqueeze(0) if squeeze else samples
    if x.dim() != 2:
        raise ValueError(f"yin expects (batch, samples) or (samples,), got shape {tuple(samples.shape)}")
    if not 0 < f0_min < f0_max < sample_rate / 2:
        raise ValueError(f"need 0 < f0_min < f0_max < sample_rate/2, got {f0_min}, {f0_max} at {sample_rate} Hz")
    x = x.float()
    window = int(round(frame_s * sample_rate))
    span = window + int(sample_rate / f0_min) + 1  # integration window + longest lag (yin_frames' rule)
    hop = int(round(hop_s * sample_rate))
    if x.shape[-1] < span:
        x = torch.nn.functional.pad(x, (0, span - x.shape[-1]))
    frames = x.unfold(-1, span, hop)  # (batch, frames, span)
    f0, _ = yin_frames(frames, sample_rate, f0_min, f0_max, threshold)
    head = frames[..., :window]

    frame_db = 10 * torch.log10(head.pow(2).mean(dim=-1) + 1e-12)
    loud = (frame_db > frame_db.amax(dim=-1, keepdim=True) - silence_db) & (frame_db > SILENCE_FLOOR_DBFS)
    voiced = (f0 > 0) & loud
    f0 = torch.where(voiced, f0, torch.zeros_like(f0))
    if squeeze:
        return f0[0], voiced[0]
    return f0, voiced
