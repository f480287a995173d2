"""Base lifecycle node of audio sources: a thread that publishes ``AudioFrame`` on ``audio``.

Subclasses supply the chunks (:meth:`AudioSourceNode.open_source`, :meth:`read_chunk`) and
their health; this class owns parameters, the publisher, ``seq``, latency statistics and the
1 Hz diagnostics. ``seq`` counts from 0 and starts again from 0 at a chunk marked ``restart``
(a microphone reopened after an outage: a new time line), the ``AudioFrame`` convention for a
restarted stream; ``timeline_restarts`` on ``diagnostics`` counts these.
"""

from __future__ import annotations

import abc
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ser_robot.audio.chunk import AudioChunk
from ser_robot.errors import SerRobotError
from ser_robot.metrics import LatencyStats
from ser_robot.ros.conversions import chunk_to_audio_frame
from ser_robot.ros.diagnostics import OK, WARN, diagnostic_array
from ser_robot.ros.params import declare_parameters, read_parameters
from ser_robot.ros.qos import DIAGNOSTICS_QOS, SENSOR_DATA_QOS
from ser_robot_msgs.msg import AudioFrame

__all__ = ["AudioSourceNode"]

DIAGNOSTICS_PERIOD_S = 1.0
LATENCY_WARN_S = 0.005  # callback-to-publish p99 above this is a WARN


class AudioSourceNode(LifecycleNode, metaclass=abc.ABCMeta):
    """Publishes the chunks of a source as ``AudioFrame``s with sensor-data QoS."""

    KIND = ""  # key of ser_robot.config.NODE_PARAMS

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(node_name or self.KIND, **kwargs)
        declare_parameters(self, self.KIND)
        self.params: dict[str, Any] = {}
        self._publisher = None
        self._diagnostics_publisher = None
        self._diagnostics_timer = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.seq = 0
        self.published = 0
        self.timeline_restarts = 0  # times the source's time line broke (seq published from 0 again)
        self.latency = LatencyStats()
        self.finished = threading.Event()

    # -- to implement ----------------------------------------------------------------------
    @abc.abstractmethod
    def open_source(self) -> None:
        """Prepare the source from ``self.params``; raise SerRobotError if impossible."""

    def start_source(self) -> None:
        """Begin delivering chunks (called on activate)."""

    def stop_source(self) -> None:
        """Stop delivering chunks (called on deactivate and shutdown)."""

    @abc.abstractmethod
    def read_chunk(self) -> tuple[AudioChunk, float] | None:
        """Next chunk and the monotonic time it was captured, or None (try again soon).

        Set :attr:`finished` when the source has no more chunks.
        """

    @abc.abstractmethod
    def health(self) -> tuple[bytes, str, str, dict[str, object]]:
        """(level, message, hardware id, key-values) for diagnostics."""

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = read_parameters(self, self.KIND)
            self.open_source()
        except SerRobotError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        self._publisher = self.create_lifecycle_publisher(AudioFrame, "audio", SENSOR_DATA_QOS)
        self._diagnostics_publisher = self.create_publisher(
            DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS
        )
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.start_source()
        except SerRobotError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        result = super().on_activate(state)
        self._stop.clear()
        self._thread = threading.Thread(target=self._publish_loop, name=f"{self.get_name()}-publish", daemon=True)
        self._thread.start()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._join()
        self.stop_source()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._join()
        self.stop_source()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _join(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _teardown(self) -> None:
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._publisher is not None:
            self.destroy_lifecycle_publisher(self._publisher)
            self._publisher = None
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
            self._diagnostics_publisher = None

    # -- work ------------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        encoding = self.params["encoding"]
        frame_id = self.params["frame_id"]
        channel_ids = self.params["channel_ids"]
        while not self._stop.is_set() and not self.finished.is_set():
            item = self.read_chunk()
            if item is None:
                continue
            chunk, captured = item
            if chunk.restart and self.published:
                # AudioFrame's convention: seq 0 means the stream restarted (a new time line after an outage).
                self.seq = 0
                self.timeline_restarts += 1
            msg = chunk_to_audio_frame(chunk, self.seq, encoding, channel_ids, frame_id)
            self._publisher.publish(msg)
            self.latency.add(time.monotonic() - captured)
            self.seq += 1
            self.published += 1

    def _publish_diagnostics(self) -> None:
        level, message, hardware_id, values = self.health()
        p99 = self.latency.percentile(99)
        if level == OK and p99 > LATENCY_WARN_S:
            level, message = WARN, f"publish latency p99 {p99 * 1e3:.1f} ms"
        values = {
            "stream_id": self.params.get("stream_id", ""),
            "frames_published": self.published,
            "timeline_restarts": self.timeline_restarts,
            "latency_p50_ms": f"{self.latency.percentile(50) * 1e3:.3f}",
            "latency_p99_ms": f"{p99 * 1e3:.3f}",
            **values,
        }
        self._diagnostics_publisher.publish(diagnostic_array(self, level, message, hardware_id, values))

