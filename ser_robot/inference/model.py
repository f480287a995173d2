"""A trained checkpoint ready for live inference: device, backend, stream compatibility checks, prediction.

:class:`EmotionModel` wraps :func:`~ser_robot.train.checkpoint.load_model` (``weights_only=True``;
model config, feature set and names, normalisation statistics, labels and sample rate come from
the checkpoint) and checks, before anything runs, that a feature stream is the one the model
was trained on: same feature set, same feature names in the same order, same frame rate.
On CPU it runs the model with onnxruntime when the export matches PyTorch (backend ``auto``,
:mod:`~ser_robot.inference.onnx_backend`), else with PyTorch; on CUDA with PyTorch.
"""

from __future__ import annotations

import hashlib
import math
import pathlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ser_robot.data.corpora.labels import to_unit_scale
from ser_robot.errors import CheckpointError, ConfigError, FeatureMismatchError, NonFiniteOutputError
from ser_robot.inference.onnx_backend import BACKENDS, OnnxExportError, OnnxForward
from ser_robot.metrics import LatencyStats

if TYPE_CHECKING:
    from ser_robot.features.stream_normalization import StreamNormalization, StreamNormalizer

__all__ = ["DEFAULT_MODEL", "EmotionModel", "Prediction", "check_model_for_features", "default_model_path",
           "resolve_device"]

DEFAULT_MODEL = pathlib.Path("models") / "default" / "model.pt"
"""The shipped model (``make model``), relative to the source tree or the ROS package's share folder."""


def default_model_path() -> pathlib.Path:
    """``models/default/model.pt`` of the source tree, or of the installed ROS package's share folder."""
    from ser_robot.config_io import package_file

    return package_file(DEFAULT_MODEL)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when CUDA is available, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here; use device auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


@dataclass(frozen=True)
class Prediction:
    """One model output: ``probabilities`` ``(classes,)`` (empty for a dimensional model),
    ``arousal``/``valence`` in [-1, 1] (NaN for a categorical model)."""

    probabilities: np.ndarray
    arousal: float = float("nan")
    valence: float = float("nan")


