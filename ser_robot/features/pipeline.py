"""Live feature pipeline: audio chunks of one stream in, blocks of feature frames (and VAD) out.

Per chunk: channels reduced to one signal (:class:`~ser_robot.audio.channels.ChannelReducer`),
resampled to the extractor's rate (:class:`~ser_robot.audio.resample.StreamingResampler`),
optionally brought to a fixed long-term level (``level_normalization: agc``,
:class:`~ser_robot.audio.level_normalizer.LevelNormalizer`: the microphone's gain no longer
matters; its state is the stream's (``frame_id``'s) and outlives restarts, as the level is the
microphone's), streamed through the extractor (:class:`~ser_robot.features.streaming.StreamingExtractor`) and
optionally through Silero VAD; frames are grouped into blocks of ``block_frames``, VAD
probabilities into blocks of at most ``vad_block_windows``: the probabilities of the windows
completed so far also leave with every block of frames, so a consumer that needs both (the
inference node) never waits for VAD, with one VAD message per feature block. The work after the
channel reduction waits for the chunk that completes a block of either kind (each stage is
chunk-size invariant): the same blocks come out of the same chunks, with far fewer calls.

Timing: the stream's time origin is the stamp of the first chunk after a (re)start; frame ``i``
starts ``i * hop / rate`` seconds after it, VAD window ``k`` ``k * 512 / 16000`` seconds after
it. Everything here is plain Python (no ROS): the feature node is a thin adapter.

What a chunk does to the stream (``seq`` is the source's per-chunk counter, ``next`` the one
expected after the last accepted chunk; :attr:`FeaturePipeline.last_event` tells which applied):

- ``started``: the first chunk, or the first after :meth:`FeaturePipeline.finish`;
- ``continued``: ``seq == next`` at the stream's rate and channel count, and the stamp within
  ``stamp_tolerance_s`` of where the previous chunk ended (its stamp plus its duration);
- ``out_of_order``: ``next - reorder_window <= seq < next`` and ``seq != 0``: a late or
  repeated chunk. It is dropped and counted; the stream goes on untouched (a duplicate must not
  cut the stream, and its samples are already in, or given up);
- ``format_change``: the rate or channel count differs (a chunk that is not late);
- ``seq_reset``: ``seq == 0`` (the source restarted), ``seq`` further back than
  ``reorder_window`` (a restarted source that does not count from 0), or a jump forward by
  more than :data:`~ser_robot.streams.MAX_SEQ_JUMP` chunks (not a plausible loss)
  (:func:`~ser_robot.streams.classify_seq`, shared with the nodes);
- ``seq_gap``: ``next < seq <= next + MAX_SEQ_JUMP``: chunks were lost; ``samples_lost`` grows
  by the gap times the last chunk's length;
- ``gap_concealed``: a ``seq_gap`` of at most ``conceal_gap_s`` seconds (the gap times the last
  chunk's length) whose stamp is where the lost chunks would have ended it (within
  ``stamp_tolerance_s``): the lost samples are replaced by silence and the stream goes on, so
  that a few frames lost in transport (a flood on the topic) do not cut an utterance in two.
  Counted in ``seq_gaps`` and ``samples_lost`` too, but not a restart;
- ``stamp_jump``: ``seq == next`` but the stamp is further than ``stamp_tolerance_s`` from where
  the previous chunk ended: the source's time line broke without its ``seq`` showing it (a
  microphone that reconnected after an outage, a clock step). Without this, every later frame
  would carry the old time line's stamps, seconds off.

The last four end the stream: what is pending is flushed as a last (shorter) block, and the
chunk starts a new stream at its own stamp. A chunk the pipeline cannot use at all (not
``(frames, channels)``, no channel, NaN/Inf, a rate outside ``MIN_SAMPLE_RATE`` ..
``MAX_SAMPLE_RATE`` or one whose resampling ratio to the extractor's rate needs too long a
filter, see :meth:`FeaturePipeline.supports_rate`) raises
:class:`~ser_robot.errors.AudioFormatError` before it touches the stream.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

from ser_robot.audio.channels import ChannelReducer
from ser_robot.audio.level_normalizer import LEVEL_NORMALIZATIONS, LevelNormalizer
from ser_robot.audio.resample import StreamingResampler
from ser_robot.errors import AudioFormatError
from ser_robot.features.base import FrameExtractor
from ser_robot.features.streaming import StreamingExtractor
from ser_robot.streams import MAX_SEQ_JUMP, classify_seq

__all__ = ["FeatureBlock", "PipelineCounters", "FeaturePipeline", "supported_rate", "EVENTS", "MIN_SAMPLE_RATE",
           "MAX_SAMPLE_RATE", "MAX_RATIO_TERM"]

MIN_SAMPLE_RATE = 4000  # Hz (the same range as ser_robot.ros.conversions checks AudioFrames against)
MAX_SAMPLE_RATE = 384000  # Hz
# Largest numerator or denominator of the reduced ratio extractor rate / input rate. The
# resampling filter has 64 taps per unit of it: 640 (11.025 kHz to 16 kHz: 640/441) builds in a
# few ms; an odd rate such as 383999 Hz would need 24 million taps and seconds of CPU per restart.
MAX_RATIO_TERM = 640
EVENTS = ("started", "continued", "out_of_order", "format_change", "seq_reset", "seq_gap", "gap_concealed",
          "stamp_jump")
_RESAMPLER_CACHE = 4  # resamplers (filters) kept per pipeline, by input rate


def supported_rate(sample_rate: int, target_rate: int) -> bool:
    """Whether ``sample_rate`` Hz is in ``MIN_SAMPLE_RATE`` .. ``MAX_SAMPLE_RATE`` and resamples to ``target_rate`` Hz
    with a reduced ratio whose terms are at most ``MAX_RATIO_TERM``."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        return False
    ratio = Fraction(int(target_rate), int(sample_rate))
    return max(ratio.numerator, ratio.denominator) <= MAX_RATIO_TERM


