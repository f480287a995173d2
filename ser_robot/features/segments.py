"""Pure helpers that give an utterance's features or samples the length a model expects.

The papers use three rules (the presets in ``config/features.yaml`` pick one):

- **segments** (Latif et al. 2020): cut the ``(frames, dims)`` matrix into fixed-width segments
  of ``segment_frames`` frames, each labelled with the utterance label; the utterance-level
  prediction averages the segments' posteriors. :func:`segment`.
- **fixed frames** (Ren et al. 2020, SSAD): one ``(n, dims)`` matrix per utterance; shorter ones
  are "broadcast" (tiled) to ``n``, longer ones cut from the middle. :func:`fix_length`.
- **fixed duration** (MTL-AUG): the *waveform* is cut at ``max_seconds`` or padded with zeros,
  before the features are computed. :func:`fix_samples`.

All functions take tensors with any leading dimensions and never modify their input.
"""

from __future__ import annotations

import torch

__all__ = ["CROP_MODES", "PAD_MODES", "fix_length", "fix_samples", "segment"]

PAD_MODES = ("constant", "repeat")
"""``constant``: append ``pad_value``; ``repeat``: tile the sequence from its start until long enough."""
CROP_MODES = ("start", "centre")
"""``start``: keep the first ``n``; ``centre``: keep the middle ``n`` (the extra one at the end when odd)."""


def segment(
    frames: torch.Tensor, segment_frames: int, hop: int | None = None, pad_value: float = 0.0
) -> torch.Tensor:
    """Cut ``(..., frames, dims)`` into ``(..., segments, segment_frames, dims)``.

    Segments start every ``hop`` frames (default ``segment_frames``: no overlap) from frame 0.
    Every frame lands in at least one segment: when the last regular segment stops short of the
    end, one more segment is added that ends at the last frame (so it overlaps its predecessor)
    instead of being padded. Only an utterance shorter than one segment is padded at the end
    with ``pad_value``, giving one segment.
    """
    if segment_frames < 1:
        raise ValueError(f"segment_frames must be >= 1, got {segment_frames}")
    hop = segment_frames if hop is None else hop
    if hop < 1:
        raise ValueError(f"segment hop must be >= 1, got {hop}")
    if frames.dim() < 2:
        raise ValueError(f"segment expects (..., frames, dims), got shape {tuple(frames.shape)}")
    count = frames.shape[-2]
    if count < segment_frames:
        padded = _pad_frames(frames, segment_frames - count, "constant", pad_value)
        return padded.unsqueeze(-3)
    parts = frames.unfold(-2, segment_frames, hop).transpose(-1, -2)  # (..., k, seg, dims)
    last_end = (parts.shape[-3] - 1) * hop + segment_frames
    if last_end < count:
        tail = frames[..., count - segment_frames :, :].unsqueeze(-3)
        parts = torch.cat([parts, tail], dim=-3)
    return parts.contiguous()


def fix_length(
    frames: torch.Tensor,
    n: int,
    pad: str = "repeat",
    crop: str = "centre",
    pad_value: float = 0.0,
) -> torch.Tensor:
    """``(..., frames, dims)`` -> ``(..., n, dims)``: pad (``pad`` in :data:`PAD_MODES`) or crop
    (``crop`` in :data:`CROP_MODES`) along the frame axis.

    ``repeat`` of an empty sequence falls back to ``pad_value``.
    """
    if n < 0:
        raise ValueError(f"fix_length needs n >= 0, got {n}")
    if frames.dim() < 2:
        raise ValueError(f"fix_length expects (..., frames, dims), got shape {tuple(frames.shape)}")
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {', '.join(PAD_MODES)}, got {pad!r}")
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}, got {crop!r}")
    count = frames.shape[-2]
    if count > n:
        start = _crop_start(count, n, crop)
        return frames[..., start : start + n, :]
    if count < n:
        return _pad_frames(frames, n - count, pad, pad_value)
    return frames


def fix_samples(
    samples: torch.Tensor, n: int, pad: str = "constant", crop: str = "start", pad_value: float = 0.0
) -> torch.Tensor:
    """``(..., samples)`` -> ``(..., n)``: cut (``crop``) or pad (``pad``, zeros by default) the
    waveform itself, as MTL-AUG does for its 7.5 s utterances."""
    if n < 0:
        raise ValueError(f"fix_samples needs n >= 0, got {n}")
    frames = fix_length(samples.unsqueeze(-1), n, pad=pad, crop=crop, pad_value=pad_value)
    return frames.squeeze(-1)


def _crop_start(count: int, n: int, crop: str) -> int:
    return 0 if crop == "start" else (count - n) // 2


def _pad_frames(frames: torch.Tensor, extra: int, pad: str, pad_value: float) -> torch.Tensor:
    count = frames.shape[-2]
    if pad == "repeat" and count > 0:
        reps = -(-(count + extra) // count)
        tiled = frames.repeat(*([1] * (frames.dim() - 2)), reps, 1)
        return tiled[..., : count + extra, :]
    filler = frames.new_full((*frames.shape[:-2], extra, frames.shape[-1]), pad_value)
    return torch.cat([frames, filler], dim=-2)
