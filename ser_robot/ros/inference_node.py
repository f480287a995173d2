"""Inference node: ``FeatureFrames`` on ``features`` (+ VAD on ``vad``) -> ``Emotion`` on ``emotion``.

A thin adapter around :class:`~ser_robot.inference.streams.InferenceStreams` (one engine per
stream, keyed by ``header.frame_id``, at most ``max_streams``; the block checks of
:mod:`ser_robot.inference.blocks`, the seq and clock rules) and
:class:`~ser_robot.inference.model.EmotionModel` (the ``model`` checkpoint, or the shipped
default): parameters, QoS, message conversion, diagnostics.

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

Seq policy (:mod:`ser_robot.inference.streams`), per (stream, topic): late by at most
``reorder_window``: dropped; a gap or a reset is accepted, and the engine's clock decides: a
block later than expected restarts the track (``time_jumps``), one on time continues it. After a
gap or reset a block that starts before the expected time means the publisher restarted with an
earlier clock: the stream is finished (its results published) and started again
(``stream_restarts``, counted besides ``seq_gaps`` or ``seq_resets``). A stream not heard from for ``stream_timeout_s`` is finished and forgotten
(``streams_expired``), which frees its slot. Warnings about dropped blocks are throttled to one
every 5 s (each names the counts so far).

When ``hri_msgs`` is importable and ``hri_expression`` is true, every final speech result is
mirrored as ``hri_msgs/Expression`` on ``/humans/voices/<source_id>/expression`` (ROS4HRI;
``source_id`` made a valid ROS name token, :func:`expression_topic`).
"""

from __future__ import annotations

import collections
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from ser_robot.errors import SerRobotError
from ser_robot.inference.blocks import MALFORMED_REASONS, BlockRejected
from ser_robot.inference.engine import EmotionResult, InferenceSettings
from ser_robot.inference.model import EmotionModel
from ser_robot.inference.streams import InferenceStreams, Pushed
from ser_robot.metrics import LatencyStats
from ser_robot.ros.consumer_node import ConsumerNode
from ser_robot.ros.conversions import seconds_to_time, time_to_seconds
from ser_robot.ros.diagnostics import ERROR, OK, WARN, diagnostic_array
from ser_robot.ros.params import declare_parameters, read_parameters
from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS, for_streams
from ser_robot_msgs.msg import Emotion, FeatureFrames

__all__ = ["DROP_REASONS", "EVENT_KEYS", "InferenceNode", "emotion_message", "expression_topic", "main",
           "result_line"]

DROP_REASONS = (*MALFORMED_REASONS, "mismatched_features", "too_many_streams", "out_of_order", "internal_error")
# What accepted blocks did to their stream (each a diagnostics key).
EVENT_KEYS = ("streams_started", "seq_gaps", "seq_resets", "stream_restarts", "streams_expired")
WARN_PERIOD_S = 5.0  # at most one warning about dropped blocks (and one internal error) per period, s
MAX_LISTED = 8  # streams named in the "mismatched" diagnostics value per period
NAME_CHARS = 40  # a stream's frame_id is cut to this in logs and diagnostics
DETAIL_CHARS = 300  # a reason's text is cut to this


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


