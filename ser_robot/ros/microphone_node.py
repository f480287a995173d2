"""Microphone node: a sounddevice input stream published as ``AudioFrame`` on ``audio``."""

from __future__ import annotations

import sys

from ser_robot.audio.capture import SoundDeviceCapture
from ser_robot.audio.chunk import AudioChunk
from ser_robot.ros.audio_source_node import AudioSourceNode
from ser_robot.ros.diagnostics import ERROR, OK, WARN

__all__ = ["MicrophoneNode", "main"]


class MicrophoneNode(AudioSourceNode):
    """Captures the robot's ears. See ``config/ser.yaml`` (section ``microphone``) for parameters.

    The PortAudio callback only copies each block into a bounded queue; this node's publishing
    thread stamps and publishes. Overflows, queue drops and reconnects appear on ``diagnostics``;
    a device lost mid-stream is reopened with back-off while diagnostics say ERROR.
    """

    KIND = "microphone"

    def __init__(self, node_name: str | None = None, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.capture: SoundDeviceCapture | None = None

    def open_source(self) -> None:
        p = self.params
        self.capture = SoundDeviceCapture(
            device=p["device"],
            sample_rate=p["sample_rate"],
            channels=p["channels"],
            chunk_ms=p["chunk_ms"],
            encoding=p["encoding"],
            queue_size=p["queue_size"],
            reconnect_max_s=p["reconnect_max_s"],
        )
        # Open once to fail at configure (with the device list) rather than at activate;
        # the stream runs only while the node is active.
        self.capture.open()
        self.capture.close()
        self.get_logger().info(
            f"input device {self.capture.device.describe()}, {self.capture.sample_rate} Hz, "
            f"{p['channels']} channel(s), {p['chunk_ms']:g} ms chunks"
        )

    def start_source(self) -> None:
        assert self.capture is not None
        self.capture.open()

    def stop_source(self) -> None:
        if self.capture is not None:
            self.capture.close()

    def read_chunk(self) -> tuple[AudioChunk, float] | None:
        assert self.capture is not None
        return self.capture.read(timeout=0.1)

    def health(self):
        capture = self.capture
        if capture is None:
            return ERROR, "not configured", "", {}
        stats = capture.stats
        device = capture.device.describe() if capture.device else capture.device_spec
        values = {
            "device": device,
            "sample_rate": capture.sample_rate,
            "channels": capture.channels,
            "chunks": stats.chunks,
            "overflows": stats.overflows,
            "queue_drops": stats.queue_drops,
            "queue_depth": stats.queue_depth,
            "reconnects": stats.reconnects,
            "clock_resyncs": stats.clock_resyncs,
        }
        if not stats.connected and not stats.last_error:  # closed on purpose (deactivated, shutting down)
            return OK, "stopped", device, values
        if not stats.connected:
            return ERROR, f"device lost, reconnecting: {stats.last_error}", device, values
        if stats.overflows or stats.queue_drops:
            return WARN, f"{stats.overflows} overflow(s), {stats.queue_drops} dropped frame(s)", device, values
        return OK, "capturing", device, values


def main(args: list[str] | None = None) -> int:
    """``ros2 run ser_robot microphone_node`` (lifecycle node: configure and activate it)."""
    from ser_robot.ros.runner import spin_single

    return spin_single(MicrophoneNode, args if args is not None else sys.argv)
