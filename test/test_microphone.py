"""Microphone node against the PulseAudio virtual two-ear device: the real capture path."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, ser_robot, write_stereo_tones
from ser_robot.config import validate_node_params
from ser_robot.ros.qos import SENSOR_DATA_QOS

pytestmark = [pytest.mark.ros, pytest.mark.audio]

RATE = 48000
SETTLE_FRAMES = 200  # frames (2 s at the default 10 ms) captured before the tones and the stamp check


def _dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[np.argmax(spectrum)])


def test_capture_through_virtual_ears(rclpy_context, virtual_ears, tmp_path):
    import rclpy
    from ser_robot.ros.conversions import audio_frame_samples, time_to_seconds
    from ser_robot_msgs.msg import AudioFrame

    wav = tmp_path / "tones.wav"
    write_stereo_tones(wav, seconds=2.0, rate=RATE, freqs=(440.0, 1000.0), amps=(0.5, 0.1))
    node = rclpy.create_node("mic_test_subscriber")
    frames = []
    node.create_subscription(AudioFrame, "audio", lambda m: frames.append((m, time.time())), SENSOR_DATA_QOS)
    mic = subprocess.Popen(
        [sys.executable, "-m", "ser_robot", "run", "--duration", "30",
         "--set", "runner.nodes=[microphone]", "--set", "microphone.device=pulse",
         "--set", f"microphone.sample_rate={RATE}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while len(frames) < SETTLE_FRAMES and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert len(frames) >= SETTLE_FRAMES, f"{len(frames)} AudioFrames from the microphone node in 20 s"
        player = virtual_ears.play(wav)
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        assert player.wait(10) == 0, player.stderr.read()
    finally:
        mic.send_signal(signal.SIGINT)
        output = mic.communicate(timeout=20)[0]
        node.destroy_node()
    msgs = [m for m, _ in frames]
    first = msgs[0]
    assert (first.sample_rate, first.channels, first.encoding) == (RATE, 2, "s16le"), output
    assert list(first.channel_ids) == ["left_ear", "right_ear"]
    assert first.header.frame_id == "head_mics"
    seqs = np.array([m.seq for m in msgs])
    assert np.all(np.diff(seqs) == 1), f"sequence gaps at {np.nonzero(np.diff(seqs) != 1)}"
    sizes = np.array([len(m.data) // 4 for m in msgs])
    chunk_s = validate_node_params("microphone", {})["chunk_ms"] / 1000  # the default
    assert np.all(sizes == round(RATE * chunk_s))
    stamps = np.array([time_to_seconds(m.header.stamp) for m in msgs])
    # Stamps advance with the sample count (one chunk per frame) except at rare clock resyncs, once
    # the capture has settled: a fresh PulseAudio server's first stream reports capture times that
    # step ahead by about 0.2 s within its first seconds, and the clock re-anchors to them.
    steps = np.diff(stamps[SETTLE_FRAMES:])
    assert np.mean(np.abs(steps - chunk_s) < 1e-4) > 0.99, steps
    assert abs(stamps[-1] - frames[-1][1]) < 0.5  # on the system clock, near reception time
    audio = np.concatenate([audio_frame_samples(m) for m in msgs])
    loud = np.nonzero(np.abs(audio[:, 0]) > 0.25)[0]
    assert len(loud) > RATE, "the played tones were not captured"
    segment = audio[loud[0] + RATE // 4 : loud[0] + RATE // 4 + RATE]
    assert _dominant_hz(segment[:, 0]) == pytest.approx(440, abs=2)
    assert _dominant_hz(segment[:, 1]) == pytest.approx(1000, abs=2)
    level_db = 10 * np.log10(np.mean(segment**2, axis=0))
    assert level_db == pytest.approx([20 * np.log10(0.5 / np.sqrt(2)), 20 * np.log10(0.1 / np.sqrt(2))], abs=1.0)


def test_missing_device_is_a_clear_startup_error(virtual_ears):
    result = ser_robot("run", "--duration", "5", "--set", "runner.nodes=[microphone]",
                       "--set", "microphone.device=no_such_microphone_xyz")
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "no input device matches 'no_such_microphone_xyz'" in log
    assert "Available input devices: [0] pulse" in log
    assert "failed to configure" in log


def test_bad_parameter_is_rejected_naming_it():
    result = ser_robot("run", "--duration", "5", "--set", "microphone.chunk_ms=0")
    assert result.returncode == 2
    assert "node 'microphone': key 'chunk_ms' must be a number from 1.0 to 1000.0, got 0.0" in result.stderr


def test_node_rejects_out_of_range_override(rclpy_context):
    from rclpy.exceptions import InvalidParameterValueException
    from rclpy.parameter import Parameter

    from ser_robot.ros.microphone_node import MicrophoneNode

    with pytest.raises(InvalidParameterValueException, match="sample_rate"):
        MicrophoneNode("bad_microphone", parameter_overrides=[Parameter("sample_rate", value=-5)])


def test_reconnect_leaves_other_streams_of_the_process_running(virtual_ears):
    """A capture's reconnect must not re-initialise PortAudio under the other streams of its process."""
    from ser_robot.audio.capture import SoundDeviceCapture
    from ser_robot.audio.devices import open_streams

    first, second = SoundDeviceCapture("pulse", RATE), SoundDeviceCapture("pulse", RATE)
    first.open()
    second.open()
    try:
        assert open_streams() == 2
        # The first PortAudio stream of a process takes about 2 s to deliver through PulseAudio, so
        # the stall check reopens it once: wait until the first capture delivers steadily.
        deadline, steady = time.monotonic() + 15, 0
        while steady < 50 and time.monotonic() < deadline:
            steady = steady + 1 if first.read(timeout=0.1) is not None else 0
        reconnects = first.stats.reconnects
        second.close()  # as after a stall; the back-off is ready, so supervising reconnects at once
        second._supervise()
        assert (second.stats.reconnects, second.connected, second.stats.last_error) == (1, True, "")
        while first.read(timeout=0) is not None:  # blocks captured before the reconnect
            pass
        time.sleep(0.5)
        delivered = 0
        while first.read(timeout=0) is not None:
            delivered += 1
        assert delivered >= 25, f"the other stream delivered {delivered} 10 ms blocks in 0.5 s after the reconnect"
        assert first.stats.reconnects == reconnects
    finally:
        first.close()
        second.close()
    assert open_streams() == 0


