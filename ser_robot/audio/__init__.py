"""Audio sources and their building blocks, independent of ROS.

- :mod:`~ser_robot.audio.pcm`: interleaved PCM encode/decode (``s16le``, ``f32le``).
- :mod:`~ser_robot.audio.chunk`: :class:`AudioChunk`, one block of captured samples.
- :mod:`~ser_robot.audio.clock`: :class:`SampleClock`, stamps that follow the sample count.
- :mod:`~ser_robot.audio.devices`: finding sounddevice input devices by index or name.
- :mod:`~ser_robot.audio.capture`: :class:`SoundDeviceCapture`, a callback stream into a queue.
- :mod:`~ser_robot.audio.file_source`: :class:`FileSource`, files streamed as chunks.
- :mod:`~ser_robot.audio.levels`: per-channel level and stream-continuity statistics.
"""

from ser_robot.audio.chunk import AudioChunk
from ser_robot.audio.pcm import ENCODINGS, decode, encode

__all__ = ["AudioChunk", "ENCODINGS", "decode", "encode"]
