"""Models by name, their YAML configurations, and building / rebuilding them.

``config/models/<name>.yaml`` holds one model configuration; it is the only place the
hyper-parameter defaults live. Its keys (all required, all checked)::

    architecture: lakomkin_rnn      # a name in MODELS
    head: categorical               # categorical | dimensional
    num_classes: 4                  # classes of the categorical head (ignored by dimensional)
    feature_set: egemaps            # the features the model is meant for (ser_robot.features.sets)
    hyper: {...}                    # the architecture's hyper-parameters (its class's HYPER)

An unknown key, a missing key or a bad value raises :class:`ConfigError` naming it.
"""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ser_robot.config_io import config_file, read_yaml_mapping
from ser_robot.errors import ConfigError
from ser_robot.features.sets import FEATURE_SETS
from ser_robot.models.base import HEADS, SerModel
from ser_robot.models.lakomkin import LakomkinCNN, LakomkinRNN
from ser_robot.models.latif2020 import DenseNet, DenseNetLstm, DenseNetLstmHighway, LatifCnn, LatifCnnLstm
from ser_robot.models.mtl_aug import MtlAug
from ser_robot.models.ren2020 import Cnn4, ResNet50, Vgg16

__all__ = [
    "MODELS",
    "ModelConfig",
    "build_model",
    "load_model_config",
    "model_config_names",
    "model_from_config",
    "rebuild_model",
    "validate_model_config",
]

MODELS: dict[str, type[SerModel]] = {cls.NAME: cls for cls in (
    LakomkinRNN, LakomkinCNN, MtlAug, LatifCnn, LatifCnnLstm, DenseNet, DenseNetLstm, DenseNetLstmHighway, Cnn4,
    Vgg16, ResNet50)}
"""Registry: architecture name -> model class (a :class:`SerModel` subclass)."""

_CONFIG_KEYS = ("architecture", "head", "num_classes", "feature_set", "hyper")
_REBUILD_KEYS = ("name", "num_features", "head", "num_classes", "hyper")


@dataclass(frozen=True)
class ModelConfig:
    """A validated model configuration (``config/models/<name>.yaml``).

    ``name`` is the configuration's name (the file stem), ``architecture`` the registry key.
    ``hyper`` is complete and validated against the architecture's hyper-parameters.
    """

    name: str
    architecture: str
    head: str
    num_classes: int
    feature_set: str
    hyper: dict[str, Any] = field(default_factory=dict)
    path: pathlib.Path | None = None

    def build(self, num_features: int, seed: int | None = None) -> SerModel:
        """Shorthand for :func:`model_from_config`."""
        return model_from_config(self, num_features, seed=seed)


def _unknown_model(name: Any) -> ConfigError:
    return ConfigError(f"unknown model {name!r}; registered models: {', '.join(MODELS)}")


def model_config_names() -> list[str]:
    """Names of the configurations shipped in ``config/models/``."""
    return sorted(p.stem for p in config_file("models").glob("*.yaml"))


def validate_model_config(raw: Any, name: str, path: pathlib.Path | None = None) -> ModelConfig:
    """Check a parsed model YAML mapping and return it as a :class:`ModelConfig`."""
    where = f"model configuration {path or name!s}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(_CONFIG_KEYS)}, got {raw!r}") from None
    unknown = sorted(set(map(str, raw)) - set(_CONFIG_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(_CONFIG_KEYS)}"
        ) from None
    missing = [key for key in _CONFIG_KEYS if key not in raw]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}") from None
    architecture = raw["architecture"]
    if architecture not in MODELS:
        raise ConfigError(f"{where}: architecture {architecture!r} is not a registered model; "
                          f"registered: {', '.join(MODELS)}") from None
    head = raw["head"]
    if head not in HEADS:
        raise ConfigError(f"{where}: head {head!r} is not one of {', '.join(HEADS)}") from None
    num_classes = raw["num_classes"]
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"{where}: num_classes must be an int >= 2, got {num_classes!r}") from None
    feature_set = raw["feature_set"]
    if feature_set not in FEATURE_SETS:
        raise ConfigError(
            f"{where}: feature_set {feature_set!r} is not one of {', '.join(FEATURE_SETS)}"
        ) from None
    hyper = MODELS[architecture].check_hyper(raw["hyper"] or {}, where)
    return ModelConfig(name, architecture, head, num_classes, feature_set, hyper, path)


