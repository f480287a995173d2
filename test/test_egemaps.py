"""EGeMAPS descriptors on signals with a known answer, and the FrameExtractor contract."""

from __future__ import annotations

import math

import pytest
import torch

from ser_robot.features.egemaps import EGEMAPS_NAMES, EGeMAPS

RATE = 16000


@pytest.fixture(scope="module")
def extractor() -> EGeMAPS:
    return EGeMAPS()


@pytest.fixture(scope="module")
def plain() -> EGeMAPS:
    """Textbook definitions (no openSMILE compatibility quirks)."""
    return EGeMAPS(opensmile_quirks=False)


def column(features: torch.Tensor, name: str) -> torch.Tensor:
    return features[..., EGEMAPS_NAMES.index(name)]


def harmonic_tone(f0: float, amplitudes: list[float], seconds: float = 0.6) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    tone = sum(a * torch.cos(2 * math.pi * (k + 1) * f0 * t) for k, a in enumerate(amplitudes))
    return (0.3 * tone).float()


def pulse_train(periods: list[int], amplitudes: list[float], samples: int) -> torch.Tensor:
    signal = torch.zeros(samples)
    position, k = 0, 0
    while position < samples:
        signal[position] = amplitudes[k % len(amplitudes)]
        position += periods[k % len(periods)]
        k += 1
    return 0.5 * signal


def resonate(signal: torch.Tensor, formants: list[tuple[float, float]]) -> torch.Tensor:
    """Cascade of two-pole resonators (frequency, bandwidth in Hz), applied in the frequency domain."""
    n = 2 * signal.shape[-1]
    z = torch.exp(-2j * math.pi * torch.fft.rfftfreq(n, 1 / RATE).double() / RATE)
    response = torch.ones_like(z)
    for frequency, bandwidth in formants:
        r = math.exp(-math.pi * bandwidth / RATE)
        pole = r * complex(math.cos(2 * math.pi * frequency / RATE), math.sin(2 * math.pi * frequency / RATE))
        response = response * (1 - 2 * pole.real * z + r * r * z * z).reciprocal()
    out = torch.fft.irfft(torch.fft.rfft(signal.double(), n) * response, n)[: signal.shape[-1]]
    return (0.3 * out / out.abs().max()).float()


def voiced_median(features: torch.Tensor, name: str) -> float:
    values = column(features, name)
    return values[values != 0].median().item()


def test_names_shapes_and_frame_count(extractor):
    assert len(extractor.names) == extractor.num_features == 34
    assert extractor.names[0] == "Loudness_sma3" and "mfcc13_sma3" in extractor.names
    assert "F0semitoneFrom27.5Hz_sma3nz" in extractor.names and "F3amplitudeLogRelF0_sma3nz" in extractor.names
    assert (extractor.window_length, extractor.hop_length, extractor.context) == (960, 160, (3, 1))
    for samples in (500, 959, 960, 1119, 1120, 8000):
        out = extractor(torch.zeros(2, samples))
        assert out.shape == (2, extractor.frame_count(samples), 34) and out.dtype == torch.float32
    assert extractor.frame_count(959) == 0 and extractor.frame_count(1120) == 2
    with pytest.raises(ValueError, match="got shape"):
        extractor(torch.zeros(8000))


@pytest.mark.parametrize("f0", [110.0, 220.0, 330.0])
def test_f0_semitones_of_a_sine(extractor, f0):
    out = extractor(harmonic_tone(f0, [1.0])[None])[0]
    semitones = column(out, "F0semitoneFrom27.5Hz_sma3nz")
    assert (semitones > 0).float().mean() > 0.9
    assert voiced_median(out, "F0semitoneFrom27.5Hz_sma3nz") == pytest.approx(12 * math.log2(f0 / 27.5), abs=0.1)


def test_f0_of_a_pulse_train(extractor):
    out = extractor(pulse_train([100], [1.0], 9600)[None])[0]  # 160 Hz
    assert voiced_median(out, "F0semitoneFrom27.5Hz_sma3nz") == pytest.approx(12 * math.log2(160 / 27.5), abs=0.1)


def test_harmonic_differences(plain, extractor):
    tone = harmonic_tone(200.0, [1.0, 0.5, 0.125])[None]
    # textbook: H1-H2 = 20 log10(1 / 0.5)
    assert voiced_median(plain(tone)[0], "logRelF0-H1-H2_sma3nz") == pytest.approx(6.02, abs=0.5)
    # openSMILE counts harmonics from 0 = F0, so its "H1-H2" compares 2 F0 with 3 F0: 20 log10(0.5 / 0.125)
    assert voiced_median(extractor(tone)[0], "logRelF0-H1-H2_sma3nz") == pytest.approx(12.04, abs=0.5)


