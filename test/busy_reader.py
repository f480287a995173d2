"""A reader that is busy while frames arrive, then takes them all; prints its RSS in MB as JSON.

Run as a script by test_middleware_memory.py: ``python busy_reader.py TOPIC BUSY_S SPIN_S``.
It starts ROS the way every ser_robot node does (``ser_robot.ros.middleware.init``) and
subscribes with the feature node's audio QoS for 8 streams (depth 400), so DDS keeps up to 400
received frames in the reader's history while the node does not take them.
"""

from __future__ import annotations

import json
import sys
import time

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from ser_robot.ros import middleware
from ser_robot.ros.qos import SENSOR_DATA_QOS, for_streams
from ser_robot_msgs.msg import AudioFrame


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(topic: str, busy_s: float, spin_s: float) -> None:
    middleware.init()
    node = Node("busy_reader")
    received = 0

    def take(_msg: AudioFrame) -> None:
        nonlocal received
        received += 1

    node.create_subscription(AudioFrame, topic, take, for_streams(SENSOR_DATA_QOS, 8))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.spin_once(timeout_sec=0.2)
    before = rss_mb()
    print(json.dumps({"ready": True}), flush=True)
    time.sleep(busy_s)  # busy: DDS fills the history, nothing is taken
    held = rss_mb()
    deadline = time.monotonic() + spin_s
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    print(json.dumps({"received": received, "before_mb": before, "held_mb": held, "after_mb": rss_mb()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
