"""What every ser_robot model shares: heads, the forward contract, hyper-parameter checking.

Every model maps a zero-padded batch of feature frames to one vector per utterance::

    forward(features (batch, frames, num_features) float, lengths (batch,) int64)
        -> (batch, num_outputs) float

``num_outputs`` is the number of classes for the ``categorical`` head (logits: softmax is
*not* applied, the loss and the inference node do it) or 2 for the ``dimensional`` head
(arousal, valence, in that order, unbounded linear outputs). Frames at or beyond an
utterance's length are padding and never change its prediction.

A model's hyper-parameters are declared as :class:`HyperSpec` records on its class; their
values come from ``config/models/<name>.yaml`` (the only place defaults live) and are checked
here, so building a model directly, through the registry or from a checkpoint's ``config``
dict goes through the same checks.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ser_robot.config_io import check_value
from ser_robot.errors import ConfigError, FeatureMismatchError

__all__ = [
    "DIMENSIONAL_OUTPUTS",
    "HEADS",
    "HyperSpec",
    "SerModel",
]

HEADS: tuple[str, ...] = ("categorical", "dimensional")
"""``categorical``: one logit per class. ``dimensional``: arousal and valence regressed."""

DIMENSIONAL_OUTPUTS: tuple[str, ...] = ("arousal", "valence")
"""The outputs of the ``dimensional`` head, in order."""


@dataclass(frozen=True)
class HyperSpec:
    """One hyper-parameter of a model: name, type, meaning, limits (no default: see the YAML).

    ``kind`` is ``int``, ``float``, ``bool`` or ``list``; a list holds ``item_kind`` values
    and is non-empty. ``min``/``max`` bound numbers (inclusive), or each item of a list;
    ``odd`` asks for odd integers (symmetric 'same' convolution padding).
    """

    name: str
    kind: type
    description: str
    min: float | None = None
    max: float | None = None
    item_kind: type | None = None
    odd: bool = False

    def validate(self, value: Any, where: str) -> Any:
        """Return ``value`` converted to this hyper-parameter's type (a list for ``list``), or raise
        :class:`ConfigError` naming it and ``where`` (checked by :func:`ser_robot.config_io.check_value`)."""
        limits: dict[str, Any] = {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}
        if self.kind is list:
            kind, limits["min_items"] = tuple[self.item_kind or int, ...], 1
        else:
            kind = self.kind
        checked = check_value(self.name, value, kind, where=f"hyper-parameters of {where}", **limits)
        items = list(checked) if self.kind is list else [checked]
        if self.odd and any(v % 2 != 1 for v in items):
            raise ConfigError(f"hyper-parameters of {where}: key {self.name!r} must be odd, got {value!r}") from None
        return items if self.kind is list else checked


class SerModel(nn.Module):
    """Base class of the project's models: validated construction and the forward contract.

    Subclasses set ``NAME`` (the registry name) and ``HYPER`` (their hyper-parameters), call
    ``super().__init__`` first, and implement :meth:`forward`.

    Attributes:
        head: ``categorical`` or ``dimensional``.
        num_features: features per frame the model expects (the last input dimension).
        num_outputs: classes (categorical) or 2 (dimensional: arousal, valence).
        config: plain dict (``name``, ``num_features``, ``head``, ``num_classes``, ``hyper``)
            that :func:`ser_robot.models.rebuild_model` turns back into this architecture.
    """

    NAME: ClassVar[str] = ""
    HYPER: ClassVar[tuple[HyperSpec, ...]] = ()

    def __init__(self, num_features: int, head: str, num_classes: int | None, hyper: Mapping[str, Any]) -> None:
        super().__init__()
        where = f"model '{self.NAME}'"
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise ConfigError(f"{where}: num_features must be a positive int, got {num_features!r}") from None
        if head not in HEADS:
            raise ConfigError(f"{where}: unknown head {head!r}; choose one of {', '.join(HEADS)}") from None
        if head == "categorical":
            if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
                raise ConfigError(
                    f"{where}: the categorical head needs num_classes >= 2, got {num_classes!r}"
                ) from None
            num_outputs = num_classes
        else:
            if num_classes is not None:
                raise ConfigError(
                    f"{where}: num_classes applies to the categorical head only; the dimensional "
                    f"head has {len(DIMENSIONAL_OUTPUTS)} outputs ({', '.join(DIMENSIONAL_OUTPUTS)}): "
                    f"pass num_classes=None, got {num_classes!r}"
                ) from None
            num_outputs = len(DIMENSIONAL_OUTPUTS)
        self.head = head
        self.num_features = num_features
        self.num_outputs = num_outputs
        self.hyper = type(self).check_hyper(hyper)
        self.config: dict[str, Any] = {
            "name": self.NAME,
            "num_features": num_features,
            "head": head,
            "num_classes": num_classes if head == "categorical" else None,
            "hyper": copy.deepcopy(self.hyper),
        }

    @classmethod
    def check_hyper(cls, values: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
        """Validate a complete hyper-parameter mapping; return it converted (floats, lists).

        Raises :class:`ConfigError` naming unknown keys, missing keys and bad values.
        """
        where = where or f"model '{cls.NAME}'"
        if not isinstance(values, Mapping):
            raise ConfigError(f"hyper-parameters of {where} must be a mapping, got {values!r}") from None
        specs = {spec.name: spec for spec in cls.HYPER}
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise ConfigError(
                f"unknown hyper-parameter(s) {', '.join(map(str, unknown))} for {where}; "
                f"known: {', '.join(specs)}"
            ) from None
        missing = [name for name in specs if name not in values]
        if missing:
            raise ConfigError(
                f"missing hyper-parameter(s) {', '.join(missing)} for {where}; set them in "
                f"config/models/{cls.NAME}.yaml or pass them explicitly"
            ) from None
        result = {name: spec.validate(values[name], where) for name, spec in specs.items()}
        cls._check_together(result, where)
        return result

    @classmethod
    def _check_together(cls, hyper: dict[str, Any], where: str) -> None:
        """Checks across hyper-parameters (override; raise :class:`ConfigError`)."""

    def forward_one(self, features: torch.Tensor) -> torch.Tensor:
        """One utterance whose frames are all valid: ``(1, frames, num_features)`` -> ``(1, num_outputs)``.

        Equals ``forward(features, lengths=[frames])``; live inference uses it. Models override it
        with a path free of padding logic (faster, and exportable to ONNX for
        :mod:`ser_robot.inference.onnx_backend`).
        """
        lengths = torch.full((features.shape[0],), features.shape[1], dtype=torch.int64, device=features.device)
        return self.forward(features, lengths)

    def _check_inputs(self, features: torch.Tensor, lengths: torch.Tensor) -> None:
        """Raise :class:`FeatureMismatchError` unless ``features`` (B, T, F) and ``lengths`` (B,) fit."""
        if features.dim() != 3 or features.shape[-1] != self.num_features:
            raise FeatureMismatchError(
                f"{self.NAME} expects features of shape (batch, frames, {self.num_features}), "
                f"got {tuple(features.shape)}: check the feature set the model was trained on"
            )
        if not features.is_floating_point():
            raise FeatureMismatchError(f"{self.NAME} expects floating-point features, got {features.dtype}")
        batch, frames = features.shape[0], features.shape[1]
        if lengths.dim() != 1 or lengths.shape[0] != batch:
            raise FeatureMismatchError(
                f"lengths must have shape ({batch},) for a batch of {batch}, got {tuple(lengths.shape)}"
            )
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise FeatureMismatchError(f"lengths must be an integer tensor (int64), got {lengths.dtype}")
        if batch and bool(((lengths < 1) | (lengths > frames)).any()):
            raise FeatureMismatchError(
                f"every length must be in [1, {frames}] (the padded frame count), "
                f"got {lengths.tolist()}"
            )

    def extra_repr(self) -> str:
        return f"head={self.head}, num_features={self.num_features}, num_outputs={self.num_outputs}"