def load_model_config(path_or_name: str | pathlib.Path) -> ModelConfig:
    """Read and validate a model YAML: a path, or a name in ``config/models/`` (``lakomkin_rnn``)."""
    text = str(path_or_name)
    is_path = isinstance(path_or_name, pathlib.Path) or text.endswith((".yaml", ".yml")) or "/" in text
    path = pathlib.Path(path_or_name) if is_path else config_file(f"models/{text}.yaml")
    if not path.is_file() and not is_path:
        raise ConfigError(f"model configuration {path} does not exist; shipped configurations: "
                          f"{', '.join(model_config_names()) or 'none'}")
    return validate_model_config(read_yaml_mapping(path, "model configuration"), path.stem, path)


def build_model(
    name: str,
    num_features: int,
    head: str,
    *,
    num_classes: int | None = None,
    seed: int | None = None,
    **hyper: Any,
) -> SerModel:
    """Build registered model ``name`` for ``num_features`` input features and ``head``.

    Hyper-parameters not given in ``hyper`` come from ``config/models/<name>.yaml`` (read
    only when one is missing); ``num_classes`` likewise for the categorical head (it must be
    None for the dimensional head). ``seed`` makes the initial weights reproducible without
    touching the global random state. Raises :class:`ConfigError` for an unknown model, head,
    hyper-parameter or a bad value.
    """
    if name not in MODELS:
        raise _unknown_model(name) from None
    cls = MODELS[name]
    needs_defaults = any(spec.name not in hyper for spec in cls.HYPER) or (
        head == "categorical" and num_classes is None
    )
    if needs_defaults:
        defaults = load_model_config(name)
        hyper = {**defaults.hyper, **hyper}
        if head == "categorical" and num_classes is None:
            num_classes = defaults.num_classes
    cls.check_hyper(hyper)  # unknown / bad keys named before any weight is drawn
    if seed is None:
        return cls(num_features, head, num_classes, **hyper)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(num_features, head, num_classes, **hyper)


def model_from_config(cfg: ModelConfig, num_features: int, seed: int | None = None) -> SerModel:
    """Build the model a :class:`ModelConfig` describes, for ``num_features`` input features."""
    return build_model(
        cfg.architecture,
        num_features,
        cfg.head,
        num_classes=cfg.num_classes if cfg.head == "categorical" else None,
        seed=seed,
        **copy.deepcopy(cfg.hyper),
    )


def rebuild_model(config: Mapping[str, Any]) -> SerModel:
    """The architecture a model's ``config`` dict describes (fresh weights: load a state dict next).

    ``config`` has the keys ``name``, ``num_features``, ``head``, ``num_classes``, ``hyper``
    (:attr:`SerModel.config`, as stored in a checkpoint). No YAML is read.
    """
    if not isinstance(config, Mapping) or set(config) != set(_REBUILD_KEYS):
        got = sorted(config) if isinstance(config, Mapping) else repr(config)
        raise ConfigError(
            f"a model config dict needs exactly the keys {', '.join(_REBUILD_KEYS)}, got {got}"
        ) from None
    name = config["name"]
    if name not in MODELS:
        raise _unknown_model(name) from None
    hyper = config["hyper"]
    if not isinstance(hyper, Mapping):
        raise ConfigError(f"model config 'hyper' must be a mapping, got {hyper!r}") from None
    MODELS[name].check_hyper(hyper)  # complete: never filled in from a YAML that may have changed
    return build_model(
        name, config["num_features"], config["head"], num_classes=config["num_classes"], **copy.deepcopy(dict(hyper))
    )
