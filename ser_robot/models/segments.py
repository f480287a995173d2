"""Models that see fixed-length spectrogram segments: what MTL-AUG and the Latif 2020 models share.

Both papers feed a network segments of a fixed number of frames (MTL-AUG: 7.5 s, seeds/002 4.2; Latif
2020: 256 frames, seeds/000 4.2) and score an utterance from its segments. :class:`SegmentModel` holds
that machinery once:

- an utterance is cut into consecutive segments of ``segment_frames`` frames; the last one, and any
  frame at or beyond the utterance's length, is zero (0 is the training mean after normalisation), and
  every segment is zero-padded to :attr:`SegmentModel.padded_frames`, so batch padding never changes a
  prediction;
- :meth:`~SegmentModel.forward` averages the segments of each utterance: their logits (``POOLING =
  "logits"``, MTL-AUG) or their posteriors (``"posteriors"``, Latif 2020: "utterance level prediction
  is calculated by averaging the posterior probabilities of the respective sub-segments"; the model then
  returns ``log(mean p)``, whose softmax is that mean);
- :meth:`~SegmentModel.forward_one` does the same without masks or index arithmetic (the inference node,
  exportable to ONNX);
- :meth:`~SegmentModel.training_output` and :meth:`~SegmentModel.objective` are what
  :mod:`ser_robot.train.segments` trains: by default one segment per row and cross-entropy on soft
  targets (mixup); MTL-AUG overrides both with its auxiliary tasks.

Subclasses declare the ``segment_frames`` hyper-parameter, build their networks and define
``embed(segments (N, padded_frames, bands)) -> (logits (N, classes), embedding (N, units))``, which
:meth:`~SegmentModel.segment_logits` and :meth:`~SegmentModel.training_output` call.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch.nn import functional as F

from ser_robot.errors import ConfigError
from ser_robot.models.base import SerModel
from ser_robot.models.masking import lengths_to_mask

__all__ = ["POOLINGS", "SegmentModel", "TrainingOutput"]

POOLINGS: tuple[str, ...] = ("logits", "posteriors")
"""How an utterance's segments are combined: mean of logits, or mean of posteriors."""


class TrainingOutput(NamedTuple):
    """What :meth:`SegmentModel.training_output` computes for a batch of ``B`` segments.

    ``logits`` ``(B, classes)``; ``embedding`` ``(B, units)`` the deep feature before the output layer;
    ``augmentation_logits`` ``(B, augmentation types)`` or None; ``reconstruction`` and ``target``
    ``(B, padded_frames, bands)``: a decoder's output (None without one) and the padded input segment.
    """

    logits: torch.Tensor
    embedding: torch.Tensor
    augmentation_logits: torch.Tensor | None
    reconstruction: torch.Tensor | None
    target: torch.Tensor


