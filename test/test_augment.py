"""Acceptance tests of ser_robot.augment (issue "Augmentation", part 1). CPU, a few seconds."""

from __future__ import annotations

import math

import pytest
import torch

import ser_robot.augment as A
from ser_robot.augment import functional as AF
from ser_robot.features.pitch import yin

SR = 16000


def harmonic(f0: float, seconds: float = 2.0, amp: float = 0.3) -> torch.Tensor:
    """A 5-harmonic tone ``(samples,)`` with a slow amplitude envelope (voice-like)."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    env = 0.6 + 0.4 * torch.sin(2 * math.pi * 1.5 * t)
    x = sum(torch.sin(2 * math.pi * k * f0 * t + 0.3 * k) / k for k in range(1, 6))
    return (amp * env * x).float()


def batch_of_tones(f0s=(140.0, 220.0, 180.0), seconds: float = 2.0) -> torch.Tensor:
    return torch.stack([harmonic(f, seconds) for f in f0s])[:, None, :]


def median_f0(x: torch.Tensor) -> float:
    f0, voiced = yin(x, SR)
    assert voiced.float().mean() > 0.8
    return float(f0[voiced].median())


def db(p: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(p)


# ------------------------------------------------------------------ functional


def test_gain_changes_level_by_exactly_the_db_asked():
    x = batch_of_tones()
    g = torch.tensor([-6.0, 0.0, 3.0])
    y = A.gain(x, g)
    measured = db(A.signal_power(y) / A.signal_power(x))
    assert torch.allclose(measured, g, atol=1e-4)
    assert y.abs().max() > 0  # not clipped: +3 dB may exceed the input's peak freely
    assert torch.allclose(A.gain(x, 6.0).abs().max(), x.abs().max() * 10 ** (6 / 20), rtol=1e-6)


def test_peak_guard_is_explicit_and_reports_the_scale():
    x = batch_of_tones() * torch.tensor([1.0, 5.0, 1.0])[:, None, None]
    y, scale = A.peak_guard(x, 1.0)
    assert scale[0] == 1 and scale[2] == 1 and scale[1] < 1
    assert torch.isclose(y[1].abs().max(), torch.tensor(1.0))
    assert torch.equal(y[0], x[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_add_noise_reaches_target_snr_within_0_1_db(dtype):
    gen = torch.Generator().manual_seed(1)
    x = batch_of_tones((140.0, 220.0, 180.0, 300.0)).to(dtype)
    noise = torch.randn(4, 1, x.shape[-1], generator=gen, dtype=dtype) * torch.tensor([1e-3, 1.0, 5.0, 0.1], dtype=dtype)[:, None, None]
    snr = torch.tensor([0.0, 10.0, 20.0, -5.0], dtype=dtype)
    y = A.add_noise(x, noise, snr)
    measured = db(A.signal_power(x) / A.signal_power(y - x))
    assert torch.allclose(measured, snr, atol=0.1)
    assert torch.allclose(measured, snr, atol=1e-3)  # in fact exact up to rounding


def test_add_noise_with_lengths_measures_valid_part_and_keeps_padding_zero():
    x = batch_of_tones((150.0, 250.0))
    lengths = torch.tensor([x.shape[-1], 12000])
    x = x * AF.length_mask(lengths, x.shape[-1])
    noise = torch.randn(2, 1, x.shape[-1], generator=torch.Generator().manual_seed(2))
    y = A.add_noise(x, noise, 5.0, lengths)
    assert torch.all(y[1, :, 12000:] == 0)
    measured = db(A.signal_power(x, lengths) / A.signal_power(y - x, lengths))
    assert torch.allclose(measured, torch.tensor([5.0, 5.0]), atol=1e-3)


def test_nsr_interpretation():
    snr = A.nsr_to_snr_db(torch.tensor([0.5, 0.9]))
    assert torch.allclose(snr, torch.tensor([6.0206, 0.9151]), atol=1e-3)
    snr_p = A.nsr_to_snr_db(torch.tensor([0.5, 0.9]), power=True)
    assert torch.allclose(snr_p, torch.tensor([3.0103, 0.4576]), atol=1e-3)


@pytest.mark.parametrize("factor", [0.85, 1.2])
def test_tempo_changes_duration_by_factor_and_keeps_f0(factor):
    x = batch_of_tones((140.0, 220.0))
    y, lengths = A.tempo(x, factor, SR)
    assert lengths.tolist() == [round(x.shape[-1] / factor)] * 2
    assert y.shape[-1] == lengths.max()
    for b, f0 in enumerate((140.0, 220.0)):
        assert abs(median_f0(y[b, 0, : lengths[b]]) / f0 - 1) < 0.02
        # level roughly kept (phase vocoder, no gain change)
        assert abs(float(db(A.signal_power(y[b : b + 1]) / A.signal_power(x[b : b + 1])))) < 1.5


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_duration_and_f0_by_factor(factor):
    x = batch_of_tones((140.0, 220.0))
    y, lengths = A.speed(x, factor, SR)
    assert lengths.tolist() == [round(x.shape[-1] / factor)] * 2
    for b, f0 in enumerate((140.0, 220.0)):
        assert abs(median_f0(y[b, 0, : lengths[b]]) / (f0 * factor) - 1) < 0.02


def test_speed_polyphase_path_equals_general_path():
    x = batch_of_tones((140.0, 220.0), seconds=0.5)
    for factor in (0.9, 1.1, 1.25):
        fast, n_fast = A.speed(x, factor, SR)
        kernel = AF._SincKernel(16, 0.9, 8.555)
        slow = AF._speed_gather(x, torch.full((2,), factor, dtype=torch.float64), int(n_fast.max()), kernel)
        assert torch.allclose(fast, slow, atol=1e-5)


def test_speed_and_tempo_per_example_factors_and_input_lengths():
    x = batch_of_tones((140.0, 220.0, 180.0))
    lengths = torch.tensor([32000, 20000, 25000])
    x = x * AF.length_mask(lengths, x.shape[-1])
    factors = torch.tensor([0.9, 1.0, 1.1])
    for fn in (A.speed, A.tempo):
        y, out = fn(x, factors, SR, lengths)
        assert out.tolist() == [round(n / f) for n, f in zip(lengths.tolist(), factors.tolist())]
        for b in range(3):
            assert torch.all(y[b, :, out[b]:] == 0)
    y, _ = A.speed(x, factors, SR, lengths)  # speed 1.0 is (nearly) the identity
    # away from the abrupt start and end (edge ringing of the interpolation kernel)
    assert torch.allclose(y[1, :, 100:19900], x[1, :, 100:19900], atol=2e-3)


def test_convolve_ir_length_policy():
    x = batch_of_tones((140.0, 220.0))
    n = x.shape[-1]
    delta = torch.zeros(2, 1, 300)
    delta[:, 0, 0] = 1
    assert torch.allclose(A.convolve_ir(x, delta), x, atol=1e-5)
    delayed = torch.zeros(2, 1, 300)
    delayed[0, 0, 37] = 1
    delayed[1, 0, 250] = 1
    delayed[1, 0, 280] = 0.3  # a late reflection stays late
    y = A.convolve_ir(x, delayed)
    assert y.shape == x.shape
    assert torch.allclose(y[0], x[0], atol=1e-5)
    expected = x[1].clone()
    expected[..., 30:] += 0.3 * x[1, ..., :-30]
    assert torch.allclose(y[1], expected, atol=1e-5)
    causal = A.convolve_ir(x, delayed, align="none")
    assert torch.allclose(causal[0, 0, 37:], x[0, 0, : n - 37], atol=1e-5)


def test_convolve_ir_output_channels_follow_ir():
    x = batch_of_tones((140.0,))
    ir = torch.zeros(1, 2, 64)
    ir[0, 0, 10] = 1.0  # left ear first (direct path)
    ir[0, 1, 13] = 0.5  # right ear 3 samples later, quieter
    y = A.convolve_ir(x, ir)
    assert y.shape == (1, 2, x.shape[-1])
    assert torch.allclose(y[0, 0], x[0, 0], atol=1e-5)
    assert torch.allclose(y[0, 1, 3:], 0.5 * x[0, 0, :-3], atol=1e-5)  # interaural delay kept
    with pytest.raises(A.AugmentationError, match="channels"):
        A.convolve_ir(torch.zeros(1, 3, 100), torch.zeros(1, 2, 10))


def test_channel_response_matches_the_simulators_loudspeaker_filter():
    """The augmentation's magnitude response equals scipy's of the simulator's loudspeaker sections (same
    band limits and peaks), so the channel family holds the robot twin's loudspeaker."""
    import numpy as np
    from scipy import signal

    from ser_robot.sim.loudspeaker import loudspeaker_sos

    ripple = ((180.0, 2.0, 1.2), (900.0, -1.5, 1.0), (4200.0, 3.0, 2.5))
    freqs = torch.linspace(20.0, 7900.0, 300, dtype=torch.float64)
    ours = AF.channel_response(freqs, 120.0, 7000.0, torch.tensor([ripple], dtype=torch.float64), SR)[0]
    _, h = signal.sosfreqz(loudspeaker_sos(120.0, 2, 7000.0, 2, ripple, SR), worN=freqs.numpy(), fs=SR)
    np.testing.assert_allclose(ours.numpy(), np.abs(h), rtol=2e-3, atol=1e-6)


