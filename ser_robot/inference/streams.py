"""The inference of every open stream, without ROS: blocks in, results out, per stream.

:class:`InferenceStreams` is what the inference node wraps. It keeps one
:class:`~ser_robot.inference.engine.StreamInference` per stream in a
:class:`~ser_robot.streams.StreamTable` (cap ``max_streams``, expiry ``timeout_s``) and applies
the sequence and clock rules, per (stream, topic):

- :func:`~ser_robot.streams.classify_seq` reads the block's ``seq``: a late or repeated one is
  refused (``out_of_order``); a gap or a reset is accepted, and the engine's clock decides;
- a block later than expected restarts the engine's track (the engine's ``restarts``); one on
  time continues it;
- after a gap or a reset, a block that starts before the expected time means the publisher
  restarted with an earlier clock: the stream is finished (its results returned) and started
  again (``restarted``);
- without a gap or reset, a block that starts before the expected time is dropped by the engine
  (:attr:`Pushed.late`).

Counters of closed or restarted engines are kept in :meth:`counters`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ser_robot.inference.blocks import VAD_RATE, BlockRejected, FeatureBlockMessage, check_features, check_vad, \
    feature_block
from ser_robot.inference.engine import EmotionResult, InferenceCounters, InferenceSettings, StreamInference
from ser_robot.inference.model import EmotionModel
from ser_robot.streams import StreamLimitReached, StreamTable, classify_seq

__all__ = ["TOPICS", "InferenceStreams", "Pushed"]

TOPICS = ("features", "vad")


@dataclass
class _Stream:
    engine: StreamInference
    next_seq: dict[str, int] = field(default_factory=dict)  # topic -> the seq expected next


@dataclass(frozen=True)
class Pushed:
    """What an accepted block did: the ``results`` it completed, its ``seq`` event (``started``,
    ``continued``, ``seq_gap`` or ``seq_reset``), whether it opened the stream (``started``) or
    restarted it (``restarted``), and whether the engine dropped it as ``late``."""

    results: list[EmotionResult]
    event: str
    started: bool = False
    restarted: bool = False
    late: bool = False


class InferenceStreams:
    """Per-stream inference of ``model`` with ``settings`` (module docstring).

    ``max_block_s``: the longest block accepted, s. ``clock``: seconds for expiry
    (``time.monotonic``).
    """

    def __init__(self, model: EmotionModel, settings: InferenceSettings, max_streams: int, timeout_s: float,
                 reorder_window: int, max_block_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.settings = settings
        self.reorder_window = reorder_window
        self.table: StreamTable[_Stream] = StreamTable(max_streams, timeout_s, clock)
        self.max_frames = {"features": max(1, math.ceil(max_block_s * model.frame_rate - 1e-9)),
                           "vad": max(1, math.ceil(max_block_s * VAD_RATE - 1e-9))}
        self._retired = InferenceCounters()

    def check(self, topic: str, msg: FeatureBlockMessage) -> np.ndarray:
        """The block of ``msg`` received on ``topic`` (``features`` or ``vad``) as ``(frames, columns)``
        float32; raises :class:`~ser_robot.inference.blocks.BlockRejected` naming the defect."""
        block = feature_block(msg, self.max_frames[topic])
        if topic == "vad":
            check_vad(msg, block)
        else:
            check_features(self.model, msg, block)
        return block

    def push(self, name: str, topic: str, seq: int, stamp: float, block: np.ndarray) -> Pushed:
        """Push a checked ``block`` of stream ``name``, first frame at ``stamp`` s.

        Raises :class:`BlockRejected` (``too_many_streams``, ``out_of_order``) for a block refused
        before it reaches an engine.
        """
        try:
            stream, started = self.table.open(name, lambda: _Stream(StreamInference(self.model, self.settings)))
        except StreamLimitReached as exc:
            raise BlockRejected("too_many_streams", str(exc)) from None
        event = classify_seq(stream.next_seq.get(topic), seq, self.reorder_window)
        if event == "out_of_order":
            raise BlockRejected("out_of_order", f"seq {seq} is late or repeated (expected {stream.next_seq[topic]})")
        stream.next_seq[topic] = seq + 1
        engine, results, restarted = stream.engine, [], False
        track = engine.vad if topic == "vad" else engine.features
        if event in ("seq_gap", "seq_reset") and track.check(stamp) == "late":
            results = engine.finish()
            self._retire(engine)
            engine = stream.engine = StreamInference(self.model, self.settings)
            restarted = True
        late = engine.counters.out_of_order
        results += engine.push_vad(stamp, block[:, 0]) if topic == "vad" else engine.push_features(stamp, block)
        if engine.counters.out_of_order != late:
            return Pushed(results, event, started, restarted, late=True)
        self.table.heard(name)
        return Pushed(results, event, started, restarted)

    def close(self, name: str) -> list[EmotionResult]:
        """Finish stream ``name`` (its last results) and forget it; its next block starts it afresh.
        The stream is forgotten even if finishing raises."""
        stream = self.table.get(name)
        if stream is None:
            return []
        try:
            return stream.engine.finish()
        finally:
            self.forget(name)

    def forget(self, name: str) -> None:
        """Drop stream ``name`` without finishing it (its counters kept in :meth:`counters`)."""
        stream = self.table.pop(name)
        if stream is not None:
            self._retire(stream.engine)

    def silent(self, now: float | None = None) -> list[str]:
        """The streams not heard for more than ``timeout_s`` (to :meth:`close`)."""
        return self.table.silent(now)

    def counters(self) -> InferenceCounters:
        """The engines' counters summed over every stream, open, closed or restarted."""
        total = dataclasses.replace(self._retired)
        for stream in self.table.values():
            for counter in dataclasses.fields(InferenceCounters):
                setattr(total, counter.name, getattr(total, counter.name) + getattr(stream.engine.counters,
                                                                                    counter.name))
        return total

    @property
    def pending(self) -> int:
        """Results waiting for frames or VAD, over the open streams."""
        return sum(stream.engine.pending for stream in self.table.values())

    def _retire(self, engine: StreamInference) -> None:
        for counter in dataclasses.fields(InferenceCounters):
            setattr(self._retired, counter.name,
                    getattr(self._retired, counter.name) + getattr(engine.counters, counter.name))
