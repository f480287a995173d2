"""eGeMAPS-like low-level descriptors (Eyben et al. 2016) in PyTorch: 34 per 10 ms frame.

The eGeMAPSv02 LLD set with MFCC 1-13 instead of 1-4 (Lakomkin et al.: 32 eGEMAPS LLDs with
13 MFCCs). Settings follow openSMILE's ``eGeMAPSv02`` / ``GeMAPSv01b_core.lld.conf.inc``:

- energy / spectral group on a 20 ms Hamming frame (``frameSize = 0.020`` in the config, whose
  level is called ``frame25``), 512-point FFT: loudness (26 mel bands 20-8000 Hz, PLP
  equal-loudness weighting, power 0.33, summed), alpha ratio, Hammarberg index, log-spectral
  slopes 0-500 and 500-1500 Hz, spectral flux (0-5 kHz), MFCC 1-13 (26 HTK mel bands, lifter 22);
- pitch / voice-quality group on a 60 ms frame: F0 by YIN (threshold 0.3, 55-1000 Hz) on the
  centred 41 ms of the frame decimated to 8 kHz (openSMILE uses SHS plus a Viterbi smoother over
  the whole utterance, which the bounded-dependency contract rules out); voiced where YIN finds a
  dip and the Gaussian-windowed (sigma 0.4) RMS exceeds 0.001 (openSMILE's ``volmerge``
  threshold); jitter and shimmer by openSMILE's ``cPitchJitter`` waveform matching (each period
  length = best-correlated length within +-10 % of the F0 period, periods counted when their
  correlation exceeds 0.5; shimmer from peak-to-peak period amplitudes,
  ``20 log10(1 + mean |dA| / mean A)``) on a chain of periods ending at the end of the frame's
  first hop, reaching up to 20 ms before the frame (see :func:`functional.jitter_shimmer`); HNR
  from the autocorrelation of the Gaussian-windowed frame at the period; harmonic magnitudes
  (log-parabola peak interpolation) from its 1024-point spectrum;
- formants: order-11 LPC (autocorrelation method, ``cLpc p=11``) of the 20 ms Hamming frame
  resampled to 11 kHz (``cSpecResample``), roots between 50 and 5450 Hz (``cFormantLpc``).

``opensmile_quirks=True`` (default) reproduces two openSMILE behaviours found while measuring
parity: cHarmonics numbers harmonics from 0 (= F0), so its ``logRelF0-H1-H2`` is the level of
2 F0 over 3 F0 and ``logRelF0-H1-A3`` the level of 2 F0 over the strongest harmonic within
0.8-1.2 F3 (formant amplitudes stay relative to the F0 harmonic); and the formant chain as the
openSMILE 2.x code runs it: cTransformFFT zero-pads the 320-sample frame symmetrically to 512
(``zeroPadSymmetric=1``), cSpecResample's inverse DFT yields the first 220 samples at 11 kHz of a
352-sample period and keeps only the bins below 110 (0-3.4 kHz), so the LPC sees 66 zeros and
the first 154 frame samples; cFormantLpc negates the predictor coefficients before solving for
roots (no bandwidth limit). This reproduces openSMILE's formant frequencies and bandwidths
(r >= 0.96 on the synthetic corpus), which are far from the true resonances of a vowel. With
``False`` the textbook definitions are used (H1 = F0 harmonic; LPC of the whole frame
band-limited to 5.5 kHz, roots of the LPC polynomial, bandwidth <= 600 Hz).
All 15 ``*_sma3nz`` descriptors, formants included, are computed for voiced frames only (GeMAPS
uses formants of voiced frames; openSMILE's LLD output also lists them in unvoiced frames).

Alignment and edge rule: frame ``i`` starts at sample ``160 i`` (10 ms hop) for every window, as
openSMILE's ``frameCenterSpecial = left`` framers do, so row ``i`` lines up with row ``i`` of
``opensmile.Smile(eGeMAPSv02, LowLevelDescriptors)`` (start time ``i * 10 ms``). The longest
window is 60 ms, so ``n`` samples give ``1 + (n - 960) // 160`` frames; openSMILE also emits
one more frame computed from a zero-padded 60 ms window at the end, which we leave out. Spectral
flux needs the previous frame, jitter/shimmer the 2 hops before the frame, and ``sma3`` a frame
on each side, hence ``context = (3, 1)``. At the ends of the signal the smoother averages over
the frames that exist, the first frame's flux is 0 (openSMILE's rules), and the jitter chain of
the first two frames sees zeros before the signal start. Descriptors named ``*_sma3nz`` are smoothed over non-zero (voiced)
values only and are 0 in unvoiced frames.
"""

