"""Floods on other frame_ids against a live stream, over real DDS and real processes (issue 16, defect 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import ROOT
from hostile import audio_frame

pytestmark = pytest.mark.ros

RATE = 16000
BLOCK_FRAMES = 10
FLOODS = (("frames", 20000), ("formats", 2000), ("streams", 5000))  # the external probe's bursts


def speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.7 * t)) / RATE
    mono = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.1
    return np.stack([mono, 0.7 * mono], axis=1).astype(np.float32)


def run_flooded_stream(rclpy_context, max_stream_speed: float) -> dict:
    """A 10 ms stream on ``head`` at real time through a feature node process while the floods run one
    after the other; returns what the stream suffered."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from ser_robot.ros.conversions import time_to_seconds
    from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS, SENSOR_DATA_QOS
    from ser_robot_msgs.msg import AudioFrame, FeatureFrames

    node = rclpy.create_node("flood_victim")
    blocks, diagnostics = [], []
    node.create_subscription(FeatureFrames, "features", lambda m: blocks.append(
        (m.num_frames, time_to_seconds(m.header.stamp), time.time())) if m.header.frame_id == "head" else None,
        RELIABLE_QOS)
    node.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, DIAGNOSTICS_QOS)
    publisher = node.create_publisher(AudioFrame, "audio", SENSOR_DATA_QOS)
    features = subprocess.Popen(
        [sys.executable, "-m", "ser_robot", "run", "--duration", "120", "--set", "runner.nodes=[features]",
         "--set", f"features.block_frames={BLOCK_FRAMES}", "--set", f"features.max_stream_speed={max_stream_speed}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop = threading.Event()
    signal_ = speech(1.0)
    sent = [0]

    def legit() -> None:  # real time, 10 ms frames, as a microphone
        start = time.time()
        while not stop.is_set():
            i = sent[0]
            chunk = signal_[(i % 100) * 160:(i % 100 + 1) * 160]
            publisher.publish(audio_frame(chunk, RATE, i, start + i * 0.01))
            sent[0] += 1
            time.sleep(max(0.0, start + (i + 1) * 0.01 - time.time()))

    spinner = threading.Thread(target=lambda: [rclpy.spin_once(node, timeout_sec=0.05) for _ in iter(stop.is_set, True)],
                               daemon=True)
    talker = threading.Thread(target=legit, daemon=True)
    floods = []
    try:
        spinner.start()
        deadline = time.monotonic() + 30
        while not blocks and time.monotonic() < deadline:
            if not talker.is_alive() and publisher.get_subscription_count():
                talker.start()
            time.sleep(0.05)
        assert blocks, "no features for the legitimate stream within 30 s"
        time.sleep(2.0)
        flood_start = time.time()
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'test'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        for kind, count in FLOODS:
            flooder = subprocess.run([sys.executable, str(ROOT / "test" / "flood.py"), kind, str(count)], env=env,
                                     capture_output=True, text=True, timeout=120)
            assert flooder.returncode == 0, flooder.stderr
            floods.append(flooder.stdout.strip())
        flood_end = time.time()
        time.sleep(4.0)
    finally:
        stop.set()
        talker.join(5) if talker.is_alive() else None
        features.send_signal(signal.SIGINT)
        output = features.communicate(timeout=30)[0]
        spinner.join(5)
        node.destroy_node()
    sizes = [n for n, _, _ in blocks]
    during = [received - stamp for _, stamp, received in blocks if stamp >= flood_start]
    hurt = [kv.value for d in diagnostics for s in d.status if s.name.endswith("features")
            for kv in s.values if kv.key == "streams_hurt" and "head" in kv.value]
    values = {kv.key: kv.value for d in diagnostics[-1:] for s in d.status for kv in s.values}
    return {"restarts": sum(1 for n in sizes[:-1] if n < BLOCK_FRAMES), "blocks": len(blocks),
            "latency_p95_s": float(np.percentile(during, 95)) if during else float("nan"),
            "latency_max_s": max(during, default=float("nan")), "sent": sent[0], "floods": floods,
            "flood_s": flood_end - flood_start, "hurt": hurt, "diagnostics": values, "output": output[-3000:]}


def test_a_flood_on_other_frame_ids_leaves_the_live_stream_whole(rclpy_context):
    """The probe's three bursts (20,000 frames on one stream, 2,000 format changes, 5,000 new streams), one
    after the other, against a 10 ms stream at real time. Measured 2026-12-07 on this project's 2-core machine
    with an experiment running beside it: without the per-stream budget and gap concealment
    (max_stream_speed 0, conceal_gap_s 0) the live stream restarted 3 times and its features arrived 2.9 s
    late (p95); with the defaults (3x real time, 0.5 s concealed) it restarted once, then not at all, and p95
    was 0.70 and 0.85 s. The floods still cost
    it frames in transport (the subscription's queue is shared by every frame_id), shown per stream."""
    result = run_flooded_stream(rclpy_context, max_stream_speed=float(os.environ.get("FLOOD_MAX_STREAM_SPEED", 3.0)))
    summary = {k: v for k, v in result.items() if k not in ("output", "diagnostics")}
    print(summary)
    assert result["blocks"] >= result["sent"] // BLOCK_FRAMES - 40, summary
    assert result["restarts"] <= 1, summary
    assert result["latency_p95_s"] < 1.5, summary
    values = result["diagnostics"]
    assert int(values["lost_in_transport"]) > 0 and int(values["too_many_streams"]) > 0, values
    assert any(entry.startswith("head: ") or "; head: " in entry for entry in result["hurt"]), summary