def test_device_refresh_reinitialises_portaudio_only_without_open_streams(virtual_ears, monkeypatch):
    from ser_robot.audio.capture import SoundDeviceCapture
    from ser_robot.audio.devices import _sounddevice, list_input_devices

    sd = _sounddevice()
    calls = []
    terminate = sd._terminate
    monkeypatch.setattr(sd, "_terminate", lambda: (calls.append("terminate"), terminate())[1])
    capture = SoundDeviceCapture("pulse", RATE)
    capture.open()
    try:
        assert any("pulse" in d.name for d in list_input_devices(refresh=True))
        assert calls == []
    finally:
        capture.close()
    assert any("pulse" in d.name for d in list_input_devices(refresh=True))
    assert calls == ["terminate"]


def test_audio_server_outage_starts_a_new_time_line(rclpy_context, virtual_ears):
    """The sound server dies for 4 s: the microphone reopens its device, publishes seq from 0 again, and the
    feature node's stamps follow the present instead of staying seconds in the past (issue 16, defect 1)."""
    import os

    import rclpy
    from ser_robot.ros.conversions import time_to_seconds
    from ser_robot.ros.qos import RELIABLE_QOS
    from ser_robot_msgs.msg import AudioFrame, FeatureFrames

    node = rclpy.create_node("outage_test_subscriber")
    frames, blocks = [], []
    node.create_subscription(AudioFrame, "audio", lambda m: frames.append((m.seq, time.time())), SENSOR_DATA_QOS)
    node.create_subscription(FeatureFrames, "features",
                             lambda m: blocks.append((time_to_seconds(m.header.stamp), time.time())), RELIABLE_QOS)
    pipeline = subprocess.Popen(
        [sys.executable, "-m", "ser_robot", "run", "--duration", "60",
         "--set", "runner.nodes=[microphone, features]", "--set", "microphone.device=pulse",
         "--set", f"microphone.sample_rate={RATE}", "--set", "microphone.reconnect_max_s=0.5",
         "--set", "features.vad=false"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )

    def spin_until(done, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)

    try:
        spin_until(lambda: len(blocks) >= 30, 30)  # 3 s of features
        assert len(blocks) >= 30, f"{len(blocks)} feature blocks in 30 s"
        subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=10,
                       env={**os.environ, "XDG_RUNTIME_DIR": str(virtual_ears.runtime_dir)})
        outage = time.time()
        spin_until(lambda: False, 4.0)
        virtual_ears.start()
        returned, back = time.time(), len(frames)
        spin_until(lambda: len(frames) > back + 300 and blocks[-1][1] > time.time() - 0.5, 20)  # 3 s of audio
    finally:
        pipeline.send_signal(signal.SIGINT)
        output = pipeline.communicate(timeout=20)[0]
        node.destroy_node()
    seqs = np.array([seq for seq, _ in frames])
    restarts = np.nonzero(np.diff(seqs) != 1)[0]
    assert len(restarts) == 1 and seqs[restarts[0] + 1] == 0, (restarts, output[-2000:])
    assert frames[restarts[0] + 1][1] > outage + 3.5
    reconnected_s = frames[restarts[0] + 1][1] - returned  # the back-off is at most reconnect_max_s (0.5 s)
    assert reconnected_s < 5.0, f"audio again {reconnected_s:.2f} s after the server came back"
    late = np.array([received - stamp for stamp, received in blocks if received > frames[restarts[0] + 1][1] + 1.0])
    assert len(late) >= 10, output[-2000:]
    # Before the fix, the stamps stayed on the old time line: 4 s and more behind their reception.
    assert np.median(late) < 1.0, f"features arrive {np.median(late):.2f} s after their stamps (median)"
    print(f"outage: audio again {reconnected_s:.2f} s after the server came back; features "
          f"{np.median(late):.2f} s after their stamps (median) afterwards")
