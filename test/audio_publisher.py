"""Helper process for test_record_kill: a microphone stand-in publishing numbered AudioFrames.

``python audio_publisher.py TOPIC RATE_HZ``: 10 ms stereo s16 frames (1920 bytes, each byte
``seq % 251``) with ``seq`` counting from 0, reliable QoS, until killed. Prints ``publishing``
once the first frame is out.
"""

import sys
import time

import rclpy

from ser_robot.ros.qos import RELIABLE_QOS
from ser_robot_msgs.msg import AudioFrame

FRAME_BYTES = 1920


def frame_data(seq: int) -> bytes:
    return bytes([seq % 251]) * FRAME_BYTES


def main() -> None:
    topic, rate = sys.argv[1], float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("audio_publisher")
    publisher = node.create_publisher(AudioFrame, topic, RELIABLE_QOS)
    start, seq = time.monotonic(), 0
    while rclpy.ok():
        frame = AudioFrame(seq=seq, sample_rate=48000, channels=2, channel_ids=["left_ear", "right_ear"],
                           encoding=AudioFrame.ENCODING_S16LE, data=frame_data(seq))
        frame.header.frame_id = "head_mics"
        frame.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(frame)
        if seq == 0:
            print("publishing", flush=True)
        seq += 1
        time.sleep(max(0.0, start + seq / rate - time.monotonic()))


if __name__ == "__main__":
    main()
