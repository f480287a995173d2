"""Feature node: ``AudioFrame`` on ``audio`` -> ``FeatureFrames`` on ``features`` (and VAD on ``vad``).

A thin adapter around :class:`~ser_robot.features.pipeline.FeaturePipeline`: parameters,
QoS, message conversion and diagnostics. One pipeline per ``header.frame_id`` (stream), in a
:class:`~ser_robot.streams.StreamTable` (at most ``max_streams``, expiry ``stream_timeout_s``).

Hostile or broken input never raises out of the callback, and every received frame ends in
exactly one counter on ``diagnostics`` (once a second), so ``received = chunks + dropped``:

- dropped, by reason: the checks of :func:`~ser_robot.ros.conversions.audio_frame_samples`
  (``bad_encoding``, ``bad_channels``, ``bad_channel_ids``, ``bad_rate``, ``bad_stamp``,
  ``bad_length``, ``empty``, ``too_long`` (``max_frame_s``), ``non_finite``, ``out_of_range``;
  their sum is ``malformed``; ``bad_rate`` also covers rates the resampler refuses), then
  ``too_many_streams`` (a new ``frame_id`` while ``max_streams`` streams are open: each holds
  a pipeline and a VAD, so their number is bounded), ``rate_limited`` (the stream brought more
  than ``max_stream_speed`` times real time once its ``stream_burst_s`` were spent, see
  :class:`~ser_robot.audio.rate_limit.AudioBudget`), ``out_of_order`` (a late or repeated
  ``seq``, within ``reorder_window`` behind) and ``internal_error`` (a bug: the stream's
  pipeline is dropped and the next frame starts it afresh);
- accepted (``chunks``), of which those that (re)start a stream count as ``streams_started``
  (a new ``frame_id``), ``seq_gaps`` (but not ``gaps_concealed``: a gap of at most
  ``conceal_gap_s`` filled with silence), ``seq_resets``, ``format_changes`` (rate or channel
  count) or ``stamp_jumps`` (a stamp further than ``stamp_tolerance_s`` from the previous
  frame's end); ``restarts`` is their sum over the streams. See :mod:`ser_robot.features.pipeline`.

A stream not heard from for ``stream_timeout_s`` is finished (its last block published) and
forgotten (``streams_expired``), which frees its slot. Warnings about dropped frames are
throttled to one every 5 s (each names the counts so far). Frames the middleware lost before
the callback (``lost_in_transport``: a full subscription queue, a frame too large for the
transport) are counted apart from ``received``. ``streams_hurt`` on ``diagnostics`` names the
streams (at most 8) that lost or refused frames or restarted in the last period, with why;
``input_problems`` the faults of their audio the model cannot see (clipping, DC offset, a dead
channel, digital silence: :class:`~ser_robot.audio.input_check.InputMonitor`), with WARN.

What a sender of a stream's ``frame_id`` can do (DDS has no authentication unless SROS2 is
enabled): a malformed, late or over-budget frame is dropped and counted and never touches the
stream; a well-formed frame is indistinguishable from the source's own and may restart the
stream (a ``seq`` reset, a format change or a stamp jump). Frames of other streams take
at most ``max_stream_speed`` times real time of work each and never touch this stream; what
they can still cost it is callback time (and, in a flood, room in the subscription's shared
queue: ``lost_in_transport``).
"""

from __future__ import annotations

import array
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.event_handler import QoSMessageLostInfo, SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from ser_robot.audio.input_check import InputMonitor
from ser_robot.audio.rate_limit import AudioBudget
from ser_robot.errors import SerRobotError
from ser_robot.features.pipeline import (
    FeatureBlock,
    FeaturePipeline,
    PipelineCounters,
    supported_rate,
)
from ser_robot.features.sets import create_extractor
from ser_robot.inference.blocks import VAD_FEATURE_SET
from ser_robot.ros.consumer_node import ConsumerNode
from ser_robot.ros.conversions import (
    MALFORMED_REASONS,
    AudioFrameRejected,
    audio_frame_samples,
    seconds_to_time,
    time_to_seconds,
)
from ser_robot.ros.diagnostics import ERROR, OK, WARN, diagnostic_array
from ser_robot.ros.params import declare_parameters, read_parameters
from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS, SENSOR_DATA_QOS, for_streams
from ser_robot.streams import StreamLimitReached, StreamTable
from ser_robot_msgs.msg import AudioFrame, FeatureFrames

__all__ = ["FeatureNode", "block_message", "main", "DROP_REASONS"]

# Why a received AudioFrame was dropped (each is a diagnostics key; see the module docstring).
DROP_REASONS = (*MALFORMED_REASONS, "too_many_streams", "rate_limited", "out_of_order", "internal_error")
WARN_PERIOD_S = 5.0  # at most one warning about dropped frames per period, s
_STREAM_KEYS = ("chunks", "seq_gaps", "gaps_concealed", "samples_lost", "seq_resets", "format_changes",
                "stamp_jumps", "restarts", "frames")
