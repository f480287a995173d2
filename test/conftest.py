"""Shared fixtures: a ROS domain of our own, rclpy in the test process, the virtual ears."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# One DDS domain per test run, so parallel runs on a machine never hear each other.
os.environ["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


@pytest.fixture(scope="session")
def rclpy_context():
    """rclpy initialised once for the session (nodes in the test process)."""
    import rclpy

    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture(scope="session")
def virtual_ears():
    """The PulseAudio null sink ``ser_ears`` with its monitor as the default input."""
    from ser_robot.audio.virtual_ears import VirtualEars

    with VirtualEars(runtime_dir=f"/tmp/ser-robot-test-xdg-{os.getpid()}") as ears:
        yield ears


def ser_robot(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run the ser-robot command (this checkout) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ser_robot", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs,
    )


def write_stereo_tones(path: pathlib.Path, seconds: float = 2.0, rate: int = 48000,
                       freqs=(440.0, 1000.0), amps=(0.5, 0.1)) -> np.ndarray:
    """A stereo WAV with a different sine in each channel; returns the float samples."""
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    samples = np.stack([a * np.sin(2 * np.pi * f * t) for f, a in zip(freqs, amps)], axis=1)
    soundfile.write(str(path), samples.astype(np.float32), rate, subtype="PCM_16")
    return samples
