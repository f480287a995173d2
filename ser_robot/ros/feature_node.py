"""Feature node: ``AudioFrame`` on ``audio`` -> ``FeatureFrames`` on ``features`` (and VAD on ``vad``).

A thin adapter around :class:`~ser_robot.features.pipeline.FeaturePipeline`: parameters,
QoS, message conversion and diagnostics. One pipeline per ``header.frame_id`` (stream). A
malformed frame is counted and dropped; a ``seq`` gap ends the stream's features (the partial
block is published) and restarts them; both show on ``diagnostics`` once a second.
"""

from __future__ import annotations

import array
import sys
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ser_robot.errors import SerRobotError
from ser_robot.features.pipeline import FeatureBlock, FeaturePipeline
from ser_robot.features.sets import create_extractor
from ser_robot.ros.conversions import audio_frame_samples, seconds_to_time, time_to_seconds
from ser_robot.ros.diagnostics import OK, WARN, diagnostic_array
from ser_robot.ros.params import declare_parameters, read_parameters
from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS, SENSOR_DATA_QOS
from ser_robot_msgs.msg import AudioFrame, FeatureFrames

__all__ = ["FeatureNode", "block_message", "main"]

VAD_FEATURE_SET = "silero-vad"


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


class FeatureNode(LifecycleNode):
    """Subscribes to ``input_topic``; publishes feature blocks and speech probabilities per stream."""

    KIND = "features"

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(node_name or self.KIND, **kwargs)
        declare_parameters(self, self.KIND)
        self.pipelines: dict[str, FeaturePipeline] = {}
        self.block_seq: dict[tuple[str, str], int] = {}
        self.malformed = 0
        self.published = 0
        self.processing_s = 0.0
        self.audio_s = 0.0
        self._subscription = self._timer = None
        self._features_publisher = self._vad_publisher = self._diagnostics_publisher = None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = read_parameters(self, self.KIND)
            self._pipeline()  # build one now: a bad feature set or reduction fails here, not on the first frame
        except (SerRobotError, ValueError) as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        self._features_publisher = self.create_publisher(FeatureFrames, self.params["output_topic"], RELIABLE_QOS)
        if self.params["vad"]:
            self._vad_publisher = self.create_publisher(FeatureFrames, self.params["vad_topic"], RELIABLE_QOS)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS)
        return TransitionCallbackReturn.SUCCESS

    def _pipeline(self) -> FeaturePipeline:
        p = self.params
        return FeaturePipeline(create_extractor(p["feature_set"]), block_frames=p["block_frames"],
                               reduction=p["reduction"], azimuth_deg=p["azimuth_deg"],
                               ear_spacing_m=p["ear_spacing_m"], vad=p["vad"],
                               vad_block_windows=p["vad_block_windows"])

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subscription = self.create_subscription(AudioFrame, self.params["input_topic"], self._on_audio,
                                                      SENSOR_DATA_QOS)
        self._timer = self.create_timer(1.0, self._report)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return super().on_deactivate(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for stream, pipeline in self.pipelines.items():
            self._publish(stream, *pipeline.finish())

    def _on_audio(self, msg: AudioFrame) -> None:
        start = time.perf_counter()
        stream = msg.header.frame_id
        pipeline = self.pipelines.get(stream)
        if pipeline is None:
            pipeline = self.pipelines[stream] = self._pipeline()
        try:
            samples = audio_frame_samples(msg)
            features, vad = pipeline.push(samples, msg.sample_rate, msg.seq, time_to_seconds(msg.header.stamp),
                                          list(msg.channel_ids))
        except (SerRobotError, ValueError) as exc:
            self.malformed += 1
            self.get_logger().warning(f"dropped malformed AudioFrame: {exc}", throttle_duration_sec=5.0)
            return
        self._publish(stream, features, vad)
        self.processing_s += time.perf_counter() - start
        self.audio_s += samples.shape[0] / msg.sample_rate

    def _publish(self, stream: str, features: list[FeatureBlock], vad: list[FeatureBlock]) -> None:
        pipeline = self.pipelines[stream]
        names = list(pipeline.extractor.names)
        for block in features:
            seq = self.block_seq.get((stream, "features"), 0)
            self._features_publisher.publish(block_message(
                block, seq, stream, self.params["feature_set"], pipeline.frame_rate, names))
            self.block_seq[(stream, "features")] = seq + 1
            self.published += 1
        if self._vad_publisher is not None and pipeline.vad is not None:
            for block in vad:
                seq = self.block_seq.get((stream, "vad"), 0)
                self._vad_publisher.publish(block_message(
                    block, seq, stream, VAD_FEATURE_SET, pipeline.vad.frame_rate, ["speech_probability"]))
                self.block_seq[(stream, "vad")] = seq + 1

    def _report(self) -> None:
        totals = {"chunks": 0, "seq_gaps": 0, "samples_lost": 0, "restarts": 0, "frames": 0}
        for pipeline in self.pipelines.values():
            for key in totals:
                totals[key] += getattr(pipeline.counters, key)
        real_time_factor = self.processing_s / self.audio_s if self.audio_s else 0.0
        level = WARN if totals["seq_gaps"] or self.malformed else OK
        message = (f"{len(self.pipelines)} stream(s), {totals['frames']} frames, {self.published} blocks, "
                   f"gaps {totals['seq_gaps']}, malformed {self.malformed}, RTF {real_time_factor:.3f}")
        values = {**totals, "malformed": self.malformed, "blocks_published": self.published,
                  "feature_set": self.params["feature_set"], "real_time_factor": f"{real_time_factor:.4f}"}
        self._diagnostics_publisher.publish(diagnostic_array(self, level, message, self.params["input_topic"], values))


def main(args: list[str] | None = None) -> int:
    """``ros2 run ser_robot feature_node``."""
    from ser_robot.ros.runner import spin_single

    return spin_single(FeatureNode, args if args is not None else sys.argv)
