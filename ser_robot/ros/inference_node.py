"""Inference node: ``FeatureFrames`` on ``features`` (+ VAD on ``vad``) -> ``Emotion`` on ``emotion``.

A thin adapter around :class:`~ser_robot.inference.engine.StreamInference` (one per stream, keyed
by ``header.frame_id``, at most ``max_streams``) and :class:`~ser_robot.inference.model.EmotionModel`
(the ``model`` checkpoint, or the shipped default): parameters, QoS, message checks and
conversion, diagnostics. The checks are plain functions (:func:`feature_block`,
:func:`check_features`, :func:`check_vad`, :func:`seq_event`).

Hostile or broken input never raises out of a callback, and every received block ends in
exactly one counter on ``diagnostics`` (once a second), so ``received = blocks + dropped``:

- dropped, by reason (``DROP_REASONS``): ``MALFORMED_REASONS`` (their sum is ``malformed``):
  ``bad_shape`` (``len(data) != num_frames * num_features``, or a column count other than the
  model's), ``empty`` (no frame or no feature), ``too_long`` (more than ``max_block_s``),
  ``bad_rate`` (``frame_rate`` not a positive number), ``bad_stamp`` (``nanosec`` >= 1e9, ``sec``
  outside 0 .. ``MAX_STAMP_SEC``), ``non_finite`` (NaN, Inf), ``out_of_range`` (speech
  probabilities outside [0, 1]); then ``mismatched_features`` (feature set, names or frame rate
  other than the model's; on ``vad``: not ``silero-vad`` x 1 column at 31.25 Hz: diagnostics
  ERROR for that period, the streams named), ``too_many_streams`` (a new ``frame_id`` while
  ``max_streams`` streams are open), ``out_of_order`` (a ``seq`` late or repeated within
  ``reorder_window`` of its (stream, topic), or a block that starts before the time its stream
  expects: the engine drops it) and ``internal_error`` (a bug: the stream is dropped, its next
  block starts it afresh);
- accepted (``blocks`` = ``feature_blocks`` + ``vad_blocks``); those that open a stream count as
  ``streams_started``, a forward jump of ``seq`` as ``seq_gaps``, ``seq`` 0, a ``seq`` further back
  than ``reorder_window`` or a jump beyond ``MAX_SEQ_JUMP`` as ``seq_resets``.

Seq policy, per (stream, topic): late by at most ``reorder_window``: dropped; a gap or a reset
is accepted, and the engine's clock decides: a block later than expected restarts the track
(``time_jumps``), one on time continues it. After a gap or reset a block that starts before the
expected time means the publisher restarted with an earlier clock: the stream is finished (its
results published) and started again (``stream_restarts``, counted besides ``seq_gaps`` or
``seq_resets``). A stream not heard from for ``stream_timeout_s`` is finished and forgotten
(``streams_expired``), which frees its slot. Warnings about dropped blocks are throttled to one
every 5 s (each names the counts so far).

When ``hri_msgs`` is importable and ``hri_expression`` is true, every final speech result is
mirrored as ``hri_msgs/Expression`` on ``/humans/voices/<source_id>/expression`` (ROS4HRI;
``source_id`` made a valid ROS name token, :func:`expression_topic`).
"""

from __future__ import annotations

import array
import collections
import dataclasses
import math
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from ser_robot.errors import FeatureMismatchError, SerRobotError
from ser_robot.features.pipeline import MAX_SEQ_JUMP
from ser_robot.inference.engine import (
    VAD_WINDOW_S,
    EmotionResult,
    InferenceCounters,
    InferenceSettings,
    StreamInference,
)
from ser_robot.inference.model import EmotionModel
from ser_robot.ros.consumer_node import ConsumerNode
from ser_robot.ros.conversions import MAX_STAMP_SEC, seconds_to_time, time_to_seconds
from ser_robot.ros.diagnostics import ERROR, OK, WARN, LatencyStats, diagnostic_array
from ser_robot.ros.params import declare_parameters, read_parameters
from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS, for_streams
from ser_robot_msgs.msg import Emotion, FeatureFrames

__all__ = [
    "DROP_REASONS",
    "EVENT_KEYS",
    "MALFORMED_REASONS",
    "BlockRejected",
    "InferenceNode",
    "check_features",
    "check_vad",
    "emotion_message",
    "expression_topic",
    "feature_block",
    "main",
    "result_line",
    "seq_event",
]