class SegmentModel(SerModel):
    """A :class:`SerModel` that scores fixed-length segments (see the module docstring).

    ``forward(features (B, T, bands), lengths (B,)) -> (B, classes)``; categorical head.
    Subclasses call ``super().__init__`` and may set :attr:`padded_frames` (default: ``segment_frames``)
    to a multiple their pooling needs.
    """

    SEGMENT_TRAINED: ClassVar[bool] = True
    """Trained by :mod:`ser_robot.train.segments`; False: by the utterance trainer (the Ren et al. models,
    which only borrow the segmenting)."""
    POOLING: ClassVar[str] = "logits"

    def __init__(self, num_features: int, head: str, num_classes: int | None, hyper: dict) -> None:
        super().__init__(num_features, head, num_classes, hyper)
        if head != "categorical":
            raise ConfigError(f"model '{self.NAME}' has a categorical head only (the papers' emotion classes), "
                              f"got head {head!r}") from None
        self.padded_frames = int(self.hyper["segment_frames"])

    # -- segments ------------------------------------------------------------------------------------

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, frames <= padded_frames, bands)`` -> ``(B, padded_frames, bands)``, zeros appended."""
        return F.pad(x, (0, 0, 0, self.padded_frames - x.shape[1]))

    def _valid_only(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``features`` with every frame at or beyond its utterance's length set to 0 (checked inputs)."""
        self._check_inputs(features, lengths)
        keep = lengths_to_mask(lengths.to(features.device), features.shape[1])[..., None]
        return torch.where(keep, features, torch.zeros((), dtype=features.dtype, device=features.device))

    def first_segments(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, padded_frames, bands)``: each utterance's first ``segment_frames`` frames, padding zeroed."""
        return self._padded(self._valid_only(features, lengths)[:, : self.hyper["segment_frames"]])

    def segments(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every utterance cut into consecutive segments: ``((N, padded_frames, bands), owner (N,) int64)``,
        ``owner[n]`` the utterance of segment ``n``; ``ceil(length / segment_frames)`` segments each."""
        size = self.hyper["segment_frames"]
        x = self._valid_only(features, lengths)
        lengths = lengths.to(features.device)
        counts = torch.div(lengths + size - 1, size, rounding_mode="floor")
        most = int(counts.max())
        x = F.pad(x, (0, 0, 0, max(0, most * size - x.shape[1])))[:, : most * size]
        x = x.reshape(x.shape[0], most, size, x.shape[2])
        chosen = torch.arange(most, device=x.device)[None, :] < counts[:, None]
        owner = torch.arange(x.shape[0], device=x.device).repeat_interleave(counts)
        return self._padded(x[chosen]), owner

    # -- scoring -------------------------------------------------------------------------------------

    def segment_logits(self, segments: torch.Tensor) -> torch.Tensor:
        """Class logits of each segment: ``(N, padded_frames, bands)`` -> ``(N, classes)`` (the first part of the
        subclass's ``embed(segments) -> (logits (N, classes), embedding (N, units))``)."""
        return self.embed(segments)[0]

    def _pool_terms(self, logits: torch.Tensor) -> torch.Tensor:
        """What is averaged over an utterance's segments: logits, or posteriors."""
        return logits if self.POOLING == "logits" else torch.softmax(logits.float(), dim=1)

    def _pooled(self, mean: torch.Tensor) -> torch.Tensor:
        """The utterance's output from the mean of :meth:`_pool_terms`: logits, or ``log(mean p)``."""
        return mean if self.POOLING == "logits" else torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Utterance outputs ``(B, classes)``: the mean over each utterance's segments (module docstring)."""
        segments, owner = self.segments(features, lengths)
        terms = self._pool_terms(self.segment_logits(segments))
        total = torch.zeros(features.shape[0], terms.shape[1], dtype=terms.dtype, device=terms.device)
        total.index_add_(0, owner, terms)
        counts = torch.bincount(owner, minlength=features.shape[0]).to(terms.dtype)
        return self._pooled(total / counts[:, None])

    def forward_one(self, features: torch.Tensor) -> torch.Tensor:
        """One utterance ``(1, T, bands)``, every frame valid -> ``(1, classes)``: :meth:`forward` without
        masks or index arithmetic (exportable to ONNX; the segments are the batch)."""
        size = self.hyper["segment_frames"]
        frames = features.shape[1]
        count = (frames + size - 1) // size
        x = F.pad(features[0], (0, 0, 0, count * size - frames)).reshape(count, size, features.shape[2])
        terms = self._pool_terms(self.segment_logits(self._padded(x)))
        return self._pooled(terms.mean(dim=0, keepdim=True))

    @property
    def probe_frames(self) -> tuple[int, ...]:
        """Window lengths that an export must also get right: several segments, the last one partial."""
        return (2 * self.hyper["segment_frames"] + 17,)

    # -- training ------------------------------------------------------------------------------------

    def training_output(self, features: torch.Tensor, lengths: torch.Tensor) -> TrainingOutput:
        """Each row's first segment scored (the trainer gives rows of at most one segment)."""
        target = self.first_segments(features, lengths)
        logits, embedding = self.embed(target)
        return TrainingOutput(logits, embedding, None, None, target)

    def objective(self, out: TrainingOutput, targets: torch.Tensor, labelled: torch.Tensor,
                  hard_labels: torch.Tensor, augmentation_types: torch.Tensor) -> dict[str, torch.Tensor]:
        """The losses of one batch: ``emotion``, the cross-entropy on the soft ``targets`` ``(B, classes)``
        of the ``labelled`` ``(B,)`` rows, and ``total`` (equal to it here; see :class:`MtlAug` for the
        multitask objective and the meaning of ``hard_labels`` and ``augmentation_types``)."""
        emotion = out.logits.new_zeros(())
        if bool(labelled.any()):
            log_p = torch.log_softmax(out.logits[labelled].float(), dim=1)
            emotion = -(targets[labelled] * log_p).sum(dim=1).mean()
        return {"emotion": emotion, "total": emotion}

    @property
    def has_auxiliary_task(self) -> bool:
        """Whether unlabelled speech can train something in this model (only auxiliary tasks can)."""
        return False

