"""How the trainer builds a model, and the interface it expects of one.

A model is a ``torch.nn.Module`` called as ``model(features, lengths)`` with ``features``
``(batch, frames, num_features)`` float32 and ``lengths`` ``(batch,)`` int64 valid frames,
returning ``(batch, num_outputs)``: class logits for head ``categorical``, ``(arousal,
valence)`` for head ``dimensional``. It carries the attributes ``head``, ``num_outputs``,
``num_features`` and ``config`` (a plain dict to rebuild it).

A :data:`ModelFactory` is ``factory(name, hparams, num_features=..., num_outputs=...,
head=...) -> model``; ``hparams`` is the model-config YAML's mapping (``{}`` without one).
:func:`registry_factory` (the default) calls :func:`ser_robot.models.build_model`; tests and
experiments may pass any callable of that shape. Checkpoints store ``name``, ``hparams`` and
the model's own ``config``, so either the same call or :func:`ser_robot.models.rebuild_model`
rebuilds the model.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ser_robot.errors import ConfigError, TrainError

__all__ = ["ModelFactory", "check_model", "load_model_hparams", "registry_factory"]

ModelFactory = Callable[..., torch.nn.Module]
"""``(name: str, hparams: dict, *, num_features: int, num_outputs: int, head: str) -> nn.Module``."""


def registry_factory(name: str, hparams: Mapping[str, Any], *, num_features: int, num_outputs: int,
                     head: str) -> torch.nn.Module:
    """Build ``name`` with :func:`ser_robot.models.build_model` (hyper-parameters not in ``hparams``
    come from ``config/models/<name>.yaml``; ``num_outputs`` is the class count of a categorical head)."""
    try:
        from ser_robot.models import build_model
    except ImportError as error:
        raise TrainError(f"cannot import the model registry ser_robot.models ({error}); "
                         "pass model_factory=... to train()") from None
    num_classes = num_outputs if head == "categorical" else None
    return build_model(name, num_features, head, num_classes=num_classes, **dict(hparams))


def load_model_hparams(path: str | None, model: str | None = None) -> dict[str, Any]:
    """Hyper-parameters from a model-config YAML (``{}`` for ``None``); raises :class:`ConfigError`.

    A model configuration of :mod:`ser_robot.models` (``config/models/<name>.yaml``, keys
    ``architecture`` ... ``hyper``) gives its ``hyper`` mapping, and its ``architecture`` must be
    ``model``; any other mapping is taken as the hyper-parameters themselves.
    """
    if path is None:
        return {}
    from ser_robot.config_io import read_yaml_mapping

    file = pathlib.Path(path)
    if not file.is_file():
        raise ConfigError(f"model_config {file} not found; give a YAML of the model's hyper-parameters or null")
    data = read_yaml_mapping(file, "model_config", empty_ok=True)  # plain data; 1e-4 is a number
    if "architecture" in data and "hyper" in data:
        if model is not None and data["architecture"] != model:
            raise ConfigError(f"model_config {file} describes architecture {data['architecture']!r}, but the "
                              f"training configuration's model is {model!r}")
        return dict(data["hyper"] or {})
    return data


def check_model(model: Any, head: str, num_outputs: int, num_features: int) -> torch.nn.Module:
    """Raise :class:`TrainError` unless ``model`` follows the interface above with these sizes."""
    if not isinstance(model, torch.nn.Module):
        raise TrainError(f"the model factory returned a {type(model).__name__}, not a torch.nn.Module")
    for name in ("head", "num_outputs", "num_features", "config"):
        if not hasattr(model, name):
            raise TrainError(f"model {type(model).__name__} lacks the attribute {name!r} every model must carry")
    expected = {"head": head, "num_outputs": num_outputs, "num_features": num_features}
    wrong = {k: (getattr(model, k), v) for k, v in expected.items() if getattr(model, k) != v}
    if wrong:
        detail = ", ".join(f"{k} is {got!r}, the run needs {want!r}" for k, (got, want) in wrong.items())
        raise TrainError(f"model {type(model).__name__} does not fit this run: {detail}")
    if not isinstance(model.config, dict):
        raise TrainError(f"model.config must be a dict, got {type(model.config).__name__}")
    return model
