"""Recorder node: subscribes to topics as serialised messages and writes a rosbag2 bag."""

from __future__ import annotations

import datetime
import sys
import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ser_robot.bag.writer import ThreadedBagWriter
from ser_robot.errors import SerRobotError
from ser_robot.ros.diagnostics import OK, WARN, diagnostic_array
from ser_robot.ros.params import declare_parameters, read_parameters
from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS, SENSOR_DATA_QOS
from ser_robot.ros.topics import message_class

__all__ = ["RecorderNode", "default_bag_path", "main"]

DISCOVERY_PERIOD_S = 0.2
# The bag is flushed to disk this often (s): a killed recorder loses at most about this much
# (docs/bags.md has the measured bound), for one chunk record and one fsync per period.
FLUSH_PERIOD_S = 1.0


def default_bag_path() -> str:
    return datetime.datetime.now().strftime("bags/ser_robot_%Y%m%d_%H%M%S")


class RecorderNode(LifecycleNode):
    """Records ``topics`` into a bag while active (like ``ros2 bag record``).

    Each topic is subscribed as soon as a publisher of it is discovered, with reliable QoS when
    every publisher offers it and best effort otherwise. Messages are stamped with their receive
    time. The bag is flushed to disk every ``FLUSH_PERIOD_S``, so a killed recorder leaves a bag
    that ``ser-robot bag-reindex`` recovers. The bag is closed on deactivation, on shutdown, or
    after ``max_duration_s``; then :attr:`finished` is set.

    Transitions run on the thread that triggers them (``ser-robot record``: the main thread),
    timers and subscriptions on the executor's thread: the bag lives on a thread of its own
    (:class:`ThreadedBagWriter`), as SQLite 3 storage works only in the thread that opened it.
    """

    KIND = "recorder"

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(node_name or self.KIND, **kwargs)
        declare_parameters(self, self.KIND)
        self.params: dict[str, Any] = {}
        self.writer: ThreadedBagWriter | None = None
        self.bag_path = ""
        self.finished = threading.Event()
        self._topics: list[str] = []
        self._recorded: dict[str, Any] = {}
        self._lock = threading.Lock()  # guards writer and _recorded: transitions and callbacks run on two threads
        self._rec_timers: list[Any] = []
        self._diagnostics_publisher = None
        self._start_ns = 0

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = read_parameters(self, self.KIND)
        except SerRobotError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        self.bag_path = self.params["output"] or default_bag_path()
        self._topics = [self.resolve_topic_name(t) for t in self.params["topics"]]
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.writer = ThreadedBagWriter(self.bag_path, storage=self.params["storage"])
        except SerRobotError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        self.finished.clear()
        self._start_ns = self.get_clock().now().nanoseconds
        self._rec_timers = [
            self.create_timer(DISCOVERY_PERIOD_S, self._discover),
            self.create_timer(FLUSH_PERIOD_S, self._flush),
            self.create_timer(1.0, self._publish_diagnostics),
        ]
        self._discover()
        self.get_logger().info(f"recording {', '.join(self._topics)} into {self.bag_path}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_recording()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
            self._diagnostics_publisher = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_recording()
        return TransitionCallbackReturn.SUCCESS

    def stop_recording(self) -> None:
        """Unsubscribe and close the bag (idempotent)."""
        for timer in self._rec_timers:
            self.destroy_timer(timer)
        self._rec_timers = []
        with self._lock:
            for subscription in self._recorded.values():
                self.destroy_subscription(subscription)
            self._recorded = {}
            if self.writer is not None:
                self.writer.close()
                counts = ", ".join(f"{t}: {n}" for t, n in self.writer.counts.items()) or "nothing"
                self.get_logger().info(f"closed bag {self.bag_path} ({counts})")
                self.writer = None
        self.finished.set()

    def _discover(self) -> None:
        limit = self.params["max_duration_s"]
        if limit and (self.get_clock().now().nanoseconds - self._start_ns) / 1e9 >= limit:
            self.stop_recording()
            return
        types = dict(self.get_topic_names_and_types())
        for topic in self._topics:
            if topic in self._recorded or topic not in types:
                continue
            msgtype = types[topic][0]
            try:
                with self._lock:
                    if self.writer is None:
                        return
                    self.writer.add_topic(topic, msgtype)
                msg_class = message_class(msgtype)
            except SerRobotError as exc:
                self.get_logger().error(str(exc))
                continue
            self._recorded[topic] = self.create_subscription(
                msg_class,
                topic,
                lambda data, topic=topic: self._write(topic, data),
                self._qos(topic),
                raw=True,
            )

    def _qos(self, topic: str) -> QoSProfile:
        publishers = self.get_publishers_info_by_topic(topic)
        reliable = bool(publishers) and all(
            p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers
        )
        return RELIABLE_QOS if reliable else SENSOR_DATA_QOS

    def _write(self, topic: str, data: bytes) -> None:
        stamp = self.get_clock().now().nanoseconds
        with self._lock:
            if self.writer is not None:
                self.writer.write(topic, stamp, data)

    def _flush(self) -> None:
        with self._lock:
            if self.writer is not None:
                self.writer.flush()

    def _publish_diagnostics(self) -> None:
        missing = [t for t in self._topics if t not in self._recorded]
        writer = self.writer  # stop_recording may set it to None meanwhile
        counts = writer.counts if writer is not None else {}
        level, message = (WARN, f"waiting for {', '.join(missing)}") if missing else (OK, "recording")
        values = {"bag": self.bag_path, **{f"messages{t}": n for t, n in counts.items()}}
        self._diagnostics_publisher.publish(diagnostic_array(self, level, message, "bag", values))


def main(args: list[str] | None = None) -> int:
    """``ros2 run ser_robot recorder_node`` (lifecycle node: configured and activated at start)."""
    from ser_robot.ros.runner import spin_single

    return spin_single(RecorderNode, args if args is not None else sys.argv)
