"""Frame features from audio chunks, identical to the offline features of the whole signal.

:class:`StreamingExtractor` wraps any :class:`~ser_robot.features.base.FrameExtractor` that keeps
the contract of :mod:`ser_robot.features.base`. It keeps a short history of samples that starts
on a frame boundary, and on each :meth:`~StreamingExtractor.push` recomputes the extractor over
that history and returns only the frames that are *final* and not yet emitted:

- frame ``i`` is final once frame ``i + context[1]`` exists (its future neighbourhood is
  complete, so the end-of-signal edge rule no longer applies to it); the last ``context[1]``
  frames are only final at :meth:`~StreamingExtractor.flush`, where offline too they are
  computed with the edge rule;
- the history begins ``context[0]`` frames before the next frame to emit (or at sample 0,
  where offline too the start edge rule applies), so every emitted frame is computed from
  exactly the samples, and with exactly the edge rule, it has offline.

Between calls at most ``window_length + (context[0] + context[1]) * hop_length - 1`` samples
are kept (one hop less than the bound in the contract's docstring). Per push the work is the
new frames plus ``context[0] + context[1]`` recomputed ones.
"""

from __future__ import annotations

import torch

from ser_robot.features.base import FrameExtractor

__all__ = ["StreamingExtractor"]


class StreamingExtractor:
    """Push chunks ``(samples,)`` or ``(batch, samples)``; get ``(frames, dims)`` or
    ``(batch, frames, dims)`` of newly final frames. The first push fixes the layout (and the
    batch size); :meth:`reset` (after a gap in the input) or :meth:`flush` starts a new stream.
    """

    def __init__(self, extractor: FrameExtractor) -> None:
        self.extractor = extractor
        self.hop = int(extractor.hop_length)
        self.window = int(extractor.window_length)
        self.past, self.future = (int(c) for c in extractor.context)
        if self.hop < 1 or self.window < 1 or self.past < 0 or self.future < 0:
            raise ValueError(
                f"extractor breaks the FrameExtractor contract: window_length {self.window}, "
                f"hop_length {self.hop}, context {extractor.context}"
            )
        self.reset()

    @property
    def max_buffered_samples(self) -> int:
        """Most samples kept between calls: ``window_length + (context[0] + context[1]) * hop - 1``."""
        return self.window + (self.past + self.future) * self.hop - 1

    @property
    def buffered_samples(self) -> int:
        """Samples held now."""
        return 0 if self._buffer is None else int(self._buffer.shape[-1])

    @property
    def frames_emitted(self) -> int:
        """Frames returned since the stream started; the next frame returned has this index."""
        return self._emitted

    @property
    def samples_seen(self) -> int:
        """Samples pushed since the stream started."""
        return self._seen

    def reset(self) -> None:
        """Forget the stream: the next push is sample 0 of a new signal."""
        self._buffer: torch.Tensor | None = None  # (batch, samples) from sample _start * hop
        self._start = 0  # frame index at which the buffer begins
        self._seen = 0
        self._emitted = 0
        self._squeeze: bool | None = None

    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        """Add ``chunk`` ``(samples,)`` / ``(batch, samples)``; return the newly final frames."""
        squeeze = chunk.dim() == 1
        x = chunk.unsqueeze(0) if squeeze else chunk
        if x.dim() != 2:
            raise ValueError(f"push expects (samples,) or (batch, samples), got shape {tuple(chunk.shape)}")
        if self._buffer is None:
            self._squeeze = squeeze
            self._buffer = x.clone()  # never alias the caller's (possibly reused) chunk buffer
        else:
            if squeeze != self._squeeze or x.shape[0] != self._buffer.shape[0]:
                raise ValueError(
                    f"chunk of shape {tuple(chunk.shape)} does not match the stream's earlier chunks "
                    f"({'(samples,)' if self._squeeze else f'({self._buffer.shape[0]}, samples)'}); "
                    "call reset() to start another stream"
                )
            self._buffer = torch.cat([self._buffer, x.to(self._buffer.dtype)], dim=-1)
        self._seen += x.shape[-1]
        ready = max(self.extractor.frame_count(self._seen) - self.future, 0)
        out = self._emit(ready)
        # keep from context[0] frames before the next frame to emit (or from sample 0)
        start = max(self._emitted - self.past, 0)
        if start > self._start:
            self._buffer = self._buffer[:, (start - self._start) * self.hop :].clone()  # free the rest
            self._start = start
        return out

    def flush(self) -> torch.Tensor:
        """End of stream: return the remaining frames (end edge rule applied as offline), then reset."""
        if self._buffer is None:
            self.reset()
            return self._empty(1, True)
        out = self._emit(self.extractor.frame_count(self._seen))
        self.reset()
        return out

    def _emit(self, ready: int) -> torch.Tensor:
        assert self._buffer is not None
        batch = self._buffer.shape[0]
        if ready <= self._emitted:
            return self._empty(batch, bool(self._squeeze))
        frames = self.extractor(self._buffer)  # (batch, frames from _start, dims)
        local = frames[:, self._emitted - self._start : ready - self._start]
        self._emitted = ready
        return local[0] if self._squeeze else local

    def _empty(self, batch: int, squeeze: bool) -> torch.Tensor:
        dtype = self._buffer.dtype if self._buffer is not None and self._buffer.is_floating_point() else torch.float32
        shape = (0, self.extractor.num_features) if squeeze else (batch, 0, self.extractor.num_features)
        return torch.zeros(shape, dtype=dtype)