def test_jitter_and_shimmer_of_perturbed_pulse_trains(extractor):
    def vowel(periods: list[int], amplitudes: list[float]) -> torch.Tensor:
        return resonate(pulse_train(periods, amplitudes, 9600), [(500.0, 100.0), (1500.0, 120.0)])

    steady = extractor(vowel([100], [1.0])[None])[0]
    jittered = extractor(torch.stack([vowel([99, 101], [1.0]), vowel([98, 102], [1.0])]))
    shimmered = extractor(torch.stack([vowel([100], [1.0, 0.8]), vowel([100], [1.0, 0.6])]))
    assert voiced_median(steady, "jitterLocal_sma3nz") < 0.003
    assert column(steady, "shimmerLocaldB_sma3nz")[3:].abs().max() < 0.3  # after the onset transient
    # jitter = mean |T_k - T_k-1| / mean T: 0.02 and 0.04 for these period pairs. Waveform matching
    # of consecutive periods (cPitchJitter) underestimates both; openSMILE 2.6 gives 0.018 / 0.036
    small, large = (voiced_median(jittered[k], "jitterLocal_sma3nz") for k in range(2))
    assert 0.009 < small < 0.025 and 0.018 < large < 0.05 and 1.6 < large / small < 2.6
    # shimmer = 20 log10(1 + mean |A_k - A_k+1| / mean A) of peak-to-peak period amplitudes:
    # 1.74 dB for amplitudes 1 / 0.8 and 3.52 dB for 1 / 0.6 (openSMILE 2.6 gives 1.57 dB for the first)
    weak, strong = (voiced_median(shimmered[k], "shimmerLocaldB_sma3nz") for k in range(2))
    assert 0.8 < weak < 2.2 and 1.6 < strong < 4.0 and strong > 1.5 * weak


def test_spectral_slopes_white_versus_pink_noise(extractor):
    generator = torch.Generator().manual_seed(1)
    white = torch.randn(2 * RATE, generator=generator, dtype=torch.float64)
    spectrum = torch.fft.rfft(white)
    frequencies = torch.fft.rfftfreq(white.shape[-1], 1 / RATE).clamp_min(20.0)
    pink = torch.fft.irfft(spectrum / frequencies.sqrt(), white.shape[-1])  # power ~ 1/f: -3 dB/octave
    batch = torch.stack([white / white.std(), pink / pink.std()]).float() * 0.1
    out = extractor(batch)
    slope_white = column(out[0], "slope500-1500_sma3").median().item()
    slope_pink = column(out[1], "slope500-1500_sma3").median().item()
    assert abs(slope_white) < 0.0015
    # 1/f power: -10 log10(f) has a mean derivative of about -10 / (ln 10 * 1000 Hz) = -0.0043 dB/Hz
    assert slope_pink == pytest.approx(-0.0045, abs=0.0015)
    assert column(out[1], "slope0-500_sma3").median() < 0 < column(out[0], "alphaRatio_sma3").median() + 10
    assert column(out[0], "alphaRatio_sma3").median() == pytest.approx(10 * math.log10(4), abs=1.0)  # 1-5k vs 0-1k
    assert column(out[1], "alphaRatio_sma3").median() < column(out[0], "alphaRatio_sma3").median() - 5


def test_loudness_follows_the_compression_power(extractor):
    tone = harmonic_tone(200.0, [1.0, 0.5, 0.25])[None]
    ratio = column(extractor(2 * tone), "Loudness_sma3") / column(extractor(tone), "Loudness_sma3")
    # loudness = sum over bands of (weighted band energy) ** 0.33, and energy goes as amplitude squared
    assert ratio.median().item() == pytest.approx(4**0.33, rel=1e-3)


def test_formants_of_a_synthetic_vowel(plain):
    source = pulse_train([160], [1.0], 9600)  # 100 Hz
    vowel = resonate(source, [(700.0, 80.0), (1220.0, 90.0), (2600.0, 120.0)])  # /a/
    out = plain(vowel[None])[0]
    for k, expected in ((1, 700.0), (2, 1220.0), (3, 2600.0)):
        assert voiced_median(out, f"F{k}frequency_sma3nz") == pytest.approx(expected, rel=0.12)