@dataclass(frozen=True)
class FeatureBlock:
    """Consecutive frames of one stream: ``frames`` ``(n, dims)`` float32; ``start_time`` of frame 0, s."""

    start_time: float
    frames: np.ndarray
    first_index: int  # index of frame 0 within its stream


@dataclass
class PipelineCounters:
    """What the pipeline saw; ``restarts`` = first starts + ``seq_gaps`` - ``gaps_concealed`` + ``seq_resets``
    + ``format_changes`` + ``stamp_jumps``."""

    chunks: int = 0  # chunks accepted (every push but the out_of_order ones)
    seq_gaps: int = 0  # concealed ones included
    gaps_concealed: int = 0
    samples_lost: int = 0  # estimated from the gap sizes, at the input rate
    restarts: int = 0  # streams started (the first one included)
    seq_resets: int = 0
    format_changes: int = 0
    stamp_jumps: int = 0
    out_of_order: int = 0  # late or repeated chunks dropped
    frames: int = 0
    vad_windows: int = 0


@dataclass
class _Stream:
    origin: float  # s, time of the stream's first sample
    sample_rate: int
    channels: int
    next_seq: int
    next_stamp: float  # s, where the last accepted chunk ended (its stamp plus its duration)
    chunk_frames: int  # samples per channel of the last chunk (to estimate losses)
    resampler: StreamingResampler
    reducer: ChannelReducer
    pending: list[np.ndarray] = field(default_factory=list)
    pending_start: int = 0  # frame index of the first pending frame
    vad_pending: list[np.ndarray] = field(default_factory=list)
    vad_start: int = 0
    unextracted: list[np.ndarray] = field(default_factory=list)  # mono samples not yet given to the extractor
    unresampled: list[np.ndarray] = field(default_factory=list)  # mono samples at the input rate, not yet resampled
    unresampled_count: int = 0
    samples: int = 0  # mono samples received since the stream's start, at the extractor's rate