def test_apply_channel_filters_per_example_and_keeps_padding_zero():
    x = batch_of_tones((100.0, 100.0), seconds=1.0)
    lengths = torch.tensor([SR, SR // 2])
    x[1, :, SR // 2:] = 0
    flat = torch.zeros(2, 1, 3, dtype=torch.float64)
    flat[..., 0], flat[..., 2] = 1000.0, 1.0  # 0 dB peaks: flat
    wide = AF.apply_channel(x, 1.0, 7999.0, flat, SR, lengths)
    assert torch.allclose(wide[0], x[0], atol=2e-3)  # an open channel passes the signal
    cut = AF.apply_channel(x, torch.tensor([1.0, 400.0]), 7999.0, flat, SR, lengths)
    assert db(cut[1, :, : SR // 2].pow(2).mean()) < db(x[1, :, : SR // 2].pow(2).mean()) - 6  # 100 Hz cut by 400 Hz HP
    assert torch.all(cut[1, :, SR // 2:] == 0)


def test_random_channel_in_the_lakomkin_chain_only_when_asked():
    x = batch_of_tones((140.0, 220.0), seconds=0.5)
    plain = A.lakomkin_chain([torch.randn(4000)], None, seed=0)
    assert plain.names == ("tempo", "gain", "noise")  # p_channel 0: the paper's chain, draw for draw
    chain = A.lakomkin_chain([torch.randn(4000)], None, p_channel=1.0, seed=0)
    assert chain.names == ("tempo", "gain", "channel", "noise")
    out = chain(x)
    assert bool(out.applied[:, 2].all())
    hp, lp = out.params["channel"]["highpass_hz"], out.params["channel"]["lowpass_hz"]
    assert bool(((hp >= 50) & (hp <= 300)).all()) and bool(((lp >= 3500) & (lp <= 7800)).all())
    with pytest.raises(A.AugmentationError, match="lowpass_hz"):
        A.RandomChannel(SR, lowpass_hz=(100.0, 200.0))


def test_mixup_mixes_labels_with_the_same_lambda():
    x = torch.randn(4, 10, 5, generator=torch.Generator().manual_seed(0))
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3]), 4).float()
    lam = torch.tensor([1.0, 0.7, 0.5, 0.2])
    perm = torch.tensor([1, 2, 3, 0])
    xm, ym = A.mixup(x, y, lam, perm)
    for i in range(4):
        assert torch.allclose(xm[i], lam[i] * x[i] + (1 - lam[i]) * x[perm[i]])
        assert torch.isclose(ym[i, i], lam[i]) and torch.isclose(ym[i, perm[i]], 1 - lam[i])
    assert torch.equal(xm[0], x[0])
    # the module: lambda read back from the labels explains the inputs
    gen = torch.Generator().manual_seed(3)
    xm, ym, _ = A.Mixup(alpha=0.4)(x, y, generator=gen)
    for i in range(4):
        lam_i = ym[i, i]
        j = int(torch.nonzero(ym[i] * (torch.arange(4) != i)).flatten()[0]) if lam_i < 1 else i
        assert torch.allclose(xm[i], lam_i * x[i] + (1 - lam_i) * x[j], atol=1e-6)


def test_spec_augment_masks_the_requested_widths():
    spec = torch.ones(3, 50, 20)  # (batch, frames, dims)
    starts = torch.tensor([[2], [0], [15]])
    widths = torch.tensor([[4], [0], [5]])
    out = AF.mask_bands(spec, starts, widths, axis=2)
    masked_dims = (out == 0).all(dim=1).sum(dim=1)
    assert masked_dims.tolist() == [4, 0, 5]
    assert (out[0, :, 2:6] == 0).all() and (out[0, :, 6:] == 1).all()
    gen = torch.Generator().manual_seed(0)
    for layout, s in (("frames_dims", torch.ones(8, 100, 40)), ("freq_time", torch.ones(8, 1, 40, 100))):
        out = A.spec_augment(s, freq_masks=1, time_masks=1, F=7, T=12, generator=gen, layout=layout)
        f_ax, t_ax = AF._axes(s, layout)
        zero = out == 0
        full_f = zero.all(dim=t_ax).flatten(1).sum(1)  # bins masked over all frames
        full_t = zero.all(dim=f_ax).flatten(1).sum(1)
        assert (full_f <= 7).all() and (full_t <= 12).all() and (full_f + full_t > 0).any()
        # every zero lies in a masked band
        assert torch.equal(zero, zero.all(dim=t_ax, keepdim=True) | zero.all(dim=f_ax, keepdim=True))


# ------------------------------------------------------------------ batch == items, seeds


def test_batch_equals_per_example():
    gen = torch.Generator().manual_seed(5)
    x = batch_of_tones((140.0, 220.0, 180.0), seconds=1.0)
    noise = torch.randn(3, 1, x.shape[-1], generator=gen)
    ir = torch.randn(3, 1, 200, generator=gen) * torch.exp(-torch.arange(200) / 40.0)
    g = torch.tensor([-3.0, 1.0, 2.0])
    f = torch.tensor([0.87, 1.13, 1.0])
    snr = torch.tensor([0.0, 7.0, 14.0])
    batched = {
        "gain": A.gain(x, g),
        "noise": A.add_noise(x, noise, snr),
        "ir": A.convolve_ir(x, ir),
        "tempo": A.tempo(x, f, SR)[0],
        "speed": A.speed(x, f, SR)[0],
    }
    for b in range(3):
        one = slice(b, b + 1)
        single = {
            "gain": A.gain(x[one], g[one]),
            "noise": A.add_noise(x[one], noise[one], snr[one]),
            "ir": A.convolve_ir(x[one], ir[one]),
            "tempo": A.tempo(x[one], f[one], SR)[0],
            "speed": A.speed(x[one], f[one], SR)[0],
        }
        for name, s in single.items():
            assert torch.allclose(batched[name][one, :, : s.shape[-1]], s, atol=1e-5), name


def test_same_seed_same_output_and_examples_get_different_parameters():
    x = batch_of_tones((140.0, 220.0, 180.0, 160.0), seconds=1.0)
    noise_bank = [torch.randn(5000, generator=torch.Generator().manual_seed(7)), torch.randn(20000)]
    for aug in (A.RandomGain(), A.RandomTempo(), A.RandomSpeed(), A.AddNoise(noise_bank, snr_db=(0, 20))):
        y1, l1 = aug(x, generator=torch.Generator().manual_seed(11))
        y2, l2 = aug(x, generator=torch.Generator().manual_seed(11))
        assert torch.equal(y1, y2) and torch.equal(l1, l2)
    same = x[:1].expand(4, -1, -1).contiguous()
    y, _ = A.RandomGain()(same, generator=torch.Generator().manual_seed(0))
    levels = db(A.signal_power(y))
    assert len(set(round(v, 4) for v in levels.tolist())) == 4
    y, lengths = A.RandomTempo()(same, generator=torch.Generator().manual_seed(0))
    assert len(set(lengths.tolist())) == 4


def test_add_noise_module_nsr_range_and_looped_bank():
    x = batch_of_tones((140.0, 220.0, 180.0, 160.0), seconds=1.0)
    bank = [torch.randn(3000, generator=torch.Generator().manual_seed(1))]  # shorter: looped
    aug = A.AddNoise(bank, nsr=(0.5, 0.9))
    y, _ = aug(x, generator=torch.Generator().manual_seed(0))
    snr = db(A.signal_power(x) / A.signal_power(y - x))
    assert ((snr > 0.9151 - 1e-3) & (snr < 6.0206 + 1e-3)).all()
    with pytest.raises(A.AugmentationError, match="exactly one"):
        A.AddNoise(bank, snr_db=(0, 10), nsr=(0.5, 0.9))


# ------------------------------------------------------------------ chain


def _chain(p: float, seed: int = 0) -> A.AugmentationChain:
    bank = [torch.randn(8000, generator=torch.Generator().manual_seed(4))]
    irs = [torch.tensor([1.0, 0.0, 0.4, 0.2]), torch.tensor([0.0, 0.0, 1.0, 0.5, 0.25])]
    return A.AugmentationChain(
        [
            ("gain", A.RandomGain(-6, 3), p),
            ("noise", A.AddNoise(bank, snr_db=(5, 20)), p),
            ("ir", A.ConvolveIR(irs), p),
            ("tempo", A.RandomTempo(0.85, 1.2), p),
        ],
        seed=seed,
    )


def test_chain_probability_zero_is_identity_and_one_applies_everything():
    x = batch_of_tones((140.0, 220.0, 180.0), seconds=1.0)
    r = _chain(0.0)(x)
    assert not r.applied.any() and torch.equal(r.x, x) and r.names == ("gain", "noise", "ir", "tempo")
    assert r.lengths.tolist() == [x.shape[-1]] * 3
    r = _chain(1.0)(x)
    assert r.applied.all() and r.applied.shape == (3, 4)
    assert all(n != x.shape[-1] for n in r.lengths.tolist())  # tempo ran on every example


def test_chain_mask_matches_what_happened_and_is_reproducible():
    x = batch_of_tones((140.0, 220.0, 180.0, 160.0, 200.0, 120.0, 250.0, 300.0), seconds=0.5)
    chain = A.AugmentationChain([("gain", A.RandomGain(1, 3), 0.5), ("noise", A.AddNoise(snr_db=(10, 10)), 0.5)], seed=3)
    r = chain(x)
    assert r.applied.any() and not r.applied.all()
    for b in range(8):
        gain_on, noise_on = r.applied[b].tolist()
        if not gain_on and not noise_on:
            assert torch.equal(r.x[b], x[b])
        if gain_on and not noise_on:
            ratio = float(db(A.signal_power(r.x[b : b + 1]) / A.signal_power(x[b : b + 1])))
            assert 1 - 1e-4 <= ratio <= 3 + 1e-4
            assert torch.allclose(r.x[b], x[b] * 10 ** (ratio / 20), atol=1e-5)  # a pure gain
        if noise_on and not gain_on:
            residual = r.x[b] - x[b]
            assert abs(float(db(A.signal_power(x[b : b + 1]) / A.signal_power(residual[None]))) - 10) < 1e-3
    again = A.AugmentationChain([("gain", A.RandomGain(1, 3), 0.5), ("noise", A.AddNoise(snr_db=(10, 10)), 0.5)], seed=3)(x)
    assert torch.equal(again.x, r.x) and torch.equal(again.applied, r.applied)
    other = A.AugmentationChain([("gain", A.RandomGain(1, 3), 0.5), ("noise", A.AddNoise(snr_db=(10, 10)), 0.5)], seed=4)(x)
    assert not torch.equal(other.x, r.x)


def test_chain_with_mixup_and_binaural_ir_and_lakomkin_factory():
    x = batch_of_tones((140.0, 220.0, 180.0, 160.0), seconds=0.5)
    labels = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3]), 4).float()
    stereo_ir = torch.zeros(2, 32)
    stereo_ir[0, 0], stereo_ir[1, 2] = 1.0, 0.7
    chain = A.AugmentationChain([("ir", A.ConvolveIR([stereo_ir]), 0.5), ("mixup", A.Mixup(0.4), 1.0)], seed=1)
    r = chain(x, labels=labels)
    assert r.x.shape == (4, 2, x.shape[-1]) and torch.allclose(r.labels.sum(1), torch.ones(4))
    with pytest.raises(A.AugmentationError, match="labels"):
        chain(x)
    lk = A.lakomkin_chain([torch.randn(4000)], [torch.tensor([1.0, 0.3])], seed=0)
    assert lk.names == ("tempo", "gain", "noise", "ir")
    assert torch.allclose(lk.probabilities, torch.full((4,), A.LAKOMKIN_DEFAULT_PROBABILITY, dtype=torch.float64))
    out = lk(x)
    assert out.x.shape[0] == 4 and out.applied.shape == (4, 4)


def test_errors_name_the_bad_value():
    with pytest.raises(A.AugmentationError, match=r"\(batch, channels, samples\)"):
        A.gain(torch.zeros(10), 1.0)
    with pytest.raises(A.AugmentationError, match="factor"):
        A.tempo(torch.zeros(1, 1, 1000), 10.0, SR)
    with pytest.raises(A.AugmentationError, match="probabilities"):
        A.AugmentationChain([("gain", A.RandomGain(), 1.5)])
    from ser_robot.errors import SerRobotError

    assert issubclass(A.AugmentationError, SerRobotError)


# ------------------------------------------------------------------ GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(5)
    x = batch_of_tones((140.0, 220.0, 180.0), seconds=1.0)
    noise = torch.randn(3, 1, x.shape[-1], generator=gen)
    ir = torch.randn(3, 2, 200, generator=gen) * torch.exp(-torch.arange(200) / 40.0)
    f = torch.tensor([0.87, 1.13, 1.0])
    cuda = torch.device("cuda")
    pairs = [
        (A.gain(x, f), A.gain(x.to(cuda), f.to(cuda))),
        (A.add_noise(x, noise, f * 5), A.add_noise(x.to(cuda), noise.to(cuda), (f * 5).to(cuda))),
        (A.convolve_ir(x, ir), A.convolve_ir(x.to(cuda), ir.to(cuda))),
        (A.tempo(x, f, SR)[0], A.tempo(x.to(cuda), f.to(cuda), SR)[0]),
        (A.speed(x, f, SR)[0], A.speed(x.to(cuda), f.to(cuda), SR)[0]),
    ]
    for cpu, gpu in pairs:
        assert gpu.is_cuda and torch.allclose(cpu, gpu.cpu(), atol=1e-4)
    r_cpu = _chain(0.7, seed=9)(x)
    r_gpu = _chain(0.7, seed=9)(x.to(cuda))
    assert torch.equal(r_cpu.applied, r_gpu.applied) and torch.equal(r_cpu.lengths, r_gpu.lengths.cpu())
    assert torch.allclose(r_cpu.x, r_gpu.x.cpu(), atol=1e-4)
