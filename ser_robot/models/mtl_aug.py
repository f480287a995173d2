"""MTL-AUG (Latif et al., seeds/002, sections 3.2 and 4.3): a convolutional encoder shared by an emotion
classifier, an augmentation-type classifier and a reconstruction decoder.

- Encoder E: 2-D convolutions over (Mel band, frame), a larger first kernel and smaller ones after it,
  each followed by batch normalisation, ReLU and max pooling; its output Z ``(batch, channels, bands',
  frames')`` is read as a sequence over frames' of ``channels * bands'`` values.
- Emotion classifier C_E: BLSTM (``lstm_units`` per direction), attention (eq. 4-5: ``alpha_i =
  softmax_i(W^T h_i)``, ``R = sum_i alpha_i h_i``; a plain mean over time when ``attention`` is off),
  a fully connected layer of ``dense_units`` with ReLU whose output is the deep feature f(x) of the
  centre loss (eq. 7), then the class logits.
- Augmentation-type classifier C_A: BLSTM (``aux_lstm_units``), mean over time, two fully connected
  layers of ``aux_dense_units`` with dropout ``aux_dropout`` between them, then one logit per type of
  :data:`AUGMENTATION_TYPES`.
- Decoder D: transposed convolutions mirroring the encoder (each replaces a convolution and its
  pooling), reconstructing the encoder's input (eq. 8).

The CNN-BLSTM baselines and the ablations of Table 7 are switches of this one module:
``augmentation_task``, ``reconstruction_task`` (the decoder exists only when on), ``centre_weight``
(lambda_2 of eq. 6, 0 = no centre loss) and ``attention``. :meth:`MtlAug.objective` gives the loss
of eq. 3 and 6: ``L_S + lambda_2 L_C + lambda_1 (L_aug + L_rec)`` with ``lambda_1 = aux_weight``.

Input: ``(batch, frames, bands)`` z-normalised log-Mel frames (``logmel_mtl_aug``: 128 bands, 40 ms /
10 ms) and ``lengths`` ``(batch,)``. As in the paper, every utterance is brought to a fixed
``segment_frames`` (7.5 s): frames at or beyond its length are zeroed (0 is the training mean after
normalisation) and the segment zero-padded, so padding a batch never changes a prediction. An utterance
longer than one segment: :meth:`forward` (prediction, the inference node) cuts it into consecutive
segments, the last zero-padded, and averages their logits (:class:`~ser_robot.models.segments.SegmentModel`);
:meth:`training_output` (training) keeps its first segment, the paper's cut at 7.5 s.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ser_robot.errors import ConfigError
from ser_robot.models.base import HyperSpec
from ser_robot.models.segments import SegmentModel, TrainingOutput

__all__ = ["AUGMENTATION_TYPES", "MtlAug"]

AUGMENTATION_TYPES: tuple[str, ...] = ("none", "speed", "specaugment", "mixup")
"""Classes of the augmentation-type classifier, in order (paper 3.2: speed perturbation, SpecAugment,
mixup, no augmentation)."""


class MtlAug(SegmentModel):
    """The MTL-AUG framework; ``forward(features (B, T, bands), lengths (B,)) -> (B, classes)`` is the
    emotion classifier alone (what the inference node serves, the mean of its segments' logits),
    :meth:`training_output` every task. Categorical head only."""

    NAME = "mtl_aug"
    HYPER = (
        HyperSpec("segment_frames", int, "Frames of the fixed input length (paper: 7.5 s = 750 frames).",
                  min=1, max=100_000),
        HyperSpec("channels", list, "Output channels of each encoder convolution.", min=1, max=1024, item_kind=int),
        HyperSpec("kernel_sizes", list, "Square kernel of each encoder convolution (odd; larger first).",
                  min=1, max=31, item_kind=int, odd=True),
        HyperSpec("pool", int, "Max-pooling factor on both axes after each convolution.", min=1, max=4),
        HyperSpec("lstm_units", int, "BLSTM units per direction of the emotion classifier.", min=1, max=4096),
        HyperSpec("attention", bool, "Attention pooling (eq. 4-5); off: mean over time."),
        HyperSpec("dense_units", int, "Units of the emotion classifier's fully connected layer.", min=1, max=4096),
        HyperSpec("dropout", float, "Dropout on the emotion classifier's fully connected output.", min=0.0, max=0.9),
        HyperSpec("aux_lstm_units", int, "BLSTM units per direction of the augmentation-type classifier.",
                  min=1, max=4096),
        HyperSpec("aux_dense_units", int, "Units of each of its two fully connected layers.", min=1, max=4096),
        HyperSpec("aux_dropout", float, "Dropout between those two layers.", min=0.0, max=0.9),
        HyperSpec("augmentation_task", bool, "Train the augmentation-type classifier (auxiliary task)."),
        HyperSpec("reconstruction_task", bool, "Train the decoder on reconstruction (auxiliary task)."),
        HyperSpec("aux_weight", float, "lambda_1 of eq. 3: weight of the auxiliary losses.", min=0.0, max=100.0),
        HyperSpec("centre_weight", float, "lambda_2 of eq. 6: weight of the centre loss (0: none).",
                  min=0.0, max=100.0),
    )

    def __init__(self, num_features: int, head: str, num_classes: int | None = None, **hyper: object) -> None:
        super().__init__(num_features, head, num_classes, hyper)
        h = self.hyper
        scale = h["pool"] ** len(h["channels"])
        if num_features % scale:
            raise ConfigError(f"model '{self.NAME}': {num_features} bands do not divide by the encoder's pooling "
                              f"{h['pool']}^{len(h['channels'])} = {scale}; change pool or channels") from None
        self.padded_frames = -(-h["segment_frames"] // scale) * scale  # the segment, padded to whole pools
        widths = [1, *h["channels"]]
        self.encoder = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                          nn.MaxPool2d(h["pool"]))
            for c_in, c_out, k in zip(widths[:-1], widths[1:], h["kernel_sizes"])))
        sequence_width = widths[-1] * (num_features // scale)
        self.lstm = nn.LSTM(sequence_width, h["lstm_units"], batch_first=True, bidirectional=True)
        self.attention_score = nn.Linear(2 * h["lstm_units"], 1, bias=False) if h["attention"] else None
        self.dense = nn.Sequential(nn.Linear(2 * h["lstm_units"], h["dense_units"]), nn.ReLU())
        self.dropout = nn.Dropout(h["dropout"])
        self.output = nn.Linear(h["dense_units"], self.num_outputs)
        self.centres = nn.Parameter(torch.zeros(self.num_outputs, h["dense_units"])) if h["centre_weight"] > 0 else None
        self.aux_lstm = self.aux_head = None
        if h["augmentation_task"]:
            self.aux_lstm = nn.LSTM(sequence_width, h["aux_lstm_units"], batch_first=True, bidirectional=True)
            units = h["aux_dense_units"]
            self.aux_head = nn.Sequential(nn.Linear(2 * h["aux_lstm_units"], units), nn.ReLU(),
                                          nn.Dropout(h["aux_dropout"]), nn.Linear(units, units), nn.ReLU(),
                                          nn.Linear(units, len(AUGMENTATION_TYPES)))
        self.decoder = None
        if h["reconstruction_task"]:
            layers: list[nn.Module] = []
            pairs = list(zip(widths[:-1], widths[1:], h["kernel_sizes"]))[::-1]
            for i, (c_in, c_out, k) in enumerate(pairs):
                last = i == len(pairs) - 1
                layers.append(nn.ConvTranspose2d(c_out, c_in, k, stride=h["pool"], padding=k // 2,
                                                 output_padding=h["pool"] - 1, bias=last))
                if not last:
                    layers += [nn.BatchNorm2d(c_in), nn.ReLU()]
            self.decoder = nn.Sequential(*layers)

    @classmethod
    def _check_together(cls, hyper: dict, where: str) -> None:
        if len(hyper["channels"]) != len(hyper["kernel_sizes"]):
            raise ConfigError(f"hyper-parameters 'channels' ({len(hyper['channels'])} layers) and 'kernel_sizes' "
                              f"({len(hyper['kernel_sizes'])} layers) of {where} must have the same length") from None

    # -- networks ------------------------------------------------------------------------------------

    def encode(self, segments: torch.Tensor) -> torch.Tensor:
        """Encoder E: ``(B, padded_frames, bands)`` -> Z ``(B, channels, bands', frames')``."""
        return self.encoder(segments.transpose(1, 2).unsqueeze(1))

    @staticmethod
    def _sequence(z: torch.Tensor) -> torch.Tensor:
        """Z ``(B, C, bands', frames')`` -> ``(B, frames', C * bands')``."""
        return z.flatten(1, 2).transpose(1, 2)

    def _emotion(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """C_E on Z: ``(logits (B, classes), embedding (B, dense_units))``."""
        h, _ = self.lstm(self._sequence(z))  # (B, frames', 2 * lstm_units)
        if self.attention_score is not None:
            alpha = torch.softmax(self.attention_score(h), dim=1)  # eq. 5, (B, frames', 1)
            pooled = (alpha * h).sum(dim=1)  # eq. 4
        else:
            pooled = h.mean(dim=1)
        embedding = self.dense(pooled)
        return self.output(self.dropout(embedding)), embedding

    def embed(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E then C_E: ``(N, padded_frames, bands)`` -> ``(logits (N, classes), embedding (N, dense_units))``."""
        return self._emotion(self.encode(segments))

    @property
    def has_auxiliary_task(self) -> bool:
        return bool(self.hyper["augmentation_task"] or self.hyper["reconstruction_task"])

    def training_output(self, features: torch.Tensor, lengths: torch.Tensor) -> TrainingOutput:
        """Every task on each utterance's first segment (training; see :class:`TrainingOutput`)."""
        target = self.first_segments(features, lengths)
        z = self.encode(target)
        logits, embedding = self._emotion(z)
        aux = None
        if self.aux_lstm is not None and self.aux_head is not None:
            h, _ = self.aux_lstm(self._sequence(z))
            aux = self.aux_head(h.mean(dim=1))
        reconstruction = None
        if self.decoder is not None:
            reconstruction = self.decoder(z).squeeze(1).transpose(1, 2)  # (B, padded_frames, bands)
        return TrainingOutput(logits, embedding, aux, reconstruction, target)

    def objective(self, out: TrainingOutput, targets: torch.Tensor, labelled: torch.Tensor,
                  hard_labels: torch.Tensor, augmentation_types: torch.Tensor) -> dict[str, torch.Tensor]:
        """The losses of one batch, each a scalar, and their weighted ``total`` (eq. 3 and 6).

        ``targets`` ``(B, classes)`` soft class targets (one-hot, or mixed by mixup); ``labelled``
        ``(B,)`` bool: rows with an emotion label (unlabelled speech only trains the encoder, the
        decoder and C_A); ``hard_labels`` ``(B,)`` int64 class of the centre loss, -1 where none
        (unlabelled or mixed rows); ``augmentation_types`` ``(B,)`` int64 index in
        :data:`AUGMENTATION_TYPES`. ``emotion`` is the cross-entropy L_S over labelled rows, ``centre``
        ``1/2 ||f(x) - c_y||^2`` (eq. 7, mean over rows with a hard label), ``augmentation`` the
        cross-entropy of C_A and ``reconstruction`` the mean squared error of eq. 8, over all rows.
        """
        zero = out.logits.new_zeros(())
        losses = {"emotion": zero, "centre": zero, "augmentation": zero, "reconstruction": zero}
        if bool(labelled.any()):
            log_p = torch.log_softmax(out.logits[labelled].float(), dim=1)
            losses["emotion"] = -(targets[labelled] * log_p).sum(dim=1).mean()
        has_class = hard_labels >= 0
        if self.centres is not None and bool(has_class.any()):
            diff = out.embedding[has_class].float() - self.centres[hard_labels[has_class]]
            losses["centre"] = 0.5 * diff.square().sum(dim=1).mean()
        if out.augmentation_logits is not None:
            losses["augmentation"] = F.cross_entropy(out.augmentation_logits.float(), augmentation_types)
        if out.reconstruction is not None:
            losses["reconstruction"] = F.mse_loss(out.reconstruction.float(), out.target.float())
        h = self.hyper
        losses["total"] = (losses["emotion"] + h["centre_weight"] * losses["centre"]
                           + h["aux_weight"] * (losses["augmentation"] + losses["reconstruction"]))
        return losses
