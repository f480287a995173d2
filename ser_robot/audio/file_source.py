"""Audio files streamed as consecutive chunks, as a microphone would deliver them.

A source is a file, a list of files, or folders searched recursively for files soundfile can
read, played in order (optionally looping). Chunks carry each file's own rate and channel
count. Stamps follow the media clock: ``start_time + samples_played / rate`` across files,
so they advance exactly with the sample count whatever the pacing; :class:`Pacer` spaces the
chunks in real time (or ``rate`` times faster).
"""

from __future__ import annotations

import pathlib
import time
from typing import Iterator, Sequence

import numpy as np

from ser_robot.audio.chunk import AudioChunk
from ser_robot.errors import AudioError

__all__ = ["AUDIO_SUFFIXES", "FileSource", "Pacer", "expand_audio_paths"]

READ_CHUNKS = 50
"""Chunks read from the file at once (0.5 s of 10 ms chunks): chunk boundaries do not change."""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf")


def expand_audio_paths(paths: Sequence[str | pathlib.Path]) -> list[pathlib.Path]:
    """Files of ``paths`` in order; folders contribute their audio files, sorted, recursively."""
    files: list[pathlib.Path] = []
    for entry in paths:
        path = pathlib.Path(entry).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise AudioError(
                    f"folder {path} contains no audio files ({', '.join(AUDIO_SUFFIXES)})"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise AudioError(f"audio path {path} does not exist; give a file or a folder")
    if not files:
        raise AudioError("no audio paths given; set 'paths' to files or folders")
    return files


class FileSource:
    """Chunks of ``chunk_ms`` from audio files, as float32 ``(frames, channels)``.

    Args:
        paths: files or folders (see :func:`expand_audio_paths`).
        chunk_ms: chunk duration in ms; a file's last chunk may be shorter.
        loop: restart from the first file after the last, forever.
        channels: if given, every file must have this many channels (else :class:`AudioError`).
    """

    def __init__(
        self,
        paths: Sequence[str | pathlib.Path],
        chunk_ms: float = 10.0,
        loop: bool = False,
        channels: int | None = None,
    ) -> None:
        import soundfile

        self.files = expand_audio_paths(paths)
        self.chunk_ms = chunk_ms
        self.loop = loop
        self.infos = []
        for path in self.files:
            try:
                info = soundfile.info(str(path))
            except Exception as exc:  # soundfile.LibsndfileError and RuntimeError
                raise AudioError(f"cannot read audio file {path}: {exc}") from None
            if channels is not None and info.channels != channels:
                raise AudioError(
                    f"audio file {path} has {info.channels} channel(s); this source is "
                    f"configured for {channels} (set channel_ids to {info.channels} name(s))"
                )
            self.infos.append(info)

    def chunks(self, start_time: float) -> Iterator[AudioChunk]:
        """Yield chunks; the first sample of the first file is stamped ``start_time`` (s)."""
        import soundfile

        played = 0.0
        while True:
            for path, info in zip(self.files, self.infos):
                chunk = max(1, int(round(info.samplerate * self.chunk_ms / 1000.0)))
                with soundfile.SoundFile(str(path)) as audio:
                    # Read READ_CHUNKS chunks at a time: a read per 10 ms chunk costs more than the chunk.
                    for piece in audio.blocks(blocksize=chunk * READ_CHUNKS, dtype="float32", always_2d=True):
                        for begin in range(0, piece.shape[0], chunk):
                            block = piece[begin:begin + chunk]
                            yield AudioChunk(
                                samples=np.ascontiguousarray(block),
                                sample_rate=info.samplerate,
                                time=start_time + played,
                            )
                            played += block.shape[0] / info.samplerate
            if not self.loop:
                return


class Pacer:
    """Sleeps so that media time ``t`` (s since the start) is reached ``t / rate`` s after ``start``.

    ``start`` is a ``clock`` time (monotonic s); None = the first :meth:`wait_until` call.
    """

    def __init__(
        self, rate: float = 1.0, start: float | None = None, clock=time.monotonic, sleep=time.sleep
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._start = start

    def wait_until(self, media_time: float) -> None:
        if self._start is None:
            self._start = self._clock()
        delay = self._start + media_time / self.rate - self._clock()
        if delay > 0:
            self._sleep(delay)
