"""Live emotion recognition on one stream: feature frames and VAD probabilities in, results out.

:class:`StreamInference` keeps a ring buffer of the stream's feature frames and of its
voice-activity probabilities (both timed from the stream's origin, the first sample the
feature node saw), and produces :class:`EmotionResult` in one of two modes:

``utterance``
    Speech segments from the VAD (:class:`~ser_robot.inference.segmenter.VadSegmenter`: threshold,
    hangover, minimum length, maximum length); one final result per segment over the frames
    that start inside it, once those frames have arrived, and optional interim results
    (``final=False``) while it grows. ``window_start``/``window_end``: the segment's speech span.
    Nothing is published between segments.
``window``
    A sliding window of ``window_s`` every ``hop_s`` on a fixed grid of frames from the stream's
    origin (the first windows are shorter: they start at the origin). A window with less than
    ``min_speech_ratio`` of its VAD windows at or above the threshold gives ``speech=False`` (no
    guess). ``window_end`` is the time of the last audio sample the window's last frame depends
    on (its analysis window and look-ahead), so ``now - window_end`` is the true latency.

Both depend only on the frames and probabilities, not on how they were split into messages:
streaming gives the results of the whole signal processed at once (tested). Timing: a block
whose start time is later than expected (a lost block, a restarted stream) ends the track and
starts it again at the new time; a block that starts earlier than expected (late, duplicated,
out of order) is dropped and counted. A result still waiting for one input when the other input's
buffer no longer holds the start of its span (the feature node's VAD is off, or the two topics
come from different sources) is given up and counted (``abandoned``): nothing waits forever.
``smoothing`` > 0 blends each final result's probabilities (and arousal/valence) with the
previous one's (weight ``smoothing``); a ``speech=False`` result resets it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ser_robot.errors import NonFiniteOutputError
from ser_robot.inference.model import EmotionModel, Prediction
from ser_robot.inference.segmenter import VadSegmenter

__all__ = ["EmotionResult", "InferenceCounters", "InferenceSettings", "StreamInference", "VAD_WINDOW_S"]

VAD_WINDOW_S = 512 / 16000
"""Duration of one Silero VAD probability (the feature node's ``vad`` topic), s."""

_EPS = 1e-6


@dataclass(frozen=True)
class InferenceSettings:
    """The inference node's behaviour (see :data:`ser_robot.config.INFERENCE_PARAMS` for meanings; times in s)."""

    mode: str = "utterance"
    window_s: float = 3.0
    hop_s: float = 1.0
    vad_threshold: float = 0.5
    hangover_s: float = 0.3
    min_speech_s: float = 0.3
    max_utterance_s: float = 15.0
    interim_s: float = 0.0
    min_speech_ratio: float = 0.2
    smoothing: float = 0.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> InferenceSettings:
        """The settings among a node's parameters (other keys ignored)."""
        return cls(**{k: params[k] for k in cls.__dataclass_fields__ if k in params})


@dataclass(frozen=True)
class EmotionResult:
    """One result: the analysed span ``[window_start, window_end]`` (s, stream clock), whether it is
    ``final``, ``speech`` and the mean ``speech_probability``, the model's ``prediction`` (None when
    ``speech`` is False) and the number of feature ``frames`` it saw."""

    window_start: float
    window_end: float
    final: bool
    speech: bool
    speech_probability: float
    prediction: Prediction | None
    frames: int


@dataclass
class InferenceCounters:
    results: int = 0
    restarts: int = 0  # tracks started again after a time jump (the first start not counted)
    out_of_order: int = 0  # blocks dropped because they start before the expected time
    truncated: int = 0  # results computed from fewer frames than their span (frames lost in a restart)
    dropped_segments: int = 0  # segments whose frames never arrived
    abandoned: int = 0  # results given up waiting for one input after the other's buffer dropped their start
    non_finite_outputs: int = 0  # results withheld because the model gave NaN or infinity


class _Track:
    """Rows timed ``origin + index * step`` (s), with absolute indices; old rows trimmed beyond ``keep`` rows."""

    def __init__(self, step: float, keep: int) -> None:
        self.step, self.keep = step, keep
        self.origin: float | None = None
        self.count = 0  # rows received since the origin
        self.offset = 0  # absolute index of rows[0]
        self.rows: np.ndarray | None = None

    def check(self, start: float) -> str:
        """``"start"`` (first block), ``"next"`` (continues), ``"late"`` (starts before the expected time) or ``"jump"``."""
        if self.origin is None:
            return "start"
        delta = (start - self.origin) / self.step - self.count
        if abs(delta) <= 0.5:
            return "next"
        return "late" if delta < 0 else "jump"

    def append(self, start: float, rows: np.ndarray) -> None:
        if self.origin is None:
            self.origin, self.count, self.offset, self.rows = start, 0, 0, None
        self.rows = rows.copy() if self.rows is None else np.concatenate([self.rows, rows])
        self.count += len(rows)
        if len(self.rows) > 2 * self.keep:  # trim in bursts: amortised O(1) per row
            self.rows = self.rows[-self.keep:]
            self.offset = self.count - len(self.rows)

    def reset(self) -> None:
        self.origin, self.count, self.offset, self.rows = None, 0, 0, None

    def index(self, time: float) -> float:
        return (time - self.origin) / self.step

    def time(self, index: float) -> float:
        return self.origin + index * self.step

    def holds(self, time: float) -> bool:
        """False once the rows from ``time`` on are no longer all kept (trimmed); True before the first row."""
        return self.origin is None or self.offset <= max(0, math.ceil(self.index(time) - _EPS))

    def slice(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``[lo, hi)`` that are still kept (clipped)."""
        lo, hi = max(lo, self.offset), min(hi, self.count)
        return self.rows[lo - self.offset:hi - self.offset] if self.rows is not None and hi > lo else np.zeros((0,))


@dataclass
class _Request:
    """A result to compute once its rows have arrived: window mode fixes the feature rows, utterance
    mode the VAD rows; the other track's rows follow from the times when it is served."""

    window_start: float
    window_end: float
    final: bool
    frames: tuple[int, int] | None = None  # feature rows [lo, hi)
    vad: tuple[int, int] | None = None  # VAD rows [lo, hi)

    def rows(self, features: _Track, vad: _Track) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """``(feature rows, VAD rows)``, or None while a track has not started."""
        if features.origin is None or vad.origin is None:
            return None
        frames = self.frames
        if frames is None:
            lo = max(0, math.ceil(features.index(self.window_start) - _EPS))
            frames = (lo, max(lo + 1, math.ceil(features.index(self.window_end) - _EPS)))
        windows = self.vad
        if windows is None:
            windows = (max(0, math.ceil(vad.index(self.window_start) - _EPS)),
                       max(0, math.floor(vad.index(self.window_end) + _EPS)))
        return frames, windows


@dataclass
class StreamInference:
    """Results of one stream; see the module docstring. ``model`` checks and runs the frames."""

    model: EmotionModel
    settings: InferenceSettings = field(default_factory=InferenceSettings)

    def __post_init__(self) -> None:
        s = self.settings
        if s.mode not in ("utterance", "window"):
            raise ValueError(f"mode must be utterance or window, got {s.mode!r}")
        hop = self.model.hop_s
        keep_s = max(s.window_s, s.max_utterance_s + s.hangover_s) + 1.0
        self.features = _Track(hop, math.ceil(keep_s / hop))
        self.vad = _Track(VAD_WINDOW_S, math.ceil(keep_s / VAD_WINDOW_S))
        self.segmenter = VadSegmenter(VAD_WINDOW_S, s.vad_threshold, s.hangover_s, s.min_speech_s, s.max_utterance_s,
                                      s.interim_s)
        self.window_frames = max(1, round(s.window_s / hop))
        self.hop_frames = max(1, round(s.hop_s / hop))
        self.counters = InferenceCounters()
        self._pending: list[_Request] = []
        self._next_window_end = self.hop_frames - 1
        self._smoothed: Prediction | None = None
        self.stream = self.model.new_stream()  # speaker statistics of a speaker-normalised model, else None
        self._counted = 0  # frames of the track already in self.stream's statistics

    # --- input --------------------------------------------------------------------------------------
    def push_features(self, start: float, frames: np.ndarray) -> list[EmotionResult]:
        """Feature frames ``(n, features)`` (raw, as the feature node publishes them), frame 0 starting at ``start`` s."""
        out: list[EmotionResult] = []
        status = self.features.check(start)
        if status == "late":
            self.counters.out_of_order += 1
            return out
        if status == "jump":
            self.counters.restarts += 1
            self._serve(out, flush=True)
            self.features.reset()
            self._next_window_end = self.hop_frames - 1
            self._counted = 0
        self.features.append(start, np.asarray(frames, dtype=np.float32))
        if self.settings.mode == "window":
            while self._next_window_end < self.features.count:
                self._pending.append(self._window_request(self._next_window_end))
                self._next_window_end += self.hop_frames
        self._serve(out)
        return out

    def push_vad(self, start: float, probabilities: np.ndarray) -> list[EmotionResult]:
        """Speech probabilities ``(n,)`` of consecutive VAD windows, window 0 starting at ``start`` s."""
        out: list[EmotionResult] = []
        probabilities = np.asarray(probabilities, dtype=np.float32).reshape(-1)
        status = self.vad.check(start)
        if status == "late":
            self.counters.out_of_order += 1
            return out
        if status == "jump":
            self.counters.restarts += 1
            self._segments(self.segmenter.finish())
            self._serve(out, flush=True)
            self.vad.reset()
            self.segmenter.reset()
        self.vad.append(start, probabilities[:, None])
        if self.settings.mode == "utterance":
            self._segments(self.segmenter.push(probabilities))
        self._serve(out)
        return out

    def finish(self) -> list[EmotionResult]:
        """End of the stream: the open segment and every pending result, from what has arrived."""
        out: list[EmotionResult] = []
        if self.settings.mode == "utterance":
            self._segments(self.segmenter.finish())
        self._serve(out, flush=True)
        return out

    @property
    def pending(self) -> int:
        """Results waiting for frames or VAD."""
        return len(self._pending)

    # --- requests -----------------------------------------------------------------------------------
    def _window_request(self, last: int) -> _Request:
        first = max(0, last - self.window_frames + 1)
        end = self.features.time(last) + self.model.frame_span_s
        return _Request(self.features.time(first), end, True, frames=(first, last + 1))

    def _segments(self, segments: list) -> None:
        for segment in segments:
            self._pending.append(_Request(self.vad.time(segment.start), self.vad.time(segment.end), segment.final,
                                          vad=(segment.start, segment.end)))

    def _serve(self, out: list[EmotionResult], flush: bool = False) -> None:
        """Turn the pending requests whose frames and VAD have arrived (all of them if ``flush``) into results."""
        while self._pending:
            request = self._pending[0]
            rows = request.rows(self.features, self.vad)
            ready = rows is not None and self.features.count >= rows[0][1] and self.vad.count >= rows[1][1]
            if not (ready or flush):
                if self.features.holds(request.window_start) and self.vad.holds(request.window_start):
                    return
                self._pending.pop(0)
                self.counters.abandoned += 1
                continue
            self._pending.pop(0)
            result = self._result(request, rows)
            if result is not None:
                out.append(result)

    def _result(self, request: _Request, rows: tuple[tuple[int, int], tuple[int, int]] | None) -> EmotionResult | None:
        if rows is None:  # flushed before both tracks started
            self.counters.dropped_segments += 1
            return None
        (frame_lo, frame_hi), (vad_lo, vad_hi) = rows
        probabilities = self.vad.slice(vad_lo, vad_hi).reshape(-1)
        speech_probability = float(np.mean(probabilities)) if len(probabilities) else 0.0
        frames = self.features.slice(frame_lo, frame_hi)
        if len(frames) < frame_hi - frame_lo:
            self.counters.truncated += 1
        if self.settings.mode == "window":
            ratio = float(np.mean(probabilities >= self.settings.vad_threshold)) if len(probabilities) else 0.0
            speech = ratio >= self.settings.min_speech_ratio and len(probabilities) > 0
        else:
            speech = True
        if speech and len(frames) == 0:
            self.counters.dropped_segments += 1
            return None
        try:
            predicted = self.model.predict(frames, self.stream) if speech else None
        except NonFiniteOutputError:
            self.counters.non_finite_outputs += 1
            return None
        if self.stream is not None and speech and request.final and frame_hi > self._counted:
            # the stream's statistics learn from speech after it is scored, each frame once
            first = max(frame_lo, self._counted)
            self.stream.update(torch.from_numpy(self.features.slice(first, frame_hi)))
            self._counted = frame_hi
        prediction = self._smooth(predicted, request.final)
        self.counters.results += 1
        return EmotionResult(request.window_start, request.window_end, request.final, speech, speech_probability,
                             prediction, len(frames))

    def _smooth(self, prediction: Prediction | None, final: bool) -> Prediction | None:
        alpha = self.settings.smoothing
        if prediction is None:
            if final:
                self._smoothed = None
            return None
        if alpha <= 0 or not final:
            return prediction
        previous = self._smoothed
        if previous is not None:
            prediction = Prediction(alpha * previous.probabilities + (1 - alpha) * prediction.probabilities,
                                    alpha * previous.arousal + (1 - alpha) * prediction.arousal,
                                    alpha * previous.valence + (1 - alpha) * prediction.valence)
        self._smoothed = prediction
        return prediction
