"""The training loop of Lakomkin et al. (IROS 2018, III.F), for any model of the common interface.

:func:`train` runs one fold: Adam (``lr`` 3e-4), gradient values clipped to ``[-clip, clip]``
after unscaling, batches of 32 in SortaGrad order in the first epoch, ``ReduceLROnPlateau``
(factor 0.5) and early stopping on the validation speaker's ``monitor`` metric, the weights of
the best validation epoch kept and scored on the test speaker with :mod:`ser_robot.metrics`.
Features are computed per batch on the training device after augmentation
(:mod:`ser_robot.train.features`) and z-normalised with the training split's statistics.

Losses: ``categorical``: cross-entropy on the logits. ``dimensional``: ``mse`` (mean over
arousal and valence of the squared error, per utterance; default, the paper names no loss) or
``ccc`` (``1 - mean CCC`` over the two dimensions, per batch).

Reproducibility: ``torch.manual_seed(seed)`` before the model is built (initial weights,
dropout); the batch order depends on ``(seed, epoch)`` only; the augmentation generator is
re-seeded for every batch from ``(seed, epoch, step, rank)``; checkpoints carry the torch RNG
states. With ``deterministic: true`` the run sets, and restores afterwards,
``torch.use_deterministic_algorithms(True, warn_only=True)`` (``warn_only``: an op without a
deterministic kernel warns instead of stopping a long run), ``cudnn.deterministic = True``,
``cudnn.benchmark = False`` and, on CUDA, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` when unset. Same
seed, same machine, same thread count -> the same weights, bit for bit, on the CPU (tested);
on CUDA up to any op that warned. A run resumed from a ``last.pt`` checkpoint gives the
result of the uninterrupted run.

Mixed precision: only on CUDA (``amp``): the model's forward under ``torch.autocast`` with
``amp_dtype`` (bf16 by default; fp16 adds a ``GradScaler``); features and losses stay float32.

DDP: see :mod:`ser_robot.train.distributed` (start with ``torchrun``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import csv
import json
import logging
import math
import os
import pathlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ser_robot.data.corpora.labels import dimension_scale
from ser_robot.data.splits import Fold
from ser_robot.metrics import classification_report, regression_report
from ser_robot.features.normalization import FeatureNormalizer
from ser_robot.features.sets import create_extractor
from ser_robot.train.checkpoint import (
    FORMAT,
    VERSION,
    get_rng_state,
    load_checkpoint,
    normalizer_from_checkpoint,
    save_checkpoint,
    set_rng_state,
    to_plain,
)
from ser_robot.train.bank import BankTrainingSet, collate_features
from ser_robot.train.adversarial import adversarial_step_loss
from ser_robot.train.config import SEGMENT_MODELS, MultitaskConfig, TrainConfig
from ser_robot.train.data import (
    DIMENSIONS,
    SortaGradBatchSampler,
    UtteranceDataset,
    collate,
    label_set,
    shard,
)
from ser_robot.train.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    cleanup,
    init_distributed,
)
from ser_robot.errors import CheckpointError, ConfigError, TrainError
from ser_robot.train.factory import (
    ModelFactory,
    check_model,
    load_model_hparams,
    registry_factory,
)
from ser_robot.train.features import (
    BatchFeaturizer,
    Features,
    build_augmentation,
    fit_normalizer,
    frame_mask,
    gather_statistics,
)

__all__ = ["TrainResult", "batch_generator", "checkpoint_base", "checkpoint_model_entry", "deterministic_mode", "evaluate", "feature_batches",
           "predict", "predict_features", "train"]

log = logging.getLogger(__name__)

RESUMABLE_CHANGES = ("epochs", "workers", "cache", "device")
"""Configuration keys that may differ between a checkpoint and the run that resumes it."""


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    ``model``: the best validation epoch's weights, eval mode (unwrapped from DDP);
    ``normalizer``: the training split's statistics; ``labels``: class order; ``best_epoch``
    (1-based) and ``best_metric`` (the ``monitor`` value); ``validation``: that epoch's report
    (``None`` without a validation part); ``test``: report on the test part; ``history``: one
    dict per epoch; ``stopped_early``; ``throughput``: mean training utterances per second
    (loading, augmentation, features, forward and backward); ``out_dir``, ``best_checkpoint``,
    ``last_checkpoint``: written files (``None`` without ``out_dir`` or off rank 0).
    """

    model: torch.nn.Module
    normalizer: FeatureNormalizer
    labels: tuple[str, ...]
    best_epoch: int
    best_metric: float
    validation: dict[str, Any] | None
    test: dict[str, Any]
    history: list[dict[str, Any]]
    stopped_early: bool
    throughput: float
    out_dir: pathlib.Path | None = None
    best_checkpoint: pathlib.Path | None = None
    last_checkpoint: pathlib.Path | None = None
    config: TrainConfig | None = field(default=None, repr=False)


