"""Live feature pipeline: audio chunks of one stream in, blocks of feature frames (and VAD) out.

Per chunk: channels reduced to one signal (:class:`~ser_robot.audio.channels.ChannelReducer`),
resampled to the extractor's rate (:class:`~ser_robot.audio.resample.StreamingResampler`),
streamed through the extractor (:class:`~ser_robot.features.streaming.StreamingExtractor`) and
optionally through Silero VAD; frames are grouped into blocks of ``block_frames``.

Timing: the stream's time origin is the stamp of the first chunk after a (re)start; frame ``i``
starts ``i * hop / rate`` seconds after it, VAD window ``k`` ``k * 512 / 16000`` seconds after
it. A ``seq`` gap, a ``seq`` that goes back, or a change of rate or channel count ends the
stream: what is pending is flushed as a last (shorter) block, and the next chunk starts a new
stream. Everything here is plain Python (no ROS): the feature node is a thin adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ser_robot.audio.channels import ChannelReducer
from ser_robot.audio.resample import StreamingResampler
from ser_robot.features.base import FrameExtractor
from ser_robot.features.streaming import StreamingExtractor

__all__ = ["FeatureBlock", "PipelineCounters", "FeaturePipeline"]


@dataclass(frozen=True)
class FeatureBlock:
    """Consecutive frames of one stream: ``frames`` ``(n, dims)`` float32; ``start_time`` of frame 0, s."""

    start_time: float
    frames: np.ndarray
    first_index: int  # index of frame 0 within its stream


@dataclass
class PipelineCounters:
    chunks: int = 0
    seq_gaps: int = 0
    samples_lost: int = 0  # estimated from the gap sizes, at the input rate
    restarts: int = 0  # streams started (the first one included)
    frames: int = 0
    vad_windows: int = 0


@dataclass
class _Stream:
    origin: float  # s, time of the stream's first sample
    sample_rate: int
    channels: int
    next_seq: int
    chunk_frames: int  # samples per channel of the last chunk (to estimate losses)
    resampler: StreamingResampler
    reducer: ChannelReducer
    pending: list[np.ndarray] = field(default_factory=list)
    pending_start: int = 0  # frame index of the first pending frame
    vad_pending: list[np.ndarray] = field(default_factory=list)
    vad_start: int = 0


class FeaturePipeline:
    """One audio stream -> :class:`FeatureBlock` lists of features and of VAD probabilities."""

    def __init__(self, extractor: FrameExtractor, block_frames: int = 100, reduction: str = "mean",
                 azimuth_deg: float = 0.0, ear_spacing_m: float = 0.18, vad: bool = False,
                 vad_block_windows: int = 16):
        if block_frames < 1 or vad_block_windows < 1:
            raise ValueError("block_frames and vad_block_windows must be >= 1")
        self.extractor = extractor.eval()
        self.streaming = StreamingExtractor(self.extractor)
        self.block_frames = block_frames
        self.reduction, self.azimuth_deg, self.ear_spacing_m = reduction, azimuth_deg, ear_spacing_m
        ChannelReducer(reduction, 16000, azimuth_deg, ear_spacing_m)  # validate the method now
        self.vad = None
        if vad:
            from ser_robot.features.vad import SileroVad

            if extractor.sample_rate != SileroVad.SAMPLE_RATE:
                raise ValueError(f"VAD needs {SileroVad.SAMPLE_RATE} Hz features input, extractor runs at "
                                 f"{extractor.sample_rate} Hz")
            self.vad = SileroVad()
        self.vad_block_windows = vad_block_windows
        self.counters = PipelineCounters()
        self._stream: _Stream | None = None

    @property
    def frame_rate(self) -> float:
        return self.extractor.sample_rate / self.extractor.hop_length

    def push(self, samples: np.ndarray, sample_rate: int, seq: int, stamp: float,
             channel_ids: Sequence[str] = ()) -> tuple[list[FeatureBlock], list[FeatureBlock]]:
        """Feed one chunk ``(frames, channels)`` float32 at ``sample_rate`` Hz with its ``seq`` and first-sample stamp (s).

        Returns ``(feature_blocks, vad_blocks)`` completed by this chunk (VAD blocks hold
        ``(windows, 1)`` probabilities).
        """
        features: list[FeatureBlock] = []
        vad: list[FeatureBlock] = []
        stream = self._stream
        if stream is not None and (seq != stream.next_seq or sample_rate != stream.sample_rate
                                   or samples.shape[1] != stream.channels):
            if seq > stream.next_seq and sample_rate == stream.sample_rate:
                self.counters.seq_gaps += 1
                self.counters.samples_lost += (seq - stream.next_seq) * stream.chunk_frames
            self._end(features, vad)
            stream = None
        if stream is None:
            stream = self._start(sample_rate, samples.shape[1], seq, stamp)
        self.counters.chunks += 1
        stream.next_seq = seq + 1
        stream.chunk_frames = samples.shape[0]
        mono = stream.resampler.push(stream.reducer(samples, channel_ids))
        self._process(mono, features, vad, final=False)
        return features, vad

    def finish(self) -> tuple[list[FeatureBlock], list[FeatureBlock]]:
        """End the current stream (end of input): flush everything pending."""
        features: list[FeatureBlock] = []
        vad: list[FeatureBlock] = []
        self._end(features, vad)
        return features, vad

    # --- internals ----------------------------------------------------------------------------
    def _start(self, sample_rate: int, channels: int, seq: int, stamp: float) -> _Stream:
        self.streaming.reset()
        if self.vad is not None:
            self.vad.reset()
        self.counters.restarts += 1
        self._stream = _Stream(
            origin=stamp, sample_rate=sample_rate, channels=channels, next_seq=seq, chunk_frames=0,
            resampler=StreamingResampler(sample_rate, self.extractor.sample_rate),
            reducer=ChannelReducer(self.reduction, sample_rate, self.azimuth_deg, self.ear_spacing_m))
        return self._stream

    def _end(self, features: list[FeatureBlock], vad: list[FeatureBlock]) -> None:
        if self._stream is None:
            return
        self._process(self._stream.resampler.flush(), features, vad, final=True)
        self._stream = None

    def _process(self, mono: np.ndarray, features: list[FeatureBlock], vad: list[FeatureBlock], final: bool) -> None:
        stream = self._stream
        frames = self.streaming.push(torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)))
        if final:
            frames = torch.cat([frames, self.streaming.flush()])
        if len(frames):
            stream.pending.append(frames.numpy())
            self.counters.frames += len(frames)
        hop_s = self.extractor.hop_length / self.extractor.sample_rate
        stream.pending_start = self._emit(stream.pending, stream.pending_start, self.block_frames, hop_s,
                                          stream.origin, features, final)
        if self.vad is not None:
            probabilities = self.vad.push(mono)
            if len(probabilities):
                stream.vad_pending.append(probabilities[:, None])
                self.counters.vad_windows += len(probabilities)
            window_s = self.vad.WINDOW / self.vad.SAMPLE_RATE
            stream.vad_start = self._emit(stream.vad_pending, stream.vad_start, self.vad_block_windows, window_s,
                                          stream.origin, vad, final)

    @staticmethod
    def _emit(pending: list[np.ndarray], start: int, size: int, step_s: float, origin: float,
              out: list[FeatureBlock], final: bool) -> int:
        """Move whole blocks of ``size`` rows (and, if ``final``, the rest) from ``pending`` to ``out``."""
        if not pending:
            return start
        rows = np.concatenate(pending)
        pending.clear()
        cut = len(rows) if final else len(rows) - len(rows) % size
        for begin in range(0, cut, size):
            block = rows[begin:min(begin + size, cut)]
            out.append(FeatureBlock(origin + (start + begin) * step_s, block, start + begin))
        if cut < len(rows):
            pending.append(rows[cut:])
        return start + cut
