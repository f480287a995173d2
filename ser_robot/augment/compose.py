"""Chains of random augmentations, each applied per example with its own probability.

The chain returns the augmented batch *and* a ``(batch, n_augmentations)`` boolean mask of
what was applied to which example, with the augmentation names: the augmentation-type labels
of MTL-AUG (Latif et al.) and the bookkeeping for ablations such as Lakomkin et al.'s Table II.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch

from ser_robot.errors import AugmentationError
from ser_robot.augment.transforms import (
    AddNoise,
    Augmentation,
    ConvolveIR,
    IRSource,
    NoiseSource,
    RandomChannel,
    RandomGain,
    RandomTempo,
)

__all__ = ["ChainResult", "AugmentationChain", "lakomkin_chain", "LAKOMKIN_DEFAULT_PROBABILITY"]

LAKOMKIN_DEFAULT_PROBABILITY = 0.5
"""Our default per-augmentation probability for :func:`lakomkin_chain`. Not from the paper:
Lakomkin et al. only say perturbations "can be conveniently applied with some occurrence
probability during training" and give no value."""


class ChainResult(NamedTuple):
    """Output of :class:`AugmentationChain`.

    Attributes:
        x: augmented batch, zero-padded: waveforms ``(batch, channels, samples)`` or features.
        lengths: ``(batch,)`` int64 valid samples (frames for features) per example.
        labels: mixed labels ``(batch, classes)`` when labels were given, else ``None``.
        applied: ``(batch, n_augmentations)`` bool, ``applied[b, j]`` iff step ``j`` ran on ``b``.
        names: the ``n_augmentations`` step names, in chain order.
        params: per step name, its scalar parameters drawn for *every* example (``(batch,)``
            float64 each, e.g. ``tempo: {factor}``, ``gain: {gain_db}``, ``noise: {snr_db}``),
            whether or not the step ran (``applied`` says).
    """

    x: torch.Tensor
    lengths: torch.Tensor
    labels: Optional[torch.Tensor]
    applied: torch.Tensor
    names: Tuple[str, ...]
    params: Dict[str, Dict[str, torch.Tensor]] = {}


