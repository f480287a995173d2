"""record -> play -> record: every message and its timing survive a round trip over DDS."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from audio_publisher import frame_data
from conftest import ROOT, ser_robot, write_stereo_tones
from ser_robot.bag import BagWriter, bag_info, read_messages

pytestmark = pytest.mark.ros

# Replayed inter-message intervals stay within this of the recorded ones (median / 95th pct).
MEDIAN_TOLERANCE_S = 0.002
P95_TOLERANCE_S = 0.010


def test_record_play_round_trip(tmp_path):
    wav = tmp_path / "tones.wav"
    write_stereo_tones(wav, seconds=1.5, rate=16000)
    original = tmp_path / "original"
    result = ser_robot(
        "run", "--duration", "30",
        "--set", "runner.nodes=[file_source, recorder]",
        "--set", f"file_source.paths=[{wav}]",
        "--set", "file_source.chunk_ms=10.0",
        "--set", f"recorder.output={original}",
        "--set", "recorder.topics=[audio]",
    )
    assert result.returncode == 0, result.stderr
    recorded = [m for m in read_messages(original, ["/audio"])]
    assert len(recorded) == 150, f"file source published 150 frames, bag has {len(recorded)}"

    replay = tmp_path / "replay"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "ser_robot", "record", "audio", "-o", str(replay), "--duration", "8"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    time.sleep(1.0)
    played = ser_robot("play", str(original), "--wait-for-subscribers", "10")
    assert played.returncode == 0, played.stderr
    assert "played 150 messages" in played.stdout
    assert recorder.wait(30) == 0, recorder.stdout.read()

    replayed = list(read_messages(replay, ["/audio"]))
    assert [m.cdr for m in replayed] == [m.cdr for m in recorded]
    original_steps = np.diff([m.timestamp_ns for m in recorded]) / 1e9
    replay_steps = np.diff([m.timestamp_ns for m in replayed]) / 1e9
    error = np.abs(replay_steps - original_steps)
    assert np.median(error) < MEDIAN_TOLERANCE_S and np.percentile(error, 95) < P95_TOLERANCE_S, error
    info = bag_info(replay)
    assert info.topics[0].type_hash == bag_info(original).topics[0].type_hash


def test_record_sqlite3_storage(tmp_path):
    """`ser-robot record --storage sqlite3` records a live publisher and closes its bag: SQLite
    connections work only in the thread that opened them, and the recorder node's bag used to be
    opened by the main thread and flushed, written and closed by its executor's thread (the
    recorder hung, then printed a sqlite3.ProgrammingError)."""
    bag = tmp_path / "bag"
    publisher = subprocess.Popen([sys.executable, str(ROOT / "test" / "audio_publisher.py"), "audio", "100"],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert publisher.stdout.readline().strip() == "publishing"
        started = time.monotonic()
        result = ser_robot("record", "audio", "--storage", "sqlite3", "--duration", "3", "-o", str(bag), timeout=30)
        elapsed = time.monotonic() - started
    finally:
        publisher.kill()
        publisher.wait(10)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output and "ProgrammingError" not in output, output
    assert elapsed < 20, f"a 3 s recording took {elapsed:.1f} s"

    info = ser_robot("bag-info", str(bag))
    assert info.returncode == 0, info.stderr
    assert "sqlite3" in info.stdout and "/audio" in info.stdout
    frames = [m.deserialize() for m in read_messages(bag, ["/audio"])]
    assert len(frames) >= 150, f"3 s of a 100 Hz publisher, {len(frames)} frames recorded"
    seqs = [int(f.seq) for f in frames]
    assert seqs == sorted(set(seqs))
    assert all(bytes(f.data) == frame_data(f.seq) for f in frames)


def test_play_errors_are_clear(tmp_path):
    result = ser_robot("play", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert "bag" in result.stderr and "does not exist" in result.stderr


def test_play_stops_at_once_on_sigterm(tmp_path, rclpy_context):
    """A player sleeping in a ten-minute gap between two results exits within a second of SIGTERM,
    as a launch system or systemd expects, after reporting what it played."""
    import rclpy
    from rclpy.serialization import serialize_message

    from ser_robot.ros.qos import RELIABLE_QOS
    from ser_robot_msgs.msg import Emotion

    bag = tmp_path / "gap"
    with BagWriter(bag) as writer:
        writer.add_topic("/emotion", "ser_robot_msgs/msg/Emotion")
        for stamp_s in (0, 600):
            writer.write("/emotion", stamp_s * 10**9, serialize_message(Emotion(label="happy")))
    node = rclpy.create_node("sigterm_listener")
    received = []
    node.create_subscription(Emotion, "emotion", received.append, RELIABLE_QOS)
    player = subprocess.Popen([sys.executable, "-m", "ser_robot", "play", str(bag), "--wait-for-subscribers", "30"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not received:  # the first result is out: the player now waits 600 s for the second
            assert player.poll() is None and time.monotonic() < deadline, player.stderr.read()
            rclpy.spin_once(node, timeout_sec=0.1)
        sent = time.monotonic()
        player.send_signal(signal.SIGTERM)
        out, err = player.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        if player.poll() is None:
            player.kill()
            player.wait()
        node.destroy_node()
    assert player.returncode == 0, err
    assert f"played 1 messages from {bag}" in out
    assert elapsed < 3.0, f"play took {elapsed:.1f} s to stop after SIGTERM"


def test_play_refuses_a_fifo_for_metadata(tmp_path):
    """metadata.yaml as a FIFO no one writes to used to block play for ever: now one line at once."""
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        writer.add_topic("/emotion", "ser_robot_msgs/msg/Emotion")
    (bag / "metadata.yaml").unlink()
    os.mkfifo(bag / "metadata.yaml")
    result = ser_robot("play", str(bag), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"ser-robot play: error: bag metadata {bag / 'metadata.yaml'} is a FIFO, not a "
                                     "regular file; a bag holds regular files only: put the real file in its place")