class EmotionModel:
    """A checkpoint loaded for inference on ``device`` (``auto``: CUDA when present, else CPU).

    ``backend`` (:data:`~ser_robot.inference.onnx_backend.BACKENDS`): ``auto`` runs onnxruntime on
    CPU when the model exports and matches PyTorch (:attr:`backend_note` says why not otherwise),
    PyTorch on CUDA; ``onnxruntime`` insists (CPU only) and raises :class:`ConfigError` when it
    cannot; ``torch`` always PyTorch. :attr:`backend` is the one in use. ``purifier``: an SSAD purifier
    checkpoint on the same feature set, run on every window before the model (:attr:`purifier`).
    :attr:`forward_times` and :attr:`purifier_times` hold the seconds each window's forward pass and
    purification took (the last 1000 windows).
    """

    def __init__(self, path: str | pathlib.Path | None = None, device: str = "auto", backend: str = "auto",
                 purifier: str | pathlib.Path | None = None) -> None:
        from ser_robot.features.sets import create_extractor
        from ser_robot.train.checkpoint import load_model

        self.path = pathlib.Path(path) if path else default_model_path()
        if not self.path.is_file():
            hint = " (build it with `make model`)" if not path else ""
            raise CheckpointError(f"model checkpoint {self.path} not found{hint}")
        self.device = resolve_device(device)
        model, normalizer, checkpoint = load_model(self.path, map_location="cpu")
        _check_finite(self.path, {**{f"model.{k}": v for k, v in model.state_dict().items()},
                                  **{f"normaliser.{k}": v for k, v in normalizer.state_dict().items()}})
        self.model = model.to(self.device).eval()
        self.normalizer = normalizer.to(self.device)
        features = checkpoint["features"]
        self.feature_set: str = str(features["set"])
        self.feature_names: tuple[str, ...] = tuple(features["names"])
        self.sample_rate = int(checkpoint["sample_rate"])
        self.head: str = str(checkpoint["head"])
        self.labels: tuple[str, ...] = tuple(checkpoint["labels"]) if self.head == "categorical" else ()
        # (low, high) of the ratings a dimensional model was trained on; outputs are mapped onto [-1, 1]
        self.dimension_scale: tuple[float, float] = tuple(checkpoint.get("dimension_scale", (-1.0, 1.0)))
        # a categorical model's probabilities are softmax(logits / temperature), the temperature fitted on
        # validation data after training (ser-robot build-model); 1 when the checkpoint has none
        self.temperature = float(checkpoint.get("temperature", 1.0))
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise CheckpointError(f"checkpoint {self.path} has temperature {self.temperature}; it must be a positive "
                                  "number: rebuild the model or remove the key")
        try:
            extractor = create_extractor(self.feature_set)
        except Exception as error:  # noqa: BLE001 - unknown feature set name in a foreign checkpoint
            raise CheckpointError(f"checkpoint {self.path} was trained on feature set {self.feature_set!r}, which this "
                                  f"version cannot compute: {error}") from None
        if extractor.sample_rate != self.sample_rate:
            raise CheckpointError(f"checkpoint {self.path} says {self.sample_rate} Hz, but its feature set "
                                  f"{self.feature_set!r} runs at {extractor.sample_rate} Hz")
        self.stream_normalization = _stream_normalization(self.path, features)
        # the population's statistics on the CPU in float64, once: predict maps each stream onto them
        self._population = (normalizer.mean.double().cpu(), normalizer.scale.double().cpu())
        self.frame_rate = extractor.sample_rate / extractor.hop_length
        self.hop_s = extractor.hop_length / extractor.sample_rate
        self.frame_span_s = (extractor.window_length + extractor.context[1] * extractor.hop_length) / extractor.sample_rate
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        self.model_id = f"{checkpoint['model']['name']}:{self.path.stem}@{digest}"
        self.backend, self.backend_note, self._onnx = self._choose_backend(backend)
        self.forward_times = LatencyStats()  # the model's forward pass per window, s (the last 1000)
        self.purifier_times = LatencyStats()  # the purifier's per window, s (empty without one)
        self.purifier = None
        if purifier:  # SSAD's purify network in front of the model (ser_robot.inference.purifier)
            from ser_robot.inference.purifier import PurifierFrontEnd

            self.purifier = PurifierFrontEnd(purifier, self.device)
            if self.purifier.feature_set != self.feature_set or \
                    self.purifier.normalizer.num_features != len(self.feature_names):
                raise FeatureMismatchError(f"purifier {purifier} was trained on {self.purifier.feature_set!r}, the "
                                           f"model {self.model_id} on {self.feature_set!r}: they must share a feature set")
            self.model_id += f"+ssad@{self.purifier.digest}"

    def _choose_backend(self, backend: str) -> tuple[str, str, OnnxForward | None]:
        """``(backend in use, why, onnxruntime runner or None)`` for the asked ``backend``."""
        if backend not in BACKENDS:
            raise ConfigError(f"backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
        if backend == "torch":
            return "torch", "asked for", None
        if self.device.type != "cpu":
            if backend == "onnxruntime":
                raise ConfigError(f"backend onnxruntime runs on CPU only, device is {self.device}; set device cpu "
                                  "or backend auto")
            return "torch", f"on {self.device}", None
        try:
            return "onnxruntime", "export checked against PyTorch", OnnxForward(self.model, self.normalizer,
                                                                                len(self.feature_names))
        except OnnxExportError as error:
            if backend == "onnxruntime":
                raise ConfigError(f"backend onnxruntime for {self.model_id}: {error}; use backend auto or torch") \
                    from None
            return "torch", f"onnxruntime not used: {error}", None

    def check_stream(self, feature_set: str, feature_names: list[str] | tuple[str, ...], frame_rate: float) -> None:
        """Raise :class:`FeatureMismatchError` unless a stream of these features is what the model was trained on."""
        if feature_set != self.feature_set:
            raise FeatureMismatchError(
                f"model {self.model_id} was trained on feature set {self.feature_set!r} but the stream carries "
                f"{feature_set!r}; set the feature node's feature_set to {self.feature_set!r} or load a model "
                f"trained on {feature_set!r}")
        if tuple(feature_names) != self.feature_names:
            missing = [n for n in self.feature_names if n not in feature_names]
            raise FeatureMismatchError(
                f"model {self.model_id} expects {len(self.feature_names)} features {self.feature_names[:3]}... in "
                f"its training order; the stream has {len(feature_names)} "
                f"({'missing ' + str(missing[:3]) if missing else 'in another order'}); the feature node and the "
                "checkpoint come from different versions")
        if abs(frame_rate - self.frame_rate) > 1e-3 * self.frame_rate:
            raise FeatureMismatchError(
                f"model {self.model_id} expects {self.frame_rate:g} frames/s ({self.sample_rate} Hz audio), the "
                f"stream has {frame_rate:g} frames/s")

    def new_stream(self) -> StreamNormalizer | None:
        """Statistics of a new stream for a model trained with speaker normalisation (``None`` for one
        trained with the population's): give it to :meth:`predict` and update it with the frames scored."""
        if self.stream_normalization is None:
            return None
        from ser_robot.features.stream_normalization import StreamNormalizer

        return StreamNormalizer(self.normalizer.mean, self.normalizer.scale, self.stream_normalization)

    @torch.inference_mode()
    def predict(self, frames: np.ndarray, stream: StreamNormalizer | None = None) -> Prediction:
        """The model's output for one window of raw (unnormalised) feature frames ``(frames, features)``.

        ``stream``: the statistics of the stream the frames come from (:meth:`new_stream`); without
        them a speaker-normalised model sees the frames as its training population's. Raises
        :class:`NonFiniteOutputError` when the output holds NaN or infinity (never returned).
        """
        if frames.ndim != 2 or frames.shape[1] != len(self.feature_names) or len(frames) == 0:
            raise FeatureMismatchError(f"expected (frames >= 1, {len(self.feature_names)}) feature frames, got "
                                       f"{frames.shape}")
        frames = self._prepared(frames, stream)
        start = time.perf_counter()
        if self._onnx is not None:
            out = torch.from_numpy(self._onnx(frames))
        else:
            x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).to(self.device)
            out = self.model.forward_one(self.normalizer(x)[None])[0].float()
        self.forward_times.add(time.perf_counter() - start)
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteOutputError(f"model {self.model_id} gave a non-finite output for a window of "
                                       f"{len(frames)} frames (inputs finite: {bool(np.isfinite(frames).all())})")
        if self.head == "categorical":
            return Prediction(torch.softmax(out / self.temperature, dim=0).cpu().numpy())
        arousal, valence = to_unit_scale(out, self.dimension_scale).clamp(-1.0, 1.0).cpu().tolist()
        return Prediction(np.zeros(0, np.float32), arousal, valence)


    def _prepared(self, frames: np.ndarray, stream: StreamNormalizer | None) -> np.ndarray:
        """Raw frames ``(frames, features)`` through the purifier (if any) and, with ``stream``, mapped from the
        stream's statistics onto the population's, which the model's own normaliser then removes."""
        if self.purifier is not None:
            start = time.perf_counter()
            frames = self.purifier(frames)
            self.purifier_times.add(time.perf_counter() - start)
        if stream is not None:
            mean, scale = self._population
            normalized = stream.normalize(torch.from_numpy(np.asarray(frames, dtype=np.float64)))
            frames = (normalized * scale + mean).float().numpy()
        return frames

    def model_inputs(self, frames: np.ndarray, stream: StreamNormalizer | None = None) -> torch.Tensor:
        """What :meth:`predict` feeds the torch model for raw frames ``(frames, features)``: ``(frames,
        features)`` normalised, on the model's device (for analyses of the model, e.g. its embeddings)."""
        x = torch.from_numpy(np.ascontiguousarray(self._prepared(frames, stream), dtype=np.float32)).to(self.device)
        return self.normalizer(x)

    def predict_waveform(self, samples: np.ndarray, sample_rate: int) -> Prediction:
        """One prediction for a whole recording: float samples ``(frames,)`` or ``(frames, channels)`` at
        ``sample_rate`` Hz, through the feature node's front end (see :mod:`ser_robot.inference.offline`)."""
        from ser_robot.inference.offline import predict_whole

        samples = np.asarray(samples, dtype=np.float32)
        return predict_whole(self, samples[:, None] if samples.ndim == 1 else samples, sample_rate)

    def predict_file(self, path: str | pathlib.Path) -> Prediction:
        """:meth:`predict_waveform` of an audio file (any rate and channel count soundfile reads)."""
        from ser_robot.inference.offline import read_audio

        return self.predict_waveform(*read_audio(path))