VAD_FEATURE_SET = "silero-vad"
VAD_RATE = 1.0 / VAD_WINDOW_S  # speech probabilities per second (31.25)
# Why a received block was dropped (each a diagnostics key; module docstring), the checks in this order.
MALFORMED_REASONS = ("bad_shape", "empty", "too_long", "bad_rate", "bad_stamp", "non_finite", "out_of_range")
DROP_REASONS = (*MALFORMED_REASONS, "mismatched_features", "too_many_streams", "out_of_order", "internal_error")
# What accepted blocks did to their stream (each a diagnostics key).
EVENT_KEYS = ("streams_started", "seq_gaps", "seq_resets", "stream_restarts", "streams_expired")
WARN_PERIOD_S = 5.0  # at most one warning about dropped blocks (and one internal error) per period, s
MAX_LISTED = 8  # streams named in the "mismatched" diagnostics value per period
NAME_CHARS = 40  # a stream's frame_id is cut to this in logs and diagnostics
DETAIL_CHARS = 300  # a reason's text is cut to this


class BlockRejected(FeatureMismatchError):
    """A ``FeatureFrames`` block that cannot be used; ``reason`` (a key of ``DROP_REASONS``) is its counter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def feature_block(msg: FeatureFrames, max_frames: int) -> np.ndarray:
    """``(num_frames, num_features)`` float32 of ``msg``; raises :class:`BlockRejected` naming the defect.

    The checks of every topic, in the order of ``MALFORMED_REASONS`` (``out_of_range`` is the VAD's).
    """
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


def check_features(model: EmotionModel, msg: FeatureFrames, block: np.ndarray) -> None:
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


def check_vad(msg: FeatureFrames, block: np.ndarray) -> None:
    """Raise :class:`BlockRejected` unless ``block`` holds speech probabilities: ``silero-vad``, one column,
    31.25 Hz, values in [0, 1]."""
    if msg.feature_set != VAD_FEATURE_SET or block.shape[1] != 1 or abs(msg.frame_rate - VAD_RATE) > 1e-3 * VAD_RATE:
        raise BlockRejected("mismatched_features", f"vad topic carries {msg.feature_set[:60]!r} x {block.shape[1]} at "
                                                   f"{msg.frame_rate:g} Hz, expected {VAD_FEATURE_SET!r} x 1 at "
                                                   f"{VAD_RATE:g} Hz")
    if (block < 0).any() or (block > 1).any():
        raise BlockRejected("out_of_range", "speech probabilities outside [0, 1]")


def seq_event(expected: int | None, seq: int, reorder_window: int) -> str:
    """What a block's ``seq`` means for its (stream, topic), whose next ``seq`` is ``expected`` (None: none yet).

    ``started``, ``continued``, ``out_of_order`` (``expected - reorder_window <= seq < expected``,
    ``seq != 0``: dropped), ``seq_reset`` (``seq == 0``, further back, or more than ``MAX_SEQ_JUMP``
    ahead) or ``seq_gap`` (ahead: blocks were lost). The feature node's policy for audio chunks.
    """
    if expected is None:
        return "started"
    behind = expected - seq
    if behind == 0:
        return "continued"
    if 0 < behind <= reorder_window and seq != 0:
        return "out_of_order"
    if seq == 0 or behind > 0 or -behind > MAX_SEQ_JUMP:
        return "seq_reset"
    return "seq_gap"


def expression_topic(source_id: str) -> str | None:
    """``/humans/voices/<id>/expression`` with ``source_id`` made a valid ROS name token; None if nothing is left."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", source_id)[:64].strip("_")
    if not token:
        return None
    if token[0].isdigit():
        token = "v" + token
    return f"/humans/voices/{re.sub('_+', '_', token)}/expression"


