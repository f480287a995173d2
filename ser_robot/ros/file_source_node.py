"""File source node: audio files published as ``AudioFrame`` on ``audio``, paced in real time."""

from __future__ import annotations

import sys
import time
from typing import Iterator

from ser_robot.audio.chunk import AudioChunk
from ser_robot.audio.file_source import FileSource, Pacer
from ser_robot.ros.audio_source_node import AudioSourceNode
from ser_robot.ros.diagnostics import OK

__all__ = ["FileSourceNode", "main"]


class FileSourceNode(AudioSourceNode):
    """Streams files or folders (``paths``) at ``rate`` times real time, optionally looping.

    Stamps follow the media clock from the activation time, so they advance exactly with the
    sample count. Every file must have as many channels as ``channel_ids`` names.
    """

    KIND = "file_source"

    def __init__(self, node_name: str | None = None, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.source: FileSource | None = None
        self._chunks: Iterator[AudioChunk] | None = None
        self._pacer: Pacer | None = None
        self._start_time = 0.0

    def open_source(self) -> None:
        p = self.params
        self.source = FileSource(
            p["paths"], chunk_ms=p["chunk_ms"], loop=p["loop"], channels=len(p["channel_ids"])
        )
        self.get_logger().info(
            f"{len(self.source.files)} file(s), rate x{p['rate']:g}, loop={p['loop']}"
        )

    def start_source(self) -> None:
        assert self.source is not None
        self.finished.clear()
        delay = self.params["start_delay_s"]
        self._pacer = Pacer(self.params["rate"], start=time.monotonic() + delay)
        self._start_time = time.time() + delay
        self._chunks = self.source.chunks(self._start_time)

    def read_chunk(self) -> tuple[AudioChunk, float] | None:
        assert self._chunks is not None and self._pacer is not None
        chunk = next(self._chunks, None)
        if chunk is None:
            self.finished.set()
            self.get_logger().info("end of files")
            return None
        # Publish when the chunk's last sample would have been captured, as a microphone does.
        self._pacer.wait_until(chunk.time - self._start_time + chunk.duration)
        return chunk, time.monotonic()

    def health(self):
        files = len(self.source.files) if self.source else 0
        state = "finished" if self.finished.is_set() else "streaming"
        return OK, state, "files", {"files": files, "rate": self.params["rate"]}


def main(args: list[str] | None = None) -> int:
    """``ros2 run ser_robot file_source_node`` (lifecycle node: configure and activate it)."""
    from ser_robot.ros.runner import spin_single

    return spin_single(FileSourceNode, args if args is not None else sys.argv)
