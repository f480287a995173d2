"""Checks of one received block of feature frames or speech probabilities, without ROS.

A block is anything shaped like ``ser_robot_msgs/FeatureFrames`` (:class:`FeatureBlockMessage`):
the inference node passes its messages as they are. Each check raises :class:`BlockRejected`
whose ``reason`` is the counter the block is dropped under, in the order of
:data:`MALFORMED_REASONS`, then ``mismatched_features``.
"""

from __future__ import annotations

import array
import math
from typing import Any, Protocol, Sequence

import numpy as np

from ser_robot.errors import FeatureMismatchError
from ser_robot.inference.engine import VAD_WINDOW_S
from ser_robot.inference.model import EmotionModel
from ser_robot.streams import MAX_STAMP_SEC

__all__ = ["MALFORMED_REASONS", "VAD_FEATURE_SET", "VAD_RATE", "BlockRejected", "FeatureBlockMessage",
           "check_features", "check_vad", "feature_block"]

VAD_FEATURE_SET = "silero-vad"
VAD_RATE = 1.0 / VAD_WINDOW_S  # speech probabilities per second (31.25)
# Why a block is malformed, the checks in this order (``out_of_range`` is the VAD's).
MALFORMED_REASONS = ("bad_shape", "empty", "too_long", "bad_rate", "bad_stamp", "non_finite", "out_of_range")


class FeatureBlockMessage(Protocol):
    """The fields of ``FeatureFrames`` that the checks read (``header.stamp`` has ``sec``, ``nanosec``)."""

    header: Any
    feature_set: str
    feature_names: Sequence[str]
    frame_rate: float
    num_frames: int
    num_features: int
    data: Sequence[float]


class BlockRejected(FeatureMismatchError):
    """A block that cannot be used; ``reason`` names its counter (``MALFORMED_REASONS`` or ``mismatched_features``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def feature_block(msg: FeatureBlockMessage, max_frames: int) -> np.ndarray:
    """``(num_frames, num_features)`` float32 of ``msg``; raises :class:`BlockRejected` naming the defect."""
    frames, dims = int(msg.num_frames), int(msg.num_features)
    if len(msg.data) != frames * dims:
        raise BlockRejected("bad_shape", f"data holds {len(msg.data)} values, num_frames x num_features = "
                                         f"{frames} x {dims}")
    if frames == 0 or dims == 0:
        raise BlockRejected("empty", f"empty block ({frames} frames x {dims} features)")
    if frames > max_frames:
        raise BlockRejected("too_long", f"block of {frames} frames is longer than the {max_frames} accepted "
                                        "(max_block_s)")
    if not (math.isfinite(msg.frame_rate) and msg.frame_rate > 0):
        raise BlockRejected("bad_rate", f"frame_rate {msg.frame_rate} is not a positive number")
    stamp = msg.header.stamp
    if stamp.nanosec >= 1_000_000_000 or not 0 <= stamp.sec <= MAX_STAMP_SEC:
        raise BlockRejected("bad_stamp", f"stamp {stamp.sec} s {stamp.nanosec} ns: need 0 <= sec <= "
                                         f"{MAX_STAMP_SEC}, nanosec < 1e9")
    data = msg.data
    values = np.frombuffer(data, np.float32) if isinstance(data, array.array) and data.typecode == "f" else \
        np.asarray(data, dtype=np.float32)
    block = values.reshape(frames, dims)
    if not np.isfinite(block).all():
        raise BlockRejected("non_finite", "non-finite feature values (NaN or Inf)")
    return np.array(block, dtype=np.float32)


def check_features(model: EmotionModel, msg: FeatureBlockMessage, block: np.ndarray) -> None:
    """Raise :class:`BlockRejected` unless ``block`` (from :func:`feature_block`) is what ``model`` was trained on."""
    if len(msg.feature_names) > 4 * len(model.feature_names):  # check_stream's hint would cost O(names) per name
        raise BlockRejected("mismatched_features", f"{len(msg.feature_names)} feature names, model {model.model_id} "
                                                   f"expects {len(model.feature_names)}")
    try:
        model.check_stream(msg.feature_set, msg.feature_names, msg.frame_rate)
    except FeatureMismatchError as exc:
        raise BlockRejected("mismatched_features", str(exc)) from None
    if block.shape[1] != len(model.feature_names):
        raise BlockRejected("bad_shape", f"{block.shape[1]} features for {len(model.feature_names)} feature names")


def check_vad(msg: FeatureBlockMessage, block: np.ndarray) -> None:
    """Raise :class:`BlockRejected` unless ``block`` holds speech probabilities: ``silero-vad``, one column,
    31.25 Hz, values in [0, 1]."""
    if msg.feature_set != VAD_FEATURE_SET or block.shape[1] != 1 or abs(msg.frame_rate - VAD_RATE) > 1e-3 * VAD_RATE:
        raise BlockRejected("mismatched_features", f"vad topic carries {msg.feature_set[:60]!r} x {block.shape[1]} at "
                                                   f"{msg.frame_rate:g} Hz, expected {VAD_FEATURE_SET!r} x 1 at "
                                                   f"{VAD_RATE:g} Hz")
    if (block < 0).any() or (block > 1).any():
        raise BlockRejected("out_of_range", "speech probabilities outside [0, 1]")
