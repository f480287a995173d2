"""Random augmentations as ``torch.nn.Module`` (the ``transforms`` half of the split).

Every module validates its settings once in ``__init__``, draws per-example random
parameters from an explicit ``torch.Generator`` (passed to ``forward`` or held since
construction; ``None`` falls back to torch's default generator) and calls one function of
:mod:`ser_robot.augment.functional`.

Randomness policy: all draws happen on the CPU (the generator must be a CPU generator) and
the parameters are then moved to the input's device, so a seed gives the same augmentation on
CPU and CUDA (up to float rounding of the signal processing itself).

Variable lengths: waveform modules take and return ``(x, lengths)``: ``x`` is a zero-padded
``(batch, channels, samples)`` batch and ``lengths`` ``(batch,)`` int64 valid samples
(``None`` in = all samples valid). :class:`RandomTempo` and :class:`RandomSpeed` change
lengths; they return the batch padded to the longest result, which is what the training
loop needs.

Two-step protocol used by :class:`ser_robot.augment.compose.AugmentationChain`:
``sample(x, lengths, generator)`` draws parameters for the whole batch (a dict of tensors with
batch first), ``apply_subset(x, lengths, labels, params, index)`` applies them to the examples
``index`` only and returns those examples. ``forward`` is the two steps on every example.
"""

from __future__ import annotations

import abc
import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ser_robot.augment import functional as AF
from ser_robot.errors import AugmentationError

__all__ = [
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
    "draw_noise",
    "draw_irs",
]

NoiseSource = Union[Sequence[torch.Tensor], Callable[[int, int, Optional[torch.Generator]], torch.Tensor]]
"""Noise waveforms: a sequence of ``(samples,)`` or ``(channels, samples)`` tensors at the signal's
sample rate, or a callable ``(batch, samples, generator) -> (batch, [channels,] samples)``."""

IRSource = Union[Sequence[torch.Tensor], Callable[[int, Optional[torch.Generator]], torch.Tensor]]
"""Impulse responses: a sequence of ``(taps,)`` or ``(channels, taps)`` tensors at the signal's
sample rate, or a callable ``(batch, generator) -> (batch, channels, taps)``."""

Params = Dict[str, torch.Tensor]
Result = Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]


