"""Training data: waveforms of a manifest, padded batches, and the SortaGrad batch order.

- :func:`load_waveform`: a file as 16 kHz mono float32 (channels averaged, resampled with
  :func:`ser_robot.audio.resample.resample` when the file has another rate).
- :class:`UtteranceDataset`: item ``i`` of a :class:`~ser_robot.data.manifest.Manifest` as an
  :class:`Example` (waveform, class index, arousal/valence); optional in-memory cache.
- :func:`collate`: examples -> :class:`Batch` ``(waveforms (batch, 1, samples) zero-padded,
  lengths (batch,), labels (batch,), dimensional (batch, 2), indices (batch,))``.
- :class:`SortaGradBatchSampler`: epoch 0 in order of increasing duration (SortaGrad, Amodei et
  al. 2016, as Lakomkin et al. train), later epochs shuffled buckets of similar durations,
  seeded by ``(seed, epoch)``; shards every global batch over DDP ranks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

from ser_robot.data.manifest import EMOTIONS, Manifest
from ser_robot.errors import TrainError

__all__ = [
    "Batch",
    "Example",
    "SortaGradBatchSampler",
    "UtteranceDataset",
    "collate",
    "label_set",
    "load_waveform",
    "shard",
]

DIMENSIONS: tuple[str, str] = ("arousal", "valence")


def load_waveform(path: str, sample_rate: int = 16000) -> torch.Tensor:
    """The samples of an audio file as ``(samples,)`` float32 at ``sample_rate`` Hz, channels averaged."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise TrainError(f"cannot read audio file {path}: {error}") from None
    mono = audio.mean(axis=1, dtype=np.float64)
    if rate != sample_rate:
        from ser_robot.audio.resample import resample

        mono = resample(mono, int(rate), sample_rate)
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))


def label_set(manifest: Manifest) -> tuple[str, ...]:
    """The class order of a manifest: its ``labels`` if set, else :data:`EMOTIONS` when every label is
    one of them, else the sorted labels found."""
    if manifest.labels is not None:
        return tuple(manifest.labels)
    found = {u.label for u in manifest if u.label is not None}
    if found <= set(EMOTIONS):
        return EMOTIONS
    return tuple(sorted(found))


class Example(NamedTuple):
    """One utterance: ``waveform`` ``(samples,)`` float32; ``label`` class index (-1: none);
    ``dimensional`` ``(2,)`` float32 arousal, valence (nan where absent); ``index`` in the dataset."""

    waveform: torch.Tensor
    label: int
    dimensional: torch.Tensor
    index: int


class Batch(NamedTuple):
    """A padded batch.

    ``waveforms`` ``(batch, 1, samples)`` float32 zero-padded; ``lengths`` ``(batch,)`` int64 valid
    samples; ``labels`` ``(batch,)`` int64 class indices (-1: unlabelled); ``dimensional``
    ``(batch, 2)`` float32 arousal, valence (nan: absent); ``indices`` ``(batch,)`` int64 dataset
    positions.
    """

    waveforms: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    dimensional: torch.Tensor
    indices: torch.Tensor

    def targets(self, head: str) -> torch.Tensor:
        """The targets of ``head``: ``labels`` (categorical) or ``dimensional``."""
        return self.labels if head == "categorical" else self.dimensional


