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
    topics are published best effort, everything else reliable.
    """

    def __init__(
        self,
        bag: str,
        rate: float = 1.0,
        loop: bool = False,
        remap: Mapping[str, str] | None = None,
        topics: Sequence[str] | None = None,
        node_name: str = "player",
        **kwargs,
    ) -> None:
        super().__init__(node_name, **kwargs)
        self.bag = bag
        self.loop = loop
        self.clock = PlaybackClock(rate)
        info = bag_info(bag)
        recorded = {t.name: t.msgtype for t in info.topics}
        self.topics = list(topics) if topics else sorted(recorded)
        unknown = sorted(set(self.topics) - set(recorded))
        if unknown:
            raise BagError(f"bag {bag} has no topic(s) {', '.join(unknown)}; it has {', '.join(sorted(recorded))}")
        remap = dict(remap or {})
        self.publishers_by_topic = {
            topic: self.create_publisher(
                message_class(recorded[topic]), remap.get(topic, topic), qos_for_type(recorded[topic])
            )
            for topic in self.topics
        }
        self.published = 0

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Wait until every publisher has a subscriber, at most ``timeout_s``; True if they all do."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self.publishers_by_topic.values()):
                return True
            time.sleep(0.05)
        return False

    def play(self, stop: threading.Event | None = None) -> int:
        """Publish the bag (forever if looping, until ``stop`` is set); return messages published."""
        stop = stop or threading.Event()
        while not stop.is_set():
            self.clock.restart()
            for message in read_messages(self.bag, self.topics):
                if stop.is_set():
                    break
                self.clock.wait(message.timestamp_ns)
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
