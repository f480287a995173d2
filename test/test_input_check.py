"""Input faults the model cannot see (issue 15, bad input): named by the monitor and flagged by the feature node."""

import numpy as np
import pytest

from conftest import Recorder
from ser_robot.audio.input_check import InputMonitor

RATE = 16000


def voice(seconds: float = 1.0, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    mono = level * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.stack([mono, 0.8 * mono], axis=1).astype(np.float32)


def problems(samples: np.ndarray) -> list[str]:
    monitor = InputMonitor()
    for start in range(0, len(samples), 160):  # 10 ms chunks, as a microphone delivers them
        monitor.update(samples[start:start + 160])
    return monitor.report(["left_ear", "right_ear"])


def test_clean_speech_and_a_quiet_room_have_no_problem():
    assert problems(voice()) == []
    room = (np.random.default_rng(0).standard_normal((RATE, 2)) * 10 ** (-65 / 20)).astype(np.float32)
    assert problems(room) == []


def test_each_fault_is_named():
    assert any(p.startswith("clipping: ") for p in problems(np.clip(voice(level=3.0), -1.0, 1.0)))
    assert problems(voice() + np.float32(0.2)) == ["dc offset on left_ear: +0.200 of full scale",
                                                  "dc offset on right_ear: +0.200 of full scale"]
    dead = voice()
    dead[:, 1] = 0.0
    assert len(problems(dead)) == 1 and problems(dead)[0].startswith("dead channel right_ear: ")
    assert problems(np.zeros((RATE, 2), np.float32)) == [
        "digital silence on every channel: is the input muted or disconnected?"]


def test_a_period_ends_at_each_report():
    monitor = InputMonitor()
    monitor.update(np.zeros((RATE, 2), np.float32))
    assert monitor.report() and monitor.report() == []  # nothing since: no audio, no problem
    monitor.update(voice()[:, :1])
    assert monitor.report(["left_ear", "right_ear"]) == []  # one channel now: named ch0, no dead-channel check


@pytest.mark.ros
def test_feature_node_flags_a_clipped_stream_on_diagnostics(rclpy_context):
    from hostile import audio_frame
    from rclpy.lifecycle import TransitionCallbackReturn

    from ser_robot.config import validate_node_params
    from ser_robot.ros.feature_node import FeatureNode
    from ser_robot.ros.runner import parameter_overrides


    params = validate_node_params("features", {"feature_set": "logmel_latif2020", "vad": False})
    node = FeatureNode("input_check_features", parameter_overrides=parameter_overrides(params))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        node._features_publisher, node._diagnostics_publisher = Recorder(), Recorder()
        clipped = np.clip(voice(level=3.0), -1.0, 1.0)
        for seq, start in enumerate(range(0, len(clipped), 160)):
            node._on_audio(audio_frame(clipped[start:start + 160], RATE, seq, 10.0 + start / RATE, frame_id="head"))
        node._report()
        status = node._diagnostics_publisher.messages[-1].status[0]
        values = {kv.key: kv.value for kv in status.values}
        assert status.level == b"\x01" and "clipping" in status.message, status.message  # WARN
        assert values["input_problems"].startswith("head: clipping: "), values["input_problems"]
        for seq, start in enumerate(range(0, RATE, 160), start=1000):  # clean again: the next period is clear
            node._on_audio(audio_frame(voice()[start:start + 160], RATE, seq, 20.0 + start / RATE, frame_id="head"))
        node._report()
        values = {kv.key: kv.value for kv in node._diagnostics_publisher.messages[-1].status[0].values}
        assert values["input_problems"] == ""
    finally:
        node.destroy_node()
