"""Pure, batched functions behind the eGeMAPS-like descriptors (torchaudio style: no state).

Every function takes its constants explicitly (windows, filter banks, frequency axes) and works on
any number of leading dimensions, written ``(..., frame)`` below; a "frame" axis holds samples,
a "freq" axis holds FFT bins. Amplitudes are in full-scale units (samples in [-1, 1]). The
definitions follow Eyben et al. 2016 (GeMAPS) and the openSMILE eGeMAPSv02 components named in
each docstring. Differentiable where the maths allows: band energies, loudness, spectral shape,
MFCC, harmonic amplitudes and HNR carry gradients to the waveform; the lag / peak / root
selections (F0, jitter periods, formants) are piecewise constant and carry none.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "acf_hnr_db",
    "alpha_ratio_db",
    "autocorrelation",
    "equal_loudness_weights",
    "formant_band_amplitude",
    "formants_from_lpc",
    "frame",
    "gaussian_window",
    "hammarberg_index_db",
    "harmonic_amplitudes",
    "hz_to_semitones",
    "jitter_shimmer",
    "levinson_durbin",
    "loudness",
    "mel_filterbank",
    "mfcc",
    "smooth_moving_average",
    "smooth_nonzero_moving_average",
    "spectral_flux",
    "spectral_resample_basis",
    "spectral_slope",
    "yin_frames",
]

EPS = 1e-10
"""Floor for powers and magnitudes before a logarithm or a ratio (full-scale units)."""


def frame(samples: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    """Left-aligned frames without padding: ``(..., samples)`` -> ``(..., frames, frame_length)``."""
    return samples.unfold(-1, frame_length, hop_length)


def gaussian_window(length: int, sigma: float = 0.4, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """openSMILE ``winFunc=gauss``: ``exp(-0.5 ((n - (N-1)/2) / (sigma (N-1)/2))^2)``, shape ``(length,)``."""
    n = torch.arange(length, dtype=torch.float64)
    half = (length - 1) / 2
    return torch.exp(-0.5 * ((n - half) / (sigma * half)) ** 2).to(dtype)


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * torch.expm1(mel / 1127.0)


def mel_filterbank(n_freqs: int, sample_rate: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular filters equally spaced on the (HTK) mel scale, peak 1: ``(n_freqs, n_mels)``.

    ``n_freqs`` is ``n_fft // 2 + 1``; ``f_min``/``f_max`` in Hz bound the outer filter edges.
    """
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got {f_min}, {f_max} at {sample_rate} Hz")
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    edges = _mel_to_hz(torch.linspace(_hz_to_mel(torch.tensor(f_min)).item(),
                                      _hz_to_mel(torch.tensor(f_max)).item(), n_mels + 2, dtype=torch.float64))
    low, centre, high = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - low) / (centre - low)
    falling = (high - freqs[:, None]) / (high - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0).float()


def equal_loudness_weights(freqs: torch.Tensor) -> torch.Tensor:
    """PLP equal-loudness curve (Hermansky 1990, HTK form) at ``freqs`` Hz; same shape, unitless."""
    fsq = freqs.double() ** 2
    weights = (fsq / (fsq + 1.6e5)) ** 2 * ((fsq + 1.44e6) / (fsq + 9.61e6))
    return weights.float()


def loudness(
    power: torch.Tensor, filterbank: torch.Tensor, weights: torch.Tensor, compression: float = 0.33
) -> torch.Tensor:
    """Loudness (openSMILE cMelspec -> cPlp ``doAud`` -> sum): ``sum_b (w_b * E_b) ** compression``.

    ``power`` ``(..., freq)`` power spectrum, ``filterbank`` ``(freq, bands)``, ``weights``
    ``(bands,)`` equal-loudness weights -> ``(...)``. Doubling the amplitude multiplies it by
    ``4 ** compression`` (about 1.58 for 0.33).
    """
    bands = (power @ filterbank) * weights
    return (bands + EPS).pow(compression).sum(dim=-1)


