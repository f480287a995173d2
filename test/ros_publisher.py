"""Helper process for test_ros_messages: publishes one of each message, repeatedly."""

import math
import sys
import time

import rclpy

from ser_robot.ros.qos import RELIABLE_QOS
from ser_robot_msgs.msg import AudioFrame, Emotion, FeatureFrames


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("test_publisher")
    audio = AudioFrame(seq=7, sample_rate=48000, channels=2, channel_ids=["left_ear", "right_ear"],
                       encoding=AudioFrame.ENCODING_S16LE, data=bytes(range(256)) * 2)
    audio.header.frame_id = "head_mics"
    audio.header.stamp.sec, audio.header.stamp.nanosec = 1234, 567
    features = FeatureFrames(seq=3, feature_set="logmel-2", frame_rate=100.0, num_frames=2, num_features=2,
                             feature_names=["mel_000", "mel_001"], data=[0.5, -1.25, 3.0, 1e-3])
    emotion = Emotion(source_id="ears", speech=True, speech_probability=0.9, label="happy", confidence=0.6,
                      labels=["angry", "happy", "neutral", "sad"], probabilities=[0.1, 0.6, 0.2, 0.1],
                      arousal=0.4, valence=math.nan, model_id="test")
    emotion.window_start.sec, emotion.window_end.sec = 10, 13
    pubs = [(node.create_publisher(type(m), name, RELIABLE_QOS), m)
            for name, m in (("audio", audio), ("features", features), ("emotion", emotion))]
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        for pub, msg in pubs:
            pub.publish(msg)
        time.sleep(0.05)
    rclpy.shutdown()


if __name__ == "__main__":
    main()