def emotion_message(result: EmotionResult, frame_id: str, source_id: str, labels: tuple[str, ...],
                    model_id: str, min_confidence: float = 0.0) -> Emotion:
    """The ``Emotion`` of ``result`` (stamped with its window end); a categorical result whose top
    probability is below ``min_confidence`` is uncertain: its label stays empty (``Emotion.msg``)."""
    msg = Emotion()
    msg.header.stamp = seconds_to_time(result.window_end)
    msg.header.frame_id = frame_id
    msg.source_id = source_id
    msg.window_start = seconds_to_time(result.window_start)
    msg.window_end = seconds_to_time(result.window_end)
    msg.final = result.final
    msg.speech = result.speech
    msg.speech_probability = float(result.speech_probability)
    msg.labels = list(labels)
    msg.model_id = model_id
    prediction = result.prediction
    if prediction is None:
        msg.probabilities = [0.0] * len(labels)
        msg.arousal = msg.valence = float("nan")
        return msg
    if len(prediction.probabilities):
        best = int(np.argmax(prediction.probabilities))
        msg.confidence = float(prediction.probabilities[best])
        msg.label = labels[best] if msg.confidence >= min_confidence else ""
        msg.probabilities = [float(p) for p in prediction.probabilities]
    msg.arousal, msg.valence = float(prediction.arousal), float(prediction.valence)
    return msg


def result_line(msg: Emotion, latency_s: float) -> str:
    """One printed line: window end (local time), source, label and confidence (or no speech), latency."""
    end = time.strftime("%H:%M:%S", time.localtime(msg.window_end.sec)) + f".{msg.window_end.nanosec // 10**6:03d}"
    length = time_to_seconds(msg.window_end) - time_to_seconds(msg.window_start)
    if not msg.speech:
        what = "(no speech)"
    elif msg.label:
        what = f"{msg.label:8s} {msg.confidence:5.2f}"
    elif len(msg.probabilities):
        what = f"{'uncertain':8s} {msg.confidence:5.2f}"
    else:
        what = f"arousal {msg.arousal:+.2f} valence {msg.valence:+.2f}"
    return f"{end}  {msg.source_id}  {length:4.1f} s  {what}  latency {latency_s * 1e3:6.1f} ms"


@dataclass
class _Stream:
    """One stream: its engine, when it was last heard (``time.monotonic()`` s), the next ``seq`` per topic."""

    engine: StreamInference
    heard: float
    next_seq: dict[str, int] = field(default_factory=dict)