def _stream_normalization(path: pathlib.Path, features: dict[str, Any]) -> StreamNormalization | None:
    """The checkpoint's per-stream normalisation settings, ``None`` for population normalisation."""
    if features.get("normalization", "global") == "global":
        return None
    from ser_robot.features.stream_normalization import StreamNormalization

    try:
        return StreamNormalization(**features.get("stream_normalization", {}))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: bad stream_normalization settings: {error}") from None


def _check_finite(path: pathlib.Path, tensors: dict[str, Any]) -> None:
    """Raise :class:`CheckpointError` naming ``path`` and the first tensor holding NaN or infinity."""
    bad = [name for name, tensor in tensors.items()
           if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise CheckpointError(f"checkpoint {path} holds non-finite values (NaN or infinity) in {len(bad)} tensor(s), "
                              f"e.g. {bad[:3]}; it would publish NaN probabilities: retrain or load another checkpoint")


def check_model_for_features(model: str, feature_set: str) -> None:
    """Refuse a pipeline whose inference model (``model``; empty: the default) was trained on
    another feature set than ``feature_set``, the feature node's; raises :class:`FeatureMismatchError`
    (or :class:`CheckpointError` for a missing or unreadable checkpoint) saying what to change."""
    from ser_robot.train.checkpoint import load_checkpoint

    path = pathlib.Path(model) if model else default_model_path()
    if not path.is_file():
        hint = "build the default model with `make model`" if not model else "check inference.model"
        raise CheckpointError(f"inference model {path} not found: {hint}")
    trained = str(load_checkpoint(path)["features"]["set"])
    if trained != feature_set:
        raise FeatureMismatchError(
            f"the inference model {path} was trained on feature set {trained!r}, but the feature node computes "
            f"{feature_set!r}: set features.feature_set to {trained!r}, or give inference.model a checkpoint "
            f"trained on {feature_set!r}")
