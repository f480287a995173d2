"""The losses an attack raises, built around a trained model: on its inputs or on the waveform.

- :func:`feature_loss`: the perturbation is added to what the feature extractor produced, before the
  training normaliser: dB of log-Mel frames (threat domain ``logmel_db``), or the normalised features
  themselves when ``normalizer`` is None (domain ``features``; eGEMAPS-like descriptors, whose extraction is
  not differentiable).
- :func:`waveform_loss`: the perturbation is added to the samples and goes through the differentiable
  extraction (:class:`~ser_robot.features.logmel.LogMel`), the normaliser and the model: what a sound
  played into the microphone can do (domain ``waveform``).

Both return ``loss(x) -> (batch,)``: the cross-entropy of each example against ``labels`` (the true
classes for an untargeted attack, the targets for a targeted one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch.nn import functional as F

from ser_robot.adversarial.attacks import Loss
from ser_robot.errors import ConfigError

__all__ = ["feature_loss", "last_layer_inputs", "utterance_rows", "waveform_loss"]


def feature_loss(model: torch.nn.Module, labels: torch.Tensor, lengths: torch.Tensor,
                 normalizer: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Loss:
    """``loss(features (batch, frames, F)) -> (batch,)``: cross-entropy of ``model(normalizer(features), lengths)``
    against ``labels`` ``(batch,)``; without ``normalizer`` the features are the model's inputs."""

    def loss(features: torch.Tensor) -> torch.Tensor:
        inputs = normalizer(features) if normalizer is not None else features
        return F.cross_entropy(model(inputs, lengths).float(), labels, reduction="none")

    return loss


def waveform_loss(model: torch.nn.Module, extractor: torch.nn.Module,
                  normalizer: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor) -> Loss:
    """``loss(waves (batch, samples)) -> (batch,)``: the cross-entropy of the model on the frames that
    ``extractor`` computes from each wave (every frame valid: the waves of a batch have one length)."""

    def loss(waves: torch.Tensor) -> torch.Tensor:
        frames = extractor(waves)  # (batch, frames, F)
        lengths = torch.full((frames.shape[0],), frames.shape[1], dtype=torch.int64, device=frames.device)
        return F.cross_entropy(model(normalizer(frames), lengths).float(), labels, reduction="none")

    return loss


@contextlib.contextmanager
def last_layer_inputs(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, each forward of ``model`` appends the input of ``model.output`` (its last fully
    connected layer, ``(batch, units)``) to the yielded list."""
    output = getattr(model, "output", None)
    if not isinstance(output, torch.nn.Linear):
        raise ConfigError(f"similarity-based adversarial training needs the model's last fully connected layer as "
                          f"'output' (nn.Linear); {type(model).__name__} has {type(output).__name__}")
    seen: list[torch.Tensor] = []
    handle = output.register_forward_hook(lambda _module, inputs, _out: seen.append(inputs[0]))
    try:
        yield seen
    finally:
        handle.remove()


def utterance_rows(model: torch.nn.Module, v: torch.Tensor, features: torch.Tensor,
                   lengths: torch.Tensor) -> torch.Tensor:
    """``v`` captured by :func:`last_layer_inputs` as one row per utterance ``(batch, units)``: a segment model
    gives one row per segment, averaged here over each utterance's segments."""
    if v.shape[0] == features.shape[0]:
        return v
    _, owner = model.segments(features, lengths)  # type: ignore[attr-defined]
    total = torch.zeros(features.shape[0], v.shape[1], dtype=v.dtype, device=v.device).index_add(0, owner, v)
    return total / torch.bincount(owner, minlength=features.shape[0]).to(v.dtype)[:, None]