@contextlib.contextmanager
def deterministic_mode(enabled: bool, device: torch.device) -> Iterator[None]:
    """Within the block, torch's deterministic settings (see the module docstring); restored after."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if enabled:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def batch_generator(seed: int, epoch: int, step: int, rank: int = 0) -> torch.Generator:
    """The CPU generator of one batch's augmentation, a function of ``(seed, epoch, step, rank)`` only."""
    state = np.random.SeedSequence([seed, epoch, step, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# --- losses ---------------------------------------------------------------------------------------


def _per_example_loss(outputs: torch.Tensor, targets: torch.Tensor, head: str) -> torch.Tensor:
    """``(batch,)`` float32: cross-entropy, or the squared error averaged over arousal and valence."""
    if head == "categorical":
        return F.cross_entropy(outputs.float(), targets, reduction="none")
    return ((outputs.float() - targets.float()) ** 2).mean(dim=1)


def ccc_loss(outputs: torch.Tensor, targets: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 - mean CCC`` over the columns of ``outputs``/``targets`` ``(batch, dims)`` (a scalar)."""
    x, y = outputs.float(), targets.float()
    mx, my = x.mean(dim=0), y.mean(dim=0)
    vx, vy = x.var(dim=0, unbiased=False), y.var(dim=0, unbiased=False)
    cov = ((x - mx) * (y - my)).mean(dim=0)
    ccc = 2 * cov / (vx + vy + (mx - my) ** 2 + eps)
    return 1.0 - ccc.mean()


# --- evaluation -----------------------------------------------------------------------------------


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda" and config.amp:
        dtype = torch.bfloat16 if config.amp_dtype == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()


def _eval_batches(dataset: UtteranceDataset, batch_size: int) -> list[list[int]]:
    order = sorted(range(len(dataset)), key=lambda i: (dataset.durations[i], i))
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def feature_batches(featurizer: BatchFeaturizer, dataset: UtteranceDataset, config: TrainConfig,
                    context: DistContext | None = None) -> list[tuple[torch.Tensor, Features]]:
    """``(dataset indices, clean Features)`` of this rank's evaluation batches (by duration), on the device.

    Read in this process without a DataLoader, which would draw from the global random generator
    (a resumed run must see the random stream of the uninterrupted one). With ``normalization:
    speaker`` each speaker's frames are normalised by that speaker's statistics over all its
    utterances in ``dataset`` (what a stream's running statistics approach; ``ser-robot evaluate``
    measures the causal, live version).
    """
    context = context or DistContext()
    batches = [shard(b, context.rank, context.world_size) for b in _eval_batches(dataset, config.batch_size)]
    out = []
    with torch.no_grad():
        for indices in (b for b in batches if b):
            batch = collate([dataset[i] for i in indices])
            feats = featurizer(batch.waveforms.to(context.device), batch.lengths.to(context.device))
            out.append((batch.indices, feats))
    if config.normalization == "speaker":
        out = _speaker_normalized(out, dataset, featurizer.normalizer, context)
    return out


def _speaker_normalized(batches: list[tuple[torch.Tensor, Features]], dataset: UtteranceDataset,
                        normalizer: FeatureNormalizer | None, context: DistContext) -> list[tuple[torch.Tensor, Features]]:
    """Population-normalised ``batches`` re-normalised by each speaker's statistics over ``dataset``."""
    from ser_robot.features.stream_normalization import speaker_statistics

    if normalizer is None:
        raise TrainError("speaker normalisation of evaluation batches needs the population statistics")
    mean, scale = normalizer.mean.to(context.device), normalizer.scale.to(context.device)
    speakers = [u.speaker for u in dataset.manifest]

    def raw_frames(feats: Features, row: int) -> torch.Tensor:
        return feats.features[row, : int(feats.lengths[row])].double() * scale + mean

    frames: dict[str, list[torch.Tensor]] = {}
    for indices, feats in batches:
        for row, index in enumerate(indices.tolist()):
            frames.setdefault(speakers[index], []).append(raw_frames(feats, row))
    if context.distributed:  # every rank needs every speaker's frames
        parts = all_gather_objects(context, {k: [f.cpu() for f in v] for k, v in frames.items()})
        frames = {}
        for part in parts:
            for speaker, chunks in part.items():
                frames.setdefault(speaker, []).extend(c.to(context.device) for c in chunks)
    stats = {speaker: speaker_statistics(chunks) for speaker, chunks in frames.items()}
    out = []
    for indices, feats in batches:
        normalized = torch.zeros_like(feats.features)
        for row, index in enumerate(indices.tolist()):
            m, s = (t.to(context.device) for t in stats[speakers[index]])
            length = int(feats.lengths[row])
            normalized[row, :length] = ((raw_frames(feats, row) - m) / s).to(normalized.dtype)
        out.append((indices, feats._replace(features=normalized)))
    return out


@torch.no_grad()
def predict_features(model: torch.nn.Module, batches: list[tuple[torch.Tensor, Features]], config: TrainConfig,
                     context: DistContext | None = None) -> torch.Tensor:
    """``(utterances, outputs)`` float32 CPU model outputs of :func:`feature_batches`, in dataset order.

    Under DDP each rank predicts its shard of every batch; the outputs are gathered on all ranks.
    """
    context = context or DistContext()
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    indices, outputs = [], []
    for batch_indices, feats in batches:
        with _autocast(config, context.device):
            out = net(feats.features, feats.lengths)
        indices.append(batch_indices)
        outputs.append(out.float().cpu())
    net.train(was_training)
    local = (torch.cat(indices) if indices else torch.zeros(0, dtype=torch.int64),
             torch.cat(outputs) if outputs else torch.zeros(0, 0))
    parts = all_gather_objects(context, local)
    all_indices = torch.cat([p[0] for p in parts])
    all_outputs = torch.cat([p[1] for p in parts if p[1].numel()])
    result = torch.empty_like(all_outputs)
    result[all_indices] = all_outputs
    return result


def predict(model: torch.nn.Module, featurizer: BatchFeaturizer, dataset: UtteranceDataset, config: TrainConfig,
            context: DistContext | None = None) -> torch.Tensor:
    """``(len(dataset), outputs)`` float32 CPU model outputs in dataset order, clean features."""
    return predict_features(model, feature_batches(featurizer, dataset, config, context), config, context)


def score(outputs: torch.Tensor, dataset: UtteranceDataset, config: TrainConfig) -> dict[str, Any]:
    """The report of ``outputs`` ``(n, outputs)`` against ``dataset``'s targets (plain values).

    Categorical: :func:`classification_report` (class names) and ``loss``; dimensional:
    :func:`regression_report` per dimension and, over arousal and valence, the means ``mae``,
    ``pearson_r``, ``ccc``, and ``loss``.
    """
    targets = dataset.targets(config.head)
    if config.head == "dimensional" and config.dimensional_loss == "ccc":
        loss = float(ccc_loss(outputs, targets))
    else:
        loss = float(_per_example_loss(outputs, targets, config.head).mean())
    if config.head == "categorical":
        labels = list(dataset.labels)
        predicted = outputs.argmax(dim=1).tolist()
        report = classification_report([labels[i] for i in targets.tolist()], [labels[i] for i in predicted],
                                       labels)
    else:
        report = regression_report(targets.numpy(), outputs.numpy(), names=DIMENSIONS)
        for metric in ("mae", "pearson_r", "ccc"):
            report[metric] = float(np.mean([report[d][metric] for d in DIMENSIONS]))
    report["loss"] = loss
    report["utterances"] = len(dataset)
    return to_plain(report)


def evaluate(model: torch.nn.Module, featurizer: BatchFeaturizer, dataset: UtteranceDataset, config: TrainConfig,
             context: DistContext | None = None, batches: list[tuple[torch.Tensor, Features]] | None = None
             ) -> dict[str, Any]:
    """:func:`score` of :func:`predict` (the same on every rank); ``batches``: the dataset's
    :func:`feature_batches`, computed once by the caller (features are the same every epoch)."""
    if batches is None:
        batches = feature_batches(featurizer, dataset, config, context)
    return score(predict_features(model, batches, config, context), dataset, config)


def _scalars(report: Mapping[str, Any]) -> dict[str, float]:
    """The top-level and per-dimension numbers of a report, flat (``arousal/mae``)."""
    flat: dict[str, float] = {}
    for key, value in report.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = float(value)
        elif isinstance(value, Mapping) and key in DIMENSIONS:
            flat.update({f"{key}/{k}": float(v) for k, v in value.items()})
    return flat


def _improved(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


# --- the run --------------------------------------------------------------------------------------


def _check_resume(checkpoint: Mapping[str, Any], config: TrainConfig, fold: Fold, labels: tuple[str, ...],
                  names: tuple[str, ...]) -> None:
    if checkpoint.get("kind") != "last":
        raise CheckpointError("resume needs a 'last' checkpoint (last.pt, with optimiser state), got a "
                              f"{checkpoint.get('kind')!r} one")
    stored = dict(checkpoint["train_config"])
    current = config.to_dict()  # keys added later are left out at their defaults, as in older checkpoints
    differ = sorted(k for k in set(stored) | set(current)
                    if k not in RESUMABLE_CHANGES and stored.get(k) != current.get(k))
    if differ:
        raise CheckpointError(f"cannot resume: the configuration differs from the checkpoint's in {differ} "
                              f"(only {list(RESUMABLE_CHANGES)} may change)")
    if checkpoint["fold"]["name"] != fold.name:
        raise CheckpointError(f"cannot resume: the checkpoint trained fold {checkpoint['fold']['name']!r}, "
                              f"this run is fold {fold.name!r}")
    if tuple(checkpoint["labels"]) != labels:
        raise CheckpointError(f"cannot resume: label set {checkpoint['labels']} != {list(labels)}")
    if tuple(checkpoint["features"]["names"]) != names:
        raise CheckpointError("cannot resume: the checkpoint's feature names differ from the extractor's")


def _normalization_entry(config: TrainConfig) -> dict[str, Any]:
    """What the inference side needs to know of the features' preparation (checkpoint ``features``)."""
    entry: dict[str, Any] = {}
    if config.level_normalization != "off":
        entry["level_normalization"] = config.level_normalization
    if config.normalization == "speaker":
        from ser_robot.features.stream_normalization import StreamNormalization

        entry["normalization"] = "speaker"
        entry["stream_normalization"] = dataclasses.asdict(StreamNormalization())
    return entry


def checkpoint_model_entry(config: TrainConfig, hparams: Mapping[str, Any], model: torch.nn.Module,
                           state: Mapping[str, torch.Tensor], num_outputs: int, num_features: int) -> dict[str, Any]:
    """A checkpoint's ``model`` entry: name, hyper-parameters, the model's rebuild config, weights ``state``."""
    return {"name": config.model, "hparams": to_plain(hparams), "config": to_plain(model.config),
            "state": {k: v.detach().cpu() for k, v in state.items()}, "head": config.head,
            "num_outputs": num_outputs, "num_features": num_features}


def checkpoint_base(config: TrainConfig, fold: Fold, labels: tuple[str, ...], names: tuple[str, ...],
                    feature_rate: int, normalizer: FeatureNormalizer) -> dict[str, Any]:
    """What every checkpoint of a run holds besides its weights and state (format, labels, features, fold)."""
    base = {
        "format": FORMAT, "version": VERSION, "labels": list(labels), "head": config.head,
        "sample_rate": config.sample_rate, "train_config": config.to_dict(),
        "features": {"set": config.feature_set, "names": list(names), "sample_rate": feature_rate,
                     "normalizer": normalizer.to_dict(), **_normalization_entry(config)},
        "fold": {"name": fold.name, "train": fold.train.speakers, "validation": fold.validation.speakers,
                 "test": fold.test.speakers},
    }
    if config.head == "dimensional":  # targets stay on the corpus' rating scale (the papers' MAE is on it);
        base["dimension_scale"] = list(dimension_scale({u.corpus for u in fold.train}))  # inference maps it to [-1, 1]
    return base


def _write_outputs(out_dir: pathlib.Path, config: TrainConfig, result: dict[str, Any],
                   history: list[dict[str, Any]]) -> None:
    import yaml

    (out_dir / "train_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    (out_dir / "result.json").write_text(json.dumps(result, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    rows = [{k: v for k, v in h.items() if not isinstance(v, (dict, list))} | _prefixed(h) for h in history]
    if rows:
        keys = list(dict.fromkeys(k for row in rows for k in row))
        with (out_dir / "history.csv").open("w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)


def _prefixed(entry: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key in ("validation", "augmented", "losses"):
        for name, value in (entry.get(key) or {}).items():
            out[f"{key}/{name}"] = value
    return out


def _bank_training_set(config: TrainConfig, fold: Fold, train_set: UtteranceDataset, names: tuple[str, ...],
                       progress: bool) -> Any:
    """The training utterances served from the augmentation bank of ``config`` (built if needed)."""
    from ser_robot.data.manifest import read_manifest
    from ser_robot.train.bank import BankSpec, BankTrainingSet, ensure_bank

    aug = config.augmentation
    covered = read_manifest(aug.bank_manifest) if aug.bank_manifest else fold.train
    bank = ensure_bank(BankSpec.from_config(covered, aug, config.feature_set, config.sample_rate,
                                            config.level_normalization), aug.bank_dir,
                       progress=progress)
    if bank.names != names:
        raise TrainError(f"augmentation bank {bank.root} holds features {list(bank.names)[:3]}..., not the "
                         f"{config.feature_set!r} extractor's")
    bank.training_view(fold.train, [*fold.validation.speakers, *fold.test.speakers])
    return BankTrainingSet(bank, train_set, config.seed)


def _bank_normalizer(bank_set: Any, names: tuple[str, ...], device: torch.device,
                     context: DistContext) -> FeatureNormalizer:
    """Statistics of the clean renditions (version 0) of the training utterances; exact under DDP."""
    normalizer = FeatureNormalizer(names).to(device)
    for index in range(context.rank, len(bank_set), context.world_size):
        feats = bank_set.clean(index).features.to(device)
        normalizer.update(feats[None], torch.ones(1, feats.shape[0], dtype=torch.bool, device=device))
    if context.distributed:
        gather_statistics(normalizer, lambda obj: all_gather_objects(context, obj))
    return normalizer


def _speaker_statistics(bank_set: Any, device: torch.device,
                        by_rendition: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` ``(utterances, versions, dims)`` float32: for each training utterance and bank
    version, its speaker's statistics (``normalization: speaker``) over the clean renditions of all that
    speaker's utterances (every version gets those), or with ``by_rendition`` over that speaker's
    renditions of the same version (``speaker_statistics: rendition``)."""
    from ser_robot.features.stream_normalization import speaker_statistics

    speakers = [u.speaker for u in bank_set.dataset.manifest]
    rows: dict[str, list[int]] = {}
    for index, speaker in enumerate(speakers):
        rows.setdefault(speaker, []).append(index)
    versions, dims = bank_set.bank.versions, len(bank_set.bank.names)
    mean, std = torch.zeros(len(speakers), versions, dims), torch.ones(len(speakers), versions, dims)
    for indices in rows.values():
        for version in range(versions if by_rendition else 1):
            m, s = speaker_statistics(bank_set.example(i, version).features for i in indices)
            columns = slice(version, version + 1) if by_rendition else slice(None)
            mean[indices, columns], std[indices, columns] = m.float(), s.float()
    return mean.to(device), std.to(device)


def _bank_features(batch: Any, normalizer: FeatureNormalizer, steps: tuple[str, ...], device: torch.device,
                   speakers: tuple[torch.Tensor, torch.Tensor] | None = None) -> Features:
    """:class:`Features` of a bank batch: z-normalised (by each utterance's speaker's statistics when
    ``speakers`` is :func:`_speaker_statistics`, else by the population's), padded frames 0."""
    lengths = batch.lengths.to(device)
    raw = batch.features.to(device, non_blocking=True)
    if speakers is not None:
        index, version = batch.indices.to(device), batch.versions.to(device)
        feats = (raw - speakers[0][index, version][:, None, :]) / speakers[1][index, version][:, None, :]
    else:
        feats = normalizer(raw)
    feats = feats * frame_mask(lengths, feats.shape[1])[..., None].to(feats.dtype)
    return Features(feats.float().contiguous(), lengths, batch.applied, steps)


def train(config: TrainConfig, fold: Fold, *, model_factory: ModelFactory | None = None,
          out_dir: str | pathlib.Path | None = None, resume: str | pathlib.Path | None = None,
          progress: bool = True) -> TrainResult:
    """Train ``config``'s model on ``fold.train``, select on ``fold.validation``, score on ``fold.test``.

    ``model_factory``: builds the model (default: the :mod:`ser_robot.models` registry; see
    :mod:`ser_robot.train.factory`). ``out_dir``: where rank 0 writes ``last.pt`` (every epoch,
    resumable), ``best.pt`` (the selected weights), ``result.json``, ``history.csv`` and
    ``train_config.yaml``. ``resume``: a ``last.pt`` to continue from (the configuration may only
    change in ``epochs``, ``workers``, ``cache`` and ``device``). Under ``torchrun`` the run is
    distributed (:mod:`ser_robot.train.distributed`). Without a validation part the training loss
    drives the learning-rate schedule, nothing stops early and the last epoch is kept.
    """
    from ser_robot.models import MODELS

    if getattr(MODELS.get(config.model), "SEGMENT_TRAINED", False):
        from ser_robot.train.segments import train_segments

        return train_segments(config, fold, out_dir=out_dir, resume=resume, progress=progress)
    if config.multitask != MultitaskConfig():
        raise ConfigError(f"the multitask section applies to segment models ({', '.join(SEGMENT_MODELS)}), not "
                          f"{config.model!r}; remove it")
    context = init_distributed(config.device)
    try:
        with deterministic_mode(config.deterministic, context.device):
            return _train(config, fold, context, model_factory or registry_factory, out_dir, resume, progress)
    finally:
        cleanup(context)


@dataclass
class _Run:
    """Everything one training run holds between its epochs (:func:`_setup` builds it)."""

    config: TrainConfig
    fold: Fold
    context: DistContext
    show: bool
    out: pathlib.Path | None
    write: bool
    labels: tuple[str, ...]
    train_set: UtteranceDataset
    val_set: UtteranceDataset | None
    test_set: UtteranceDataset
    bank_set: Any
    normalizer: FeatureNormalizer
    featurizer: BatchFeaturizer
    speaker_stats: tuple[torch.Tensor, torch.Tensor] | None
    hparams: Mapping[str, Any]
    num_outputs: int
    names: tuple[str, ...]
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    use_scaler: bool
    mode: str
    monitor: str
    sampler: SortaGradBatchSampler
    loader: Any
    val_batches: list[tuple[torch.Tensor, Features]] | None
    base: dict[str, Any]
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": 0, "metric": None, "state": None,
                                                          "validation": None})
    bad_epochs: int = 0
    stopped: bool = False

    @property
    def best_path(self) -> pathlib.Path | None:
        return self.out / "best.pt" if self.write and self.out is not None else None

    @property
    def last_path(self) -> pathlib.Path | None:
        return self.out / "last.pt" if self.write and self.out is not None else None

    def model_entry(self, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        return checkpoint_model_entry(self.config, self.hparams, self.model, state, self.num_outputs, len(self.names))


def _train(config: TrainConfig, fold: Fold, context: DistContext, factory: ModelFactory,
           out_dir: str | pathlib.Path | None, resume: str | pathlib.Path | None, progress: bool) -> TrainResult:
    run = _setup(config, fold, context, factory, out_dir, resume, progress)
    for epoch in range(run.start_epoch, config.epochs):
        if run.stopped:
            break
        entry = _train_epoch(run, epoch)
        _end_epoch(run, epoch, entry)
        barrier(context)
    return _finish(run)


def _setup(config: TrainConfig, fold: Fold, context: DistContext, factory: ModelFactory,
           out_dir: str | pathlib.Path | None, resume: str | pathlib.Path | None, progress: bool) -> _Run:
    """Data, features and their statistics, model, optimiser, resumed state: a :class:`_Run`."""
    device = context.device
    show = progress and context.is_main
    out = pathlib.Path(out_dir) if out_dir is not None else None
    write = out is not None and context.is_main
    if write:
        out.mkdir(parents=True, exist_ok=True)

    labels = label_set(fold.train)
    datasets = {part: UtteranceDataset(getattr(fold, part), labels, config.sample_rate, config.cache)
                for part in ("train", "validation", "test") if len(getattr(fold, part))}
    for dataset in datasets.values():
        dataset.check_targets(config.head)
    if config.workers > 0:
        for dataset in datasets.values():
            dataset.preload(progress=show)  # workers fork with the cache
    train_set, val_set, test_set = datasets["train"], datasets.get("validation"), datasets["test"]

    extractor = create_extractor(config.feature_set)
    if extractor.sample_rate != config.sample_rate:
        raise TrainError(f"feature set {config.feature_set!r} needs {extractor.sample_rate} Hz audio, the "
                         f"configuration says sample_rate {config.sample_rate}")
    names = tuple(extractor.names)
    checkpoint = load_checkpoint(resume) if resume is not None else None
    if checkpoint is not None:
        _check_resume(checkpoint, config, fold, labels, names)

    bank_set = _bank_training_set(config, fold, train_set, names, show) if config.augmentation.mode == "bank" else None

    # normalisation statistics: the clean training split, once
    featurizer = BatchFeaturizer(extractor, level=config.level_normalization).to(device)
    if checkpoint is not None:
        normalizer = normalizer_from_checkpoint(checkpoint).to(device)
    elif bank_set is not None:
        normalizer = _bank_normalizer(bank_set, names, device, context)
    else:
        stat_batches = _eval_batches(train_set, config.batch_size)[context.rank:: context.world_size]
        loader = torch.utils.data.DataLoader(train_set, batch_sampler=stat_batches, collate_fn=collate,
                                             num_workers=config.workers)
        gather = (lambda obj: all_gather_objects(context, obj)) if context.distributed else None
        normalizer = fit_normalizer(featurizer, loader, device, show, gather)
    featurizer = BatchFeaturizer(extractor, normalizer, build_augmentation(config.augmentation, config.sample_rate),
                                 level=config.level_normalization).to(device)
    speaker_stats = (_speaker_statistics(bank_set, device, config.speaker_statistics == "rendition")
                     if config.normalization == "speaker" else None)

    hparams = {**load_model_hparams(config.model_config, config.model), **config.model_hyper}
    num_outputs = len(labels) if config.head == "categorical" else len(DIMENSIONS)
    torch.manual_seed(config.seed)
    model = factory(config.model, dict(hparams), num_features=len(names), num_outputs=num_outputs, head=config.head)
    check_model(model, config.head, num_outputs, len(names))
    model.to(device)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"]["state"])
    net: torch.nn.Module = model
    if context.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    mode = config.monitor_mode if val_set is not None else "min"
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=config.lr_factor,
                                                           patience=config.lr_patience, threshold=0.0)
    use_scaler = device.type == "cuda" and config.amp and config.amp_dtype == "fp16"
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

    sampler = SortaGradBatchSampler(train_set.durations, config.batch_size, config.seed, config.sortagrad,
                                    config.bucket_batches, rank=context.rank, world_size=context.world_size)
    loader = training_loader(bank_set if bank_set is not None else train_set, sampler, config.workers,
                             pin_memory=device.type == "cuda")
    val_batches = feature_batches(featurizer, val_set, config, context) if val_set is not None else None
    base = checkpoint_base(config, fold, labels, names, extractor.sample_rate, normalizer)

    run = _Run(config=config, fold=fold, context=context, show=show, out=out, write=write, labels=labels,
               train_set=train_set, val_set=val_set, test_set=test_set, bank_set=bank_set, normalizer=normalizer,
               featurizer=featurizer, speaker_stats=speaker_stats, hparams=hparams, num_outputs=num_outputs,
               names=names, model=model, net=net, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
               use_scaler=use_scaler, mode=mode, monitor=config.monitor_metric if val_set is not None else "loss",
               sampler=sampler, loader=loader, val_batches=val_batches, base=base)
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"])
        run.start_epoch = int(checkpoint["epoch"])
        run.history = list(checkpoint["history"])
        run.best = dict(checkpoint["best"])
        run.bad_epochs = int(checkpoint["early_stop"]["bad_epochs"])
        run.stopped = bool(checkpoint["early_stop"]["stopped"])
    return run


def training_loader(dataset: Any, batch_sampler: Any, workers: int, pin_memory: bool = False) -> Any:
    """The training ``DataLoader`` over a :class:`UtteranceDataset` or a bank's
    :class:`~ser_robot.train.bank.BankTrainingSet`. Workers of an utterance dataset persist across
    epochs; a bank's start again each epoch, since persistent ones would go on serving the versions that
    :meth:`~ser_robot.train.bank.BankTrainingSet.set_epoch` drew before they forked."""
    bank = isinstance(dataset, BankTrainingSet)
    return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler,
                                       collate_fn=collate_features if bank else collate, num_workers=workers,
                                       pin_memory=pin_memory, persistent_workers=workers > 0 and not bank)


def _train_epoch(run: _Run, epoch: int) -> dict[str, Any]:
    """One pass over the training set; returns the epoch's history entry (loss, lr, speed, augmentation)."""
    from tqdm import tqdm

    config, context, device = run.config, run.context, run.context.device
    run.sampler.set_epoch(epoch)
    if run.bank_set is not None:
        run.bank_set.set_epoch(epoch)
    plan = run.sampler.global_batches(epoch)
    run.model.train()
    started = time.perf_counter()
    loss_sum = torch.zeros(2, dtype=torch.float64)  # sum of losses, utterances
    applied_sum: torch.Tensor | None = None
    aug_names: tuple[str, ...] = ()
    bar = tqdm(run.loader, total=len(plan), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
               disable=not run.show, leave=False)
    for step, batch in enumerate(bar):
        global_size = len(plan[step])
        real = len(shard(plan[step], context.rank, context.world_size))
        weights = torch.ones(batch.lengths.shape[0], device=device) if real else torch.zeros(1, device=device)
        if run.bank_set is not None:
            feats = _bank_features(batch, run.normalizer, run.bank_set.bank.steps, device, run.speaker_stats)
        else:
            generator = batch_generator(config.seed, epoch, step, context.rank)
            feats = run.featurizer(batch.waveforms.to(device, non_blocking=True), batch.lengths.to(device),
                                   augment=True, generator=generator)
        targets = batch.targets(config.head).to(device)
        iteration = epoch * len(plan) + step
        if config.lr_decay_every:  # Ren et al.: the rate x 0.9 every 100 iterations (a function of the iteration)
            for group in run.optimizer.param_groups:
                group["lr"] = config.lr * config.lr_decay ** (iteration // config.lr_decay_every)
        if config.adversarial.kind != "none":  # Ren et al.: real and FGSM inputs (ser_robot.train.adversarial)
            per_example = adversarial_step_loss(
                run.model, run.net, feats.features, feats.lengths, targets, config.adversarial,
                iteration, lambda: _autocast(config, device)) * weights
            loss = per_example.sum() * (context.world_size / global_size)
            batch_loss_sum = per_example.detach().sum()
        else:
            with _autocast(config, device):
                outputs = run.net(feats.features, feats.lengths)
            if config.head == "dimensional" and config.dimensional_loss == "ccc":
                loss = ccc_loss(outputs, targets) * (1.0 if real else 0.0)
                batch_loss_sum = loss.detach() * real
            else:
                per_example = _per_example_loss(outputs, targets, config.head) * weights
                loss = per_example.sum() * (context.world_size / global_size)
                batch_loss_sum = per_example.detach().sum()
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        if config.clip > 0:
            torch.nn.utils.clip_grad_value_(run.model.parameters(), config.clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        loss_sum += torch.tensor([float(batch_loss_sum), real], dtype=torch.float64)
        if feats.applied.shape[1]:
            counts = feats.applied[: real].sum(dim=0).double()
            applied_sum = counts if applied_sum is None else applied_sum + counts
            aug_names = feats.names
        if run.show:
            bar.set_postfix(loss=f"{float(batch_loss_sum) / max(real, 1):.4f}",
                            lr=f"{run.optimizer.param_groups[0]['lr']:.2e}")
    bar.close()
    loss_sum = all_reduce_sum(context, loss_sum)
    if applied_sum is not None:
        applied_sum = all_reduce_sum(context, applied_sum)
    seconds = time.perf_counter() - started
    entry: dict[str, Any] = {"epoch": epoch + 1, "lr": run.optimizer.param_groups[0]["lr"],
                             "train_loss": float(loss_sum[0] / loss_sum[1]), "seconds": seconds,
                             "utterances_per_s": float(loss_sum[1]) / seconds}
    if applied_sum is not None:
        entry["augmented"] = {n: float(v) / float(loss_sum[1]) for n, v in zip(aug_names, applied_sum.tolist())}
    return entry


def _end_epoch(run: _Run, epoch: int, entry: dict[str, Any]) -> None:
    """Validation, learning-rate schedule, model selection, early stopping and checkpoints of one epoch."""
    config = run.config
    if run.val_set is not None:
        report = evaluate(run.net, run.featurizer, run.val_set, config, run.context, run.val_batches)
        value = float(report[run.monitor])
        entry["validation"] = _scalars(report)
    else:
        report, value = None, entry["train_loss"]
    entry["monitor"] = value
    if not config.lr_decay_every:  # else the iteration sets the rate (_train_epoch)
        run.scheduler.step(value)
    improved = _improved(value, run.best["metric"], run.mode) or run.val_set is None
    entry["improved"] = improved
    if improved:
        run.best = {"epoch": epoch + 1, "metric": value, "validation": report,
                    "state": {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}}
        run.bad_epochs = 0
    else:
        run.bad_epochs += 1
    run.stopped = (run.val_set is not None and config.early_stop_patience > 0
                   and run.bad_epochs >= config.early_stop_patience)
    run.history.append(to_plain(entry))
    if run.context.is_main:
        val_text = f", validation {run.monitor} {value:.4f}" if run.val_set is not None else ""
        log.info("epoch %d: train loss %.4f%s, lr %.2e, %.1f utt/s%s", epoch + 1, entry["train_loss"], val_text,
                 entry["lr"], entry["utterances_per_s"], " (best)" if improved else "")
    if run.write:
        if improved:
            save_checkpoint(run.best_path, {**run.base, "kind": "best", "model": run.model_entry(run.best["state"]),
                                            "epoch": epoch + 1, "best_validation": report, "history": run.history})
        save_checkpoint(run.last_path, {
            **run.base, "kind": "last", "model": run.model_entry(run.model.state_dict()), "epoch": epoch + 1,
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict() if run.use_scaler else None, "rng": get_rng_state(),
            "early_stop": {"bad_epochs": run.bad_epochs, "stopped": run.stopped}, "best": run.best,
            "history": run.history})


def _finish(run: _Run) -> TrainResult:
    """The selected weights scored on the test part; ``result.json`` and ``history.csv`` written."""
    config, context = run.config, run.context
    if run.best["state"] is None:
        raise TrainError(f"no epoch was trained (epochs={config.epochs}, resumed at epoch {run.start_epoch})")
    run.model.load_state_dict(run.best["state"])
    test = evaluate(run.model, run.featurizer, run.test_set, config, context)
    throughputs = [h["utterances_per_s"] for h in run.history if h.get("epoch", 0) > run.start_epoch] or \
                  [h["utterances_per_s"] for h in run.history]
    result = TrainResult(
        model=run.model.eval(), normalizer=run.normalizer, labels=run.labels, best_epoch=int(run.best["epoch"]),
        best_metric=float(run.best["metric"]), validation=run.best["validation"], test=test, history=run.history,
        stopped_early=run.stopped, throughput=float(np.mean(throughputs)), out_dir=run.out if run.write else None,
        best_checkpoint=run.best_path, last_checkpoint=run.last_path, config=config)
    if run.write:
        _write_outputs(run.out, config, to_plain({
            "fold": run.base["fold"], "labels": list(run.labels), "monitor": run.monitor,
            "best_epoch": result.best_epoch, "best_metric": result.best_metric, "validation": result.validation,
            "test": test, "stopped_early": run.stopped, "epochs_run": len(run.history),
            "throughput_utterances_per_s": result.throughput, "world_size": context.world_size,
            "device": str(context.device),
        }), run.history)
    barrier(context)
    return result