_HURT_KEYS = ("seq_gaps", "seq_resets", "format_changes", "stamp_jumps", "out_of_order")  # per-stream, per period
MAX_LISTED = 8  # streams named in streams_hurt per period


@dataclasses.dataclass
class FeatureStream:
    """What the node keeps per stream: its pipeline, its budget, its input monitor, the ``seq`` of its next
    block per topic, and the counts behind ``streams_hurt`` (frames refused by the budget this period;
    pipeline counters at the last report)."""

    pipeline: FeaturePipeline
    budget: AudioBudget
    monitor: InputMonitor = dataclasses.field(default_factory=InputMonitor)
    channel_ids: list[str] = dataclasses.field(default_factory=list)
    next_block_seq: dict[str, int] = dataclasses.field(default_factory=lambda: {"features": 0, "vad": 0})
    rate_limited: int = 0
    reported: dict[str, int] = dataclasses.field(default_factory=dict)


def block_message(block: FeatureBlock, seq: int, frame_id: str, feature_set: str, frame_rate: float,
                  names: list[str]) -> FeatureFrames:
    """A ``FeatureFrames`` message holding ``block``, stamped with its first frame's start time."""
    msg = FeatureFrames()
    msg.header.stamp = seconds_to_time(block.start_time)
    msg.header.frame_id = frame_id
    msg.seq = seq
    msg.feature_set = feature_set
    msg.frame_rate = float(frame_rate)
    msg.num_frames, msg.num_features = block.frames.shape
    msg.feature_names = names
    data = array.array("f")
    data.frombytes(np.ascontiguousarray(block.frames, dtype="<f4").tobytes())
    msg.data = data
    return msg