from __future__ import annotations

import torch

from ser_robot.features import functional as F
from ser_robot.features.base import FrameExtractor

__all__ = ["EGeMAPS", "EGEMAPS_NAMES"]

_ENERGY_NAMES = ("Loudness", "alphaRatio", "hammarbergIndex", "slope0-500", "slope500-1500", "spectralFlux")
_VOICE_NAMES = (
    "F0semitoneFrom27.5Hz",
    "jitterLocal",
    "shimmerLocaldB",
    "HNRdBACF",
    "logRelF0-H1-H2",
    "logRelF0-H1-A3",
)
_FORMANT_NAMES = tuple(
    f"F{k}{what}" for k in (1, 2, 3) for what in ("frequency", "bandwidth", "amplitudeLogRelF0")
)
N_MFCC = 13
EGEMAPS_NAMES: tuple[str, ...] = (
    tuple(f"{name}_sma3" for name in _ENERGY_NAMES)
    + tuple(f"mfcc{k}_sma3" for k in range(1, N_MFCC + 1))
    + tuple(f"{name}_sma3nz" for name in _VOICE_NAMES + _FORMANT_NAMES)
)
"""The 34 descriptor names, openSMILE spelling, in output order."""

VOICING_RMS = 0.001
"""Minimum RMS (full scale) of the Gaussian-windowed 60 ms frame for a frame to be voiced."""


MAX_FORMANT_BANDWIDTH = 600.0
"""Hz; without the openSMILE quirks, wider LPC roots are not taken as formants (spectral-tilt poles)."""


