"""Training: data, on-the-fly features, the training loop, checkpoints and DDP.

- :mod:`~ser_robot.train.config`: :class:`TrainConfig` from YAML (``config/train/*.yaml``).
- :mod:`~ser_robot.train.data`: :class:`UtteranceDataset`, :func:`collate`,
  :class:`SortaGradBatchSampler`.
- :mod:`~ser_robot.train.features`: :class:`BatchFeaturizer` (augmentation -> features ->
  normalisation, per batch, on the training device), :func:`fit_normalizer`.
- :mod:`~ser_robot.train.trainer`: :func:`train` -> :class:`TrainResult`.
- :mod:`~ser_robot.train.checkpoint`: safe (``weights_only``) checkpoints, :func:`load_model`.
- :mod:`~ser_robot.train.distributed`: ``torchrun`` / DDP support.
- :mod:`~ser_robot.train.command`: ``ser-robot train`` (``python -m ser_robot.train``).

Modules import torch; the names below are imported on first use.
"""

import importlib
from typing import Any

_EXPORTS = {
    "load_checkpoint": "checkpoint", "load_model": "checkpoint", "save_checkpoint": "checkpoint",
    "AugmentationConfig": "config", "TrainConfig": "config", "load_train_config": "config",
    "Batch": "data", "SortaGradBatchSampler": "data", "UtteranceDataset": "data", "collate": "data",
    "load_waveform": "data",
    "BatchFeaturizer": "features", "build_augmentation": "features", "fit_normalizer": "features",
    "TrainResult": "trainer", "evaluate": "trainer", "train": "trainer",
}


def __getattr__(name: str) -> Any:
    """Import the public names on first use, so ``ser-robot --help`` does not load torch."""
    if name in ("CheckpointError", "TrainError"):
        return getattr(importlib.import_module("ser_robot.errors"), name)
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ser_robot.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ser_robot.train.{_EXPORTS[name]}"), name)


__all__ = [
    "AugmentationConfig",
    "Batch",
    "BatchFeaturizer",
    "CheckpointError",
    "SortaGradBatchSampler",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "UtteranceDataset",
    "build_augmentation",
    "collate",
    "evaluate",
    "fit_normalizer",
    "load_checkpoint",
    "load_model",
    "load_train_config",
    "load_waveform",
    "save_checkpoint",
    "train",
]
