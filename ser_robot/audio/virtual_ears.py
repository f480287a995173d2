"""A PulseAudio virtual two-ear device: a null sink whose monitor is the default input.

Audio played into the sink (``paplay``) comes back out of its ``.monitor`` source, which
PortAudio/sounddevice captures through ALSA's ``pulse`` device. Tests, the demo and the
benchmark use it to exercise the real capture path without hardware. Needs the Debian
packages pulseaudio, pulseaudio-utils and libasound2-plugins.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time

from ser_robot.errors import AudioDeviceError

__all__ = ["VirtualEars"]

SINK = "ser_ears"


class VirtualEars:
    """Starts (or reuses) a PulseAudio daemon with the ``ser_ears`` stereo null sink.

    Sets ``PULSE_SERVER`` (and ``XDG_RUNTIME_DIR`` when unset) in this process' environment so
    that child processes and PortAudio reach the same daemon. Use as a context manager; the
    daemon is stopped on exit only if this object started it.
    """

    def __init__(self, sample_rate: int = 48000, runtime_dir: str | None = None) -> None:
        self.sample_rate = sample_rate
        self.runtime_dir = pathlib.Path(
            runtime_dir or os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/ser-robot-xdg-{os.getuid()}"
        )
        self.started_daemon = False

    @property
    def server(self) -> str:
        return f"unix:{self.runtime_dir}/pulse/native"

    def _pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], capture_output=True, text=True, check=check, timeout=10)

    def start(self) -> "VirtualEars":
        for tool in ("pulseaudio", "pactl", "paplay"):
            if shutil.which(tool) is None:
                raise AudioDeviceError(
                    f"'{tool}' not found: install pulseaudio and pulseaudio-utils "
                    "(make setup does this)"
                )
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.runtime_dir))
        os.environ["PULSE_SERVER"] = self.server
        if self._pactl("info", check=False).returncode != 0:
            subprocess.run(
                [
                    "pulseaudio", "--daemonize=yes", "-n", "--exit-idle-time=-1",
                    "--disallow-exit", "--use-pid-file=yes",
                    "--load=module-native-protocol-unix",
                    "--load=module-always-sink",
                ],
                check=True, capture_output=True, timeout=20,
                env={**os.environ, "XDG_RUNTIME_DIR": str(self.runtime_dir)},
            )
            self.started_daemon = True
            deadline = time.monotonic() + 10
            while self._pactl("info", check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise AudioDeviceError(f"PulseAudio did not come up at {self.server}")
                time.sleep(0.1)
        sinks = self._pactl("list", "short", "sinks").stdout
        if SINK not in sinks.split():
            self._pactl(
                "load-module", "module-null-sink", f"sink_name={SINK}", "channels=2",
                "channel_map=front-left,front-right", f"rate={self.sample_rate}",
                f"sink_properties=device.description={SINK}",
            )
        self._pactl("set-default-sink", SINK)
        self._pactl("set-default-source", f"{SINK}.monitor")
        return self

    def play(self, path: str | pathlib.Path) -> subprocess.Popen:
        """Start playing an audio file into the ears; returns the ``paplay`` process."""
        return subprocess.Popen(
            ["paplay", f"--device={SINK}", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        if self.started_daemon:
            subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=10,
                           env={**os.environ, "XDG_RUNTIME_DIR": str(self.runtime_dir)})
            self.started_daemon = False

    def __enter__(self) -> "VirtualEars":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
