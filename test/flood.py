"""A flooder: bursts of AudioFrames on frame_ids other than the victim's, as fast as one process can publish.

Run as a separate process (``python test/flood.py KIND COUNT``), so that it competes with the
node under test as a real attacker would and leaves the test process' own publisher alone.
Kinds: ``frames`` (COUNT 10 ms frames on one stream), ``formats`` (COUNT frames on one stream
whose sample rate alternates, each a format change) and ``streams`` (one frame on each of COUNT
new frame_ids).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import rclpy

from hostile import audio_frame
from ser_robot.ros.qos import SENSOR_DATA_QOS
from ser_robot_msgs.msg import AudioFrame

KINDS = ("frames", "formats", "streams")


def frames(kind: str, count: int):
    """The flood's AudioFrames: 10 ms of noise each (16 or 22.05 kHz, stereo)."""
    rng = np.random.default_rng(0)
    noise = {rate: (0.1 * rng.standard_normal((rate // 100, 2))).astype(np.float32) for rate in (16000, 22050)}
    stamp = time.time()
    for i in range(count):
        rate = 22050 if kind == "formats" and i % 2 else 16000
        frame_id = f"flood_{i}" if kind == "streams" else f"flood_{kind}"
        yield audio_frame(noise[rate], rate, i, stamp + i * 0.01, frame_id=frame_id)


def main(kind: str, count: int) -> None:
    rclpy.init()
    node = rclpy.create_node(f"flood_{kind}")
    publisher = node.create_publisher(AudioFrame, "audio", SENSOR_DATA_QOS)
    deadline = time.monotonic() + 10
    while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    messages = list(frames(kind, count))
    start = time.monotonic()
    for msg in messages:
        publisher.publish(msg)
    print(f"{kind}: {count} frames in {time.monotonic() - start:.2f} s", flush=True)
    time.sleep(0.5)  # let the middleware deliver before the process goes
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in KINDS:
        sys.exit(f"usage: python test/flood.py {{{','.join(KINDS)}}} COUNT")
    main(sys.argv[1], int(sys.argv[2]))