def _band_mask(freqs: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return ((freqs >= low) & (freqs < high)).to(freqs.dtype)


def alpha_ratio_db(power: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Alpha ratio in dB: energy 1-5 kHz over energy 0-1 kHz; ``(..., freq)`` -> ``(...)``."""
    low = power @ _band_mask(freqs, 0.0, 1000.0)
    high = power @ ((freqs >= 1000.0) & (freqs <= 5000.0)).to(power.dtype)
    return 10 * torch.log10((high + EPS) / (low + EPS))


def hammarberg_index_db(power: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Hammarberg index in dB: strongest bin 0-2 kHz over strongest bin 2-5 kHz; ``(..., freq)`` -> ``(...)``."""
    low = power[..., freqs < 2000.0].amax(dim=-1)
    high = power[..., (freqs >= 2000.0) & (freqs <= 5000.0)].amax(dim=-1)
    return 10 * torch.log10((low + EPS) / (high + EPS))


def spectral_slope(power: torch.Tensor, freqs: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Least-squares slope of the log power spectrum (dB) over ``[low, high]`` Hz, in dB/Hz.

    ``(..., freq)`` -> ``(...)``; the regression uses the bins whose centre lies in the band.
    """
    select = (freqs >= low) & (freqs <= high)
    f = freqs[select].to(power.dtype)
    level = 10 * torch.log10(power[..., select] + EPS)
    f_centred = f - f.mean()
    return (level * f_centred).sum(dim=-1) / (f_centred**2).sum()


def spectral_flux(magnitude: torch.Tensor, freqs: torch.Tensor, f_max: float = 5000.0) -> torch.Tensor:
    """Root-mean-square difference of consecutive magnitude spectra up to ``f_max`` Hz.

    ``(..., frames, freq)`` -> ``(..., frames)``; the first frame has no predecessor and gets 0
    (openSMILE cSpectral ``flux``).
    """
    select = freqs <= f_max
    band = magnitude[..., select]
    diff = band[..., 1:, :] - band[..., :-1, :]
    flux = torch.sqrt(diff.pow(2).mean(dim=-1) + EPS**2)
    return torch.cat([torch.zeros_like(magnitude[..., :1, 0]), flux], dim=-1)


def mfcc(mel_power: torch.Tensor, n_mfcc: int, lifter: float = 22.0) -> torch.Tensor:
    """HTK MFCCs 1..``n_mfcc`` (no c0) from mel band powers: log, DCT-II (orthonormal scale), lifter.

    ``(..., bands)`` -> ``(..., n_mfcc)``.
    """
    bands = mel_power.shape[-1]
    k = torch.arange(1, n_mfcc + 1, dtype=torch.float64, device=mel_power.device)
    j = torch.arange(bands, dtype=torch.float64, device=mel_power.device)
    dct = math.sqrt(2.0 / bands) * torch.cos(math.pi * k[None, :] * (j[:, None] + 0.5) / bands)
    lift = 1 + lifter / 2 * torch.sin(math.pi * k / lifter)
    return torch.log(mel_power.clamp_min(EPS)) @ (dct * lift).to(mel_power.dtype)


def hz_to_semitones(f0: torch.Tensor, reference: float = 27.5) -> torch.Tensor:
    """Semitones above ``reference`` Hz (``12 log2(f0 / reference)``), 0 where ``f0 <= 0``."""
    return torch.where(f0 > 0, 12 * torch.log2(f0.clamp_min(1e-3) / reference), torch.zeros_like(f0))


def yin_frames(
    frames: torch.Tensor, sample_rate: float, f0_min: float, f0_max: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """YIN (de Cheveigné & Kawahara 2002) inside each frame: ``(..., frame)`` -> ``(f0, dip)``.

    The integration window is the frame minus the longest lag ``sample_rate / f0_min``. Returns F0
    in Hz (0 where no cumulative-mean-normalised dip falls under ``threshold``) and the dip's value
    (an aperiodicity in [0, 1], 1 when none), both ``(...)``. Not differentiable (lag selection).
    """
    length = frames.shape[-1]
    tau_max = int(sample_rate / f0_min) + 1
    tau_min = max(2, int(sample_rate / f0_max))
    window = length - tau_max
    if window <= 0:
        raise ValueError(f"frame of {length} samples is shorter than the longest period {tau_max}")
    x = frames.detach()
    n_fft = 1 << (length + window - 2).bit_length()
    r = torch.fft.irfft(torch.fft.rfft(x, n_fft) * torch.fft.rfft(x[..., :window], n_fft).conj(), n_fft)
    r = r[..., : tau_max + 1]
    energy = torch.nn.functional.pad(torch.cumsum(x**2, dim=-1), (1, 0))
    taus = torch.arange(tau_max + 1, device=x.device)
    e_tau = energy[..., window : window + tau_max + 1] - energy[..., : tau_max + 1]
    diff = (energy[..., window : window + 1] + e_tau - 2 * r).clamp_min(0)
    cumulative = torch.cumsum(diff[..., 1:], dim=-1)
    cmnd = torch.cat([torch.ones_like(diff[..., :1]), diff[..., 1:] * taus[1:] / cumulative.clamp_min(1e-12)], -1)

    inner = cmnd[..., tau_min:tau_max]
    is_min = (inner <= cmnd[..., tau_min - 1 : tau_max - 1]) & (inner <= cmnd[..., tau_min + 1 : tau_max + 1])
    candidate = is_min & (inner < threshold)
    has = candidate.any(dim=-1)
    # no dip under the threshold: fall back on the global minimum (reported through ``dip``)
    first = torch.where(has, torch.argmax(candidate.int(), dim=-1), torch.argmin(inner, dim=-1)) + tau_min
    left = cmnd.gather(-1, (first - 1).unsqueeze(-1)).squeeze(-1)
    mid = cmnd.gather(-1, first.unsqueeze(-1)).squeeze(-1)
    right = cmnd.gather(-1, (first + 1).unsqueeze(-1)).squeeze(-1)
    denominator = left - 2 * mid + right
    safe = denominator.abs() > 1e-12
    shift = torch.where(safe, 0.5 * (left - right) / torch.where(safe, denominator, torch.ones_like(mid)), 0 * mid)
    period = first.to(x.dtype) + shift.clamp(-1, 1)
    f0 = torch.where(has, sample_rate / period, torch.zeros_like(period))
    return f0, torch.where(has, mid.clamp(0, 1), torch.ones_like(mid))


def jitter_shimmer(
    frames: torch.Tensor,
    f0: torch.Tensor,
    sample_rate: int,
    end: int,
    span: int,
    search: float = 0.1,
    min_cc: float = 0.5,
    max_periods: int = 8,
    chunk: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local jitter (fraction) and local shimmer (dB) by waveform matching (openSMILE ``cPitchJitter``).

    ``frames`` ``(..., frame)`` raw samples, ``f0`` ``(...)`` Hz (0 = unvoiced). With ``T = fs / f0``,
    the periods are chained as in ``cPitchJitter``: from a start ``s`` every length ``L`` between
    ``floor((1 - search) T)`` and ``ceil((1 + search) T)`` samples is scored by the Pearson
    correlation of ``x[s, s + L)`` with ``x[s + L, s + 2 L)``; the highest strict local maximum
    (not at the last two lengths) gives the period ``L`` (parabola-interpolated for its length
    and correlation) and the next start ``s + L``; without one the chain moves on by ``round(T)``.
    A period counts when its interpolated correlation exceeds ``min_cc``. Its amplitude pair is the
    peak-to-peak range (without the first and last sample) of ``x[s, s + L)`` and of
    ``x[s + L, s + 2 L)``.

    openSMILE runs one chain through the whole utterance and gives each 10 ms frame the periods
    whose two-period match ends before the end of its hop; here each frame runs its own short
    chain (bounded dependency): ``K = max(1, round(span / T))`` periods (at most ``max_periods``)
    whose last two-period match ends at sample ``end`` of ``frames`` (starting no earlier than
    sample 0), preceded by one more period that only serves as the previous period of the first.
    Jitter = mean |T_k - T_k-1| over counted consecutive periods / mean counted T_k (0 when there is
    no such pair); shimmer = 20 log10(1 + mean |A0 - A1| / mean (A0 + A1) / 2) over the counted
    periods (0 when none); both capped as openSMILE does (ratio <= 1). Both ``(...)``, 0 where
    unvoiced. Period lengths carry no gradient; amplitudes do.
    """
    shape = frames.shape[:-1]
    x = frames.reshape(-1, frames.shape[-1])
    f = f0.reshape(-1).detach().to(torch.float64)
    jitter = x.new_zeros(x.shape[0])
    shimmer = x.new_zeros(x.shape[0])
    index = (f > 0).nonzero().squeeze(-1)
    if index.numel() == 0:
        return jitter.reshape(shape), shimmer.reshape(shape)
    period = sample_rate / f[index]
    t_min = torch.floor((1 - search) * period).long().clamp_min(2)
    t_max = torch.ceil((1 + search) * period).long()
    # process the voiced frames in chunks of similar period so the padded work stays small
    order = torch.argsort(t_max)
    results_j, results_s = [], []
    for part in order.split(chunk):
        j, s = _jitter_shimmer_chain(
            x[index[part]], period[part], t_min[part], t_max[part], end, span, min_cc, max_periods
        )
        results_j.append(j)
        results_s.append(s)
    sorted_index = index[order]
    jitter = jitter.index_copy(0, sorted_index, torch.cat(results_j).to(x.dtype))
    shimmer = shimmer.index_copy(0, sorted_index, torch.cat(results_s).to(x.dtype))
    return jitter.reshape(shape), shimmer.reshape(shape)


def _jitter_shimmer_chain(
    x: torch.Tensor,
    period: torch.Tensor,
    t_min: torch.Tensor,
    t_max: torch.Tensor,
    end: int,
    span: int,
    min_cc: float,
    max_periods: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`jitter_shimmer` for voiced frames ``x`` ``(n, frame)`` with periods ``(n,)`` in samples.

    The lag products ``x[m] x[m + L]`` of every candidate length ``L`` are summed cumulatively once
    over the samples the chain can reach, so each chain step only gathers from prefix sums.
    """
    n = x.shape[0]
    device = x.device
    rows = torch.arange(n, device=device)
    t_round = torch.round(period).long()
    n_lengths = t_max - t_min + 1
    c_max = int(n_lengths.max())
    l_max = int(t_max.max())
    periods_in_frame = torch.round(span / period).long().clamp(1, max_periods)
    base = (end - 2 * t_max - 2 - periods_in_frame * t_round).clamp_min(0)
    lengths = t_min[:, None] + torch.arange(c_max, device=device)  # (n, c)
    reach = int(((periods_in_frame + 2) * t_max).max()) + 2  # samples after ``base`` the chain reads
    padded = torch.nn.functional.pad(x, (0, reach + l_max + c_max))  # zeros after the frame end
    local = padded.unfold(1, reach + 1, 1)[rows, base]  # (n, reach + 1), keeps the gradient
    xd = padded.detach()
    lag_reach = int(((periods_in_frame + 1) * t_max).max()) + 1  # the first period's end, at most
    # x[base + L + m] for all candidate L: shifted slices of one segment per frame
    segment = xd.unfold(1, c_max + lag_reach - 1, 1)[rows, base + t_min]
    head = local.detach()[:, :lag_reach]
    products = torch.empty(n, c_max, lag_reach, dtype=xd.dtype, device=device)
    for c in range(c_max):
        torch.mul(segment[:, c : c + lag_reach], head, out=products[:, c])
    lag_sum = products.cumsum_(-1)  # (n, c, lag_reach): sum over m <= index
    ld = local.detach()
    csum = torch.nn.functional.pad(torch.cumsum(ld, -1), (1, 0))
    csum2 = torch.nn.functional.pad(torch.cumsum(ld * ld, -1), (1, 0))
    count = lengths.to(ld.dtype)
    peak_ok = torch.arange(1, c_max - 1, device=device) <= (n_lengths[:, None] - 3)
    offsets = torch.arange(l_max, device=device)
    big = torch.finfo(x.dtype).max

    position = torch.zeros(n, dtype=torch.long, device=device)  # chain start relative to ``base``
    last = torch.zeros(n, dtype=torch.float64, device=device)
    total_jitter = torch.zeros_like(last)
    n_pairs = torch.zeros_like(last)
    total_period = torch.zeros_like(last)
    n_counted = torch.zeros_like(last)
    total_amplitude = x.new_zeros(n)
    total_difference = x.new_zeros(n)
    for step in range(int(periods_in_frame.max()) + 1):
        active = step <= periods_in_frame
        s0 = position[:, None].expand(n, c_max)
        s1 = (s0 + lengths).clamp(max=reach + 1)  # lengths past t_max are never peaks: clamp them
        s2 = (s1 + lengths).clamp(max=reach + 1)
        upper = lag_sum.gather(2, (s1 - 1).clamp(0, lag_reach - 1)[..., None])[..., 0]
        lower = lag_sum.gather(2, (s0 - 1).clamp(0, lag_reach - 1)[..., None])[..., 0]
        cross = upper - torch.where(s0 > 0, lower, torch.zeros_like(lower))
        sum_a = csum.gather(1, s1) - csum.gather(1, s0)
        sum_b = csum.gather(1, s2) - csum.gather(1, s1)
        var_a = (csum2.gather(1, s1) - csum2.gather(1, s0) - sum_a**2 / count).clamp_min(0)
        var_b = (csum2.gather(1, s2) - csum2.gather(1, s1) - sum_b**2 / count).clamp_min(0)
        norm = var_a * var_b
        cc = torch.where(norm > 0, (cross - sum_a * sum_b / count) / norm.clamp_min(1e-300).sqrt(), 0 * norm)
        if c_max > 2:
            mid = cc[:, 1:-1]
            is_peak = (cc[:, :-2] < mid) & (mid > cc[:, 2:]) & peak_ok
            found = is_peak.any(-1)
            best = mid.masked_fill(~is_peak, -float("inf")).argmax(-1) + 1
        else:
            found = torch.zeros(n, dtype=torch.bool, device=device)
            best = torch.ones(n, dtype=torch.long, device=device)
        y0 = cc.gather(1, (best - 1)[:, None])[:, 0]
        y1 = cc.gather(1, best.clamp(max=c_max - 1)[:, None])[:, 0]
        y2 = cc.gather(1, (best + 1).clamp(max=c_max - 1)[:, None])[:, 0]
        curvature = y0 - 2 * y1 + y2
        bent = curvature.abs() > 1e-12
        shift = torch.where(bent, 0.5 * (y0 - y2) / torch.where(bent, curvature, torch.ones_like(y1)), 0 * y1)
        peak_cc = y1 - 0.25 * (y0 - y2) * shift
        step_length = t_min + best  # integer period length of the match
        interpolated = (step_length.to(shift.dtype) + shift).double()

        # peak-to-peak amplitudes of the two matched periods (samples 1 .. L-2 of each)
        window = (offsets >= 1) & (offsets[None, :] <= (step_length[:, None] - 2))
        one = local.gather(1, (position[:, None] + offsets).clamp(max=reach))  # clamped = outside the window
        two = local.gather(1, ((position + step_length)[:, None] + offsets).clamp(max=reach))
        a0 = one.masked_fill(~window, -big).amax(-1) - one.masked_fill(~window, big).amin(-1)
        a1 = two.masked_fill(~window, -big).amax(-1) - two.masked_fill(~window, big).amin(-1)

        counted = active & found & (peak_cc > min_cc)
        if step > 0:  # step 0 only provides the previous period of the first one
            pair = counted & (last > 0)
            zero = torch.zeros_like(last)
            total_jitter = total_jitter + torch.where(pair, (last - interpolated).abs(), zero)
            n_pairs = n_pairs + pair.double()
            total_period = total_period + torch.where(counted, interpolated, zero)
            n_counted = n_counted + counted.double()
            total_amplitude = total_amplitude + torch.where(counted, 0.5 * (a0 + a1), torch.zeros_like(a0))
            total_difference = total_difference + torch.where(counted, (a0 - a1).abs(), torch.zeros_like(a0))
        last = torch.where(counted, interpolated, last)
        position = torch.where(active, position + torch.where(found, step_length, t_round), position)

    mean_period = total_period / n_counted.clamp_min(1)
    jitter = torch.where(
        (n_pairs > 0) & (n_counted > 0),
        (total_jitter / n_pairs.clamp_min(1) / mean_period.clamp_min(1e-9)).clamp(max=1.0),
        torch.zeros_like(mean_period),
    )
    ok = (n_counted > 0) & (total_amplitude > 0)
    ratio = (total_difference / total_amplitude.clamp_min(EPS)).clamp(max=1.0)
    shimmer = torch.where(ok, 20 * torch.log10(1 + ratio), torch.zeros_like(ratio))
    return jitter, shimmer


def acf_hnr_db(
    power: torch.Tensor,
    f0: torch.Tensor,
    sample_rate: int,
    n_fft: int,
    f0_min: float = 55.0,
    floor_db: float = -20.0,
) -> torch.Tensor:
    """Harmonics-to-noise ratio in dB from the autocorrelation at the pitch period.

    ``power`` ``(..., freq)`` power spectrum of an ``n_fft``-point FFT, ``f0`` ``(...)`` Hz (>= ``f0_min``).
    r = normalised autocorrelation maximum within ±10 % of the period; HNR = 10 log10(r / (1 - r)),
    floored at ``floor_db``; 0 where ``f0 == 0``. Returns ``(...)``.
    """
    acf = torch.fft.irfft(power, n_fft)
    max_lag = min(n_fft // 2, int(1.1 * sample_rate / f0_min) + 2)
    acf = acf[..., :max_lag] / acf[..., :1].clamp_min(EPS)
    period = sample_rate / f0.detach().clamp_min(1.0)
    lags = torch.arange(max_lag, device=power.device, dtype=power.dtype)
    near = ((lags - period[..., None]).abs() <= 0.1 * period[..., None] + 1) & (lags >= 2)
    r = acf.masked_fill(~near, -1.0).amax(dim=-1).clamp(1e-6, 1 - 1e-6)
    hnr = (10 * torch.log10(r / (1 - r))).clamp_min(floor_db)
    return torch.where(f0 > 0, hnr, torch.zeros_like(hnr))


def harmonic_amplitudes(
    magnitude: torch.Tensor, f0: torch.Tensor, harmonics: torch.Tensor, bin_hz: float, search: float = 0.25
) -> torch.Tensor:
    """Magnitude of harmonics ``harmonics * f0``: the largest bin within ``±search * f0`` of each.

    ``magnitude`` ``(..., freq)``, ``f0`` ``(...)`` Hz, ``harmonics`` ``(..., k)`` harmonic numbers
    (float, >= 1) -> ``(..., k)`` peak magnitudes, interpolated by a parabola on the log magnitude.
    """
    n_freqs = magnitude.shape[-1]
    f = f0.detach()[..., None]
    centre = harmonics.detach() * f / bin_hz
    half = int(math.ceil(search * 1000.0 / bin_hz)) + 1
    offsets = torch.arange(-half, half + 1, device=magnitude.device)
    bins = centre.round().long()[..., None] + offsets
    inside = ((bins.to(centre.dtype) - centre[..., None]).abs() <= (search * f / bin_hz)[..., None].clamp_min(1.0))
    inside = inside & (bins >= 1) & (bins < n_freqs)
    flat = magnitude.gather(-1, bins.clamp(0, n_freqs - 1).flatten(-2)).reshape(bins.shape)
    best = flat.detach().masked_fill(~inside, -1.0).argmax(dim=-1, keepdim=True)
    peak = bins.gather(-1, best).squeeze(-1).clamp(1, n_freqs - 2)
    # parabola through the log magnitudes around the peak bin (exact for a Gaussian window)
    sides = torch.stack([peak - 1, peak, peak + 1], dim=-1)
    a, b, c = torch.log(magnitude.gather(-1, sides.flatten(-2)).reshape(sides.shape).clamp_min(EPS)).unbind(-1)
    den = a - 2 * b + c
    ok = den < -1e-9
    shift = torch.where(ok, 0.5 * (a - c) / torch.where(ok, den, -torch.ones_like(den)), torch.zeros_like(den))
    # a true maximum lies within half a bin; a peak at the edge of the search window on a nearly
    # straight log spectrum gives a huge shift (den ~ float32 noise) and an overflowing estimate
    shift = shift.clamp(-0.5, 0.5)
    picked = torch.exp(b - 0.25 * (a - c) * shift)
    return picked.clamp_min(EPS)


def spectral_resample_basis(
    n_fft: int, frame_length: int, sample_rate: float, target_rate: float, symmetric_pad: bool = True
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Real and imaginary synthesis matrices of openSMILE's ``cSpecResample`` (inverse DFT to a new rate).

    The input is the ``n_fft``-point spectrum of a ``frame_length``-sample frame, zero-padded on both
    sides (``cTransformFFT`` ``zeroPadSymmetric=1``, its default) or on the right. openSMILE rounds
    the output to ``n_out = round(frame_length * target / rate)`` samples (exact rate
    ``n_out / frame_length * rate``, returned), evaluates the inverse DFT over a period of
    ``n_fft * n_out / frame_length`` samples, keeps only the first ``n_out // 2`` bins (DC counted
    once, no Nyquist: its anti-aliasing takes ``min(n_fft, n_out)`` spectrum values, i.e. a band
    of ``n_out / 2`` bins) and divides by ``n_fft / 2``. Returns ``(cos, sin, rate)`` with the
    resampled frame ``spectrum.real @ cos - spectrum.imag @ sin``, matrices ``(n_out // 2, n_out)``.
    """
    n_out = round(frame_length * target_rate / sample_rate)
    period = n_fft * n_out / frame_length
    n_bins = min(n_fft, n_out) // 2
    pad = (n_fft - frame_length) // 2 if symmetric_pad else 0
    bins = torch.arange(n_bins, dtype=torch.float64)[:, None]
    samples = torch.arange(n_out, dtype=torch.float64)[None, :]
    # the input frame sits at ``pad`` in the FFT buffer: undo that delay in the phase
    phase = 2 * math.pi * bins * (samples / period - pad / n_fft)
    scale = 2.0 / n_fft
    return (torch.cos(phase) * scale).float(), (torch.sin(phase) * scale).float(), n_out / frame_length * sample_rate


def autocorrelation(frames: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Time-domain autocorrelation ``sum_n x[n] x[n - k]`` for ``k = 0..max_lag``: ``(..., frame)`` -> ``(..., max_lag + 1)``."""
    length = frames.shape[-1]
    return torch.stack([(frames[..., k:] * frames[..., : length - k]).sum(-1) for k in range(max_lag + 1)], -1)


def levinson_durbin(autocorr: torch.Tensor, order: int) -> torch.Tensor:
    """LPC polynomial ``[1, a_1, ..., a_order]`` from autocorrelation ``(..., >= order + 1)`` -> ``(..., order + 1)``."""
    r = autocorr.clone()
    r[..., 0] = r[..., 0] * (1 + 1e-9) + EPS  # white-noise correction keeps silence finite
    a = torch.zeros(*r.shape[:-1], order + 1, dtype=r.dtype, device=r.device)
    a[..., 0] = 1.0
    error = r[..., 0]
    for i in range(1, order + 1):
        acc = (a[..., :i] * r[..., 1 : i + 1].flip(-1)).sum(dim=-1)
        k = -acc / error
        previous = a.clone()
        a[..., 1 : i + 1] = previous[..., 1 : i + 1] + k[..., None] * previous[..., :i].flip(-1)
        error = error * (1 - k * k)
    return a


def formants_from_lpc(
    lpc: torch.Tensor,
    sample_rate: float,
    n_formants: int,
    f_min: float,
    f_max: float,
    max_bandwidth: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Formant frequencies and bandwidths (Hz) from the roots of the LPC polynomial.

    ``lpc`` ``(..., order + 1)`` -> two ``(..., n_formants)``: the roots in the upper half plane
    with frequency in ``(f_min, f_max)`` and bandwidth under ``max_bandwidth`` Hz, sorted by frequency; bandwidth ``-ln|z| fs / pi``.
    Roots (companion-matrix eigenvalues) outside the unit circle are reflected inside. Missing
    formants are 0. No gradient.
    """
    shape = lpc.shape[:-1]
    a = lpc.detach().reshape(-1, lpc.shape[-1]).double()
    order = a.shape[-1] - 1
    finite = torch.isfinite(a).all(dim=-1)
    companion = torch.zeros(a.shape[0], order, order, dtype=a.dtype, device=a.device)
    companion[:, 0, :] = torch.where(finite[:, None], -a[:, 1:] / a[:, :1], torch.zeros_like(a[:, 1:]))
    companion[:, 1:, :-1] = torch.eye(order - 1, dtype=a.dtype, device=a.device)
    roots = torch.linalg.eigvals(companion)
    roots = torch.where(roots.abs() > 1, 1 / roots.conj(), roots)  # reflect into the unit circle
    freq = torch.angle(roots) * sample_rate / (2 * math.pi)
    bandwidth = -torch.log(roots.abs().clamp_min(1e-12)) * sample_rate / math.pi
    ok = (roots.imag > 0) & (freq > f_min) & (freq < f_max) & (bandwidth < max_bandwidth) & finite[:, None]
    key = torch.where(ok, freq, torch.full_like(freq, float("inf")))
    key, order_index = key.sort(dim=-1)
    bandwidth = bandwidth.gather(-1, order_index)
    take = key[:, :n_formants]
    found = torch.isfinite(take)
    freq_out = torch.where(found, take, torch.zeros_like(take)).float()
    bw_out = torch.where(found, bandwidth[:, :n_formants], torch.zeros_like(take)).float()
    if freq_out.shape[-1] < n_formants:
        pad = n_formants - freq_out.shape[-1]
        freq_out = torch.nn.functional.pad(freq_out, (0, pad))
        bw_out = torch.nn.functional.pad(bw_out, (0, pad))
    return freq_out.reshape(*shape, n_formants), bw_out.reshape(*shape, n_formants)


def formant_band_amplitude(
    magnitude: torch.Tensor, freqs: torch.Tensor, f0: torch.Tensor, formant: torch.Tensor
) -> torch.Tensor:
    """Largest spectral magnitude in ``[0.8 F, 1.2 F]`` (the strongest harmonic near formant ``F``).

    ``magnitude`` ``(..., freq)``, ``freqs`` ``(freq,)`` Hz, ``f0`` ``(...)`` Hz, ``formant``
    ``(..., k)`` Hz -> ``(..., k)``; ``EPS`` where no harmonic of ``f0`` lies in the band
    (openSMILE cHarmonics ``FormantAmplitudeByMaxHarmonic``).
    """
    low, high = 0.8 * formant.detach(), 1.2 * formant.detach()
    inside = (freqs >= low[..., None]) & (freqs <= high[..., None])
    picked = (magnitude[..., None, :] * inside).amax(dim=-1)
    f = f0.detach()[..., None].clamp_min(1.0)
    has_harmonic = (torch.floor(high / f) >= torch.ceil(low / f)) & (formant > 0) & (f0[..., None] > 0)
    return torch.where(has_harmonic, picked, torch.zeros_like(picked)).clamp_min(EPS)


def smooth_moving_average(values: torch.Tensor, width: int = 3) -> torch.Tensor:
    """Centred moving average over ``width`` (odd) frames along dim -2 of ``(..., frames, features)``.

    At the ends the window is cut to the frames that exist and the mean is over those (openSMILE
    ``sma3`` edge behaviour).
    """
    ones = torch.ones_like(values[..., :1])
    return _window_sum(values, width) / _window_sum(ones, width)


def smooth_nonzero_moving_average(values: torch.Tensor, width: int = 3) -> torch.Tensor:
    """openSMILE ``sma3nz`` (``noZeroSma``): mean of the non-zero values in the centred window,
    0 where the centre value is 0. ``(..., frames, features)``."""
    nonzero = (values != 0).to(values.dtype)
    total = _window_sum(values, width)
    count = _window_sum(nonzero, width)
    return torch.where(nonzero > 0, total / count.clamp_min(1), torch.zeros_like(values))


def _window_sum(values: torch.Tensor, width: int) -> torch.Tensor:
    half = width // 2
    padded = torch.nn.functional.pad(values.transpose(-1, -2), (half, half)).transpose(-1, -2)
    return sum(padded[..., k : k + values.shape[-2], :] for k in range(width))
