"""Pure, batched augmentation functions (the ``functional`` half of the torchaudio-style split).

Conventions shared by every function here:

- Waveforms are float tensors ``(batch, channels, samples)``; per-example parameters are
  tensors of shape ``(batch,)`` (a Python number is broadcast to the whole batch).
- ``lengths`` (optional) is an integer tensor ``(batch,)`` of valid samples per example in a
  zero-padded batch; ``None`` means every example fills the whole tensor. Functions that take
  ``lengths`` measure only the valid part and leave the padding at exactly zero.
- No function draws random numbers except :func:`spec_augment` (which takes an explicit
  ``torch.Generator``); the random-parameter modules live in :mod:`ser_robot.augment.transforms`.
- No function clips or clamps samples. A result may exceed ``[-1, 1]``; :func:`peak_guard` is
  the explicit, reported alternative, never applied implicitly.
- The same code runs on CPU and CUDA; results match up to float rounding.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal, Union

import torch

from ser_robot.errors import AugmentationError

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
    "channel_response",
    "apply_channel",
    "mixup",
    "mask_bands",
    "spec_augment",
    "draw_bands",
    "peak_guard",
    "length_mask",
]

Param = Union[float, torch.Tensor]


# ---------------------------------------------------------------- helpers


def _check_wave(x: torch.Tensor, name: str = "x") -> None:
    if x.dim() != 3:
        raise AugmentationError(
            f"{name} must be (batch, channels, samples), got shape {tuple(x.shape)}; "
            "add the missing dimensions with unsqueeze"
        ) from None
    if not x.is_floating_point():
        raise AugmentationError(f"{name} must be a float tensor, got {x.dtype}") from None


def _param(value: Param, batch: int, x: torch.Tensor, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``value`` as a ``(batch,)`` tensor on ``x``'s device (float dtype of ``x`` unless given)."""
    dtype = dtype or x.dtype
    t = torch.as_tensor(value, dtype=dtype, device=x.device)
    if t.dim() == 0:
        return t.expand(batch)
    if t.shape != (batch,):
        raise AugmentationError(
            f"{name} must be a number or a (batch,) tensor with batch={batch}, got shape {tuple(t.shape)}"
        ) from None
    return t


