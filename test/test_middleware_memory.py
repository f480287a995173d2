"""Oversized frames must not pin a node's memory (issue 16, soak).

rmw_fastrtps' default history keeps, in every slot of a reader's history, the largest payload
the slot ever held: a burst of 400 kB hostile frames on ``audio`` (depth 400) kept about 80 MB
for the life of the feature node. ser_robot's processes load ``ser_robot/ros/fastdds_profiles.xml``
(readers free each payload once taken). The control arm runs the same reader with rmw's default
profile and shows the memory that the profile gives back.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from ser_robot.ros import middleware

HERE = pathlib.Path(__file__).parent
FRAME_BYTES = 400_000  # below Fast DDS' 0.5 MB shared-memory segment, so every frame arrives
FRAMES = 400


def test_configure_environment_keeps_the_users_own_profiles():
    env: dict[str, str] = {}
    assert middleware.configure_environment(env)
    assert pathlib.Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]) == middleware.PROFILES_FILE
    assert middleware.PROFILES_FILE.is_file()
    assert env["RMW_FASTRTPS_USE_QOS_FROM_XML"] == "1"
    own = {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/robot/dds.xml"}
    assert not middleware.configure_environment(own)
    assert own == {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/robot/dds.xml"}
    assert not middleware.configure_environment({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"})


def _burst(topic: str) -> None:
    """Publish FRAMES frames, every other one FRAME_BYTES long, on ``topic`` (best effort)."""
    import rclpy
    from rclpy.node import Node

    from ser_robot.ros.qos import SENSOR_DATA_QOS
    from ser_robot_msgs.msg import AudioFrame

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node("burst", context=context)
        publisher = node.create_publisher(AudioFrame, topic, SENSOR_DATA_QOS)
        deadline = time.monotonic() + 10
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        small, big = bytes(640), bytes(FRAME_BYTES)
        for seq in range(FRAMES):
            frame = AudioFrame(seq=seq, sample_rate=16000, channels=1, encoding="s16le")
            frame.data = big if seq % 2 else small
            publisher.publish(frame)
            time.sleep(0.005)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def _held_memory(topic: str, env: dict[str, str]) -> dict:
    reader = subprocess.Popen([sys.executable, str(HERE / "busy_reader.py"), topic, "6", "3"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().startswith('{"ready"'), reader.stderr.read()
        _burst(topic)
        out, err = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.ros
def test_oversized_frames_are_freed_once_taken(tmp_path):
    rmw_default = tmp_path / "rmw_default.xml"  # a profile file of the user's: ours is not loaded
    rmw_default.write_text('<?xml version="1.0"?><dds xmlns="http://www.eprosima.com"><profiles>'
                           '<data_reader profile_name="unused"/></profiles></dds>\n')
    control = _held_memory("/probe_audio_control", {**os.environ, "FASTDDS_DEFAULT_PROFILES_FILE": str(rmw_default)})
    ours = _held_memory("/probe_audio_ours", {k: v for k, v in os.environ.items()
                                              if k not in ("FASTDDS_DEFAULT_PROFILES_FILE", "RMW_FASTRTPS_USE_QOS_FROM_XML")})
    for run in (control, ours):
        assert run["received"] >= FRAMES // 2, run  # the burst reached the history
        assert run["held_mb"] - run["before_mb"] > 30, run  # and occupied it
    assert control["after_mb"] - control["before_mb"] > 30, control  # rmw's default keeps it...
    assert ours["after_mb"] - ours["before_mb"] < 10, ours  # ...ours gives it back
