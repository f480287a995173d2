"""Data augmentation for speech emotion recognition, torchaudio-style.

- :mod:`~ser_robot.augment.functional`: pure batched functions on ``(batch, channels, samples)``
  waveforms (or features) with per-example ``(batch,)`` parameters: :func:`gain`,
  :func:`tempo` (phase vocoder, pitch kept), :func:`speed` (resampling), :func:`add_noise`
  (target SNR), :func:`nsr_to_snr_db`, :func:`convolve_ir`, :func:`apply_channel` (loudspeaker /
  microphone response), :func:`mixup`,
  :func:`spec_augment`; no clipping anywhere (:func:`peak_guard` is explicit).
- :mod:`~ser_robot.augment.transforms`: ``torch.nn.Module`` versions drawing per-example
  parameters from an explicit CPU ``torch.Generator``.
- :mod:`~ser_robot.augment.compose`: :class:`AugmentationChain` (per-example probabilities,
  returns the applied-mask used as MTL-AUG labels) and :func:`lakomkin_chain`.

Variable lengths are a zero-padded batch plus ``lengths`` ``(batch,)`` int64 everywhere.
"""

from ser_robot.augment.compose import (
    LAKOMKIN_DEFAULT_PROBABILITY,
    AugmentationChain,
    ChainResult,
    lakomkin_chain,
)
from ser_robot.augment.functional import (
    AugmentationError,
    add_noise,
    apply_channel,
    convolve_ir,
    direct_path_delay,
    gain,
    mixup,
    nsr_to_snr_db,
    peak_guard,
    signal_power,
    spec_augment,
    speed,
    tempo,
)
from ser_robot.augment.transforms import (
    AddNoise,
    Augmentation,
    ConvolveIR,
    IRSource,
    Mixup,
    NoiseSource,
    RandomChannel,
    RandomGain,
    RandomSpeed,
    RandomTempo,
    SpecAugment,
    gaussian_noise,
)

__all__ = [
    "AugmentationError",
    "gain",
    "tempo",
    "speed",
    "add_noise",
    "signal_power",
    "nsr_to_snr_db",
    "convolve_ir",
    "direct_path_delay",
    "apply_channel",
    "mixup",
    "spec_augment",
    "peak_guard",
    "NoiseSource",
    "IRSource",
    "Augmentation",
    "RandomGain",
    "RandomTempo",
    "RandomSpeed",
    "AddNoise",
    "ConvolveIR",
    "RandomChannel",
    "Mixup",
    "SpecAugment",
    "gaussian_noise",
    "AugmentationChain",
    "ChainResult",
    "lakomkin_chain",
    "LAKOMKIN_DEFAULT_PROBABILITY",
]