class InferenceNode(ConsumerNode):
    """Subscribes to features and VAD; publishes emotions per stream (see the module docstring)."""

    KIND = "inference"
    DROP_REASONS, MALFORMED_REASONS = DROP_REASONS, MALFORMED_REASONS  # the module's, for ConsumerNode.dropped

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(node_name or self.KIND, **kwargs)
        declare_parameters(self, self.KIND)
        self.model: EmotionModel | None = None
        self.streams: dict[str, _Stream] = {}
        self.mismatched: dict[str, str] = {}  # stream -> why its last refused block did not fit (this period)
        # received, DROP_REASONS, blocks, feature_blocks, vad_blocks, EVENT_KEYS, timer_errors
        self.counts: collections.Counter[str] = collections.Counter()
        self.published = 0
        self.processing_s = 0.0
        self.audio_s = 0.0
        self.latency = LatencyStats()
        self.max_frames: dict[str, int] = {}  # topic -> longest block accepted, frames
        self._retired = InferenceCounters()  # engine counters of the streams forgotten or restarted so far
        self._reported: dict[str, int] = {}  # totals at the previous report
        self._next_warning = self._next_error = 0.0  # time.monotonic() before which nothing more is logged
        self._subscriptions: list = []
        self._timer = None
        self._emotion_publisher = self._diagnostics_publisher = None
        self._expression: tuple[type, dict[str, Any]] | None = None

    # --- lifecycle ----------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = read_parameters(self, self.KIND)
            self.settings = InferenceSettings.from_params(self.params)
            self.model = EmotionModel(self.params["model"] or None, self.params["device"], self.params["backend"])
        except SerRobotError as exc:
            self.get_logger().error(f"cannot start: {exc}")
            return TransitionCallbackReturn.FAILURE
        max_block_s = self.params["max_block_s"]
        self.max_frames = {"features": max(1, math.ceil(max_block_s * self.model.frame_rate - 1e-9)),
                           "vad": max(1, math.ceil(max_block_s * VAD_RATE - 1e-9))}
        self.get_logger().info(f"model {self.model.model_id} ({self.model.feature_set}, {self.model.head}) on "
                               f"{self.model.device} ({self.model.backend}: {self.model.backend_note}); mode {self.settings.mode}")
        self._emotion_publisher = self.create_publisher(Emotion, self.params["output_topic"], RELIABLE_QOS)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS)
        if self.params["hri_expression"]:
            self._expression = self._hri_expression()
        return TransitionCallbackReturn.SUCCESS

    def _hri_expression(self) -> tuple[type, dict[str, Any]] | None:
        try:
            from hri_msgs.msg import Expression
        except ImportError:
            return None
        return Expression, {}

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos = for_streams(RELIABLE_QOS, self.params["max_streams"])
        self._subscriptions = [
            self.create_subscription(FeatureFrames, self.params["input_topic"], self._on_features, qos),
            self.create_subscription(FeatureFrames, self.params["vad_topic"], self._on_vad, qos),
        ]
        self._timer = self.create_timer(1.0, self._report)
        return super().on_activate(state)

    def _teardown(self) -> None:
        for subscription in self._subscriptions:
            self.destroy_subscription(subscription)
        self._subscriptions = []
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for stream in list(self.streams):  # finish every stream: its last results are published
            try:
                self._publish(stream, self.streams[stream].engine.finish())
            except Exception as exc:  # noqa: BLE001 - the other streams still get their last results
                self.counts["timer_errors"] += 1
                self._error(f"internal error finishing stream {stream[:NAME_CHARS]!r}: {type(exc).__name__}: {exc}")
            self._forget(stream)

    def _release(self) -> None:
        self.model = None  # the checkpoint is loaded again by the next configure

    # --- callbacks ----------------------------------------------------------------------------------
    def _on_features(self, msg: FeatureFrames) -> None:
        self._handle(msg, "features")

    def _on_vad(self, msg: FeatureFrames) -> None:
        self._handle(msg, "vad")

    def _handle(self, msg: FeatureFrames, topic: str) -> None:
        """Subscription callback: never raises; the block ends in exactly one counter (module docstring)."""
        start = time.perf_counter()
        self.counts["received"] += 1
        stream = msg.header.frame_id
        try:
            accepted = self._accept(msg, topic, stream)
            if accepted is None:
                return
            results, event = accepted
            self._publish(stream, results)
        except Exception as exc:  # noqa: BLE001 - a bug must not take the node down; the stream starts afresh
            self.counts["internal_error"] += 1
            self._error(f"internal error on a {topic} block of stream {stream[:NAME_CHARS]!r}, stream dropped: "
                        f"{type(exc).__name__}: {exc}")
            self._forget(stream)
            return
        if event:
            self.counts["blocks"] += 1
            self.counts[f"{'vad' if topic == 'vad' else 'feature'}_blocks"] += 1
            if event in ("seq_gap", "seq_reset"):
                self.counts[event + "s"] += 1
        self.processing_s += time.perf_counter() - start

    def _accept(self, msg: FeatureFrames, topic: str, stream: str) -> tuple[list[EmotionResult], str] | None:
        """Check and push one block: ``(results, seq event)`` (event "" if the engine dropped it as late), or
        ``None`` if it is refused (counted, logged)."""
        try:
            block = feature_block(msg, self.max_frames[topic])
            if topic == "vad":
                check_vad(msg, block)
            else:
                check_features(self.model, msg, block)
        except BlockRejected as exc:
            if exc.reason == "mismatched_features":
                self._mismatch(stream, str(exc))
            self._drop(stream, topic, exc.reason, str(exc))
            return None
        state = self.streams.get(stream)
        if state is None:
            if len(self.streams) >= self.params["max_streams"]:
                self._drop(stream, topic, "too_many_streams", f"{len(self.streams)} streams open already "
                                                              "(max_streams); new streams wait for one to expire")
                return None
            state = self.streams[stream] = _Stream(StreamInference(self.model, self.settings), time.monotonic())
            self.counts["streams_started"] += 1
        seq = int(msg.seq)
        event = seq_event(state.next_seq.get(topic), seq, self.params["reorder_window"])
        if event == "out_of_order":
            self._drop(stream, topic, "out_of_order", f"seq {seq} is late or repeated (expected "
                                                      f"{state.next_seq[topic]})")
            return None
        state.next_seq[topic] = seq + 1
        stamp = time_to_seconds(msg.header.stamp)
        engine, results = state.engine, []
        track = engine.vad if topic == "vad" else engine.features
        if event in ("seq_gap", "seq_reset") and track.check(stamp) == "late":
            # a new seq run whose clock went back: the publisher restarted; so does the stream
            results = engine.finish()
            self._retire(engine)
            engine = state.engine = StreamInference(self.model, self.settings)
            self.counts["stream_restarts"] += 1
        late = engine.counters.out_of_order
        results += engine.push_vad(stamp, block[:, 0]) if topic == "vad" else engine.push_features(stamp, block)
        if engine.counters.out_of_order != late:
            self._drop(stream, topic, "out_of_order", f"block starts at {stamp:.3f} s, before the time its stream "
                                                      "expects")
            return results, ""
        state.heard = time.monotonic()
        if topic == "features":
            self.audio_s += len(block) * self.model.hop_s
        return results, event

    def _drop(self, stream: str, topic: str, reason: str, detail: str) -> None:
        """Count a dropped block under ``reason`` and warn (throttled: one warning every ``WARN_PERIOD_S``)."""
        self.counts[reason] += 1
        now = time.monotonic()
        if now < self._next_warning:  # rclpy's own throttle inspects the stack first: ~1 ms a call
            return
        self._next_warning = now + WARN_PERIOD_S
        totals = ", ".join(f"{key} {self.counts[key]}" for key in DROP_REASONS if self.counts[key])
        text = (f"dropped {topic} block of stream {stream[:NAME_CHARS]!r} ({reason}): {detail[:DETAIL_CHARS]} "
                f"[dropped so far: {totals}]")
        # one call site per severity: rclpy refuses a call site whose severity changes between calls
        if reason == "mismatched_features":
            self.get_logger().error(text)
        else:
            self.get_logger().warning(text)

    def _error(self, text: str) -> None:
        now = time.monotonic()
        if now >= self._next_error:
            self._next_error = now + WARN_PERIOD_S
            self.get_logger().error(text[:2 * DETAIL_CHARS])

    def _mismatch(self, stream: str, detail: str) -> None:
        """Name the stream on diagnostics (at most ``MAX_LISTED`` streams a period)."""
        key = stream[:NAME_CHARS]
        if key in self.mismatched or len(self.mismatched) < MAX_LISTED:
            self.mismatched[key] = detail[:DETAIL_CHARS]

    def _retire(self, engine: StreamInference) -> None:
        """Keep the counters of an engine about to be dropped in the totals."""
        for counter in dataclasses.fields(InferenceCounters):
            setattr(self._retired, counter.name,
                    getattr(self._retired, counter.name) + getattr(engine.counters, counter.name))

    def _forget(self, stream: str) -> None:
        """Remove a stream (its counters kept in the totals); its next block starts a new one."""
        state = self.streams.pop(stream, None)
        if state is not None:
            self._retire(state.engine)
        if self._expression is not None and not self.params["source_id"]:
            publisher = self._expression[1].pop(stream, None)
            if publisher is not None:
                self.destroy_publisher(publisher)

    def expire_streams(self, now: float | None = None) -> list[str]:
        """Finish (results published) and forget the streams silent for more than ``stream_timeout_s`` (0 = never).

        ``now``: ``time.monotonic()`` seconds (default: now). Returns the streams expired.
        """
        timeout = self.params["stream_timeout_s"]
        if timeout <= 0:
            return []
        now = time.monotonic() if now is None else now
        expired = [stream for stream, state in self.streams.items() if now - state.heard > timeout]
        for stream in expired:
            try:
                self._publish(stream, self.streams[stream].engine.finish())
            finally:
                self._forget(stream)
                self.counts["streams_expired"] += 1
        return expired

    def _publish(self, stream: str, results: list[EmotionResult]) -> None:
        source_id = self.params["source_id"] or stream
        for result in results:
            msg = emotion_message(result, stream, source_id, self.model.labels, self.model.model_id,
                                  self.params["min_confidence"])
            self._emotion_publisher.publish(msg)
            self.published += 1
            if result.final:
                latency = time.time() - result.window_end
                self.latency.add(latency)
                if self.params["stdout"]:
                    print(result_line(msg, latency), flush=True)
            if self._expression is not None and result.final and result.speech and msg.label:
                self._publish_expression(source_id, msg)

    def _publish_expression(self, source_id: str, emotion: Emotion) -> None:
        expression_type, publishers = self._expression
        publisher = publishers.get(source_id)
        if publisher is None:
            topic = expression_topic(source_id)
            if topic is None:
                return
            publisher = publishers[source_id] = self.create_publisher(expression_type, topic, RELIABLE_QOS)
        msg = expression_type()
        msg.header = emotion.header
        msg.expression = emotion.label
        msg.confidence = emotion.confidence
        msg.arousal, msg.valence = emotion.arousal, emotion.valence
        publisher.publish(msg)

    # --- diagnostics --------------------------------------------------------------------------------
    def totals(self) -> dict[str, int]:
        """Every counter of the node (the diagnostics values, without the strings): see the module docstring."""
        c = self.counts
        values = {"received": c["received"], "blocks": c["blocks"], "feature_blocks": c["feature_blocks"],
                  "vad_blocks": c["vad_blocks"], "dropped": self.dropped, "malformed": self.malformed}
        values.update({reason: c[reason] for reason in DROP_REASONS})
        values.update({key: c[key] for key in EVENT_KEYS})
        engines = [state.engine for state in self.streams.values()]
        for key, name in (("results", "results"), ("restarts", "time_jumps"), ("truncated", "truncated"),
                          ("dropped_segments", "dropped_segments"), ("abandoned", "abandoned"),
                          ("non_finite_outputs", "non_finite_outputs")):
            values[name] = getattr(self._retired, key) + sum(getattr(e.counters, key) for e in engines)
        values.update(streams=len(self.streams), emotions_published=self.published,
                      pending=sum(e.pending for e in engines), timer_errors=c["timer_errors"])
        return values

    def _report(self) -> None:
        """1 Hz: expire silent streams, publish the counters; the level reflects the last period."""
        try:
            self.expire_streams()
        except Exception as exc:  # noqa: BLE001 - diagnostics must go on
            self.counts["timer_errors"] += 1
            self._error(f"internal error expiring streams: {type(exc).__name__}: {exc}")
        totals = self.totals()
        new = {key: totals[key] - self._reported.get(key, 0) for key in totals}
        self._reported = totals
        p50, p99 = self.latency.percentile(50), self.latency.percentile(99)
        real_time_factor = self.processing_s / self.audio_s if self.audio_s else 0.0
        level = ERROR if new["mismatched_features"] or new["internal_error"] or new["timer_errors"] \
            or new["non_finite_outputs"] else WARN if new["dropped"] or new["abandoned"] else OK
        reasons = ", ".join(f"{key} {new[key]}" for key in DROP_REASONS if new[key])
        message = (f"{totals['streams']} stream(s), {self.published} emotions, latency p99 {p99 * 1e3:.1f} ms; last "
                   f"period: {new['received']} received, {new['dropped']} dropped{f' ({reasons})' if reasons else ''}"
                   + (f"; {new['abandoned']} result(s) given up waiting for features or VAD (is the feature "
                      "node's vad on?)" if new["abandoned"] else "")
                   + (f"; {new['non_finite_outputs']} result(s) withheld: the model gave NaN or infinity"
                      if new["non_finite_outputs"] else "")
                   + (f"; features that do not fit the model: {self.mismatched}" if self.mismatched else ""))
        values = {"model_id": self.model.model_id, "device": str(self.model.device), "backend": self.model.backend,
                  "mode": self.settings.mode,
                  **totals, "latency_p50_ms": f"{p50 * 1e3:.2f}", "latency_p99_ms": f"{p99 * 1e3:.2f}",
                  "real_time_factor": f"{real_time_factor:.4f}",
                  "mismatched": "; ".join(f"{k}: {v}" for k, v in self.mismatched.items())}
        self._diagnostics_publisher.publish(diagnostic_array(self, level, message, self.params["input_topic"], values))
        self.mismatched.clear()


def main(args: list[str] | None = None) -> int:
    """``ros2 run ser_robot inference_node``."""
    from ser_robot.ros.runner import spin_single

    return spin_single(InferenceNode, args if args is not None else sys.argv)
