"""On-the-fly features for training: augmentation -> extraction -> frame lengths -> normalisation.

Everything runs per batch on the training device (GPU when there is one): the waveform batch
``(batch, channels, samples)`` goes through the augmentation chain (random parameters drawn on
the CPU from a generator seeded per batch, applied on the batch's device), its channels are
averaged (a binaural room impulse response makes two ears of one; the feature node mixes ears
the same way), the extractor computes ``(batch, frames, dims)`` and the normaliser z-normalises
with the training split's statistics. Padded frames (beyond each example's frame count) are set
to 0 after normalisation.

Frame counts come from ``extractor.frame_count(samples)``, clamped to at least 1 so that a
model's masked pooling never divides by zero. In a padded batch the last ``context[1]`` valid
frames of a shorter example (1 frame for eGEMAPS' 3-frame smoothing) see the padding's zeros,
where the extractor run on that example alone would use its edge rule: a one-frame difference
at the utterance's end, accepted for batching.

Normalisation statistics: :func:`fit_normalizer` streams the *clean* training split (no
augmentation) through the extractor once and accumulates :meth:`FeatureNormalizer.update` with
frame masks; under DDP every rank accumulates a shard and the statistics are merged exactly
(count, mean, sum of squares; Chan et al.'s pairwise formula).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch

from ser_robot.augment.compose import AugmentationChain, lakomkin_chain
from ser_robot.features.base import FrameExtractor
from ser_robot.features.normalization import FeatureNormalizer
from ser_robot.train.config import AugmentationConfig
from ser_robot.train.data import Batch

__all__ = ["BatchFeaturizer", "Features", "build_augmentation", "fit_normalizer", "frame_lengths", "frame_mask",
           "gather_statistics", "merge_statistics"]


class Features(NamedTuple):
    """``features`` ``(batch, frames, dims)`` float32 (padding 0); ``lengths`` ``(batch,)`` int64 valid
    frames; ``applied`` ``(batch, n_augmentations)`` bool (``(batch, 0)`` without augmentation);
    ``names``: augmentation step names; ``params``: their scalar parameters per example
    (:class:`~ser_robot.augment.compose.ChainResult`)."""

    features: torch.Tensor
    lengths: torch.Tensor
    applied: torch.Tensor
    names: tuple[str, ...]
    params: dict[str, dict[str, torch.Tensor]] = {}


def frame_lengths(extractor: FrameExtractor, sample_lengths: torch.Tensor) -> torch.Tensor:
    """``(batch,)`` int64 frames of each example from its ``(batch,)`` valid samples, at least 1."""
    counts = [max(1, extractor.frame_count(int(n))) for n in sample_lengths.tolist()]
    return torch.tensor(counts, dtype=torch.int64, device=sample_lengths.device)


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """``(batch, frames)`` bool, True for valid frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