class AugmentationChain(torch.nn.Module):
    """Apply augmentations in order, each to each example with probability ``p``.

    Randomness (all on the CPU, from one generator, in a fixed order): first the whole
    ``(batch, n)`` applied-mask (``rand < p``), then, step by step, that step's parameters for
    *every* example (drawn even for examples that skip it), so an example's parameters do not
    depend on which other examples were selected, and a seed reproduces the whole batch.

    A step counts as applied when it ran, even if its drawn parameters happen to be neutral
    (0 dB gain, speed 1.0). Shapes: a length-changing step (tempo, speed) pads the batch to the
    longest valid length after it; a step that raises the channel count (binaural IR on mono
    speech) makes the skipped examples' channels copies of their mono signal.

    Args:
        steps: ``(name, augmentation, probability)`` triples; names must be unique,
            probabilities in ``[0, 1]``.
        generator: CPU generator held for ``forward`` calls without one.
        seed: shortcut for ``generator=torch.Generator().manual_seed(seed)``.
    """

    def __init__(
        self,
        steps: Sequence[Tuple[str, Augmentation, float]],
        generator: Optional[torch.Generator] = None,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__()
        names = tuple(str(name) for name, _, _ in steps)
        if len(set(names)) != len(names):
            raise AugmentationError(f"augmentation names must be unique, got {names}") from None
        probs = [float(p) for _, _, p in steps]
        bad = [(n, p) for n, p in zip(names, probs) if not 0.0 <= p <= 1.0]
        if bad:
            raise AugmentationError(f"probabilities must lie in [0, 1], got {bad}") from None
        for name, aug, _ in steps:
            if not isinstance(aug, Augmentation):
                raise AugmentationError(f"step {name!r} is a {type(aug).__name__}, not an Augmentation") from None
        if generator is not None and seed is not None:
            raise AugmentationError("give a generator or a seed, not both") from None
        self.names = names
        self.augmentations = torch.nn.ModuleList([aug for _, aug, _ in steps])
        self.register_buffer("probabilities", torch.tensor(probs, dtype=torch.float64), persistent=False)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else generator

    def forward(
        self,
        x: torch.Tensor,
        lengths: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> ChainResult:
        """Augment a batch.

        Args:
            x: ``(batch, channels, samples)`` waveforms (or features for feature steps).
            lengths: ``(batch,)`` valid samples; ``None`` = all.
            labels: ``(batch, classes)`` float labels, required when a mixup step is present.
            generator: CPU generator; default the held one, else torch's default generator.

        Returns:
            :class:`ChainResult`.
        """
        g = generator if generator is not None else self.generator
        batch = x.shape[0]
        if lengths is None:
            lengths = torch.full((batch,), x.shape[-1], dtype=torch.long, device=x.device)
        lengths = torch.as_tensor(lengths, device=x.device).long()
        applied = torch.rand(batch, len(self.names), generator=g, dtype=torch.float64) < self.probabilities.cpu()
        scalars: Dict[str, Dict[str, torch.Tensor]] = {}
        for j, aug in enumerate(self.augmentations):
            if aug.uses_labels and labels is None and bool(applied[:, j].any()):
                raise AugmentationError(f"step {self.names[j]!r} needs labels; pass labels=(batch, classes) floats") from None
            params = aug.sample(x, lengths, g)
            scalars[self.names[j]] = {k: v.double() for k, v in params.items() if v.dim() == 1 and v.is_floating_point()}
            index = torch.nonzero(applied[:, j]).flatten()
            if index.numel() == 0:
                continue
            xs, ls, ys = aug.apply_subset(x, lengths, labels, params, index)
            x, lengths, labels = _merge(x, lengths, labels, xs, ls, ys, index, aug.changes_length)
        return ChainResult(x, lengths, labels, applied, self.names, scalars)

    def extra_repr(self) -> str:
        return ", ".join(f"{n}: p={p:g}" for n, p in zip(self.names, self.probabilities.tolist()))


def _merge(
    x: torch.Tensor,
    lengths: torch.Tensor,
    labels: Optional[torch.Tensor],
    xs: torch.Tensor,
    ls: torch.Tensor,
    ys: Optional[torch.Tensor],
    index: torch.Tensor,
    changes_length: bool,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Write the augmented examples ``index`` back into the batch, re-padding if needed."""
    idx = index.to(x.device)
    new_lengths = lengths.clone()
    new_lengths[idx] = ls.to(lengths.device)
    samples = int(new_lengths.max()) if changes_length else x.shape[-1]
    channels = max(x.shape[1], xs.shape[1])
    for name, c in (("input", x.shape[1]), ("augmented", xs.shape[1])):
        if c not in (1, channels):
            raise AugmentationError(f"cannot merge {name} examples of {c} channels into {channels} channels") from None
    out = x.new_zeros((x.shape[0], channels, samples) + tuple(x.shape[3:])) if x.dim() == 3 else None
    if out is None:  # features or other layouts: shapes must not change
        if xs.shape[1:] != x.shape[1:]:
            raise AugmentationError(f"step changed feature shape {tuple(x.shape[1:])} -> {tuple(xs.shape[1:])}") from None
        out = x.clone()
        out[idx] = xs
    else:
        keep = min(samples, x.shape[-1])
        out[..., :keep] = x[..., :keep].expand(-1, channels, -1)
        out[idx] = 0
        keep = min(samples, xs.shape[-1])
        out[idx, :, :keep] = xs[..., :keep].expand(-1, channels, -1)
    if labels is not None and ys is not None:
        labels = labels.clone()
        labels[index.to(labels.device)] = ys
    return out, new_lengths, labels


def lakomkin_chain(
    noise_source: NoiseSource,
    ir_source: Optional[IRSource] = None,
    sample_rate: int = 16000,
    p_tempo: float = LAKOMKIN_DEFAULT_PROBABILITY,
    p_gain: float = LAKOMKIN_DEFAULT_PROBABILITY,
    p_noise: float = LAKOMKIN_DEFAULT_PROBABILITY,
    p_ir: float = LAKOMKIN_DEFAULT_PROBABILITY,
    p_channel: float = 0.0,
    nsr_power: bool = False,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
) -> AugmentationChain:
    """The augmentations of Lakomkin et al. (IROS 2018, section III.B), in the paper's order.

    1. ``tempo``: factor uniform in [0.85, 1.20] ("speed factor ... [85, 120] percent"; the
       paper calls it a tempo change and used SoX, so pitch is kept).
    2. ``gain``: uniform in [-6, +3] dB ("loudness").
    3. ``noise``: background noise from ``noise_source`` at a noise-to-signal ratio uniform in
       [0.5, 0.9], read as an RMS amplitude ratio (SNR 0.92 to 6.02 dB) unless
       ``nsr_power`` (SNR 0.46 to 3.01 dB); see :func:`~ser_robot.augment.functional.nsr_to_snr_db`.
    4. ``ir``: a room impulse response from ``ir_source`` (the paper: Aachen IR database);
       omitted when ``ir_source`` is ``None``.

    Beyond the paper, with ``p_channel > 0``: after ``gain``, ``channel``, a random loudspeaker / microphone
    response (:class:`~ser_robot.augment.transforms.RandomChannel`); at 0 the chain is the paper's, step
    for step and draw for draw.

    Probabilities: the paper gives none ("applied with some occurrence probability"); each
    defaults to :data:`LAKOMKIN_DEFAULT_PROBABILITY` (0.5, our choice). The paper also mentions
    Gaussian noise in its introduction: pass
    :func:`~ser_robot.augment.transforms.gaussian_noise` as (or within) the noise source.
    """
    steps = [
        ("tempo", RandomTempo(0.85, 1.20, sample_rate), p_tempo),
        ("gain", RandomGain(-6.0, 3.0), p_gain),
    ]
    if p_channel > 0:
        steps.append(("channel", RandomChannel(sample_rate), p_channel))
    steps.append(("noise", AddNoise(noise_source, nsr=(0.5, 0.9), nsr_power=nsr_power), p_noise))
    if ir_source is not None:
        steps.append(("ir", ConvolveIR(ir_source), p_ir))
    return AugmentationChain(steps, generator=generator, seed=seed)
