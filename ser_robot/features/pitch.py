"""Fundamental frequency by YIN (de Cheveigné & Kawahara 2002), batched in PyTorch.

Used to describe corpora (mean F0 and F0 range per class) and as a utterance-level cue for the
learnability check of the synthetic corpus. Steps of the paper: difference function (via FFT),
cumulative mean normalised difference, absolute threshold (first local minimum under it),
parabolic interpolation. Frames whose minimum stays above the threshold, or whose energy is
more than ``silence_db`` under the loudest frame or under ``SILENCE_FLOOR_DBFS``, are unvoiced.
"""

from __future__ import annotations

import torch

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
    tau_max = int(sample_rate / f0_min) + 1
    tau_min = max(2, int(sample_rate / f0_max))
    hop = int(round(hop_s * sample_rate))
    span = window + tau_max
    if x.shape[-1] < span:
        x = torch.nn.functional.pad(x, (0, span - x.shape[-1]))
    frames = x.unfold(-1, span, hop)  # (batch, frames, span)

    # d(tau) = sum_j (x_j - x_{j+tau})^2, j < window  =  e0 + e_tau - 2 r(tau)
    n_fft = 1 << (2 * span - 1).bit_length()
    head = frames[..., :window]
    spec_full = torch.fft.rfft(frames, n_fft)
    spec_head = torch.fft.rfft(head, n_fft)
    r = torch.fft.irfft(spec_full * spec_head.conj(), n_fft)[..., : tau_max + 1]
    energy = torch.cumsum(frames**2, dim=-1)
    energy = torch.nn.functional.pad(energy, (1, 0))
    taus = torch.arange(tau_max + 1, device=x.device)
    e_tau = energy[..., taus + window] - energy[..., taus]
    diff = (energy[..., window : window + 1] + e_tau - 2 * r).clamp_min(0)

    # cumulative mean normalised difference d'(tau) = d(tau) * tau / sum_{k<=tau} d(k)
    cumulative = torch.cumsum(diff[..., 1:], dim=-1)
    cmnd = torch.ones_like(diff)
    cmnd[..., 1:] = diff[..., 1:] * taus[1:] / cumulative.clamp_min(1e-12)

    # first local minimum under the threshold in [tau_min, tau_max - 1]
    inner = cmnd[..., tau_min:tau_max]
    is_min = (inner <= cmnd[..., tau_min - 1 : tau_max - 1]) & (inner <= cmnd[..., tau_min + 1 : tau_max + 1])
    candidate = is_min & (inner < threshold)
    has = candidate.any(dim=-1)
    first = torch.argmax(candidate.int(), dim=-1) + tau_min

    # parabolic interpolation around the chosen lag
    left = cmnd.gather(-1, (first - 1).unsqueeze(-1)).squeeze(-1)
    mid = cmnd.gather(-1, first.unsqueeze(-1)).squeeze(-1)
    right = cmnd.gather(-1, (first + 1).unsqueeze(-1)).squeeze(-1)
    denominator = left - 2 * mid + right
    shift = torch.where(denominator.abs() > 1e-12, 0.5 * (left - right) / denominator, torch.zeros_like(mid))
    period = first.float() + shift.clamp(-1, 1)

    frame_db = 10 * torch.log10(head.pow(2).mean(dim=-1) + 1e-12)
    loud = (frame_db > frame_db.amax(dim=-1, keepdim=True) - silence_db) & (frame_db > SILENCE_FLOOR_DBFS)
    voiced = has & loud
    f0 = torch.where(voiced, sample_rate / period, torch.zeros_like(period))
    if squeeze:
        return f0[0], voiced[0]
    return f0, voiced
