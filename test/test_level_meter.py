"""The level meter node: levels of good frames, malformed ones counted (and the node built at all)."""

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn

from conftest import Recorder
from hostile import audio_frame

pytestmark = pytest.mark.ros


def test_levels_and_malformed_frames(rclpy_context):
    from ser_robot.ros.level_meter_node import LevelMeterNode

    node = LevelMeterNode("level_meter_test")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        node._diagnostics_publisher = Recorder()
        tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)).astype(np.float32)
        for seq in range(3):
            node._on_frame(audio_frame(np.stack([tone, 0.1 * tone], axis=1), 16000, seq, 1.0 + seq * 0.1))
        bad = audio_frame(np.stack([tone, tone], axis=1), 16000, 3, 1.3)
        bad.encoding = "mp3"
        node._on_frame(bad)
        node._report()
        values = {kv.key: kv.value for kv in node._diagnostics_publisher.messages[-1].status[0].values}
        assert (node.malformed, node.dropped, values["malformed_total"], values["frames"]) == (1, 1, "1", "3")
        assert float(values["rms_dbfs_left_ear"]) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)
    finally:
        node.destroy_node()
