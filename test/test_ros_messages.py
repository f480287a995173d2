"""ser_robot_msgs round-trip between two processes over real DDS."""

import math
import pathlib
import subprocess
import sys
import time

import pytest

from ser_robot.ros.qos import RELIABLE_QOS

pytestmark = pytest.mark.ros
HERE = pathlib.Path(__file__).resolve().parent


def test_messages_round_trip_between_processes(rclpy_context):
    import rclpy
    from ser_robot_msgs.msg import AudioFrame, Emotion, FeatureFrames

    node = rclpy.create_node("test_subscriber")
    received = {}
    for name, kind in (("audio", AudioFrame), ("features", FeatureFrames), ("emotion", Emotion)):
        node.create_subscription(kind, name, lambda m, name=name: received.setdefault(name, m), RELIABLE_QOS)
    publisher = subprocess.Popen([sys.executable, str(HERE / "ros_publisher.py"), "20"])
    try:
        deadline = time.monotonic() + 20
        while len(received) < 3 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        publisher.terminate()
        publisher.wait(10)
        node.destroy_node()
    assert set(received) == {"audio", "features", "emotion"}
    audio = received["audio"]
    assert (audio.seq, audio.sample_rate, audio.channels, audio.encoding) == (7, 48000, 2, "s16le")
    assert list(audio.channel_ids) == ["left_ear", "right_ear"]
    assert bytes(audio.data) == bytes(range(256)) * 2
    assert (audio.header.stamp.sec, audio.header.stamp.nanosec, audio.header.frame_id) == (1234, 567, "head_mics")
    features = received["features"]
    assert (features.num_frames, features.num_features, features.feature_set) == (2, 2, "logmel-2")
    assert list(features.data) == pytest.approx([0.5, -1.25, 3.0, 1e-3])
    emotion = received["emotion"]
    assert (emotion.label, emotion.speech, emotion.window_end.sec) == ("happy", True, 13)
    assert list(emotion.probabilities) == pytest.approx([0.1, 0.6, 0.2, 0.1])
    assert math.isnan(emotion.valence) and emotion.arousal == pytest.approx(0.4)
