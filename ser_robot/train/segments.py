"""Training of a segment model: MTL-AUG (Latif et al., seeds/002, 3.2 and 4.2-4.3) and the Latif 2020 models
(seeds/000, 4.2-4.4).

:func:`train_segments` runs one fold, called by :func:`ser_robot.train.trainer.train` for a model whose
class says ``SEGMENT_TRAINED`` (a :class:`~ser_robot.models.segments.SegmentModel`); it returns the same
:class:`~ser_robot.train.trainer.TrainResult` and writes the same checkpoints, so experiments,
``build-model``, evaluation and the inference node take its models as they take any other.

Data: the log-Mel frames of every training utterance are computed once, clean and at each speed of
``multitask.speeds`` (0.9 and 1.1 in both papers, band-limited resampling as SoX ``speed``), raw, and
z-normalised per band with the clean copies' statistics. What an epoch shows depends on
``multitask.sampling``:

- ``draw`` (MTL-AUG, seeds/002 4.2): every utterance once, as one augmentation type drawn uniformly
  from ``none`` and ``multitask.augmentations``: ``speed`` (one copy, drawn), ``specaugment`` (masks on
  the normalised log-Mel) or ``mixup`` (with a partner in the batch, targets mixed alike); the drawn
  type is the augmentation-type classifier's label, so an STL arm with augmentation sees the same data
  as MTL-AUG. Unlabelled speech (``unlabelled_manifest``, and the training utterances that
  ``labelled_fraction`` leaves without labels) forms batches of its own that train only the auxiliary
  tasks (:meth:`MtlAug.objective`). The model sees each utterance's first segment.
- ``all`` (Latif 2020, seeds/000 4.2): every segment of ``segment_frames`` of every utterance, each with
  its utterance's label, and with ``speed`` those of both speed copies too ("we produce two versions of
  each utterance"); with ``mixup`` every batch is mixed.

Schedule: Adam at ``lr``; after ``lr_patience`` epochs without a better validation ``monitor``, the
learning rate is multiplied by ``lr_factor`` (0.5) and, with ``multitask.restore_best`` (MTL-AUG 4.3),
the best weights restored; training stops when the learning rate falls below ``multitask.min_lr``,
after ``early_stop_patience`` epochs without improvement when that is positive (Latif 2020: 20), or
after ``epochs``. Without a validation part every epoch counts as an improvement and the last is kept.

Reproducibility as in the trainer: the item types and the batch order depend on ``(seed, epoch)``, the
augmentation draws on ``(seed, epoch, step)``; ``last.pt`` resumes to the uninterrupted result. One
process (no DDP); mixed precision on CUDA as in the trainer (the forward under autocast, the losses in
float32, a GradScaler for fp16).
"""

from __future__ import annotations

import logging
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ser_robot.augment.functional import speed
from ser_robot.augment.transforms import Mixup, SpecAugment
from ser_robot.data.manifest import Manifest, read_manifest
from ser_robot.data.splits import Fold, labelled_fraction
from ser_robot.errors import ConfigError, TrainError
from ser_robot.features.normalization import FeatureNormalizer
from ser_robot.features.sets import create_extractor
from ser_robot.models import AUGMENTATION_TYPES, build_model
from ser_robot.models.segments import SegmentModel
from ser_robot.train.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state, to_plain
from ser_robot.train.config import TrainConfig
from ser_robot.train.data import UtteranceDataset, label_set, load_waveform
from ser_robot.train.distributed import DistContext
from ser_robot.train.factory import load_model_hparams
from ser_robot.train.features import BatchFeaturizer
from ser_robot.train.trainer import (
    TrainResult,
    _autocast,
    _check_resume,
    _improved,
    _scalars,
    _write_outputs,
    batch_generator,
    checkpoint_base,
    checkpoint_model_entry,
    deterministic_mode,
    evaluate,
    feature_batches,
)

__all__ = ["FeatureStore", "train_segments"]

log = logging.getLogger(__name__)

