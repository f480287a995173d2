"""record -> play -> record: every message and its timing survive a round trip over DDS."""

import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, ser_robot, write_stereo_tones
from ser_robot.bag import bag_info, read_messages

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


def test_play_errors_are_clear(tmp_path):
    result = ser_robot("play", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert "bag" in result.stderr and "does not exist" in result.stderr