class FeaturePipeline:
    """One audio stream -> :class:`FeatureBlock` lists of features and of VAD probabilities."""

    def __init__(self, extractor: FrameExtractor, block_frames: int = 100, reduction: str = "mean",
                 azimuth_deg: float = 0.0, ear_spacing_m: float = 0.18, vad: bool = False,
                 vad_block_windows: int = 16, reorder_window: int = 16, stamp_tolerance_s: float = 0.5,
                 conceal_gap_s: float = 0.0, level_normalization: str = "off", level_target_dbfs: float = -30.0,
                 level_time_constant_s: float = 20.0):
        """``reorder_window``: how many chunks back a ``seq`` counts as late (dropped), not as a reset;
        ``stamp_tolerance_s``: how far (s) a chunk's stamp may be from the previous chunk's end;
        ``conceal_gap_s``: longest gap (s) filled with silence instead of restarting (0 = never);
        ``level_normalization``: ``off`` or ``agc`` (with ``level_target_dbfs`` and ``level_time_constant_s``)."""
        if block_frames < 1 or vad_block_windows < 1:
            raise ValueError("block_frames and vad_block_windows must be >= 1")
        if reorder_window < 0:
            raise ValueError(f"reorder_window must be >= 0, got {reorder_window}")
        if not stamp_tolerance_s > 0:
            raise ValueError(f"stamp_tolerance_s must be > 0 s, got {stamp_tolerance_s}")
        if level_normalization not in LEVEL_NORMALIZATIONS:
            raise ValueError(f"level_normalization must be one of {LEVEL_NORMALIZATIONS}, got {level_normalization!r}")
        self.level = (LevelNormalizer(int(extractor.sample_rate), target_dbfs=level_target_dbfs,
                                      time_constant_s=level_time_constant_s)
                      if level_normalization == "agc" else None)
        if not conceal_gap_s >= 0:
            raise ValueError(f"conceal_gap_s must be >= 0 s, got {conceal_gap_s}")
        self.reorder_window = reorder_window
        self.stamp_tolerance_s = stamp_tolerance_s
        self.conceal_gap_s = conceal_gap_s
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
        self.last_event = ""  # what the last push did: one of EVENTS
        self._stream: _Stream | None = None
        self._resamplers: OrderedDict[int, StreamingResampler] = OrderedDict()

    @property
    def frame_rate(self) -> float:
        return self.extractor.sample_rate / self.extractor.hop_length

    def supports_rate(self, sample_rate: int) -> bool:
        """Whether chunks at ``sample_rate`` Hz can be used (see :func:`supported_rate`)."""
        return supported_rate(sample_rate, int(self.extractor.sample_rate))

    def check(self, samples: np.ndarray, sample_rate: int) -> None:
        """Raise :class:`AudioFormatError` if a chunk ``(frames, channels)`` at ``sample_rate`` Hz is unusable."""
        if samples.ndim != 2 or samples.shape[1] < 1:
            raise AudioFormatError(f"expected (frames, channels >= 1) samples, got shape {samples.shape}")
        if not self.supports_rate(sample_rate):
            raise AudioFormatError(
                f"unsupported sample rate {sample_rate} Hz: need {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz and a "
                f"resampling ratio to {self.extractor.sample_rate} Hz with terms <= {MAX_RATIO_TERM} "
                "(any common rate: 8, 11.025, 16, 22.05, 32, 44.1, 48, 96 kHz ...)")
        if not np.isfinite(samples).all():
            raise AudioFormatError("samples hold NaN or infinite values")

    def push(self, samples: np.ndarray, sample_rate: int, seq: int, stamp: float,
             channel_ids: Sequence[str] = ()) -> tuple[list[FeatureBlock], list[FeatureBlock]]:
        """Feed one chunk ``(frames, channels)`` float32 at ``sample_rate`` Hz with its ``seq`` and first-sample stamp (s).

        Returns ``(feature_blocks, vad_blocks)`` completed by this chunk (VAD blocks hold
        ``(windows, 1)`` probabilities); :attr:`last_event` says what the chunk did to the
        stream (module docstring). Raises :class:`AudioFormatError` for an unusable chunk.
        """
        self.check(samples, sample_rate)
        features: list[FeatureBlock] = []
        vad: list[FeatureBlock] = []
        event = self._classify(seq, sample_rate, samples.shape[1], stamp)
        self.last_event = event
        if event == "out_of_order":
            self.counters.out_of_order += 1
            return features, vad
        stream = self._stream
        if event in ("seq_gap", "gap_concealed"):
            lost = (seq - stream.next_seq) * stream.chunk_frames
            self.counters.seq_gaps += 1
            self.counters.samples_lost += lost
        if event == "gap_concealed":
            self.counters.gaps_concealed += 1
            stream.unresampled.append(np.zeros(lost, np.float32))
            stream.unresampled_count += lost
        elif event == "seq_reset":
            self.counters.seq_resets += 1
        elif event == "format_change":
            self.counters.format_changes += 1
        elif event == "stamp_jump":
            self.counters.stamp_jumps += 1
        if event not in ("continued", "gap_concealed"):
            self._end(features, vad)
            stream = self._start(sample_rate, samples.shape[1], seq, stamp)
        self.counters.chunks += 1
        stream.next_seq = seq + 1
        stream.next_stamp = stamp + samples.shape[0] / sample_rate
        stream.chunk_frames = samples.shape[0]
        stream.unresampled.append(stream.reducer(samples, channel_ids))
        stream.unresampled_count += samples.shape[0]
        if stream.resampler.produced_after(stream.unresampled_count) >= self._samples_for_next_output(stream):
            self._process(self._resample(stream), features, vad, final=False)
        return features, vad

    def _classify(self, seq: int, sample_rate: int, channels: int, stamp: float) -> str:
        """Which of ``EVENTS`` a chunk with this ``seq``, rate, channel count and stamp (s) is (module docstring):
        :func:`~ser_robot.streams.classify_seq`, refined by the chunk's format and stamp."""
        stream = self._stream
        event = classify_seq(None if stream is None else stream.next_seq, seq, self.reorder_window)
        if event in ("started", "out_of_order"):
            return event
        if sample_rate != stream.sample_rate or channels != stream.channels:
            return "format_change"
        if event == "continued":
            return "stamp_jump" if abs(stamp - stream.next_stamp) > self.stamp_tolerance_s else "continued"
        if event == "seq_reset":
            return event
        lost_s = (seq - stream.next_seq) * stream.chunk_frames / stream.sample_rate
        if lost_s <= self.conceal_gap_s and abs(stamp - stream.next_stamp - lost_s) <= self.stamp_tolerance_s:
            return "gap_concealed"
        return "seq_gap"

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
            origin=stamp, sample_rate=sample_rate, channels=channels, next_seq=seq, next_stamp=stamp, chunk_frames=0,
            resampler=self._resampler(sample_rate),
            reducer=ChannelReducer(self.reduction, sample_rate, self.azimuth_deg, self.ear_spacing_m))
        return self._stream

    def _resampler(self, sample_rate: int) -> StreamingResampler:
        """A reset resampler from ``sample_rate``; the last few rates' filters are kept (rate flapping is cheap)."""
        resampler = self._resamplers.pop(sample_rate, None)
        if resampler is None:
            resampler = StreamingResampler(sample_rate, self.extractor.sample_rate)
        else:
            resampler.reset()
        self._resamplers[sample_rate] = resampler
        while len(self._resamplers) > _RESAMPLER_CACHE:
            self._resamplers.popitem(last=False)
        return resampler

    def _end(self, features: list[FeatureBlock], vad: list[FeatureBlock]) -> None:
        if self._stream is None:
            return
        stream = self._stream
        self._process(np.concatenate([self._resample(stream), stream.resampler.flush()]), features, vad, final=True)
        self._stream = None

    @staticmethod
    def _resample(stream: _Stream) -> np.ndarray:
        """The stream's samples not resampled yet, resampled (mono, the extractor's rate)."""
        if not stream.unresampled:
            return np.zeros(0, np.float32)
        mono = stream.resampler.push(np.concatenate(stream.unresampled))
        stream.unresampled.clear()
        stream.unresampled_count = 0
        return mono

    def _samples_for_next_output(self, stream: _Stream) -> int:
        """Samples (extractor's rate, since the stream's start) that complete the next block of frames or of VAD."""
        needed = self._samples_for_next_block(stream)
        if self.vad is not None:
            needed = min(needed, (stream.vad_start + self.vad_block_windows) * self.vad.WINDOW)
        return needed

    def _samples_for_next_block(self, stream: _Stream) -> int:
        """Samples the extractor needs before the current block's last frame is final (frame ``i`` is
        final once frame ``i + context[1]`` exists, which needs ``(i + context[1]) * hop + window`` samples)."""
        x = self.extractor
        emitted = stream.pending_start + sum(len(rows) for rows in stream.pending)
        last = (emitted // self.block_frames + 1) * self.block_frames - 1
        return (last + x.context[1]) * x.hop_length + x.window_length

    def _process(self, mono: np.ndarray, features: list[FeatureBlock], vad: list[FeatureBlock], final: bool) -> None:
        stream = self._stream
        if self.level is not None:  # its output lags by < 10 ms: the rest leaves at the stream's end
            mono = np.concatenate([self.level(mono), self.level.flush()]) if final else self.level(mono)
        # The extractor recomputes its context on every call: feed it only when a whole block can
        # come out (same frames, same block timing, a fraction of the work of 10 ms pushes).
        stream.unextracted.append(np.ascontiguousarray(mono, dtype=np.float32))
        stream.samples += len(mono)
        frames = torch.zeros(0, self.extractor.num_features)
        if final or stream.samples >= self._samples_for_next_block(stream):
            frames = self.streaming.push(torch.from_numpy(np.concatenate(stream.unextracted)))
            stream.unextracted.clear()
        if final:
            frames = torch.cat([frames, self.streaming.flush()])
        if len(frames):
            stream.pending.append(frames.numpy())
            self.counters.frames += len(frames)
        hop_s = self.extractor.hop_length / self.extractor.sample_rate
        blocks_before = len(features)
        stream.pending_start = self._emit(stream.pending, stream.pending_start, self.block_frames, hop_s,
                                          stream.origin, features, final)
        with_features = len(features) > blocks_before
        if self.vad is not None:
            probabilities = self.vad.push(mono)
            if len(probabilities):
                stream.vad_pending.append(probabilities[:, None])
                self.counters.vad_windows += len(probabilities)
            window_s = self.vad.WINDOW / self.vad.SAMPLE_RATE
            stream.vad_start = self._emit(stream.vad_pending, stream.vad_start, self.vad_block_windows, window_s,
                                          stream.origin, vad, final or with_features)

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