def _lengths(lengths: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    batch, _, n = x.shape
    if lengths is None:
        return torch.full((batch,), n, dtype=torch.long, device=x.device)
    lengths = torch.as_tensor(lengths, device=x.device).long()
    if lengths.shape != (batch,):
        raise AugmentationError(f"lengths must be (batch,)={batch}, got shape {tuple(lengths.shape)}") from None
    if bool((lengths < 0).any()) or bool((lengths > n).any()):
        raise AugmentationError(
            f"lengths must lie in [0, {n}] (the tensor's samples), got {lengths.tolist()}"
        ) from None
    return lengths


def length_mask(lengths: torch.Tensor, samples: int) -> torch.Tensor:
    """Boolean ``(batch, 1, samples)`` mask, True on the first ``lengths[b]`` samples of each example."""
    return (torch.arange(samples, device=lengths.device)[None, :] < lengths[:, None])[:, None, :]


# ---------------------------------------------------------------- level


def gain(x: torch.Tensor, gain_db: Param) -> torch.Tensor:
    """Scale each example by ``gain_db`` decibels (amplitude factor ``10 ** (gain_db / 20)``).

    Args:
        x: ``(batch, channels, samples)`` waveform.
        gain_db: gain in dB, a number or ``(batch,)``; positive is louder.

    Returns:
        ``(batch, channels, samples)``, same dtype; not clipped (see :func:`peak_guard`).
    """
    _check_wave(x)
    g = _param(gain_db, x.shape[0], x, "gain_db")
    return x * torch.pow(10.0, g / 20.0)[:, None, None]


def peak_guard(x: torch.Tensor, max_peak: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit peak guard: scale down (never clip) examples whose peak exceeds ``max_peak``.

    Returns ``(y, scale)``: ``y`` is ``x * scale[:, None, None]`` and ``scale`` ``(batch,)`` is
    1 for examples already within ``max_peak`` and ``max_peak / peak`` for the others, so the
    caller can report or log how much level was taken away. Nothing in this package calls it
    implicitly.
    """
    _check_wave(x)
    if not max_peak > 0:
        raise AugmentationError(f"max_peak must be > 0, got {max_peak}") from None
    peak = x.abs().amax(dim=(1, 2))
    scale = torch.where(peak > max_peak, max_peak / peak.clamp_min(torch.finfo(x.dtype).tiny), torch.ones_like(peak))
    return x * scale[:, None, None], scale


# ---------------------------------------------------------------- tempo (phase vocoder)


def _stretch_factor(x: torch.Tensor, factor: Param, sample_rate: int, what: str) -> torch.Tensor:
    """Check ``x`` and ``sample_rate``; ``factor`` as float64 ``(batch,)`` in (0.25, 4]."""
    _check_wave(x)
    if sample_rate <= 0:
        raise AugmentationError(f"sample_rate must be > 0 Hz, got {sample_rate}") from None
    f = _param(factor, x.shape[0], x, "factor", dtype=torch.float64)
    if bool((f <= 0.25).any()) or bool((f > 4.0).any()):
        raise AugmentationError(f"{what} factor must lie in (0.25, 4], got {f.tolist()}") from None
    return f


def tempo(
    x: torch.Tensor,
    factor: Param,
    sample_rate: int,
    lengths: torch.Tensor | None = None,
    n_fft: int | None = None,
    hop_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Change tempo by ``factor`` keeping pitch, with a batched phase vocoder (torch.stft/istft).

    ``factor > 1`` is faster (shorter). Example ``b`` gets ``round(lengths[b] / factor[b])``
    valid samples; the batch is zero-padded to the longest of them.

    Method: STFT (Hann window ``n_fft``, hop ``hop_length``, centred with zero padding; the
    phases of the first, half-padded frame are re-derived from frames 1 and 2 so that a
    slowed-down output does not inherit a bin-to-bin phase error, which otherwise costs 3 to
    13 dB of level on steady tones), output frame ``k`` reads
    the input at fractional frame ``k * factor``: magnitudes are interpolated linearly between
    the two neighbouring frames, phases are accumulated from the measured per-bin phase advance
    (the classic phase vocoder, as in ``torchaudio.functional.phase_vocoder`` but with one rate
    per example), then inverse STFT.

    Artefacts (inherent to a phase vocoder without phase locking): "phasiness" -- a slightly
    reverberant, smeared sound because the vertical phase coherence between bins is lost --
    and softened transients/onsets (plosives spread over about one window). F0 and the
    spectral envelope are kept. SoX's ``tempo`` (used by Lakomkin et al.) is WSOLA, a
    time-domain method with other artefacts (occasional repeated or skipped pitch periods).

    Args:
        x: ``(batch, channels, samples)`` waveform.
        factor: tempo factor (dimensionless), a number or ``(batch,)``, each in ``(0.25, 4]``.
        sample_rate: Hz; sets the default ``n_fft`` to the power of two nearest 32 ms
            (512 at 16 kHz).
        lengths: ``(batch,)`` valid samples, or ``None`` for all.
        n_fft: FFT size in samples; default from ``sample_rate``.
        hop_length: hop in samples; default ``n_fft // 4``.

    Returns:
        ``(y, out_lengths)``: ``y`` ``(batch, channels, max(out_lengths))`` zero past each
        example's length, ``out_lengths`` ``(batch,)`` int64.
    """
    batch, channels, n = x.shape
    f = _stretch_factor(x, factor, sample_rate, "tempo")
    lengths = _lengths(lengths, x)
    if n_fft is None:
        n_fft = 2 ** int(round(math.log2(0.032 * sample_rate)))
    hop = hop_length or n_fft // 4
    out_len = torch.round(lengths.double() / f).long()
    max_out = int(out_len.max()) if batch else 0
    if n < n_fft // 2 + 1:  # stft with reflect padding needs a few samples; zero-pad short inputs
        x = torch.nn.functional.pad(x, (0, n_fft // 2 + 1 - n))
        n = x.shape[-1]
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    flat = (x * length_mask(lengths, n)).reshape(batch * channels, n)
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
    freq, frames = spec.shape[-2:]
    advance = torch.linspace(0, math.pi * hop, freq, dtype=x.dtype, device=x.device)[:, None]
    if frames >= 3:
        # Frame 0 is centred on the first sample (half of it is padding), so its phases are not
        # those of the signal: re-derive them from frames 1 and 2 (measured phase advance),
        # otherwise a slowed-down output inherits a bin-to-bin phase error for its whole length.
        d12 = spec[..., 2].angle() - spec[..., 1].angle() - advance[:, 0]
        d12 = d12 - 2 * math.pi * torch.round(d12 / (2 * math.pi)) + advance[:, 0]
        spec = torch.cat([torch.polar(spec[..., 0].abs(), spec[..., 1].angle() - d12)[..., None], spec[..., 1:]], dim=-1)
    spec = torch.nn.functional.pad(spec, (0, 2))  # two zero frames past the end

    # Every frame overlapping [0, max_out) is synthesised, so an example's samples do not
    # depend on the rest of the batch (batch == one by one).
    frames_out = (max_out + n_fft // 2) // hop + 2
    steps = torch.arange(frames_out, dtype=torch.float64, device=x.device)[None, :] * f[:, None]
    base = torch.floor(steps)
    alpha = (steps - base).to(x.dtype).repeat_interleave(channels, dim=0)[:, None, :]
    i0 = base.long().clamp(max=frames).repeat_interleave(channels, dim=0)
    i1 = (i0 + 1).clamp(max=frames + 1)
    spec_mag, spec_phase = spec.abs(), spec.angle()
    g0, g1 = i0[:, None, :].expand(-1, freq, -1), i1[:, None, :].expand(-1, freq, -1)
    dphi = spec_phase.gather(-1, g1) - spec_phase.gather(-1, g0) - advance
    dphi = dphi - 2 * math.pi * torch.round(dphi / (2 * math.pi)) + advance
    phase0 = spec_phase[..., :1]
    phase = torch.cat([phase0, phase0 + torch.cumsum(dphi, dim=-1)[..., :-1]], dim=-1)
    mag = (1 - alpha) * spec_mag.gather(-1, g0) + alpha * spec_mag.gather(-1, g1)
    out = torch.polar(mag, phase)
    y = torch.istft(out, n_fft, hop, window=window, center=True, length=max_out)
    y = y.reshape(batch, channels, max_out) * length_mask(out_len, max_out)
    return y, out_len


# ---------------------------------------------------------------- speed (resampling)


def speed(
    x: torch.Tensor,
    factor: Param,
    sample_rate: int,
    lengths: torch.Tensor | None = None,
    zero_crossings: int = 16,
    rolloff: float = 0.9,
    beta: float = 8.555,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Speed perturbation ``y(t) = x(factor * t)``: duration divided, pitch multiplied by ``factor``.

    Implemented as band-limited resampling at an arbitrary per-example ratio: output sample
    ``m`` is the Kaiser-windowed-sinc interpolation of ``x`` at input position
    ``m * factor`` (``zero_crossings`` lobes each side, Kaiser ``beta``); when ``factor > 1``
    the sinc cutoff is lowered to ``rolloff / factor`` of the input Nyquist to avoid aliasing,
    otherwise it is ``rolloff`` (content above ``rolloff * sample_rate / 2`` is attenuated).
    Factors equal to a fraction ``p / q`` with ``q <= 64`` and ``p <= 256`` (0.9, 1.1, ...) run
    as a ``q``-phase strided ``conv1d`` (fast); other factors gather the taps per output sample
    (same kernel, same result up to float rounding, about 10x slower).
    The same as SoX ``speed`` / Kaldi speed perturbation (Ko et al. 2015, used by Latif et al.
    with factors 0.9 and 1.1). The result depends on ``factor`` only; ``sample_rate`` is
    validated and kept for a uniform signature.

    Args:
        x: ``(batch, channels, samples)`` waveform.
        factor: speed factor, a number or ``(batch,)``, each in ``(0.25, 4]``; ``> 1`` faster.
        sample_rate: Hz, of input and output (unchanged).
        lengths: ``(batch,)`` valid samples, or ``None`` for all.

    Returns:
        ``(y, out_lengths)`` as for :func:`tempo`: ``out_lengths = round(lengths / factor)``.
    """
    batch, channels, n = x.shape
    f = _stretch_factor(x, factor, sample_rate, "speed")
    if not 0 < rolloff <= 1:
        raise AugmentationError(f"rolloff must lie in (0, 1], got {rolloff}") from None
    lengths = _lengths(lengths, x)
    out_len = torch.round(lengths.double() / f).long()
    max_out = int(out_len.max()) if batch else 0
    x = x * length_mask(lengths, n)
    y = x.new_zeros(batch, channels, max_out)
    kernel = _SincKernel(zero_crossings, rolloff, beta)
    general = torch.ones(batch, dtype=torch.bool)
    for value in sorted(set(f.tolist())):
        ratio = Fraction(value).limit_denominator(_POLYPHASE_MAX_Q)
        if ratio.numerator <= _POLYPHASE_MAX_P and abs(float(ratio) - value) <= 1e-12 * value:
            sel = torch.nonzero(f.cpu() == value).flatten()
            part = _speed_polyphase(x[sel.to(x.device)], ratio.numerator, ratio.denominator, max_out, kernel)
            y[sel.to(x.device)] = part
            general[sel] = False
    if bool(general.any()):
        sel = torch.nonzero(general).flatten().to(x.device)
        y[sel] = _speed_gather(x[sel], f[sel], max_out, kernel)
    return y * length_mask(out_len, max_out), out_len


_POLYPHASE_MAX_Q = 64
_POLYPHASE_MAX_P = 256


class _SincKernel:
    """Kaiser-windowed sinc interpolation kernel shared by both :func:`speed` paths."""

    def __init__(self, zero_crossings: int, rolloff: float, beta: float) -> None:
        self.zero_crossings, self.rolloff, self.beta = zero_crossings, rolloff, beta

    def cutoff(self, factor: torch.Tensor) -> torch.Tensor:
        """Sinc cutoff as a fraction of the input Nyquist: ``rolloff * min(1, 1 / factor)``."""
        return self.rolloff * torch.clamp(1.0 / factor, max=1.0)

    def half_taps(self, cutoff_min: float) -> int:
        return int(math.ceil(self.zero_crossings / cutoff_min))

    def __call__(self, d: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
        """Weights for distances ``d`` (input samples) at ``cutoff`` (broadcastable)."""
        arg = cutoff * d
        win = (1 - (arg / self.zero_crossings) ** 2).clamp_min(0)
        i0_beta = torch.special.i0(torch.tensor(self.beta, dtype=d.dtype, device=d.device))
        return cutoff * torch.sinc(arg) * torch.special.i0(self.beta * torch.sqrt(win)) / i0_beta


def _speed_polyphase(x: torch.Tensor, p: int, q: int, max_out: int, kernel: _SincKernel) -> torch.Tensor:
    """Speed factor ``p / q`` for all of ``x`` ``(k, channels, n)``: a strided conv1d, ``q`` phases."""
    k, channels, n = x.shape
    factor = torch.tensor(p / q, dtype=torch.float64)
    cutoff = float(kernel.cutoff(factor))
    half = kernel.half_taps(cutoff)
    r = torch.arange(q, dtype=torch.float64)
    base = torch.floor(r * p / q)
    frac = r * p / q - base  # (q,)
    taps = torch.arange(-half + 1, half + 1, dtype=torch.float64)
    w = kernel((frac[:, None] - taps).to(x.dtype), torch.tensor(cutoff, dtype=x.dtype))  # (q, 2 half)
    length = int(base[-1]) + 2 * half
    weight = x.new_zeros(q, 1, length)
    cols = (base.long()[:, None] + torch.arange(2 * half)).to(x.device)
    weight[:, 0, :].scatter_(1, cols, w.to(x.device))
    frames = -(-max_out // q)
    need = (frames - 1) * p + length
    padded = torch.nn.functional.pad(x.reshape(k * channels, 1, n), (half - 1, max(0, need - n - half + 1)))
    out = torch.nn.functional.conv1d(padded, weight, stride=p)[..., :frames]  # (k C, q, frames)
    return out.transpose(1, 2).reshape(k, channels, frames * q)[..., :max_out]


def _speed_gather(x: torch.Tensor, f: torch.Tensor, max_out: int, kernel: _SincKernel) -> torch.Tensor:
    """Any per-example factors ``f`` ``(k,)`` float64: gather ``2 half`` taps per output sample."""
    k, channels, n = x.shape
    cutoff = kernel.cutoff(f)
    half = kernel.half_taps(float(cutoff.min()))
    taps = torch.arange(-half + 1, half + 1, device=x.device)
    cutoff_x = cutoff.to(device=x.device, dtype=x.dtype)[:, None, None]
    y = x.new_zeros(k, channels, max_out)
    chunk = max(256, 2**21 // max(1, k * 2 * half))  # bound the (k, chunk, taps) temporaries
    f = f.to(x.device)
    for start in range(0, max_out, chunk):
        m = torch.arange(start, min(start + chunk, max_out), dtype=torch.float64, device=x.device)
        pos = m[None, :] * f[:, None]  # (k, M) input positions, float64
        base = torch.floor(pos)
        idx = base.long()[..., None] + taps  # (k, M, taps)
        w = kernel(((pos - base)[..., None] - taps).to(x.dtype), cutoff_x)
        w = w * ((idx >= 0) & (idx < n)).to(x.dtype)
        gathered = x.gather(-1, idx.clamp(0, n - 1).reshape(k, 1, -1).expand(-1, channels, -1))
        y[..., start : start + m.numel()] = (gathered.reshape(k, channels, m.numel(), -1) * w[:, None]).sum(-1)
    return y


# ---------------------------------------------------------------- additive noise


def signal_power(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Mean power ``(batch,)`` of each example: mean of ``x**2`` over channels and valid samples."""
    _check_wave(x)
    lengths = _lengths(lengths, x)
    total = (x * length_mask(lengths, x.shape[-1])).pow(2).sum(dim=(1, 2))
    return total / (lengths.to(x.dtype).clamp_min(1) * x.shape[1])


def add_noise(
    x: torch.Tensor,
    noise: torch.Tensor,
    snr_db: Param,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """Add ``noise`` to ``x`` scaled so that each example has the target SNR.

    SNR definition: ``10 * log10(P_signal / P_noise)`` with ``P`` the mean power over the
    whole example (all channels, all valid samples, see :func:`signal_power`) of the clean
    signal and of the *scaled* noise, so the SNR measured afterwards equals ``snr_db`` up to
    float rounding. One scale per example: channels keep their relative levels. An all-zero
    (silent) example gets no noise (its SNR is undefined); an all-zero noise raises.

    Args:
        x: ``(batch, channels, samples)`` clean waveform.
        noise: ``(batch, channels, samples)`` or ``(batch, 1, samples)`` (shared by all
            channels), the same number of samples as ``x``.
        snr_db: target SNR in dB, a number or ``(batch,)``.
        lengths: ``(batch,)`` valid samples; noise is measured and added only there.

    Returns:
        ``(batch, channels, samples)``, ``x + scale * noise``; not clipped.
    """
    _check_wave(x)
    _check_wave(noise, "noise")
    batch, channels, n = x.shape
    if noise.shape[0] != batch or noise.shape[-1] != n or noise.shape[1] not in (1, channels):
        raise AugmentationError(
            f"noise must be ({batch}, 1 or {channels}, {n}) to match x, got {tuple(noise.shape)}; "
            "crop or loop the noise to the signal first"
        ) from None
    lengths = _lengths(lengths, x)
    snr = _param(snr_db, batch, x, "snr_db")
    noise = noise * length_mask(lengths, n)
    p_signal = signal_power(x, lengths)
    p_noise = signal_power(noise.expand(-1, channels, -1), lengths)
    if bool(((p_noise <= 0) & (p_signal > 0)).any()):
        bad = torch.nonzero((p_noise <= 0) & (p_signal > 0)).flatten().tolist()
        raise AugmentationError(f"noise is all zeros for examples {bad}; cannot reach a finite SNR") from None
    scale = torch.sqrt(p_signal / (p_noise.clamp_min(torch.finfo(x.dtype).tiny) * torch.pow(10.0, snr / 10.0)))
    return x + scale[:, None, None] * noise


def nsr_to_snr_db(nsr: Param, power: bool = False) -> torch.Tensor:
    """Convert Lakomkin et al.'s linear noise-to-signal ratio to an SNR in dB.

    The paper "added random background noise ... by sampling the noise-to-signal ratio
    uniformly in the range [0.5, 0.9]" with SoX, without saying whether the ratio is one of
    amplitudes or of powers. Default reading (``power=False``): a ratio of RMS amplitudes,
    i.e. the linear volume factor given to the noise in SoX after matching levels, so
    ``SNR = -20 * log10(nsr)``: [0.5, 0.9] -> [6.02, 0.92] dB. With ``power=True``,
    ``SNR = -10 * log10(nsr)``: [0.5, 0.9] -> [3.01, 0.46] dB. Either way the noise is loud
    (0.5 to 6 dB SNR) and the draw is uniform in the linear ratio, not in dB.

    Args:
        nsr: linear noise-to-signal ratio (> 0), a number or tensor of any shape.
        power: read ``nsr`` as a power ratio instead of an amplitude ratio.

    Returns:
        SNR in dB, float tensor of ``nsr``'s shape.
    """
    t = torch.as_tensor(nsr)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if bool((t <= 0).any()):
        raise AugmentationError(f"noise-to-signal ratio must be > 0, got {t.tolist()}") from None
    return -(10.0 if power else 20.0) * torch.log10(t)


# ---------------------------------------------------------------- impulse responses


def direct_path_delay(ir: torch.Tensor) -> torch.Tensor:
    """Direct-path delay in samples ``(batch,)`` of impulse responses ``(batch, channels, taps)``.

    The index of the largest ``|ir|`` in each channel, then the earliest over channels (so a
    binaural IR keeps its interaural delay and no channel is advanced before time zero).
    """
    _check_wave(ir, "ir")
    return ir.abs().argmax(dim=-1).amin(dim=-1)


def convolve_ir(
    x: torch.Tensor,
    ir: torch.Tensor,
    lengths: torch.Tensor | None = None,
    align: Literal["peak", "none"] = "peak",
) -> torch.Tensor:
    """Convolve each example with its room impulse response, via FFT.

    Length policy: the output has the input's length. With ``align="peak"`` (default) the
    output is read from the full convolution starting at the IR's direct-path delay
    (:func:`direct_path_delay`), so speech keeps its timing: a delta IR, delayed or not,
    returns the input; the reverberant tail past the input's length is cut. With
    ``align="none"`` the first ``samples`` of the causal convolution are kept (speech is delayed
    by the direct path). Samples past ``lengths`` are zeroed. The IR is used as given
    (no energy normalisation): scale the IRs in the bank if levels must be kept.

    Channels: ``x`` with ``C`` channels and ``ir`` with ``Ci`` channels give
    ``max(C, Ci)`` channels, requiring ``C == Ci`` or one of them to be 1: mono speech through
    a binaural IR gives a stereo result (the output channels follow the IR).

    Args:
        x: ``(batch, C, samples)`` waveform.
        ir: ``(batch, Ci, taps)`` impulse responses (zero-padded to a common length), or
            ``(1, Ci, taps)`` shared by the batch; same sample rate as ``x``.
        lengths: ``(batch,)`` valid samples of ``x``.
        align: ``"peak"`` or ``"none"``.

    Returns:
        ``(batch, max(C, Ci), samples)``.
    """
    _check_wave(x)
    _check_wave(ir, "ir")
    batch, channels, n = x.shape
    if ir.shape[0] not in (1, batch):
        raise AugmentationError(f"ir batch must be 1 or {batch}, got shape {tuple(ir.shape)}") from None
    ci = ir.shape[1]
    if not (ci == channels or ci == 1 or channels == 1):
        raise AugmentationError(
            f"cannot combine {channels} signal channels with {ci} IR channels; need equal counts or one of them mono"
        ) from None
    if align not in ("peak", "none"):
        raise AugmentationError(f"align must be 'peak' or 'none', got {align!r}") from None
    lengths = _lengths(lengths, x)
    ir = ir.to(x.dtype).expand(batch, -1, -1)
    taps = ir.shape[-1]
    n_fft = 1 << (n + taps - 2).bit_length()  # >= n + taps - 1
    full = torch.fft.irfft(torch.fft.rfft(x, n_fft) * torch.fft.rfft(ir, n_fft), n_fft)
    if align == "peak":
        delay = direct_path_delay(ir)
    else:
        delay = torch.zeros(batch, dtype=torch.long, device=x.device)
    index = (torch.arange(n, device=x.device)[None, :] + delay[:, None])[:, None, :]
    out = full.gather(-1, index.expand(-1, full.shape[1], -1))
    return out * length_mask(lengths, n)


# ---------------------------------------------------------------- channel (loudspeaker / microphone)


def channel_response(
    freqs_hz: torch.Tensor,
    highpass_hz: Param,
    lowpass_hz: Param,
    peaks: torch.Tensor,
    sample_rate: int,
    order: int = 2,
) -> torch.Tensor:
    """Magnitude response ``(batch, freqs)`` of a playback or recording channel at ``freqs_hz`` ``(freqs,)``.

    A digital (bilinear) Butterworth high-pass and low-pass of ``order``, ``|H|^2 = 1 / (1 + (t_c / t)^(2n))``
    and ``1 / (1 + (t / t_c)^(2n))`` with ``t = tan(pi f / fs)``, at ``highpass_hz`` and ``lowpass_hz``
    ``(batch,)`` Hz (scipy's ``butter``), times one peaking
    equaliser (RBJ cookbook biquad, evaluated on the unit circle) per row ``(centre Hz, gain dB, Q)`` of
    ``peaks`` ``(batch, k, 3)``; a gain of 0 dB is a flat peak. The same family as the simulator's
    loudspeaker (:mod:`ser_robot.sim.loudspeaker`).
    """
    if peaks.dim() != 3 or peaks.shape[-1] != 3:
        raise AugmentationError(f"peaks must be (batch, k, 3) rows of (centre Hz, gain dB, Q), "
                                f"got {tuple(peaks.shape)}")
    batch = peaks.shape[0]
    f = freqs_hz.to(torch.float64).clamp_min(1e-3)[None, :]
    hp = _param(highpass_hz, batch, peaks, "highpass_hz", torch.float64)[:, None]
    lp = _param(lowpass_hz, batch, peaks, "lowpass_hz", torch.float64)[:, None]
    w = 2.0 * math.pi * f / sample_rate
    t, t_hp, t_lp = (torch.tan(math.pi * v / sample_rate) for v in (f.clamp_max(sample_rate / 2 * 0.999999), hp, lp))
    power = 1.0 / (1.0 + (t_hp / t) ** (2 * order)) / (1.0 + (t / t_lp) ** (2 * order))
    z1, z2 = torch.exp(-1j * w), torch.exp(-2j * w)
    for k in range(peaks.shape[1]):
        centre, gain_db, q = (peaks[:, k, i].to(torch.float64)[:, None] for i in range(3))
        a = 10.0 ** (gain_db / 40.0)
        w0 = 2.0 * math.pi * centre / sample_rate
        alpha = torch.sin(w0) / (2.0 * q)
        cos = torch.cos(w0)
        numerator = (1.0 + alpha * a) - 2.0 * cos * z1 + (1.0 - alpha * a) * z2
        denominator = (1.0 + alpha / a) - 2.0 * cos * z1 + (1.0 - alpha / a) * z2
        power = power * (numerator / denominator).abs() ** 2
    return power.sqrt()


def apply_channel(
    x: torch.Tensor,
    highpass_hz: Param,
    lowpass_hz: Param,
    peaks: torch.Tensor,
    sample_rate: int,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """Filter each example ``(batch, channels, samples)`` by its :func:`channel_response`, in the frequency
    domain (zero phase: the features read magnitudes); samples past ``lengths`` stay zero."""
    _check_wave(x)
    lengths = _lengths(lengths, x)
    n = x.shape[-1]
    n_fft = 1 << max(1, (2 * n - 1).bit_length())  # room for both tails of the zero-phase response: no wrap-around
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate).to(x.device)
    response = channel_response(freqs, highpass_hz, lowpass_hz, peaks.to(x.device), sample_rate)
    spectrum = torch.fft.rfft(x * length_mask(lengths, n), n_fft) * response[:, None, :].to(x.dtype)
    return torch.fft.irfft(spectrum, n_fft)[..., :n] * length_mask(lengths, n)


# ---------------------------------------------------------------- mixup


def mixup(
    x: torch.Tensor, y: torch.Tensor, lam: Param, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): ``lam * a_i + (1 - lam) * a_perm[i]`` for inputs and labels.

    Works on waveforms ``(batch, channels, samples)`` or features of any shape ``(batch, ...)``.
    Labels are mixed with the same ``lam`` as the inputs. For zero-padded batches the mixed
    example's valid length is ``max(lengths, lengths[perm])``.

    Args:
        x: ``(batch, ...)`` float inputs.
        y: ``(batch, classes)`` one-hot or soft labels (float), or any ``(batch, ...)`` targets.
        lam: mixing weight in ``[0, 1]``, a number or ``(batch,)``; 1 keeps the example.
        perm: ``(batch,)`` int64 partner index of each example.

    Returns:
        ``(x_mixed, y_mixed)`` with the shapes of ``x`` and ``y``.
    """
    batch = x.shape[0]
    if y.shape[0] != batch or perm.shape != (batch,):
        raise AugmentationError(
            f"x, y and perm must share the batch size, got {tuple(x.shape)}, {tuple(y.shape)}, {tuple(perm.shape)}"
        ) from None
    if not y.is_floating_point():
        raise AugmentationError(f"labels must be float one-hot or soft labels, got {y.dtype}; use one_hot(...).float()") from None
    lam_t = torch.as_tensor(lam, dtype=x.dtype, device=x.device)
    lam_t = lam_t.expand(batch) if lam_t.dim() == 0 else lam_t
    if lam_t.shape != (batch,) or bool(((lam_t < 0) | (lam_t > 1)).any()):
        raise AugmentationError(f"lam must lie in [0, 1] with shape ({batch},), got {lam_t.tolist()}") from None
    perm = perm.to(x.device).long()
    lx = lam_t.reshape(batch, *([1] * (x.dim() - 1)))
    ly = lam_t.to(y.dtype).to(y.device).reshape(batch, *([1] * (y.dim() - 1)))
    return lx * x + (1 - lx) * x[perm], ly * y + (1 - ly) * y[perm.to(y.device)]


# ---------------------------------------------------------------- SpecAugment


def _axes(spec: torch.Tensor, layout: str) -> tuple[int, int]:
    if layout == "frames_dims":
        if spec.dim() != 3:
            raise AugmentationError(f"layout 'frames_dims' needs (batch, frames, dims), got {tuple(spec.shape)}") from None
        return 2, 1  # (freq axis, time axis)
    if layout == "freq_time":
        if spec.dim() < 3:
            raise AugmentationError(f"layout 'freq_time' needs (batch, ..., freq, time), got {tuple(spec.shape)}") from None
        return spec.dim() - 2, spec.dim() - 1
    raise AugmentationError(f"layout must be 'frames_dims' or 'freq_time', got {layout!r}") from None


def mask_bands(
    spec: torch.Tensor,
    starts: torch.Tensor,
    widths: torch.Tensor,
    axis: int,
    mask_value: float = 0.0,
) -> torch.Tensor:
    """Set bands ``[starts, starts + widths)`` along ``axis`` to ``mask_value``, per example.

    Args:
        spec: ``(batch, ...)`` features.
        starts, widths: ``(batch, n_masks)`` int64, in bins/frames along ``axis``; a width of 0
            masks nothing. Bands may overlap.
        axis: the dimension of ``spec`` masked (not 0).

    Returns:
        A masked copy of ``spec``.
    """
    batch = spec.shape[0]
    axis = axis % spec.dim()
    if starts.shape != widths.shape or starts.dim() != 2 or starts.shape[0] != batch:
        raise AugmentationError(
            f"starts and widths must both be (batch={batch}, n_masks), got {tuple(starts.shape)} and {tuple(widths.shape)}"
        ) from None
    pos = torch.arange(spec.shape[axis], device=spec.device)
    s = starts.to(spec.device)[..., None]
    e = s + widths.to(spec.device)[..., None]
    band = ((pos >= s) & (pos < e)).any(dim=1)  # (batch, size)
    shape = [1] * spec.dim()
    shape[0], shape[axis] = batch, spec.shape[axis]
    return spec.masked_fill(band.reshape(shape), mask_value)


def spec_augment(
    spec: torch.Tensor,
    freq_masks: int,
    time_masks: int,
    F: int,
    T: int,
    generator: torch.Generator | None = None,
    layout: Literal["frames_dims", "freq_time"] = "frames_dims",
    lengths: torch.Tensor | None = None,
    mask_value: float = 0.0,
) -> torch.Tensor:
    """SpecAugment frequency and time masking (Park et al. 2019, as described in MTL-AUG).

    Each of ``freq_masks`` masks draws a width ``f`` uniformly from ``{0, ..., F}`` and a start
    ``f0`` uniformly from ``[0, v - f]`` (``v`` feature bins); likewise ``time_masks`` masks
    with ``T`` and ``tau`` frames (the valid frames ``lengths[b]`` when given). Draws are per
    example, on the CPU from ``generator`` (so CPU and CUDA give the same masks for a seed).
    No time warping.

    Args:
        spec: features; ``layout="frames_dims"`` (default, the project's
            ``(batch, frames, dims)`` from :class:`ser_robot.features.base.FrameExtractor`) or
            ``"freq_time"`` (torchaudio's ``(batch, ..., freq, time)``).
        freq_masks, time_masks: number of masks of each kind (>= 0).
        F, T: largest mask width in bins and in frames (>= 0).
        generator: CPU ``torch.Generator``; ``None`` uses torch's default generator.
        lengths: ``(batch,)`` valid frames, or ``None``.
        mask_value: value written into masked cells (0 suits z-normalised features).

    Returns:
        Masked copy of ``spec``, same shape.
    """
    if min(freq_masks, time_masks, F, T) < 0:
        raise AugmentationError(f"mask counts and widths must be >= 0, got {freq_masks}, {time_masks}, {F}, {T}") from None
    f_axis, t_axis = _axes(spec, layout)
    batch = spec.shape[0]
    frames = torch.full((batch,), spec.shape[t_axis], dtype=torch.long) if lengths is None else torch.as_tensor(lengths).long().cpu()
    bins = torch.full((batch,), spec.shape[f_axis], dtype=torch.long)
    out = spec
    if freq_masks:
        out = mask_bands(out, *draw_bands(bins, freq_masks, F, generator), f_axis, mask_value)
    if time_masks:
        out = mask_bands(out, *draw_bands(frames, time_masks, T, generator), t_axis, mask_value)
    return out


def draw_bands(
    sizes: torch.Tensor, count: int, widest: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw SpecAugment bands on the CPU: ``(starts, widths)``, each ``(batch, count)`` int64.

    Width ``w`` uniform in ``{0, ..., min(widest, size)}``, start uniform in ``{0, ..., size - w}``
    for each example's axis ``sizes[b]`` (bins or valid frames).
    """
    sizes = sizes.long().cpu()
    batch = sizes.shape[0]
    widths = torch.floor(torch.rand(batch, count, generator=generator) * (widest + 1)).long()
    widths = torch.minimum(widths, sizes[:, None])
    starts = torch.floor(torch.rand(batch, count, generator=generator) * (sizes[:, None] - widths + 1)).long()
    starts = torch.minimum(starts, sizes[:, None] - widths)
    return starts, widths