class FeatureNode(ConsumerNode):
    """Subscribes to ``input_topic``; publishes feature blocks and speech probabilities per stream."""

    KIND = "features"
    DROP_REASONS, MALFORMED_REASONS = DROP_REASONS, MALFORMED_REASONS  # the module's, for ConsumerNode.dropped

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(node_name or self.KIND, **kwargs)
        declare_parameters(self, self.KIND)
        self.streams: StreamTable[FeatureStream] | Mapping[str, FeatureStream] = {}  # made by configure
        self.counts: Counter[str] = Counter()  # received, DROP_REASONS, streams_started, streams_expired
        self.published = 0
        self.processing_s = 0.0
        self.audio_s = 0.0
        self._retired = PipelineCounters()  # counters of the streams forgotten so far
        self._next_warning = 0.0  # time.monotonic() before which dropped frames are not logged, s
        self._reported: dict[str, int] = {}  # totals at the previous report
        self._feature_rate = 0
        self._subscription = self._timer = None
        self._features_publisher = self._vad_publisher = self._diagnostics_publisher = None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = read_parameters(self, self.KIND)
            pipeline = self._pipeline()  # build one now: a bad feature set or reduction fails here, not on a frame
        except (SerRobotError, ValueError) as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        self._feature_rate = int(pipeline.extractor.sample_rate)
        self.streams = StreamTable(self.params["max_streams"], self.params["stream_timeout_s"])
        qos = for_streams(RELIABLE_QOS, self.params["max_streams"])
        self._features_publisher = self.create_publisher(FeatureFrames, self.params["output_topic"], qos)
        if self.params["vad"]:
            self._vad_publisher = self.create_publisher(FeatureFrames, self.params["vad_topic"], qos)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS)
        return TransitionCallbackReturn.SUCCESS

    def _pipeline(self) -> FeaturePipeline:
        p = self.params
        return FeaturePipeline(create_extractor(p["feature_set"]), block_frames=p["block_frames"],
                               reduction=p["reduction"], azimuth_deg=p["azimuth_deg"],
                               ear_spacing_m=p["ear_spacing_m"], vad=p["vad"],
                               vad_block_windows=p["vad_block_windows"], reorder_window=p["reorder_window"],
                               stamp_tolerance_s=p["stamp_tolerance_s"], conceal_gap_s=p["conceal_gap_s"],
                               level_normalization=p["level_normalization"], level_target_dbfs=p["level_target_dbfs"],
                               level_time_constant_s=p["level_time_constant_s"])

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subscription = self.create_subscription(
            AudioFrame, self.params["input_topic"], self._on_audio,
            for_streams(SENSOR_DATA_QOS, self.params["max_streams"]),
            event_callbacks=SubscriptionEventCallbacks(message_lost=self._on_lost))
        self._timer = self.create_timer(1.0, self._report)
        return super().on_activate(state)

    def _teardown(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for stream in list(self.streams):  # finish every stream (its last blocks are published) and forget it
            try:
                self._publish(stream, *self.streams[stream].pipeline.finish())
            finally:
                self._forget(stream)

    def _on_lost(self, info: QoSMessageLostInfo) -> None:
        """The middleware lost frames before the callback (queue full, frame too large for the transport)."""
        self.counts["lost_in_transport"] += info.total_count_change

    def _on_audio(self, msg: AudioFrame) -> None:
        """Subscription callback: never raises; the frame ends in exactly one counter (module docstring)."""
        start = time.perf_counter()
        self.counts["received"] += 1
        stream = msg.header.frame_id
        try:
            samples = self._accept(msg, stream)
            if samples is None:
                return
            pipeline = self.streams[stream].pipeline
            features, vad = pipeline.push(samples, msg.sample_rate, msg.seq, time_to_seconds(msg.header.stamp),
                                          list(msg.channel_ids))
            if pipeline.last_event == "out_of_order":
                self._drop(stream, "out_of_order", f"seq {msg.seq} is late or repeated")
                return
            self._publish(stream, features, vad)
        except Exception as exc:  # noqa: BLE001 - a bug must not take the node down; the stream starts afresh
            self.counts["internal_error"] += 1
            self.get_logger().error(f"internal error on an AudioFrame of stream {stream[:40]!r}, stream dropped: "
                                    f"{type(exc).__name__}: {exc}", throttle_duration_sec=WARN_PERIOD_S)
            self._forget(stream)
            return
        self.processing_s += time.perf_counter() - start
        self.audio_s += samples.shape[0] / msg.sample_rate

    def _accept(self, msg: AudioFrame, stream: str) -> np.ndarray | None:
        """The frame's samples, its stream's pipeline made if need be; ``None`` (counted, logged) if it is refused."""
        try:
            samples = audio_frame_samples(msg, self.params["max_frame_s"])
            if not supported_rate(msg.sample_rate, self._feature_rate):
                raise AudioFrameRejected("bad_rate", f"sample rate {msg.sample_rate} Hz cannot be resampled to "
                                                     f"{self._feature_rate} Hz with a short filter; use a common rate")
            try:
                state, started = self.streams.open(stream, self._new_stream)
            except StreamLimitReached as exc:
                raise AudioFrameRejected("too_many_streams", str(exc)) from None
            self.counts["streams_started"] += started
            if not state.budget.admit(samples.shape[0] / msg.sample_rate, time.monotonic()):
                state.rate_limited += 1
                raise AudioFrameRejected("rate_limited", f"the stream brought more than max_stream_speed = "
                                                         f"{self.params['max_stream_speed']:g} x real time")
        except AudioFrameRejected as exc:
            self._drop(stream, exc.reason, str(exc))
            return None
        self.streams.heard(stream)
        state.monitor.update(samples)
        state.channel_ids[:] = msg.channel_ids
        return samples

    def _new_stream(self) -> FeatureStream:
        return FeatureStream(self._pipeline(), AudioBudget(self.params["max_stream_speed"],
                                                           self.params["stream_burst_s"], time.monotonic()))

    def _drop(self, stream: str, reason: str, detail: str) -> None:
        """Count a dropped frame under ``reason`` and warn (throttled: one warning every ``WARN_PERIOD_S``)."""
        self.counts[reason] += 1
        now = time.monotonic()
        if now < self._next_warning:  # rclpy's own throttle inspects the stack first: ~1 ms a call
            return
        self._next_warning = now + WARN_PERIOD_S
        totals = ", ".join(f"{key} {self.counts[key]}" for key in DROP_REASONS if self.counts[key])
        self.get_logger().warning(f"dropped AudioFrame of stream {stream[:40]!r} ({reason}): {detail} "
                                  f"[dropped so far: {totals}]", throttle_duration_sec=WARN_PERIOD_S)

    def _forget(self, stream: str) -> None:
        """Remove a stream (keeping its pipeline's counters in the totals); its next frame starts a new one."""
        state = self.streams.pop(stream, None)
        if state is not None:
            for field in dataclasses.fields(PipelineCounters):
                setattr(self._retired, field.name,
                        getattr(self._retired, field.name) + getattr(state.pipeline.counters, field.name))

    def expire_streams(self, now: float | None = None) -> list[str]:
        """Finish and forget the streams silent for more than ``stream_timeout_s`` (0 = never); returns them.

        ``now``: ``time.monotonic()`` seconds (default: now).
        """
        expired = self.streams.silent(now)
        for stream in expired:
            try:
                self._publish(stream, *self.streams[stream].pipeline.finish())
            finally:
                self._forget(stream)
            self.counts["streams_expired"] += 1
        return expired

    def _publish(self, stream: str, features: list[FeatureBlock], vad: list[FeatureBlock]) -> None:
        state = self.streams[stream]
        pipeline, next_seq = state.pipeline, state.next_block_seq
        names = list(pipeline.extractor.names)
        for block in features:
            self._features_publisher.publish(block_message(
                block, next_seq["features"], stream, self.params["feature_set"], pipeline.frame_rate, names))
            next_seq["features"] += 1
            self.published += 1
        if self._vad_publisher is not None and pipeline.vad is not None:
            for block in vad:
                self._vad_publisher.publish(block_message(
                    block, next_seq["vad"], stream, VAD_FEATURE_SET, pipeline.vad.frame_rate, ["speech_probability"]))
                next_seq["vad"] += 1

    def totals(self) -> dict[str, int]:
        """Every counter of the node (the diagnostics values, without the strings): see the module docstring."""
        values = {"received": self.counts["received"], "chunks": 0, "dropped": self.dropped,
                  "malformed": self.malformed}
        values.update({reason: self.counts[reason] for reason in DROP_REASONS})
        for key in _STREAM_KEYS:
            values[key] = getattr(self._retired, key) + sum(getattr(state.pipeline.counters, key)
                                                            for state in self.streams.values())
        values.update(streams=len(self.streams), streams_started=self.counts["streams_started"],
                      streams_expired=self.counts["streams_expired"], blocks_published=self.published,
                      lost_in_transport=self.counts["lost_in_transport"])
        return values

    def streams_hurt(self) -> dict[str, str]:
        """Streams that lost, refused or restarted frames since the last call -> what happened (at most
        ``MAX_LISTED``, the most hurt first), e.g. ``{"head": "3 seq_gaps, 12 rate_limited"}``."""
        hurt: dict[str, dict[str, int]] = {}
        for stream, state in self.streams.items():
            now = {key: getattr(state.pipeline.counters, key) for key in _HURT_KEYS}
            new = {key: now[key] - state.reported.get(key, 0) for key in _HURT_KEYS}
            new["rate_limited"], state.rate_limited, state.reported = state.rate_limited, 0, now
            if any(new.values()):
                hurt[stream] = new
        worst = sorted(hurt, key=lambda stream: -sum(hurt[stream].values()))[:MAX_LISTED]
        return {stream[:40]: ", ".join(f"{n} {key}" for key, n in hurt[stream].items() if n) for stream in worst}

    def _report(self) -> None:
        """1 Hz: expire silent streams, publish the counters; the level reflects the last period."""
        try:
            self.expire_streams()
        except Exception as exc:  # noqa: BLE001 - diagnostics must go on
            self.counts["internal_error"] += 1
            self.get_logger().error(f"internal error expiring streams: {type(exc).__name__}: {exc}",
                                    throttle_duration_sec=5.0)
        totals = self.totals()
        new = {key: totals[key] - self._reported.get(key, 0) for key in totals}
        self._reported = totals
        real_time_factor = self.processing_s / self.audio_s if self.audio_s else 0.0
        hurt = self.streams_hurt()
        faults = {stream[:40]: "; ".join(found) for stream, state in self.streams.items()
                  if (found := state.monitor.report(state.channel_ids))}
        faults = dict(list(faults.items())[:MAX_LISTED])
        level = ERROR if new["internal_error"] else WARN if new["seq_gaps"] or new["stamp_jumps"] or new["dropped"] \
            or new["lost_in_transport"] or faults else OK
        reasons = ", ".join(f"{key} {new[key]}" for key in DROP_REASONS if new[key])
        message = (f"{totals['streams']} stream(s), {totals['frames']} frames, {self.published} blocks; last period: "
                   f"{new['received']} received, {new['dropped']} dropped{f' ({reasons})' if reasons else ''}, "
                   f"{new['seq_gaps']} gaps, {new['stamp_jumps']} stamp jumps, {new['restarts']} restarts, "
                   f"{new['lost_in_transport']} lost in transport; RTF {real_time_factor:.3f}"
                   + (f"; streams hurt: {hurt}" if hurt else "") + (f"; input problems: {faults}" if faults else ""))
        values = {**totals, "feature_set": self.params["feature_set"], "real_time_factor": f"{real_time_factor:.4f}",
                  "streams_hurt": "; ".join(f"{stream}: {what}" for stream, what in hurt.items()),
                  "input_problems": " | ".join(f"{stream}: {what}" for stream, what in faults.items())}
        self._diagnostics_publisher.publish(diagnostic_array(self, level, message, self.params["input_topic"], values))


def main(args: list[str] | None = None) -> int:
    """``ros2 run ser_robot feature_node``."""
    from ser_robot.ros.runner import spin_single

    return spin_single(FeatureNode, args if args is not None else sys.argv)