class InferenceNode(ConsumerNode):
    """Subscribes to features and VAD; publishes emotions per stream (see the module docstring)."""

    KIND = "inference"
    DROP_REASONS, MALFORMED_REASONS = DROP_REASONS, MALFORMED_REASONS  # the module's, for ConsumerNode.dropped

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(node_name or self.KIND, **kwargs)
        declare_parameters(self, self.KIND)
        self.model: EmotionModel | None = None
        self.inference: InferenceStreams | None = None
        self.mismatched: dict[str, str] = {}  # stream -> why its last refused block did not fit (this period)
        # received, DROP_REASONS, blocks, feature_blocks, vad_blocks, EVENT_KEYS, timer_errors
        self.counts: collections.Counter[str] = collections.Counter()
        self.published = 0
        self.processing_s = 0.0
        self.audio_s = 0.0
        self.latency = LatencyStats()
        self._reported: dict[str, int] = {}  # totals at the previous report
        self._next_warning = self._next_error = 0.0  # time.monotonic() before which nothing more is logged
        self._subscriptions: list = []
        self._timer = None
        self._emotion_publisher = self._diagnostics_publisher = None
        self._expression: tuple[type, dict[str, Any]] | None = None

    @property
    def streams(self) -> Mapping[str, Any]:
        """The open streams by name (empty before configure)."""
        return self.inference.table if self.inference is not None else {}

    # --- lifecycle ----------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = p = read_parameters(self, self.KIND)
            self.settings = InferenceSettings.from_params(p)
            self.model = EmotionModel(p["model"] or None, p["device"], p["backend"], purifier=p["purifier"] or None)
        except SerRobotError as exc:
            self.get_logger().error(f"cannot start: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.inference = InferenceStreams(self.model, self.settings, p["max_streams"], p["stream_timeout_s"],
                                          p["reorder_window"], p["max_block_s"])
        self.get_logger().info(f"model {self.model.model_id} ({self.model.feature_set}, {self.model.head}) on "
                               f"{self.model.device} ({self.model.backend}: {self.model.backend_note}); mode {self.settings.mode}")
        self._emotion_publisher = self.create_publisher(Emotion, p["output_topic"], RELIABLE_QOS)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS)
        if p["hri_expression"]:
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
            self._close(stream)

    def _release(self) -> None:
        self.model = self.inference = None  # the checkpoint is loaded again by the next configure

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
            block = self.inference.check(topic, msg)
            pushed = self.inference.push(stream, topic, int(msg.seq), time_to_seconds(msg.header.stamp), block)
        except BlockRejected as exc:
            if exc.reason == "mismatched_features":
                self._mismatch(stream, str(exc))
            self._drop(stream, topic, exc.reason, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not take the node down; the stream starts afresh
            self._internal_error(topic, stream, exc)
            return
        try:
            self._publish(stream, pushed.results)
        except Exception as exc:  # noqa: BLE001
            self._internal_error(topic, stream, exc)
            return
        self._count(topic, stream, pushed, len(block))
        self.processing_s += time.perf_counter() - start

    def _count(self, topic: str, stream: str, pushed: Pushed, frames: int) -> None:
        """The counters of an accepted block (or of one the engine dropped as late)."""
        self.counts["streams_started"] += pushed.started
        self.counts["stream_restarts"] += pushed.restarted
        if pushed.late:
            self._drop(stream, topic, "out_of_order", "block starts before the time its stream expects")
            return
        self.counts["blocks"] += 1
        self.counts[f"{'vad' if topic == 'vad' else 'feature'}_blocks"] += 1
        if pushed.event in ("seq_gap", "seq_reset"):
            self.counts[pushed.event + "s"] += 1
        if topic == "features":
            self.audio_s += frames * self.model.hop_s

    def _internal_error(self, topic: str, stream: str, exc: Exception) -> None:
        self.counts["internal_error"] += 1
        self._error(f"internal error on a {topic} block of stream {stream[:NAME_CHARS]!r}, stream dropped: "
                    f"{type(exc).__name__}: {exc}")
        self._forget(stream)

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

    def _close(self, stream: str) -> None:
        """Finish a stream (its last results published) and forget it; a failure is counted, never raised."""
        try:
            self._publish(stream, self.inference.close(stream))
        except Exception as exc:  # noqa: BLE001 - the other streams still get their last results
            self.counts["timer_errors"] += 1
            self._error(f"internal error finishing stream {stream[:NAME_CHARS]!r}: {type(exc).__name__}: {exc}")
        self._forget(stream)

    def _forget(self, stream: str) -> None:
        """Remove a stream (its counters kept in the totals); its next block starts a new one."""
        if self.inference is not None:
            self.inference.forget(stream)
        if self._expression is not None and not self.params["source_id"]:
            publisher = self._expression[1].pop(stream, None)
            if publisher is not None:
                self.destroy_publisher(publisher)

    def expire_streams(self, now: float | None = None) -> list[str]:
        """Finish (results published) and forget the streams silent for more than ``stream_timeout_s`` (0 = never).

        ``now``: ``time.monotonic()`` seconds (default: now). Returns the streams expired.
        """
        expired = self.inference.silent(now)
        for stream in expired:
            self._close(stream)
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
        engines = self.inference.counters()
        for key, name in (("results", "results"), ("restarts", "time_jumps"), ("truncated", "truncated"),
                          ("dropped_segments", "dropped_segments"), ("abandoned", "abandoned"),
                          ("non_finite_outputs", "non_finite_outputs")):
            values[name] = getattr(engines, key)
        values.update(streams=len(self.streams), emotions_published=self.published,
                      pending=self.inference.pending, timer_errors=c["timer_errors"])
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
                  "forward_p50_ms": f"{self.model.forward_times.p50_ms:.2f}",
                  "forward_p99_ms": f"{self.model.forward_times.p99_ms:.2f}",
                  **({"purifier_p50_ms": f"{self.model.purifier_times.p50_ms:.2f}",
                      "purifier_p99_ms": f"{self.model.purifier_times.p99_ms:.2f}"} if self.model.purifier else {}),
                  "real_time_factor": f"{real_time_factor:.4f}",
                  "mismatched": "; ".join(f"{k}: {v}" for k, v in self.mismatched.items())}
        self._diagnostics_publisher.publish(diagnostic_array(self, level, message, self.params["input_topic"], values))
        self.mismatched.clear()


def main(args: list[str] | None = None) -> int:
    """``ros2 run ser_robot inference_node``."""
    from ser_robot.ros.runner import spin_single

    return spin_single(InferenceNode, args if args is not None else sys.argv)