def test_formants_match_opensmile_on_synthetic_vowels(extractor):
    """openSMILE's formant chain (symmetric zero padding, 3.4 kHz band at 11 kHz, negated LPC
    polynomial) is reproduced: medians measured with opensmile 2.6.0 eGeMAPSv02 on these signals."""
    source = pulse_train([160], [1.0], 9600)
    cases = [
        ([(700.0, 80.0), (1220.0, 90.0), (2600.0, 120.0)], (158.0, 1231.0, 2472.0), 1575.0),
        ([(300.0, 60.0), (2300.0, 100.0), (3000.0, 120.0)], (954.0, 1803.0, 2857.0), 1411.0),
    ]
    out = extractor(torch.stack([resonate(source, formants) for formants, _, _ in cases]))
    for k, (_, expected, bandwidth) in enumerate(cases):
        for n, value in enumerate(expected, start=1):
            assert voiced_median(out[k], f"F{n}frequency_sma3nz") == pytest.approx(value, rel=0.02)
        assert voiced_median(out[k], "F1bandwidth_sma3nz") == pytest.approx(bandwidth, rel=0.03)


def test_unvoiced_zeros_on_noise_and_silence(extractor):
    noise = torch.randn(RATE, generator=torch.Generator().manual_seed(0)) * 0.1
    out = extractor(torch.stack([noise, torch.zeros(RATE)]))
    assert torch.isfinite(out).all()
    nz = [i for i, name in enumerate(EGEMAPS_NAMES) if name.endswith("_sma3nz")]
    voiced_noise = column(out[0], "F0semitoneFrom27.5Hz_sma3nz") > 0
    assert voiced_noise.float().mean() < 0.1
    assert (out[0][~voiced_noise][:, nz] == 0).all()
    assert (out[1][:, nz] == 0).all()


def test_batch_equals_items_and_bounded_dependency(extractor):
    generator = torch.Generator().manual_seed(2)
    a = resonate(pulse_train([120, 123], [1.0, 0.9], 8000), [(500.0, 80.0), (1500.0, 100.0)])
    b = torch.randn(8000, generator=generator) * 0.05 + harmonic_tone(150.0, [1.0, 0.3], 0.5)
    batch = extractor(torch.stack([a, b]))
    torch.testing.assert_close(batch[0], extractor(a[None])[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batch[1], extractor(b[None])[0], atol=1e-4, rtol=1e-4)
    # frame i depends only on its window and context: a prefix gives the same frames away from its end
    prefix = extractor(a[None, :5000])[0]
    keep = prefix.shape[0] - extractor.context[1]
    torch.testing.assert_close(prefix[:keep], batch[0, :keep], atol=1e-4, rtol=1e-4)
    # ... and a signal starting k hops later gives the same frames after the past context
    k = 5
    later = extractor(a[None, k * extractor.hop_length :])[0]
    skip = extractor.context[0]
    torch.testing.assert_close(later[skip:], batch[0, k + skip : k + later.shape[0]], atol=1e-4, rtol=1e-4)


def test_gradient_reaches_the_waveform(extractor):
    signal = resonate(pulse_train([100], [1.0], 4800), [(600.0, 80.0), (1700.0, 100.0)])[None].clone()
    signal.requires_grad_(True)
    out = extractor(signal)
    for name in ("Loudness_sma3", "alphaRatio_sma3", "slope0-500_sma3", "spectralFlux_sma3", "mfcc1_sma3"):
        (grad,) = torch.autograd.grad(column(out, name).sum(), signal, retain_graph=True)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    (grad,) = torch.autograd.grad(out.sum(), signal)
    assert torch.isfinite(grad).all()


def test_harmonic_amplitudes_stay_finite_on_a_smooth_spectrum():
    """A peak at the edge of the search window on a straight log spectrum: float32 noise in the
    parabola's curvature once gave shifts of 1e4 bins and infinite amplitudes (a NaN H1-H2)."""
    from ser_robot.features import functional as F

    magnitude = torch.exp(-0.005 * torch.arange(513, dtype=torch.float32)).repeat(200, 1)
    f0 = torch.linspace(80, 400, 200)
    amplitudes = F.harmonic_amplitudes(magnitude, f0, torch.tensor([1.0, 2.0, 3.0]).expand(200, 3), 15.625)
    assert torch.isfinite(amplitudes).all() and amplitudes.max() <= magnitude.max() * 1.01