_TYPE = {name: index for index, name in enumerate(AUGMENTATION_TYPES)}


@dataclass
class FeatureStore:
    """Raw feature frames of training rows: ``copies[i][0]`` ``(frames, bands)`` float16, and for a row of
    ``sampling: draw`` ``copies[i][1 + k]`` the same utterance at ``speeds[k]``; ``labels[i]`` class index
    or -1 (unlabelled); ``clean[i]`` whether ``copies[i][0]`` is unaltered speech (the normaliser's data).
    With ``segment_frames`` each copy's segments are rows of their own (``sampling: all``)."""

    copies: list[list[torch.Tensor]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    clean: list[bool] = field(default_factory=list)

    def add(self, manifest: Manifest, label_of: dict[str, int], featurizer: BatchFeaturizer,
            speeds: tuple[float, ...], sample_rate: int, show: bool, what: str,
            segment_frames: int | None = None) -> None:
        """Render and store every utterance of ``manifest`` (labelled when its id is in ``label_of``)."""
        from tqdm import tqdm

        for utterance in tqdm(manifest, desc=f"features ({what})", unit="utt", disable=not show, leave=False):
            wave = load_waveform(str(utterance.path), sample_rate)[None, None, :]
            waves = [wave] + [speed(wave, factor, sample_rate)[0] for factor in speeds]
            copies = []
            for w in waves:
                feats = featurizer(w, torch.tensor([w.shape[-1]]))
                copies.append(feats.features[0, : int(feats.lengths[0])].to(torch.float16))
            label = label_of.get(utterance.id, -1)
            if segment_frames is None:
                self.copies.append(copies)
                self.labels.append(label)
                self.clean.append(True)
                continue
            for index, frames in enumerate(copies):
                for segment in torch.split(frames, segment_frames):
                    self.copies.append([segment])
                    self.labels.append(label)
                    self.clean.append(index == 0)


def _stores(config: TrainConfig, fold: Fold, labels: tuple[str, ...], featurizer: BatchFeaturizer,
            model: SegmentModel, show: bool) -> tuple[FeatureStore, int]:
    """The training rows: labelled utterances and, when the model has an auxiliary task to train with it,
    unlabelled speech; returns ``(store, labelled utterance count)``."""
    mt = config.multitask
    auxiliary = model.has_auxiliary_task
    train = fold.train
    unlabelled_parts: list[Manifest] = []
    if mt.labelled_fraction < 1.0:
        train, rest = labelled_fraction(fold.train, mt.labelled_fraction, seed=config.seed)
        unlabelled_parts.append(rest)
    if mt.unlabelled_manifest and not auxiliary:
        raise ConfigError(f"multitask.unlabelled_manifest: model {config.model!r} has no auxiliary task to train on "
                          "unlabelled speech (augmentation_task and reconstruction_task are off); remove it")
    if mt.unlabelled_manifest:
        extra = read_manifest(mt.unlabelled_manifest)
        forbidden = set(fold.validation.speakers) | set(fold.test.speakers)
        leaked = sorted(forbidden & set(extra.speakers))
        if leaked:
            raise TrainError(f"unlabelled manifest {mt.unlabelled_manifest} holds validation or test speakers "
                             f"{leaked[:3]} of fold {fold.name!r}; give speech of other speakers")
        unlabelled_parts.append(extra)
    store = FeatureStore()
    label_of = {u.id: labels.index(u.label) for u in train}
    if mt.sampling == "all":
        speeds = mt.speeds if "speed" in mt.augmentations else ()
        store.add(train, label_of, featurizer, speeds, config.sample_rate, show, "labelled",
                  segment_frames=model.hyper["segment_frames"])
        return store, len(train)
    store.add(train, label_of, featurizer, mt.speeds, config.sample_rate, show, "labelled")
    for part in unlabelled_parts if auxiliary else []:  # an STL model learns nothing from them
        store.add(part, {}, featurizer, mt.speeds, config.sample_rate, show, "unlabelled")
    return store, len(train)


def _normalizer(store: FeatureStore, names: tuple[str, ...]) -> FeatureNormalizer:
    """Per-band statistics of the clean rows (their unaltered copy)."""
    normalizer = FeatureNormalizer(names)
    for copies, clean in zip(store.copies, store.clean):
        if clean:
            frames = copies[0].float()[None]
            normalizer.update(frames, torch.ones(1, frames.shape[1], dtype=torch.bool))
    return normalizer


def plan_epoch(store: FeatureStore, config: TrainConfig, epoch: int) -> list[list[tuple[int, int, int]]]:
    """The batches of one epoch: lists of ``(row, copy, augmentation type)``; labelled and unlabelled
    rows in separate batches, the batches shuffled together. A function of ``(seed, epoch)`` only."""
    mt = config.multitask
    rng = np.random.default_rng([config.seed, int(epoch), 0x4D54])
    kinds = ["none", *mt.augmentations]
    every = _TYPE["mixup" if "mixup" in mt.augmentations else "none"]  # sampling: all
    batches = []
    for labelled in (True, False):
        rows = [i for i, label in enumerate(store.labels) if (label >= 0) == labelled]
        rows = [rows[i] for i in rng.permutation(len(rows))]
        items = []
        for row in rows:
            if mt.sampling == "all":
                items.append((row, 0, every))
                continue
            kind = kinds[int(rng.integers(len(kinds)))]
            copy = 1 + int(rng.integers(len(mt.speeds))) if kind == "speed" else 0
            items.append((row, copy, _TYPE[kind]))
        batches += [items[i: i + config.batch_size] for i in range(0, len(items), config.batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def make_batch(store: FeatureStore, items: list[tuple[int, int, int]], normalizer: FeatureNormalizer,
               config: TrainConfig, num_classes: int, generator: torch.Generator,
               device: torch.device) -> dict[str, torch.Tensor]:
    """One training batch: normalised features with SpecAugment and mixup applied to their rows,
    lengths, soft targets, labelled mask, centre-loss classes and augmentation types."""
    mt = config.multitask
    frames = [store.copies[row][copy].float() for row, copy, _ in items]
    lengths = torch.tensor([f.shape[0] for f in frames], dtype=torch.int64)
    x = torch.zeros(len(items), int(lengths.max()), frames[0].shape[1])
    for i, f in enumerate(frames):
        x[i, : f.shape[0]] = f
    valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    x = normalizer(x) * valid[..., None]
    labels = torch.tensor([store.labels[row] for row, _, _ in items], dtype=torch.int64)
    labelled = labels >= 0
    targets = torch.zeros(len(items), num_classes)
    targets[labelled] = torch.nn.functional.one_hot(labels[labelled], num_classes).float()
    types = torch.tensor([kind for _, _, kind in items], dtype=torch.int64)
    masked = torch.nonzero(types == _TYPE["specaugment"]).flatten()
    if len(masked):
        spec = SpecAugment(mt.freq_masks, mt.time_masks, mt.freq_width, mt.time_width)
        x[masked] = spec.apply_subset(x, lengths, None, spec.sample(x, lengths, generator), masked)[0]
    mixed = torch.nonzero(types == _TYPE["mixup"]).flatten()
    if len(mixed):
        mixup = Mixup(mt.mixup_alpha)
        rows_x, rows_len, rows_y = mixup.apply_subset(x, lengths, targets, mixup.sample(x, lengths, generator), mixed)
        x[mixed], lengths[mixed], targets[mixed] = rows_x, rows_len, rows_y
    hard = torch.where(labelled & (types != _TYPE["mixup"]), labels, torch.full_like(labels, -1))
    return {"features": x.to(device), "lengths": lengths.to(device), "targets": targets.to(device),
            "labelled": labelled.to(device), "hard": hard.to(device), "types": types.to(device)}


def train_segments(config: TrainConfig, fold: Fold, *, out_dir: str | pathlib.Path | None = None,
                   resume: str | pathlib.Path | None = None, progress: bool = True) -> TrainResult:
    """Train ``config``'s segment model on ``fold`` (see the module docstring); the result as
    :func:`ser_robot.train.trainer.train` gives it."""
    if config.head != "categorical":
        raise ConfigError(f"model {config.model!r} has a categorical head only, got head {config.head!r}")
    if config.augmentation.enabled or config.normalization != "global":
        raise ConfigError(f"model {config.model!r} draws its own augmentations (the multitask section) and "
                          "normalises globally; set augmentation.kind: none and normalization: global")
    mt = config.multitask
    if mt.sampling == "all" and ("specaugment" in mt.augmentations or mt.unlabelled_manifest
                                 or mt.labelled_fraction < 1.0):
        raise ConfigError("multitask.sampling: all trains on every labelled segment with speed copies and mixup; "
                          "specaugment, unlabelled_manifest and labelled_fraction need sampling: draw")
    if config.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    with deterministic_mode(config.deterministic, device):
        return _train_segments(config, fold, device, out_dir, resume, progress)


def _train_segments(config: TrainConfig, fold: Fold, device: torch.device, out_dir: str | pathlib.Path | None,
                     resume: str | pathlib.Path | None, progress: bool) -> TrainResult:
    from tqdm import tqdm

    context = DistContext(device=device)
    out = pathlib.Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    labels = label_set(fold.train)
    val_set = UtteranceDataset(fold.validation, labels, config.sample_rate, config.cache) if len(fold.validation) \
        else None
    test_set = UtteranceDataset(fold.test, labels, config.sample_rate, config.cache)
    extractor = create_extractor(config.feature_set)
    names = tuple(extractor.names)
    checkpoint = load_checkpoint(resume) if resume is not None else None
    if checkpoint is not None:
        _check_resume(checkpoint, config, fold, labels, names)

    hparams = {**load_model_hparams(config.model_config, config.model), **config.model_hyper}
    torch.manual_seed(config.seed)
    model = build_model(config.model, len(names), "categorical", num_classes=len(labels), **hparams).to(device)
    raw = BatchFeaturizer(extractor, level=config.level_normalization)
    store, labelled_count = _stores(config, fold, labels, raw, model, progress)
    normalizer = _normalizer(store, names)
    featurizer = BatchFeaturizer(extractor, normalizer, level=config.level_normalization).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    use_scaler = device.type == "cuda" and config.amp and config.amp_dtype == "fp16"
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    base = checkpoint_base(config, fold, labels, names, extractor.sample_rate, normalizer)
    base["train_utterances"] = {"labelled": labelled_count, "unlabelled": sum(label < 0 for label in store.labels)}

    def entry(state: dict[str, torch.Tensor]) -> dict[str, Any]:
        return checkpoint_model_entry(config, hparams, model, state, len(labels), len(names))

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": 0, "metric": None, "state": None, "validation": None}
    bad, since_best, stopped, start = 0, 0, False, 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"]["state"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"])
        start, history, best = int(checkpoint["epoch"]), list(checkpoint["history"]), dict(checkpoint["best"])
        bad, stopped = int(checkpoint["early_stop"]["bad_epochs"]), bool(checkpoint["early_stop"]["stopped"])
        since_best = int(checkpoint["early_stop"].get("since_best", bad))
    val_batches = feature_batches(featurizer, val_set, config, context) if val_set is not None else None
    monitor, mode = config.monitor_metric, config.monitor_mode

    for epoch in range(start, config.epochs):
        if stopped:
            break
        model.train()
        started = time.perf_counter()
        sums: dict[str, float] = {}
        count = 0
        plan = plan_epoch(store, config, epoch)
        bar = tqdm(plan, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress, leave=False)
        for step, items in enumerate(bar):
            batch = make_batch(store, items, normalizer, config, len(labels),
                               batch_generator(config.seed, epoch, step), device)
            with _autocast(config, device):
                output = model.training_output(batch["features"], batch["lengths"])
            losses = model.objective(output, batch["targets"], batch["labelled"], batch["hard"], batch["types"])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["total"]).backward()
            scaler.unscale_(optimizer)
            if config.clip > 0:
                torch.nn.utils.clip_grad_value_(model.parameters(), config.clip)
            scaler.step(optimizer)
            scaler.update()
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(items)
            count += len(items)
        seconds = time.perf_counter() - started
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                                  "train_loss": sums["total"] / count, "seconds": seconds,
                                  "utterances_per_s": count / seconds,
                                  "losses": {k: v / count for k, v in sums.items() if k != "total"}}
        report = None
        if val_batches is not None and val_set is not None:
            report = evaluate(model, featurizer, val_set, config, context, val_batches)
            value = float(report[monitor])
            record["validation"] = _scalars(report)
        else:
            value = record["train_loss"]
        record["monitor"] = value
        improved = val_set is None or _improved(value, best["metric"], mode)
        record["improved"] = improved
        if improved:
            best = {"epoch": epoch + 1, "metric": value, "validation": report,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            bad = since_best = 0
        else:
            bad, since_best = bad + 1, since_best + 1
            if bad >= max(1, config.lr_patience):  # halve (both papers), restore the best weights (MTL-AUG 4.3)
                for group in optimizer.param_groups:
                    group["lr"] *= config.lr_factor
                if config.multitask.restore_best:
                    model.load_state_dict(best["state"])
                bad = 0
                stopped = optimizer.param_groups[0]["lr"] < config.multitask.min_lr
            patience = config.early_stop_patience
            stopped = stopped or (patience > 0 and since_best >= patience)  # Latif 2020 4.4: 20 epochs
        history.append(to_plain(record))
        log.info("epoch %d: loss %.4f, %s %.4f, lr %.2e, %.1f utt/s%s", epoch + 1, record["train_loss"], monitor,
                 value, record["lr"], record["utterances_per_s"], " (best)" if improved else "")
        if out is not None:
            if improved:
                save_checkpoint(out / "best.pt", {**base, "kind": "best", "model": entry(best["state"]),
                                                  "epoch": epoch + 1, "best_validation": report, "history": history})
            save_checkpoint(out / "last.pt", {
                **base, "kind": "last", "model": entry(model.state_dict()), "epoch": epoch + 1,
                "optimizer": optimizer.state_dict(), "scheduler": None,
                "scaler": scaler.state_dict() if use_scaler else None, "rng": get_rng_state(),
                "early_stop": {"bad_epochs": bad, "since_best": since_best, "stopped": stopped}, "best": best,
                "history": history})

    if best["state"] is None:
        raise TrainError(f"no epoch was trained (epochs={config.epochs}, resumed at epoch {start})")
    model.load_state_dict(best["state"])
    model.eval()
    test = evaluate(model, featurizer, test_set, config, context)
    throughput = float(np.mean([h["utterances_per_s"] for h in history]))
    result = TrainResult(model=model, normalizer=normalizer, labels=labels, best_epoch=int(best["epoch"]),
                         best_metric=float(best["metric"]), validation=best["validation"], test=test,
                         history=history, stopped_early=stopped, throughput=throughput, out_dir=out,
                         best_checkpoint=out / "best.pt" if out is not None else None,
                         last_checkpoint=out / "last.pt" if out is not None else None, config=config)
    if out is not None:
        _write_outputs(out, config, to_plain({
            "fold": base["fold"], "labels": list(labels), "monitor": monitor if val_set is not None else "loss",
            "best_epoch": result.best_epoch, "best_metric": result.best_metric, "validation": result.validation,
            "test": test, "stopped_early": stopped, "epochs_run": len(history),
            "throughput_utterances_per_s": throughput, "train_utterances": base["train_utterances"],
            "world_size": 1, "device": str(device)}), history)
    return result
