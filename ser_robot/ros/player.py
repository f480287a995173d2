"""Bag player: republishes a bag's messages with their original timing (like ``ros2 bag play``)."""

from __future__ import annotations

import threading
import time
from typing import Mapping, Sequence

from rclpy.node import Node

from ser_robot.bag.reader import bag_info, read_messages
from ser_robot.bag.timing import PlaybackClock
from ser_robot.errors import BagError
from ser_robot.ros.topics import message_class, qos_for_type

__all__ = ["BagPlayer"]

BEST_EFFORT_DRAIN_S = 0.3


class BagPlayer(Node):
    """Publishes the serialised messages of ``bag`` at ``rate`` times their recorded pace.

    ``remap`` maps recorded topic names to the names to publish on (relative names resolve in
    this node's namespace); ``topics`` restricts playback (recorded names). Audio and feature
    topics are published best effort, everything else reliable. Setting ``stop`` (e.g. from a
    signal handler) ends waiting and playing at once, even inside a long gap between messages.
    """

    def __init__(
        self,
        bag: str,
        rate: float = 1.0,
        loop: bool = False,
        remap: Mapping[str, str] | None = None,
        topics: Sequence[str] | None = None,
        node_name: str = "player",
        stop: threading.Event | None = None,
        **kwargs,
    ) -> None:
        super().__init__(node_name, **kwargs)
        self.bag = bag
        self.loop = loop
        self.stop = stop or threading.Event()
        self.clock = PlaybackClock(rate, sleep=self.stop.wait)
        info = bag_info(bag)
        for warning in info.warnings:
            self.get_logger().warning(f"bag {bag}: {warning}")
        recorded = {t.name: t.msgtype for t in info.topics}
        self.topics = list(topics) if topics else sorted(recorded)
        unknown = sorted(set(self.topics) - set(recorded))
        if unknown:
            raise BagError(f"bag {bag} has no topic(s) {', '.join(unknown)}; it has {', '.join(sorted(recorded))}")
        remap = dict(remap or {})
        self.publishers_by_topic = {
            topic: self.create_publisher(
                self._message_class(topic, recorded[topic]), remap.get(topic, topic), qos_for_type(recorded[topic])
            )
            for topic in self.topics
        }
        self.published = 0

    def _message_class(self, topic: str, msgtype: str) -> type:
        try:
            return message_class(msgtype)
        except BagError as exc:
            raise BagError(f"bag {self.bag}: cannot play topic {topic}: {exc}") from None

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Wait until every publisher has a subscriber, at most ``timeout_s``; True if they all do."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stop.is_set():
            if all(p.get_subscription_count() > 0 for p in self.publishers_by_topic.values()):
                return True
            self.stop.wait(0.05)
        return False

    def play(self) -> int:
        """Publish the bag (forever if looping, until :attr:`stop` is set); return messages published."""
        while not self.stop.is_set():
            self.clock.restart()
            for message in read_messages(self.bag, self.topics):
                self.clock.wait(message.timestamp_ns)
                if self.stop.is_set():
                    break
                self.publishers_by_topic[message.topic].publish(message.cdr)
                self.published += 1
            if not self.loop:
                break
        self._drain()
        return self.published

    def _drain(self, timeout_s: float = 1.0) -> None:
        """Give the last messages time to leave before the node goes away: reliable publishers
        until acknowledged, best-effort ones (no acknowledgements) for a short fixed time."""
        from rclpy.duration import Duration
        from rclpy.qos import ReliabilityPolicy

        for publisher in self.publishers_by_topic.values():
            if publisher.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
                publisher.wait_for_all_acked(Duration(seconds=timeout_s))
        time.sleep(BEST_EFFORT_DRAIN_S)
