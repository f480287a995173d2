import numpy as np
import pytest

from ser_robot.audio.capture import Backoff
from ser_robot.audio.clock import SampleClock
from ser_robot.audio.levels import StreamMonitor, rms_dbfs
from ser_robot.audio.pcm import decode, encode
from ser_robot.errors import AudioFormatError


@pytest.mark.parametrize("encoding, tol", [("s16le", 1 / 32768), ("f32le", 0.0)])
def test_pcm_round_trip_keeps_channel_order(encoding, tol):
    rng = np.random.default_rng(0)
    samples = rng.uniform(-0.9, 0.9, size=(480, 2)).astype(np.float32)
    decoded = decode(encode(samples, encoding), 2, encoding)
    assert decoded.shape == (480, 2)
    np.testing.assert_allclose(decoded, samples, atol=tol)


def test_int16_blocks_are_written_bit_exact():
    block = np.array([[1, -2], [32767, -32768]], dtype=np.int16)
    assert encode(block, "s16le") == block.tobytes()


def test_pcm_errors_name_the_problem():
    with pytest.raises(AudioFormatError, match="not a whole number of s16le frames of 2 channel"):
        decode(b"\x00\x01\x02", 2, "s16le")
    with pytest.raises(AudioFormatError, match="unknown audio encoding 'u8'"):
        decode(b"", 1, "u8")


def test_sample_clock_follows_the_sample_count_and_ignores_jitter():
    clock = SampleClock(48000)
    rng = np.random.default_rng(1)
    stamps = [clock.stamp(480, 100.0 + i * 0.01 + rng.normal(0, 0.004)) for i in range(500)]
    steps = np.diff(stamps)
    np.testing.assert_allclose(steps, 0.01, atol=2e-4)
    assert clock.resyncs == 0


def test_sample_clock_resyncs_after_lost_samples():
    clock = SampleClock(16000, resync_s=0.05)
    clock.stamp(160, 10.0)
    clock.stamp(160, 10.01)
    assert clock.stamp(160, 10.5) == 10.5  # 0.48 s of samples were lost
    assert clock.resyncs == 1


def test_stream_monitor_counts_gaps_and_levels():
    monitor = StreamMonitor()
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(480) / 48000)
    block = np.stack([tone, np.zeros(480)], axis=1)
    for seq in (0, 1, 2, 5, 6):
        monitor.update(seq, block)
    report = monitor.report()
    assert (report.frames, report.seq_gaps, report.frames_lost) == (5, 1, 2)
    assert report.rms_dbfs[0] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)
    assert report.rms_dbfs[1] == -120.0
    assert monitor.report().frames == 0


def test_rms_dbfs_of_full_scale_sine():
    sine = np.sin(2 * np.pi * np.arange(48000) / 48)[:, None]
    assert rms_dbfs(sine)[0] == pytest.approx(-3.01, abs=0.01)


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(initial_s=0.25, max_s=1.0)
    assert [backoff.failed(0.0) for _ in range(4)] == [0.25, 0.5, 1.0, 1.0]
    assert not backoff.ready(0.5) and backoff.ready(1.0)
    backoff.reset()
    assert backoff.failed(0.0) == 0.25