class BatchFeaturizer(torch.nn.Module):
    """``(waveforms (batch, channels, samples), lengths (batch,))`` -> :class:`Features`.

    ``extractor``: a :class:`FrameExtractor` (``create_extractor(name)``); ``normalizer``: fitted
    statistics for its ``names`` (``None``: raw features, used while fitting);
    ``augmentation``: applied only when ``forward(..., augment=True)``. ``level``: ``agc`` runs
    the feature node's level normaliser on each (augmented) waveform before its features, each
    utterance a stream of its own (:func:`~ser_robot.audio.level_normalizer.normalize_level`).
    """

    def __init__(self, extractor: FrameExtractor, normalizer: FeatureNormalizer | None = None,
                 augmentation: AugmentationChain | None = None, level: str = "off") -> None:
        super().__init__()
        if level not in ("off", "agc"):
            raise ValueError(f"level must be off or agc, got {level!r}")
        self.extractor = extractor
        if normalizer is not None:
            normalizer.check_compatible(extractor.names)
        self.normalizer = normalizer
        self.augmentation = augmentation
        self.level = level

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.extractor.names)

    @torch.no_grad()
    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor, augment: bool = False,
                generator: torch.Generator | None = None) -> Features:
        """Features of a padded waveform batch; ``augment`` runs the chain first with ``generator`` (CPU)."""
        if waveforms.dim() == 2:
            waveforms = waveforms[:, None, :]
        lengths = lengths.to(waveforms.device)
        applied = torch.zeros(waveforms.shape[0], 0, dtype=torch.bool)
        names: tuple[str, ...] = ()
        params: dict[str, dict[str, torch.Tensor]] = {}
        if augment and self.augmentation is not None:
            result = self.augmentation(waveforms, lengths, generator=generator)
            waveforms, lengths, applied, names, params = (result.x, result.lengths, result.applied, result.names,
                                                          result.params)
        mono = waveforms.mean(dim=1) if waveforms.shape[1] > 1 else waveforms[:, 0]
        if self.level == "agc":
            mono = self._normalize_level(mono.float(), lengths)
        feats = self.extractor(mono.float())
        counts = frame_lengths(self.extractor, lengths).clamp_max(feats.shape[1])
        if self.normalizer is not None:
            feats = self.normalizer(feats)
        feats = feats * frame_mask(counts, feats.shape[1])[..., None].to(feats.dtype)
        return Features(feats.float().contiguous(), counts, applied, names, params)

    def _normalize_level(self, mono: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return _level_normalized(mono, lengths, int(self.extractor.sample_rate))


def _level_normalized(mono: torch.Tensor, lengths: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``(batch, samples)`` with each item's first ``lengths`` samples through the level normaliser."""
    from ser_robot.audio.level_normalizer import normalize_level

    out = torch.zeros_like(mono)
    for row, length in enumerate(lengths.tolist()):
        item = mono[row, : int(length)].detach().cpu().numpy()
        out[row, : int(length)] = torch.from_numpy(normalize_level(item, sample_rate)[: int(length)]).to(mono.device)
    return out


def merge_statistics(parts: Iterable[tuple[int, torch.Tensor, torch.Tensor]]) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Merge ``(count, mean (dims,), m2 (dims,))`` float64 statistics of disjoint sets, in order."""
    count, mean, m2 = 0, None, None
    for n_b, mean_b, m2_b in parts:
        if n_b == 0:
            continue
        if mean is None:
            count, mean, m2 = int(n_b), mean_b.clone(), m2_b.clone()
            continue
        n = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / n)
        m2 = m2 + m2_b + delta**2 * (count * n_b / n)
        count = n
    if mean is None:
        raise ValueError("no frames in any part; cannot merge empty statistics")
    return count, mean, m2


def gather_statistics(normalizer: FeatureNormalizer, all_gather) -> None:
    """Replace every rank's partial statistics in ``normalizer`` by all ranks' merged ones (DDP).

    ``all_gather``: a function ``obj -> list of every rank's obj``; ranks are merged in order.
    """
    local = (int(normalizer.count), normalizer.mean.cpu(), normalizer.m2.cpu())
    count, mean, m2 = merge_statistics(all_gather(local))
    normalizer.count.fill_(count)
    normalizer.mean.copy_(mean)
    normalizer.m2.copy_(m2)


def fit_normalizer(featurizer: BatchFeaturizer, batches: Iterable[Batch], device: torch.device | str = "cpu",
                   progress: bool = False, all_gather=None) -> FeatureNormalizer:
    """Statistics of the clean features of ``batches`` (the training split), padding masked.

    ``all_gather``: under DDP, a function ``obj -> list of every rank's obj`` (each rank passes its
    shard of the batches); the per-rank statistics are merged in rank order.
    """
    from tqdm import tqdm

    normalizer = FeatureNormalizer(featurizer.names).to(device)
    raw = BatchFeaturizer(featurizer.extractor)
    for batch in tqdm(batches, desc="feature statistics", unit="batch", disable=not progress, leave=False):
        feats = raw(batch.waveforms.to(device), batch.lengths.to(device))
        normalizer.update(feats.features, frame_mask(feats.lengths, feats.features.shape[1]))
    if all_gather is not None:
        gather_statistics(normalizer, all_gather)
    if not normalizer.fitted:
        raise ValueError("the training split gave no feature frames; are its utterances shorter than one window?")
    return normalizer


def build_augmentation(config: AugmentationConfig, sample_rate: int = 16000) -> AugmentationChain | None:
    """The training chain of ``config`` (``None`` for ``kind: none``).

    ``lakomkin``: :func:`~ser_robot.augment.lakomkin_chain` with the noise bank's *training* clips
    and the RIR bank's *training* rooms (:func:`~ser_robot.sim.conditions.training_conditions`, so
    the robot test condition is never trained on), or Gaussian noise without a noise bank and no
    IR step without a RIR bank. Random parameters come from the generator passed per batch.
    """
    if not config.enabled:
        return None
    from ser_robot.augment.transforms import gaussian_noise

    noise_source = gaussian_noise
    ir_source = None
    if config.noise_bank is not None or config.rir_bank is not None:
        from ser_robot.acoustics import NoiseBank, RirBank
        from ser_robot.sim.conditions import training_conditions

        sim_config = None
        if config.sim_config is not None:
            from ser_robot.sim.config import load_sim_config

            sim_config = load_sim_config(config.sim_config)
        if config.noise_bank is not None:
            noise_bank = NoiseBank.load(config.noise_bank)
            rir_bank = RirBank.load(config.rir_bank) if config.rir_bank is not None else None
            conditions = training_conditions(noise_bank, rir_bank, sim_config, include_ego=config.include_ego)
            noise_source = [torch.from_numpy(conditions.noise.audio(r).copy()) for r in conditions.noise.records]
            rirs = conditions.rirs
        else:
            rirs = RirBank.load(config.rir_bank).subset("train")  # type: ignore[arg-type]
        if rirs is not None:
            ir_source = [torch.from_numpy(rirs.ir(r).copy()) for r in rirs.records]
    return lakomkin_chain(noise_source, ir_source, sample_rate=sample_rate, p_tempo=config.p_tempo,
                          p_gain=config.p_gain, p_noise=config.p_noise, p_ir=config.p_ir,
                          p_channel=config.p_channel, nsr_power=config.nsr_power)
