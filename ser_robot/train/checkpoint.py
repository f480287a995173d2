"""Checkpoints: plain dicts of tensors and primitives, loaded with ``torch.load(weights_only=True)``.

A checkpoint never holds a pickled object, so loading one cannot run code. Keys:

``format`` (``"ser_robot.checkpoint"``), ``version`` (:data:`VERSION`), ``kind`` (``"last"``:
resumable; ``"best"``: the selected model, without optimiser state);
``model``: ``{"name", "hparams", "config", "state", "head", "num_outputs", "num_features"}``;
``features``: ``{"set", "names", "sample_rate", "normalizer"}`` (``FeatureNormalizer.to_dict()``);
``labels`` (class order), ``head``, ``sample_rate``; ``train_config`` (``TrainConfig.to_dict()``);
``dimension_scale`` (dimensional head only: ``[low, high]`` of the training ratings);
``fold``: ``{"name", "train", "validation", "test"}`` speakers;
``epoch`` (epochs completed); ``optimizer``, ``scheduler``, ``scaler`` state dicts; ``rng``
(``{"torch": ByteTensor, "cuda": [ByteTensor, ...]}``); ``early_stop`` (``{"best", "best_epoch",
"bad_epochs"}``); ``best``: ``{"epoch", "metric", "state", "validation"}``; ``history`` (one dict
per epoch). A ``best`` checkpoint has the best weights in ``model.state`` and no optimiser, RNG or
best-state entries.

:func:`load_model` rebuilds a model (through a :data:`~ser_robot.train.factory.ModelFactory`)
with its normaliser, so a model always meets the features it was trained on.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ser_robot.features.normalization import FeatureNormalizer
from ser_robot.errors import CheckpointError
from ser_robot.train.factory import ModelFactory, check_model

__all__ = [
    "FORMAT",
    "VERSION",
    "get_rng_state",
    "load_checkpoint",
    "load_model",
    "normalizer_from_checkpoint",
    "save_checkpoint",
    "set_rng_state",
    "to_plain",
]

FORMAT = "ser_robot.checkpoint"
VERSION = 1
_REQUIRED = ("format", "version", "kind", "model", "features", "labels", "head", "sample_rate", "train_config")


def to_plain(value: Any) -> Any:
    """``value`` with NumPy arrays/scalars turned into lists/Python numbers and mappings into dicts,
    so that ``torch.load(weights_only=True)`` can read it; raises :class:`CheckpointError` on other objects."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {to_plain(k) if not isinstance(k, str) else k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, torch.device):
        return str(value)
    raise CheckpointError(f"cannot store a {type(value).__name__} in a checkpoint ({value!r:.80}); store tensors, "
                          "numbers, strings, lists and dicts only")


def save_checkpoint(path: str | pathlib.Path, checkpoint: Mapping[str, Any]) -> pathlib.Path:
    """Write ``checkpoint`` (made plain with :func:`to_plain`) atomically to ``path``."""
    missing = [k for k in _REQUIRED if k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint lacks {missing}; build it with the trainer")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(to_plain(checkpoint), tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | pathlib.Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) and check its format; raises :class:`CheckpointError`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); it was not written completely: write it again "
                              "(ser-robot train, build-model) or copy it again")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises several types for unsafe or corrupt files
        raise CheckpointError(f"cannot load checkpoint {path} safely: {_load_problem(error)}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ser_robot checkpoint (no format {FORMAT!r})")
    if checkpoint.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {checkpoint.get('version')!r}; this code reads {VERSION}")
    missing = [k for k in _REQUIRED if k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    return checkpoint


def _load_problem(error: Exception) -> str:
    """What ``torch.load(weights_only=True)``'s ``error`` means and what to do, in one line.

    torch's own message advises ``weights_only=False``, which would run whatever code the file
    holds: never repeated to users.
    """
    text = str(error)
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused:
        return (f"it holds a Python object ({refused.group(1)}) that only an unsafe load could build, and a "
                "ser_robot checkpoint holds none; use a checkpoint written by ser-robot train or build-model")
    unpickler = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", text, re.DOTALL)
    reason = " ".join((unpickler.group(1) if unpickler else text).split())[:200] or "no reason given"
    return (f"it is damaged or not a PyTorch checkpoint ({type(error).__name__}: {reason}); write it again "
            "(ser-robot train, build-model) or copy it again")


def normalizer_from_checkpoint(checkpoint: Mapping[str, Any]) -> FeatureNormalizer:
    """The training split's normaliser stored in ``checkpoint``."""
    return FeatureNormalizer.from_dict(checkpoint["features"]["normalizer"])


def load_model(checkpoint: str | pathlib.Path | Mapping[str, Any], factory: ModelFactory | None = None,
               map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, FeatureNormalizer, dict[str, Any]]:
    """``(model in eval mode, normaliser, checkpoint)`` from a checkpoint file or dict.

    ``factory``: builds the architecture from the stored name and hyper-parameters (a
    :data:`~ser_robot.train.factory.ModelFactory`); default: :func:`ser_robot.models.rebuild_model`
    of the stored ``model.config``. The stored weights must fit it exactly.
    """
    ckpt = load_checkpoint(checkpoint, map_location) if not isinstance(checkpoint, Mapping) else dict(checkpoint)
    info = ckpt["model"]
    if factory is None:
        from ser_robot.models import rebuild_model

        model = rebuild_model(info["config"])
    else:
        model = factory(info["name"], dict(info["hparams"]), num_features=int(info["num_features"]),
                        num_outputs=int(info["num_outputs"]), head=str(info["head"]))
    check_model(model, info["head"], int(info["num_outputs"]), int(info["num_features"]))
    try:
        model.load_state_dict(info["state"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint weights do not fit model {info['name']!r}: {error}") from None
    normalizer = normalizer_from_checkpoint(ckpt)
    normalizer.check_compatible(ckpt["features"]["names"])
    return model.eval(), normalizer, ckpt


def get_rng_state() -> dict[str, Any]:
    """torch's CPU and CUDA generator states (tensors)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`get_rng_state`'s states (CUDA ones only where CUDA is in use)."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        states = [s.cpu() for s in state["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