class EGeMAPS(FrameExtractor):
    """34 eGeMAPS-like LLDs: ``(batch, samples)`` at ``sample_rate`` -> ``(batch, frames, 34)`` float32.

    Args:
        sample_rate: input rate in Hz (the window lengths scale with it; 16000 is the tested one).
        f0_min, f0_max: pitch search range in Hz (openSMILE SHS: 55-1000).
        yin_threshold: YIN cumulative-mean-normalised-difference threshold for voicing.
        opensmile_quirks: reproduce two openSMILE eGeMAPSv02 behaviours for parity (see module doc).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        f0_min: float = 55.0,
        f0_max: float = 1000.0,
        yin_threshold: float = 0.3,
        opensmile_quirks: bool = True,
    ) -> None:
        super().__init__()
        if sample_rate < 11000:
            raise ValueError(f"EGeMAPS needs sample_rate >= 11000 Hz (formants up to 5.5 kHz), got {sample_rate}")
        if not 0 < f0_min < f0_max < sample_rate / 4:
            raise ValueError(f"need 0 < f0_min < f0_max < sample_rate/4, got {f0_min}, {f0_max}")
        self.sample_rate = sample_rate
        self.hop_length = round(0.010 * sample_rate)
        self.short_length = round(0.020 * sample_rate)
        self.window_length = round(0.060 * sample_rate)
        self.context = (3, 1)
        self.jitter_past = 2 * self.hop_length  # samples before the frame the jitter chain may use
        self.names = EGEMAPS_NAMES
        self.f0_min, self.f0_max, self.yin_threshold = f0_min, f0_max, yin_threshold
        self.opensmile_quirks = opensmile_quirks

        self.n_fft_short = 1 << (self.short_length - 1).bit_length()
        self.n_fft_long = 1 << (self.window_length - 1).bit_length()
        self.bin_hz_short = sample_rate / self.n_fft_short
        self.bin_hz_long = sample_rate / self.n_fft_long
        n_short = self.n_fft_short // 2 + 1
        self.lpc_bins = int(5500.0 / self.bin_hz_short)  # 0..5.5 kHz = the 11 kHz resampled band
        self.lpc_rate = 2 * self.lpc_bins * self.bin_hz_short
        # openSMILE: cSpecResample of the symmetric zero-padded 20 ms FFT to 11 kHz
        resample_cos, resample_sin, self.resample_rate = F.spectral_resample_basis(
            self.n_fft_short, self.short_length, sample_rate, 11000.0
        )
        # YIN runs on the centre of the 60 ms frame, decimated by 2 (mean of sample pairs), with the
        # longest integration window that keeps its correlation linear in a half-size FFT
        self.yin_decimation = 2 if sample_rate >= 16000 else 1
        yin_rate = sample_rate / self.yin_decimation
        tau_max = int(yin_rate / f0_min) + 1
        integration = (self.n_fft_long // self.yin_decimation - tau_max + 1) // 2
        self.yin_span = min(self.window_length, (integration + tau_max) * self.yin_decimation)
        self.yin_offset = (self.window_length - self.yin_span) // 2

        self.register_buffer("hamming", torch.hamming_window(self.short_length, periodic=False), persistent=False)
        self.register_buffer("resample_cos", resample_cos, persistent=False)
        self.register_buffer("resample_sin", resample_sin, persistent=False)
        self.register_buffer("gauss", F.gaussian_window(self.window_length, 0.4), persistent=False)
        freqs = torch.arange(n_short, dtype=torch.float32) * self.bin_hz_short
        self.register_buffer("freqs", freqs, persistent=False)
        long_freqs = torch.arange(self.n_fft_long // 2 + 1, dtype=torch.float32) * self.bin_hz_long
        self.register_buffer("long_freqs", long_freqs, persistent=False)
        mel = F.mel_filterbank(n_short, sample_rate, 26, 20.0, min(8000.0, sample_rate / 2))
        self.register_buffer("mel", mel, persistent=False)
        centres = (mel * freqs[:, None]).sum(0) / mel.sum(0)
        self.register_buffer("loudness_weights", F.equal_loudness_weights(centres), persistent=False)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` float -> ``(batch, frame_count(samples), 34)`` float32."""
        if samples.dim() != 2:
            raise ValueError(f"EGeMAPS expects (batch, samples), got shape {tuple(samples.shape)}")
        x = samples.float()
        batch, n = x.shape
        frames_n = self.frame_count(n)
        if frames_n == 0:
            return x.new_zeros(batch, 0, self.num_features)
        # jitter looks back ``jitter_past`` samples (zeros before the signal start: the edge rule)
        padded = torch.nn.functional.pad(x, (self.jitter_past, 0))
        jitter_frames = F.frame(padded, self.jitter_past + self.window_length, self.hop_length)[:, :frames_n]
        long_frames = jitter_frames[..., self.jitter_past :]
        short_frames = long_frames[..., : self.short_length]

        # energy / spectral group: 20 ms Hamming
        spectrum = torch.fft.rfft(short_frames * self.hamming, self.n_fft_short)
        power = spectrum.real**2 + spectrum.imag**2
        magnitude = torch.sqrt(power + F.EPS**2)
        energy = torch.stack(
            [
                F.loudness(power, self.mel, self.loudness_weights),
                F.alpha_ratio_db(power, self.freqs),
                F.hammarberg_index_db(power, self.freqs),
                F.spectral_slope(power, self.freqs, 0.0, 500.0),
                F.spectral_slope(power, self.freqs, 500.0, 1500.0),
                F.spectral_flux(magnitude, self.freqs),
            ],
            dim=-1,
        )
        cepstra = F.mfcc(power @ self.mel, N_MFCC)

        # pitch
        centre = long_frames[..., self.yin_offset : self.yin_offset + self.yin_span]
        decimated = centre.reshape(*centre.shape[:-1], -1, self.yin_decimation).mean(dim=-1)
        f0, _ = F.yin_frames(
            decimated, self.sample_rate / self.yin_decimation, self.f0_min, self.f0_max, self.yin_threshold
        )
        windowed = long_frames * self.gauss
        rms = windowed.detach().pow(2).mean(dim=-1).sqrt()
        voiced = ((f0 > 0) & (rms > VOICING_RMS)).flatten()
        index = voiced.nonzero().squeeze(-1)  # voice quality and formants only where voiced
        if index.numel() > 0:
            values = self._voice(
                jitter_frames.reshape(-1, jitter_frames.shape[-1])[index],
                windowed.reshape(-1, self.window_length)[index],
                spectrum.reshape(-1, spectrum.shape[-1])[index],
                f0.flatten()[index],
            )
        else:
            values = x.new_zeros(0, 15)
        voice = x.new_zeros(batch * frames_n, values.shape[-1]).index_copy(0, index, values)
        voice = voice.reshape(batch, frames_n, -1)

        smooth = F.smooth_moving_average(torch.cat([energy, cepstra], dim=-1))
        smooth_nz = F.smooth_nonzero_moving_average(voice)
        return torch.cat([smooth, smooth_nz], dim=-1)

    def _voice(
        self, frames: torch.Tensor, windowed: torch.Tensor, short_spectrum: torch.Tensor, f0: torch.Tensor
    ) -> torch.Tensor:
        """The 15 ``*_sma3nz`` descriptors (before smoothing) of voiced frames -> ``(voiced, 15)``.

        ``frames`` ``(voiced, jitter_past + window_length)`` raw samples from ``jitter_past`` before
        the frame start, ``windowed`` the Gaussian-windowed 60 ms frames, ``short_spectrum`` the
        complex spectrum of the Hamming-windowed 20 ms frames, ``f0`` in Hz.
        """
        spectrum = torch.fft.rfft(windowed, self.n_fft_long)
        power = spectrum.real**2 + spectrum.imag**2
        magnitude = torch.sqrt(power + F.EPS**2)
        # openSMILE's chain gives frame i the periods whose two-period match ends within its first
        # hop (about one hop of periods): so does ours, plus the period before them
        jitter, shimmer = F.jitter_shimmer(
            frames, f0, self.sample_rate, end=self.jitter_past + self.hop_length, span=self.hop_length
        )
        hnr = F.acf_hnr_db(power, f0, self.sample_rate, self.n_fft_long, self.f0_min)

        short = short_spectrum.detach()
        if self.opensmile_quirks:
            # cSpecResample -> cLpc (acf, p = 11) -> cFormantLpc: the inverse DFT of the symmetric
            # zero-padded FFT to 220 samples at 11 kHz (bins below 3.4 kHz only), and roots of the
            # polynomial with negated predictor coefficients
            bins = self.resample_cos.shape[0]
            resampled = short.real[..., :bins] @ self.resample_cos - short.imag[..., :bins] @ self.resample_sin
            lpc = F.levinson_durbin(F.autocorrelation(resampled.double(), 11), 11)
            lpc = torch.cat([lpc[..., :1], -lpc[..., 1:]], dim=-1)
            formant_freq, formant_bw = F.formants_from_lpc(lpc, self.resample_rate, 5, 50.0, 5450.0)
        else:
            # order-11 LPC of the 0-5.5 kHz band of the 20 ms frame (= 11 kHz resampling)
            short_power = short.real**2 + short.imag**2
            autocorr = torch.fft.irfft(short_power[..., : self.lpc_bins + 1], 2 * self.lpc_bins)[..., :12]
            lpc = F.levinson_durbin(autocorr.double(), 11)
            formant_freq, formant_bw = F.formants_from_lpc(
                lpc, self.lpc_rate, 5, 50.0, 5450.0, MAX_FORMANT_BANDWIDTH
            )
        formant_freq, formant_bw = formant_freq[..., :3], formant_bw[..., :3]

        first, second = (2.0, 3.0) if self.opensmile_quirks else (1.0, 2.0)
        numbers = torch.tensor([1.0, first, second], device=f0.device).expand(f0.shape[0], 3)
        level = 20 * torch.log10(F.harmonic_amplitudes(magnitude, f0, numbers, self.bin_hz_long))
        band = F.formant_band_amplitude(magnitude, self.long_freqs, f0, formant_freq)
        found = band > F.EPS
        band_level = 20 * torch.log10(band.clamp_min(F.EPS))
        formant_amplitude = torch.where(found, band_level - level[:, :1], torch.zeros_like(band_level))
        h1_a3 = torch.where(found[:, 2], level[:, 1] - band_level[:, 2], torch.zeros_like(band_level[:, 2]))
        formants = torch.stack([formant_freq, formant_bw, formant_amplitude], dim=-1).flatten(-2)
        return torch.cat(
            [
                torch.stack([F.hz_to_semitones(f0), jitter, shimmer, hnr, level[:, 1] - level[:, 2], h1_a3], dim=-1),
                formants.to(hnr.dtype),
            ],
            dim=-1,
        )
