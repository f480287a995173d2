"""Emotion recognition models: one module per architecture family, a registry by name.

Every model maps a zero-padded batch to one vector per utterance::

    model(features (batch, frames, num_features), lengths (batch,) int64) -> (batch, num_outputs)

``num_outputs`` = classes (logits; softmax not applied) for head ``categorical``, 2
(arousal, valence) for head ``dimensional``; padding never changes a prediction.

- :mod:`~ser_robot.models.base`: :class:`SerModel` (attributes ``head``, ``num_features``,
  ``num_outputs``, ``config``), :class:`HyperSpec`, :data:`HEADS`.
- :mod:`~ser_robot.models.masking`: length masks, masked mean / max, :class:`MaskedBatchNorm1d`.
- :mod:`~ser_robot.models.lakomkin`: :class:`LakomkinRNN` and :class:`LakomkinCNN`
  (Lakomkin et al. 2018).
- :mod:`~ser_robot.models.segments`: :class:`SegmentModel`, what models of fixed-length spectrogram
  segments share (segmenting, averaging over segments, the training output and objective).
- :mod:`~ser_robot.models.latif2020`: the DenseNet-LSTM-Highway model of Latif et al. 2020 and its
  baselines (:class:`DenseNetLstmHighway`, :class:`DenseNet`, :class:`DenseNetLstm`, :class:`LatifCnn`,
  :class:`LatifCnnLstm`).
- :mod:`~ser_robot.models.ren2020`: CNN-4, VGG-16 and ResNet-50 of Ren et al. 2020 (:class:`Cnn4`,
  :class:`Vgg16`, :class:`ResNet50`).
- :mod:`~ser_robot.models.ssad`: SSAD's purify network and discriminator (Su and Lee; not registry models:
  a front end, configured by ``config/models/ssad.yaml``).
- :mod:`~ser_robot.models.mtl_aug`: :class:`MtlAug` (Latif et al., MTL-AUG), with
  :meth:`~MtlAug.training_output` and :meth:`~MtlAug.objective` for its auxiliary tasks.
- :mod:`~ser_robot.models.registry`: :data:`MODELS`, :func:`build_model`,
  :func:`load_model_config` (``config/models/<name>.yaml``, the only place defaults live),
  :func:`model_from_config`, :func:`rebuild_model` (from a checkpoint's ``model.config``).
"""

from ser_robot.models.base import DIMENSIONAL_OUTPUTS, HEADS, HyperSpec, SerModel
from ser_robot.models.lakomkin import LakomkinCNN, LakomkinRNN
from ser_robot.models.latif2020 import DenseNet, DenseNetLstm, DenseNetLstmHighway, LatifCnn, LatifCnnLstm
from ser_robot.models.mtl_aug import AUGMENTATION_TYPES, MtlAug
from ser_robot.models.ren2020 import Cnn4, ResNet50, Vgg16
from ser_robot.models.masking import (
    MaskedBatchNorm1d,
    lengths_to_mask,
    masked_max,
    masked_mean,
)
from ser_robot.models.segments import SegmentModel, TrainingOutput
from ser_robot.models.registry import (
    MODELS,
    ModelConfig,
    build_model,
    load_model_config,
    model_config_names,
    model_from_config,
    rebuild_model,
    validate_model_config,
)

__all__ = [
    "AUGMENTATION_TYPES",
    "Cnn4",
    "DIMENSIONAL_OUTPUTS",
    "HEADS",
    "MODELS",
    "HyperSpec",
    "LakomkinCNN",
    "LakomkinRNN",
    "MaskedBatchNorm1d",
    "MtlAug",
    "DenseNet",
    "DenseNetLstm",
    "DenseNetLstmHighway",
    "LatifCnn",
    "LatifCnnLstm",
    "ModelConfig",
    "ResNet50",
    "SegmentModel",
    "SerModel",
    "TrainingOutput",
    "build_model",
    "lengths_to_mask",
    "load_model_config",
    "masked_max",
    "masked_mean",
    "model_config_names",
    "model_from_config",
    "rebuild_model",
    "validate_model_config",
    "Vgg16",
]