class UtteranceDataset(torch.utils.data.Dataset):
    """The utterances of ``manifest`` as :class:`Example` items.

    ``labels``: class order (default :func:`label_set`). ``cache``: keep each waveform after its
    first read (call :meth:`preload` before forking DataLoader workers so they share it).
    """

    def __init__(self, manifest: Manifest, labels: Sequence[str] | None = None, sample_rate: int = 16000,
                 cache: bool = False) -> None:
        self.manifest = manifest
        self.labels = tuple(labels) if labels is not None else label_set(manifest)
        self.sample_rate = int(sample_rate)
        self.cache = bool(cache)
        self._cache: dict[int, torch.Tensor] = {}
        index = {label: i for i, label in enumerate(self.labels)}
        unknown = sorted({u.label for u in manifest if u.label is not None and u.label not in index})
        if unknown:
            raise TrainError(f"labels {unknown} are not in the label set {list(self.labels)}; "
                             "read the manifest with the experiment's label set")
        self._labels = [index[u.label] if u.label is not None else -1 for u in manifest]
        self._dimensional = torch.tensor(
            [[math.nan if u.arousal is None else u.arousal, math.nan if u.valence is None else u.valence]
             for u in manifest], dtype=torch.float32).reshape(len(manifest), 2)

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def durations(self) -> list[float]:
        """Duration of each utterance in seconds, from the manifest (no audio is read)."""
        return [u.duration_s for u in self.manifest]

    def check_targets(self, head: str) -> None:
        """Raise :class:`TrainError` naming utterances without the targets ``head`` trains on."""
        if head == "categorical":
            missing = [u.id for u, label in zip(self.manifest, self._labels) if label < 0]
            what = "a class label"
        else:
            bad = torch.isnan(self._dimensional).any(dim=1).tolist()
            missing = [u.id for u, b in zip(self.manifest, bad) if b]
            what = "arousal and valence"
        if missing:
            raise TrainError(f"{len(missing)} utterance(s) lack {what} for the {head} head, e.g. {missing[:3]}; "
                             "filter the manifest or choose the other head")

    def targets(self, head: str) -> torch.Tensor:
        """All targets without reading audio: ``(n,)`` int64 class indices (categorical) or ``(n, 2)`` float32."""
        if head == "categorical":
            return torch.tensor(self._labels, dtype=torch.int64)
        return self._dimensional.clone()

    def waveform(self, index: int) -> torch.Tensor:
        """``(samples,)`` float32 of utterance ``index`` (cached if enabled)."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        wave = load_waveform(self.manifest[index].path, self.sample_rate)
        if self.cache:
            self._cache[index] = wave
        return wave

    def preload(self, progress: bool = False) -> None:
        """Read every waveform into the cache now (no-op without ``cache``)."""
        if not self.cache:
            return
        from tqdm import tqdm

        for index in tqdm(range(len(self)), desc="cache audio", unit="utt", disable=not progress, leave=False):
            self.waveform(index)

    def item_targets(self, index: int) -> tuple[int, torch.Tensor]:
        """``(class index or -1, (2,) arousal and valence)`` of utterance ``index``, without its audio."""
        return self._labels[index], self._dimensional[index]

    def __getitem__(self, index: int) -> Example:
        return Example(self.waveform(index), self._labels[index], self._dimensional[index], int(index))


def collate(examples: Sequence[Example]) -> Batch:
    """Stack examples into a zero-padded :class:`Batch` (see its shapes)."""
    if not examples:
        raise TrainError("cannot collate an empty batch")
    lengths = torch.tensor([e.waveform.shape[-1] for e in examples], dtype=torch.int64)
    waveforms = torch.zeros(len(examples), 1, int(lengths.max()), dtype=torch.float32)
    for row, example in enumerate(examples):
        waveforms[row, 0, : example.waveform.shape[-1]] = example.waveform
    return Batch(
        waveforms,
        lengths,
        torch.tensor([e.label for e in examples], dtype=torch.int64),
        torch.stack([e.dimensional for e in examples]).float(),
        torch.tensor([e.index for e in examples], dtype=torch.int64),
    )


def shard(batch: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s contiguous part of a global batch (sizes differ by at most one; may be empty)."""
    size, extra = divmod(len(batch), world_size)
    start = rank * size + min(rank, extra)
    return list(batch[start: start + size + (1 if rank < extra else 0)])


class SortaGradBatchSampler(torch.utils.data.Sampler):
    """Batches of dataset indices; SortaGrad in the first epoch, shuffled buckets afterwards.

    Epoch 0 with ``sortagrad``: indices sorted by increasing duration (ties by index), cut into
    consecutive batches, in that order. Other epochs: a permutation drawn from a generator
    seeded with ``(seed, epoch)`` (see :meth:`global_batches`), cut into buckets
    of ``bucket_batches * batch_size``; each bucket is sorted by duration and cut into batches
    (little padding), and the order of all batches is shuffled. ``bucket_batches=1``: plain
    random batches. The order depends only on ``(seed, epoch)``, never on history, so a resumed
    run sees the same batches.

    DDP: every rank computes the same global batches and keeps its :func:`shard` of each
    (``rank``, ``world_size``). When a global batch has fewer utterances than ranks, a rank whose
    part is empty gets the batch's first utterance instead, which the trainer weighs 0 (DDP needs
    every rank in every step). Call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, durations: Sequence[float], batch_size: int, seed: int = 0, sortagrad: bool = True,
                 bucket_batches: int = 50, drop_last: bool = False, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bucket_batches < 1:
            raise ValueError(f"bucket_batches must be >= 1, got {bucket_batches}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        if len(durations) == 0:
            raise ValueError("no utterances to sample batches from")
        self.durations = torch.as_tensor(list(durations), dtype=torch.float64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.sortagrad = bool(sortagrad)
        self.bucket_batches = int(bucket_batches)
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order :meth:`__iter__` gives (0-based)."""
        self.epoch = int(epoch)

    def _sorted(self, indices: torch.Tensor) -> torch.Tensor:
        order = torch.sort(self.durations[indices], stable=True).indices
        return indices[order]

    def global_batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of all ranks together for ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        n = len(self.durations)
        if self.sortagrad and epoch == 0:
            order = self._sorted(torch.arange(n))
            batches = list(torch.split(order, self.batch_size))
        else:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            permutation = torch.randperm(n, generator=generator)
            bucket = self.bucket_batches * self.batch_size
            batches = []
            for chunk in torch.split(permutation, bucket):
                batches.extend(torch.split(self._sorted(chunk), self.batch_size))
            shuffle = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in shuffle]
        out = [b.tolist() for b in batches]
        if self.drop_last:
            out = [b for b in out if len(b) == self.batch_size]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield shard(batch, self.rank, self.world_size) or batch[:1]

    def __len__(self) -> int:
        n = len(self.durations)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
