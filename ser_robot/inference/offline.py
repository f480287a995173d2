"""Offline prediction from recordings: what the live pipeline would publish for the same audio, without ROS.

The audio goes through a :class:`~ser_robot.features.pipeline.FeaturePipeline` built from the
feature node's parameters (``config/ser.yaml`` defaults, or the ones given): the same channel
reduction, resampling, level normalisation and VAD. It is pushed in chunks of ``CHUNK_S``
seconds, so an hour of a robot's day needs no more memory than a minute (the pipeline is
chunk-size invariant: the same frames whatever the chunking).

- :func:`predict_segments`: one final result per speech segment, by the inference node's own
  engine (:class:`~ser_robot.inference.engine.StreamInference`, utterance mode by default).
- :func:`predict_whole`: one prediction over all the frames of a recording.
- :func:`recording_frames`: the feature frames of a recording (the front end of :func:`predict_whole`).
"""

from __future__ import annotations

import pathlib
from typing import Any, Iterator, Mapping

import numpy as np

from ser_robot.errors import AudioError

__all__ = ["CHUNK_S", "read_audio", "feature_pipeline", "recording_frames", "predict_segments", "predict_whole"]

CHUNK_S = 10.0  # seconds of audio pushed at once


def read_audio(path: str | pathlib.Path) -> tuple[np.ndarray, int]:
    """``(samples (frames, channels) float32, sample rate Hz)`` of any file soundfile reads; :class:`AudioError` if not."""
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile.LibsndfileError, RuntimeError, OSError
        raise AudioError(f"cannot read audio file {path}: {exc}") from None
    if not len(samples):
        raise AudioError(f"audio file {path} holds no samples")
    return samples, int(rate)


def feature_pipeline(feature_set: str, params: Mapping[str, Any] | None = None, vad: bool = True) -> Any:
    """A :class:`FeaturePipeline` as the feature node builds it from its parameters (``params`` override the defaults)."""
    from ser_robot.config import validate_node_params
    from ser_robot.features.pipeline import FeaturePipeline
    from ser_robot.features.sets import create_extractor

    p = validate_node_params("features", {**(params or {}), "feature_set": feature_set})
    return FeaturePipeline(create_extractor(feature_set), block_frames=100, reduction=p["reduction"],
                           azimuth_deg=p["azimuth_deg"], ear_spacing_m=p["ear_spacing_m"], vad=vad,
                           vad_block_windows=100, level_normalization=p["level_normalization"],
                           level_target_dbfs=p["level_target_dbfs"], level_time_constant_s=p["level_time_constant_s"])


def _blocks(pipeline: Any, samples: np.ndarray, sample_rate: int, start: float) -> Iterator[tuple[list, list]]:
    """The pipeline's ``(feature blocks, vad blocks)`` per chunk of ``CHUNK_S``, then its final ones."""
    step = max(1, int(CHUNK_S * sample_rate))
    for seq, begin in enumerate(range(0, len(samples), step)):
        yield pipeline.push(samples[begin:begin + step], sample_rate, seq, start + begin / sample_rate)
    yield pipeline.finish()


def recording_frames(samples: np.ndarray, sample_rate: int, feature_set: str,
                     features: Mapping[str, Any] | None = None) -> np.ndarray:
    """The raw feature frames ``(frames, dims)`` float32 of the recording ``samples`` ``(frames, channels)`` at
    ``sample_rate`` Hz, as the feature node computes them (one stream from the recording's start, no VAD);
    :class:`AudioError` when it is too short for one frame."""
    pipeline = feature_pipeline(feature_set, features, vad=False)
    frames = [block.frames for feature_blocks, _ in _blocks(pipeline, samples, sample_rate, 0.0)
              for block in feature_blocks]
    if not frames:
        raise AudioError(f"{len(samples) / sample_rate:.3f} s of audio is too short for one feature frame")
    return np.concatenate(frames)


def predict_segments(model: Any, samples: np.ndarray, sample_rate: int, settings: Any = None,
                     features: Mapping[str, Any] | None = None, start: float = 0.0) -> list[Any]:
    """The final results (:class:`EmotionResult`) of the recording ``samples`` ``(frames, channels)`` at
    ``sample_rate`` Hz, its first sample at ``start`` s: one per speech segment in utterance mode."""
    from ser_robot.inference.engine import InferenceSettings, StreamInference

    engine = StreamInference(model, settings or InferenceSettings())
    pipeline = feature_pipeline(model.feature_set, features, vad=True)
    results = []
    for feature_blocks, vad_blocks in _blocks(pipeline, samples, sample_rate, start):
        for block in feature_blocks:
            results += engine.push_features(block.start_time, block.frames)
        for block in vad_blocks:
            results += engine.push_vad(block.start_time, block.frames[:, 0])
    return [result for result in results + engine.finish() if result.final]


def predict_whole(model: Any, samples: np.ndarray, sample_rate: int,
                  features: Mapping[str, Any] | None = None, stream: Any = None) -> Any:
    """One :class:`Prediction` over every feature frame of the recording ``samples`` ``(frames, channels)``.

    ``stream``: statistics of the stream the recording belongs to (``model.new_stream()``), for a
    speaker-normalised model; they are used, then updated with the recording's frames, as the
    inference node does with a final result. ``None``: the recording is a stream of its own.
    """
    import torch

    frames = recording_frames(samples, sample_rate, model.feature_set, features)
    prediction = model.predict(frames, stream)
    if stream is not None:
        stream.update(torch.from_numpy(frames))
    return prediction