def _full_lengths(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
    return torch.as_tensor(lengths, device=x.device).long()


def _uniform(batch: int, low: float, high: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64)


def _check_range(name: str, low: float, high: float, lo_ok: float = -math.inf, hi_ok: float = math.inf) -> None:
    if not (lo_ok <= low <= high <= hi_ok):
        raise AugmentationError(
            f"{name} range must satisfy {lo_ok} <= min <= max <= {hi_ok}, got ({low}, {high})"
        ) from None


class Augmentation(torch.nn.Module, abc.ABC):
    """Base class: a random augmentation with a ``sample`` / ``apply_subset`` split.

    Attributes:
        name: short name used for chain labels.
        changes_length: the output's valid lengths may differ from the input's.
        uses_labels: ``apply_subset`` needs labels (mixup).
    """

    name: str = "augmentation"
    changes_length: bool = False
    uses_labels: bool = False

    def __init__(self, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.generator = generator

    def _generator(self, generator: Optional[torch.Generator]) -> Optional[torch.Generator]:
        return generator if generator is not None else self.generator

    @abc.abstractmethod
    def sample(self, x: torch.Tensor, lengths: torch.Tensor, generator: Optional[torch.Generator]) -> Params:
        """Per-example parameters for the whole batch, each ``(batch, ...)`` on the CPU."""

    @abc.abstractmethod
    def apply(self, x: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor], params: Params) -> Result:
        """Apply ``params`` (already restricted to the examples of ``x``)."""

    def apply_subset(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor,
        labels: Optional[torch.Tensor],
        params: Params,
        index: torch.Tensor,
    ) -> Result:
        """Apply to examples ``index`` (int64 ``(k,)``) of the batch; returns those ``k`` examples."""
        dev = index.to(x.device)
        sub = {k: v[index.to(v.device)] for k, v in params.items()}
        return self.apply(x[dev], lengths[dev], None if labels is None else labels[index.to(labels.device)], sub)

    def forward(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(batch, channels, samples)`` -> ``(augmented, lengths)`` with fresh random parameters."""
        lengths = _full_lengths(x, lengths)
        params = self.sample(x, lengths, self._generator(generator))
        y, out_lengths, _ = self.apply(x, lengths, None, params)
        return y, out_lengths


class RandomGain(Augmentation):
    """Gain drawn uniformly in ``[min_db, max_db]`` dB per example (Lakomkin: -6 to +3 dB)."""

    name = "gain"

    def __init__(self, min_db: float = -6.0, max_db: float = 3.0, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        _check_range("gain dB", min_db, max_db)
        self.min_db, self.max_db = float(min_db), float(max_db)

    def sample(self, x: torch.Tensor, lengths: torch.Tensor, generator: Optional[torch.Generator]) -> Params:
        return {"gain_db": _uniform(x.shape[0], self.min_db, self.max_db, generator)}

    def apply(self, x: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor], params: Params) -> Result:
        return AF.gain(x, params["gain_db"].to(x.dtype)), lengths, labels


class RandomTempo(Augmentation):
    """Tempo factor uniform in ``[min_factor, max_factor]`` per example, pitch kept (phase vocoder).

    Lakomkin et al.: 85 % to 120 %. Output lengths ``round(lengths / factor)``, batch padded.
    """

    name = "tempo"
    changes_length = True

    def __init__(
        self,
        min_factor: float = 0.85,
        max_factor: float = 1.2,
        sample_rate: int = 16000,
        n_fft: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__(generator)
        _check_range("tempo factor", min_factor, max_factor, 0.25 + 1e-9, 4.0)
        if sample_rate <= 0:
            raise AugmentationError(f"sample_rate must be > 0 Hz, got {sample_rate}") from None
        self.min_factor, self.max_factor = float(min_factor), float(max_factor)
        self.sample_rate, self.n_fft = int(sample_rate), n_fft

    def sample(self, x: torch.Tensor, lengths: torch.Tensor, generator: Optional[torch.Generator]) -> Params:
        return {"factor": _uniform(x.shape[0], self.min_factor, self.max_factor, generator)}

    def apply(self, x: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor], params: Params) -> Result:
        y, out = AF.tempo(x, params["factor"], self.sample_rate, lengths, n_fft=self.n_fft)
        return y, out, labels


class RandomSpeed(Augmentation):
    """Speed perturbation with a factor chosen uniformly from ``choices`` (resampling; pitch changes).

    Latif et al. use 0.9 and 1.1 (plus the original). In an :class:`AugmentationChain` whose
    applied-mask serves as labels, leave 1.0 out of ``choices`` so "applied" means "changed".
    """

    name = "speed"
    changes_length = True

    def __init__(
        self,
        choices: Sequence[float] = (0.9, 1.0, 1.1),
        sample_rate: int = 16000,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__(generator)
        if len(choices) == 0 or any(not 0.25 < float(c) <= 4.0 for c in choices):
            raise AugmentationError(f"speed choices must be non-empty, each in (0.25, 4], got {tuple(choices)}") from None
        if sample_rate <= 0:
            raise AugmentationError(f"sample_rate must be > 0 Hz, got {sample_rate}") from None
        self.register_buffer("choices", torch.tensor([float(c) for c in choices], dtype=torch.float64), persistent=False)
        self.sample_rate = int(sample_rate)

    def sample(self, x: torch.Tensor, lengths: torch.Tensor, generator: Optional[torch.Generator]) -> Params:
        pick = torch.randint(len(self.choices), (x.shape[0],), generator=generator)
        return {"factor": self.choices.cpu()[pick]}

    def apply(self, x: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor], params: Params) -> Result:
        y, out = AF.speed(x, params["factor"], self.sample_rate, lengths)
        return y, out, labels


def gaussian_noise(batch: int, samples: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """White Gaussian noise source ``(batch, 1, samples)``, unit variance, drawn on the CPU."""
    return torch.randn(batch, 1, samples, generator=generator)


def draw_noise(
    source: NoiseSource, batch: int, samples: int, channels: int, generator: Optional[torch.Generator]
) -> torch.Tensor:
    """Draw ``(batch, 1 or channels, samples)`` noise from ``source`` (CPU).

    From a sequence: one waveform uniformly at random per example, a random start; a waveform
    shorter than ``samples`` is looped (tiled) from that start, a longer one is cropped. Mono
    waveforms are shared by all channels; if the picks mix mono and ``channels``-channel
    waveforms, the mono ones are repeated over the channels.
    """
    if callable(source):
        noise = torch.as_tensor(source(batch, samples, generator))
        if noise.dim() == 2:
            noise = noise[:, None, :]
        if noise.dim() != 3 or noise.shape[0] != batch or noise.shape[-1] != samples:
            raise AugmentationError(
                f"noise source returned shape {tuple(noise.shape)}, expected ({batch}, [channels,] {samples})"
            ) from None
        return noise
    if len(source) == 0:
        raise AugmentationError("noise source is an empty sequence; give at least one noise waveform") from None
    picks = torch.randint(len(source), (batch,), generator=generator).tolist()
    starts = torch.rand(batch, generator=generator, dtype=torch.float64).tolist()
    out = []
    for pick, u in zip(picks, starts):
        w = torch.as_tensor(source[pick]).cpu()
        w = w[None, :] if w.dim() == 1 else w
        if w.dim() != 2 or w.shape[-1] == 0 or w.shape[0] not in (1, channels):
            raise AugmentationError(
                f"noise waveform {pick} has shape {tuple(w.shape)}; need (samples,) or (1 or {channels}, samples)"
            ) from None
        n = w.shape[-1]
        if n >= samples:
            start = int(u * (n - samples + 1))
            out.append(w[:, start : start + samples])
        else:
            start = int(u * n)
            reps = math.ceil((start + samples) / n)
            out.append(w.repeat(1, reps)[:, start : start + samples])
    if len({o.shape[0] for o in out}) > 1:
        out = [o.expand(channels, -1) for o in out]
    return torch.stack(out).float()


class AddNoise(Augmentation):
    """Additive noise at a random SNR per example, from a noise bank or generator.

    Give exactly one of ``snr_db=(min, max)`` (uniform in dB; Latif et al. test 0, 10, 20 dB)
    or ``nsr=(min, max)`` (Lakomkin's linear noise-to-signal ratio, uniform in the ratio,
    converted by :func:`ser_robot.augment.functional.nsr_to_snr_db` with ``nsr_power``).
    SNR is measured over the whole example (:func:`ser_robot.augment.functional.add_noise`).
    """

    name = "noise"

    def __init__(
        self,
        noise_source: NoiseSource = gaussian_noise,
        snr_db: Optional[Tuple[float, float]] = None,
        nsr: Optional[Tuple[float, float]] = None,
        nsr_power: bool = False,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__(generator)
        if (snr_db is None) == (nsr is None):
            raise AugmentationError(f"give exactly one of snr_db or nsr, got snr_db={snr_db}, nsr={nsr}") from None
        if snr_db is not None:
            _check_range("snr_db", *snr_db)
        if nsr is not None:
            _check_range("nsr", nsr[0], nsr[1], 1e-12)
        if not callable(noise_source) and len(noise_source) == 0:
            raise AugmentationError("noise_source is an empty sequence; give at least one noise waveform") from None
        self.noise_source = noise_source
        self.snr_range = None if snr_db is None else (float(snr_db[0]), float(snr_db[1]))
        self.nsr_range = None if nsr is None else (float(nsr[0]), float(nsr[1]))
        self.nsr_power = bool(nsr_power)

    def sample(self, x: torch.Tensor, lengths: torch.Tensor, generator: Optional[torch.Generator]) -> Params:
        batch = x.shape[0]
        if self.snr_range is not None:
            snr = _uniform(batch, *self.snr_range, generator)
        else:
            snr = AF.nsr_to_snr_db(_uniform(batch, *self.nsr_range, generator), power=self.nsr_power)
        noise = draw_noise(self.noise_source, batch, x.shape[-1], x.shape[1], generator)
        return {"snr_db": snr, "noise": noise}

    def apply(self, x: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor], params: Params) -> Result:
        noise = params["noise"].to(device=x.device, dtype=x.dtype)
        return AF.add_noise(x, noise, params["snr_db"].to(x.dtype), lengths), lengths, labels


def draw_irs(source: IRSource, batch: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Draw ``(batch, channels, taps)`` impulse responses from ``source`` (CPU).

    From a sequence: one IR uniformly at random per example, zero-padded at the end to the
    longest pick; when picks mix channel counts, mono IRs are repeated to the largest count.
    """
    if callable(source):
        irs = torch.as_tensor(source(batch, generator))
        if irs.dim() != 3 or irs.shape[0] != batch:
            raise AugmentationError(f"IR source returned shape {tuple(irs.shape)}, expected ({batch}, channels, taps)") from None
        return irs
    if len(source) == 0:
        raise AugmentationError("IR source is an empty sequence; give at least one impulse response") from None
    picks = torch.randint(len(source), (batch,), generator=generator).tolist()
    irs = []
    for pick in picks:
        h = torch.as_tensor(source[pick]).cpu()
        h = h[None, :] if h.dim() == 1 else h
        if h.dim() != 2 or h.shape[-1] == 0:
            raise AugmentationError(f"impulse response {pick} has shape {tuple(h.shape)}; need (taps,) or (channels, taps)") from None
        irs.append(h)
    channels = max(h.shape[0] for h in irs)
    taps = max(h.shape[-1] for h in irs)
    out = torch.zeros(batch, channels, taps)
    for b, h in enumerate(irs):
        if h.shape[0] not in (1, channels):
            raise AugmentationError(f"cannot mix IRs of {h.shape[0]} and {channels} channels in one batch") from None
        out[b, :, : h.shape[-1]] = h
    return out


class ConvolveIR(Augmentation):
    """Room impulse response convolution with an IR drawn per example from ``ir_source``.

    Output length = input length, aligned on the IR's direct path (see
    :func:`ser_robot.augment.functional.convolve_ir`); output channels follow the IR
    (mono speech through a binaural IR becomes stereo).
    """

    name = "ir"

    def __init__(self, ir_source: IRSource, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        if not callable(ir_source) and len(ir_source) == 0:
            raise AugmentationError("ir_source is an empty sequence; give at least one impulse response") from None
        self.ir_source = ir_source

    def sample(self, x: torch.Tensor, lengths: torch.Tensor, generator: Optional[torch.Generator]) -> Params:
        return {"ir": draw_irs(self.ir_source, x.shape[0], generator)}

    def apply(self, x: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor], params: Params) -> Result:
        ir = params["ir"].to(device=x.device, dtype=x.dtype)
        return AF.convolve_ir(x, ir, lengths), lengths, labels


class RandomChannel(Augmentation):
    """A random playback / recording channel per example (:func:`ser_robot.augment.functional.apply_channel`):
    a 2nd-order high-pass log-uniform in ``highpass_hz``, a low-pass uniform in ``lowpass_hz``, and ``peaks``
    peaking equalisers with centres log-uniform in ``centre_hz``, gains uniform in ``gain_db`` and Q uniform in
    ``q`` (defaults: ours, a family that holds small loudspeakers and robot microphones)."""

    name = "channel"

    def __init__(self, sample_rate: int = 16000, highpass_hz: Tuple[float, float] = (50.0, 300.0),
                 lowpass_hz: Tuple[float, float] = (3500.0, 7800.0), peaks: int = 4,
                 centre_hz: Tuple[float, float] = (150.0, 6500.0), gain_db: Tuple[float, float] = (-6.0, 6.0),
                 q: Tuple[float, float] = (0.7, 3.0), generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        nyquist = sample_rate / 2
        _check_range("highpass_hz", *highpass_hz, 1e-3, nyquist)
        _check_range("lowpass_hz", *lowpass_hz, highpass_hz[1], nyquist)
        _check_range("centre_hz", *centre_hz, 1e-3, nyquist)
        _check_range("gain_db", *gain_db)
        _check_range("q", *q, 1e-3)
        if peaks < 0:
            raise AugmentationError(f"peaks must be >= 0, got {peaks}") from None
        self.sample_rate = int(sample_rate)
        self.highpass_hz, self.lowpass_hz, self.centre_hz = highpass_hz, lowpass_hz, centre_hz
        self.peaks, self.gain_db, self.q = int(peaks), gain_db, q

    def sample(self, x: torch.Tensor, lengths: torch.Tensor, generator: Optional[torch.Generator]) -> Params:
        batch = x.shape[0]

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            return low + (high - low) * torch.rand(*shape, generator=generator, dtype=torch.float64)

        def log_uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            return torch.exp(uniform(math.log(low), math.log(high), *shape))

        highpass = log_uniform(*self.highpass_hz, batch)
        lowpass = uniform(*self.lowpass_hz, batch)
        centres = log_uniform(*self.centre_hz, batch, self.peaks)
        gains = uniform(*self.gain_db, batch, self.peaks)
        qs = uniform(*self.q, batch, self.peaks)
        return {"highpass_hz": highpass, "lowpass_hz": lowpass, "peaks": torch.stack([centres, gains, qs], dim=-1)}

    def apply(self, x: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor], params: Params) -> Result:
        return (AF.apply_channel(x, params["highpass_hz"], params["lowpass_hz"], params["peaks"], self.sample_rate,
                                 lengths), lengths, labels)


class Mixup(Augmentation):
    """Mixup with ``lam ~ Beta(alpha, alpha)`` per example and a random partner permutation.

    Works on waveforms or features ``(batch, ...)``; labels ``(batch, classes)`` (one-hot or
    soft, float) are mixed with the same ``lam``. Beta draws use NumPy seeded from the torch
    generator (torch's Beta sampler takes no generator). Mixed lengths are the longer of the two.
    """

    name = "mixup"
    uses_labels = True

    def __init__(self, alpha: float = 0.2, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        if not alpha > 0:
            raise AugmentationError(f"mixup alpha must be > 0, got {alpha}") from None
        self.alpha = float(alpha)

    def sample(self, x: torch.Tensor, lengths: torch.Tensor, generator: Optional[torch.Generator]) -> Params:
        batch = x.shape[0]
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        lam = torch.from_numpy(np.random.default_rng(seed).beta(self.alpha, self.alpha, size=batch))
        return {"lam": lam, "perm": torch.randperm(batch, generator=generator)}

    def apply(self, x: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor], params: Params) -> Result:
        return self.apply_subset(x, lengths, labels, params, torch.arange(x.shape[0]))

    def apply_subset(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor,
        labels: Optional[torch.Tensor],
        params: Params,
        index: torch.Tensor,
    ) -> Result:
        if labels is None:
            raise AugmentationError("mixup needs labels (one-hot or soft, float) to mix with the inputs") from None
        # Mix the whole batch with lam = 1 outside ``index`` (exactly the input), keep ``index``.
        lam = torch.ones(x.shape[0], dtype=torch.float64)
        lam[index] = params["lam"][index]
        perm = params["perm"]
        mixed_x, mixed_y = AF.mixup(x, labels, lam.to(x.dtype), perm)
        idx = index.to(x.device)
        out_len = torch.maximum(lengths, lengths[perm.to(lengths.device)])[idx]
        return mixed_x[idx], out_len, mixed_y[index.to(mixed_y.device)]

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        lengths: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x, labels)`` -> ``(x_mixed, labels_mixed, lengths)``."""
        lengths = _full_lengths(x, lengths)
        params = self.sample(x, lengths, self._generator(generator))
        y, out_len, mixed = self.apply(x, lengths, labels, params)
        return y, mixed, out_len


class SpecAugment(Augmentation):
    """SpecAugment frequency and time masks on features (no time warping).

    ``layout="frames_dims"`` (default): the project's ``(batch, frames, dims)``; ``"freq_time"``:
    ``(batch, ..., freq, time)``. ``lengths`` count valid frames. Widths uniform in
    ``{0..F}`` bins and ``{0..T}`` frames (see :func:`ser_robot.augment.functional.spec_augment`).
    """

    name = "specaugment"

    def __init__(
        self,
        freq_masks: int = 2,
        time_masks: int = 2,
        F: int = 15,
        T: int = 40,
        layout: str = "frames_dims",
        mask_value: float = 0.0,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__(generator)
        if min(freq_masks, time_masks, F, T) < 0:
            raise AugmentationError(f"mask counts and widths must be >= 0, got {freq_masks}, {time_masks}, {F}, {T}") from None
        if layout not in ("frames_dims", "freq_time"):
            raise AugmentationError(f"layout must be 'frames_dims' or 'freq_time', got {layout!r}") from None
        self.freq_masks, self.time_masks, self.F, self.T = int(freq_masks), int(time_masks), int(F), int(T)
        self.layout, self.mask_value = layout, float(mask_value)

    def sample(self, x: torch.Tensor, lengths: torch.Tensor, generator: Optional[torch.Generator]) -> Params:
        f_axis, t_axis = AF._axes(x, self.layout)
        batch = x.shape[0]
        bins = torch.full((batch,), x.shape[f_axis], dtype=torch.long)
        fs, fw = AF.draw_bands(bins, self.freq_masks, self.F, generator)
        ts, tw = AF.draw_bands(lengths.cpu(), self.time_masks, self.T, generator)
        return {"f_start": fs, "f_width": fw, "t_start": ts, "t_width": tw}

    def apply(self, x: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor], params: Params) -> Result:
        f_axis, t_axis = AF._axes(x, self.layout)
        y = AF.mask_bands(x, params["f_start"], params["f_width"], f_axis, self.mask_value)
        y = AF.mask_bands(y, params["t_start"], params["t_width"], t_axis, self.mask_value)
        return y, lengths, labels

    def forward(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features -> ``(masked, lengths)``; ``lengths`` are valid frames (default: all)."""
        if lengths is None:
            _, t_axis = AF._axes(x, self.layout)
            lengths = torch.full((x.shape[0],), x.shape[t_axis], dtype=torch.long, device=x.device)
        return super().forward(x, lengths, generator)
