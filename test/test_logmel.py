"""LogMel: presets as the papers state them, the frame contract, mel placement, librosa agreement,
length rules (segments, fixed frames, fixed duration) and YAML configuration errors."""

from __future__ import annotations

import math
import pathlib

import pytest
import torch

from ser_robot.errors import ConfigError
from ser_robot.features.logmel import (
    PRESETS,
    LogMel,
    LogMelConfig,
    load_logmel_config,
    load_logmel_presets,
)
from ser_robot.features.segments import fix_length, fix_samples, segment

LIBROSA_TOLERANCE_DB = 5e-3  # float32 torchaudio vs float64 librosa, max abs over all bins


def sine(freq: float, seconds: float = 1.0, rate: int = 16000, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def test_presets_follow_the_papers() -> None:
    assert set(PRESETS) >= {"latif2020", "mtl_aug", "ren2020", "ssad"}
    latif = PRESETS["latif2020"]  # 25 ms / 10 ms Hamming, 128 bands, 256-frame segments
    assert (latif.sample_rate, latif.win_length, latif.hop_length) == (16000, 400, 160)
    assert (latif.window, latif.n_mels, latif.segment_frames) == ("hamming", 128, 256)
    mtl = PRESETS["mtl_aug"]  # 40 ms / 10 ms Hamming, 128 bins, 7.5 s
    assert (mtl.win_length, mtl.hop_length, mtl.window, mtl.n_mels) == (640, 160, "hamming", 128)
    assert (mtl.max_seconds, mtl.pad, mtl.crop) == (7.5, "constant", "start")
    for name in ("ren2020", "ssad"):  # 512 / 256 at 16 kHz, 64 mel, fixed 373 frames, middle crop
        c = PRESETS[name]
        assert (c.sample_rate, c.win_length, c.hop_length, c.n_mels) == (16000, 512, 256, 64)
        assert (c.fixed_frames, c.crop) == (373, "centre")
    assert PRESETS["ssad"] == PRESETS["ren2020"]  # SSAD: "set the same as [18]" (Ren)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_frame_count_follows_contract(name: str) -> None:
    extractor = LogMel(name)
    c = extractor.config
    for n in (0, c.win_length - 1, c.win_length, c.win_length + c.hop_length - 1, c.win_length + c.hop_length, 16000):
        out = extractor(torch.zeros(2, n))
        expected = 0 if n < c.win_length else 1 + (n - c.win_length) // c.hop_length
        assert out.shape == (2, expected, c.n_mels) == (2, extractor.frame_count(n), extractor.num_features)
    assert extractor.names[0] == "logmel_000" and len(extractor.names) == c.n_mels
    assert extractor.context == (0, 0)


def test_frames_are_left_aligned() -> None:
    """Frame i sees samples [i*hop, i*hop + win) only: an impulse there changes exactly those frames."""
    extractor = LogMel("latif2020")
    x = torch.zeros(1, 4000)
    x[0, 1000] = 1.0
    loud = (extractor(x)[0].max(dim=-1).values > extractor.pad_value + 1).nonzero().flatten().tolist()
    expected = [i for i in range(extractor.frame_count(4000)) if i * 160 <= 1000 < i * 160 + 400]
    assert loud == expected


def test_silence_is_the_floor_and_batch_equals_items() -> None:
    extractor = LogMel("ren2020")
    assert torch.allclose(extractor(torch.zeros(1, 2000)), torch.tensor(extractor.pad_value))
    assert extractor.pad_value == pytest.approx(-100.0)
    batch = torch.randn(3, 5000, generator=torch.Generator().manual_seed(0))
    together = extractor(batch)
    for i in range(3):
        assert torch.allclose(together[i], extractor(batch[i]), atol=1e-4)
    assert extractor(batch.double()).dtype == torch.float64


@pytest.mark.parametrize("name", ["latif2020", "ren2020"])
@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_sine_lands_in_its_band(name: str, freq: float) -> None:
    extractor = LogMel(name)
    band = int(extractor(sine(freq)).mean(dim=0).argmax())
    centres = extractor.band_centers_hz
    nearest = int((centres - freq).abs().argmin())
    assert abs(band - nearest) <= 1, (band, nearest, float(centres[band]))


@pytest.mark.parametrize("name", ["latif2020", "mtl_aug", "ren2020"])
def test_agrees_with_librosa(name: str) -> None:
    import librosa  # requirements/test.txt: make setup installs it, so this comparison never skips
    import numpy as np

    extractor = LogMel(name)
    c = extractor.config
    x = torch.randn(12000, generator=torch.Generator().manual_seed(1)) * 0.1
    ours = extractor(x).numpy()
    # librosa puts a short window in the middle of an n_fft frame: pad so frames start alike
    side = (c.n_fft - c.win_length) // 2
    padded = np.pad(x.double().numpy(), (side, c.n_fft - c.win_length - side))
    mel = librosa.feature.melspectrogram(
        y=padded, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
        window=c.window, center=False, power=c.power, n_mels=c.n_mels, fmin=c.f_min,
        fmax=extractor.f_max, htk=c.mel_scale == "htk", norm=c.mel_norm,
    )
    theirs = librosa.power_to_db(mel, ref=1.0, amin=c.log_floor, top_db=None).T
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() < LIBROSA_TOLERANCE_DB


def test_segment_rule() -> None:
    frames = torch.arange(10.0).unsqueeze(-1).repeat(1, 2)  # (10, 2)
    parts = segment(frames, 4)
    assert parts.shape == (3, 4, 2)
    assert parts[:, :, 0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]  # last ends at the end
    assert segment(frames, 5).shape == (2, 5, 2)  # exact fit: no extra segment
    assert segment(frames, 4, hop=2).shape == (4, 4, 2)
    short = segment(frames[:3], 4, pad_value=-100.0)
    assert short.shape == (1, 4, 2) and short[0, 3, 0] == -100.0
    assert segment(frames.expand(3, 10, 2), 4).shape == (3, 3, 4, 2)  # leading dims kept


def test_latif_segments_of_256_frames() -> None:
    extractor = LogMel("latif2020")
    assert extractor.model_inputs(torch.zeros(16000 * 5)).shape == (2, 256, 128)  # 498 frames
    assert extractor.model_inputs(torch.zeros(8000)).shape == (1, 256, 128)


def test_fix_length_rule() -> None:
    frames = torch.arange(5.0).unsqueeze(-1)
    assert fix_length(frames, 12, pad="repeat")[:, 0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert fix_length(frames, 7, pad="constant", pad_value=-1.0)[:, 0].tolist() == [0, 1, 2, 3, 4, -1, -1]
    assert fix_length(frames, 3, crop="centre")[:, 0].tolist() == [1, 2, 3]
    assert fix_length(frames, 2, crop="start")[:, 0].tolist() == [0, 1]
    assert fix_length(frames[:0], 2, pad="repeat", pad_value=7.0)[:, 0].tolist() == [7, 7]
    with pytest.raises(ValueError, match="pad must be one of"):
        fix_length(frames, 7, pad="mirror")


def test_ren_and_mtl_fixed_sizes() -> None:
    ren = LogMel("ren2020")
    assert ren.frame_count(95744) == 373  # 373 left-aligned frames = 5.98 s
    assert ren.model_inputs(torch.randn(16000 * 2)).shape == (1, 373, 64)
    long = torch.randn(16000 * 9, generator=torch.Generator().manual_seed(2))
    middle = ren.model_inputs(long)[0]
    full = ren(long)
    start = (full.shape[0] - 373) // 2
    assert torch.equal(middle, full[start : start + 373])
    mtl = LogMel("mtl_aug")
    assert mtl.model_inputs(torch.randn(16000 * 3)).shape == (1, 747, 128)
    assert mtl.model_inputs(torch.randn(16000 * 9)).shape == (1, 747, 128)
    assert fix_samples(torch.ones(5), 8).tolist() == [1, 1, 1, 1, 1, 0, 0, 0]


def test_custom_config_from_yaml(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("base: latif2020\nn_mels: 40\nf_min: 50\nsegment_frames: 100\n")
    config = load_logmel_config(path)
    assert (config.n_mels, config.f_min, config.segment_frames, config.win_length) == (40, 50.0, 100, 400)
    assert isinstance(config.f_min, float)
    plain = load_logmel_config({"sample_rate": 8000, "win_length": 200, "hop_length": 80, "n_mels": 32})
    assert plain.n_fft == 256 and plain.window == "hann"
    assert LogMel(plain)(torch.zeros(1, 8000)).shape == (1, 98, 32)
    assert load_logmel_config(config.to_dict()) == config


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("base: latif2020\nn_mel: 40\n", r"logmel settings: unknown key\(s\) \['n_mel'\]; known keys are \['base'"),
        ("base: latif2020\nwindow: kaiser\n", r"key 'window' must be one of \['hamming', 'hann', 'blackman', 'rectangular'\], got 'kaiser'"),
        ("base: latif2020\nhop_length: 0\n", "key 'hop_length' must be an integer >= 1, got 0"),
        ("base: latif2020\nn_mels: 40.5\n", "key 'n_mels' must be an integer >= 1, got 40.5"),
        ("base: latif2020\nn_fft: 256\n", "'n_fft' is 256, shorter than win_length 400"),
        ("base: latif2020\nf_max: 9000\n", "f_max <= sample_rate / 2 = 8000 Hz"),
        ("base: latif2020\nfixed_frames: 300\n", "segment_frames and fixed_frames are both set"),
        ("base: nobody\n", r"key 'base' must be one of \['latif2020', .*got 'nobody'"),
        ("win_length: 400\n", "sample_rate, hop_length, n_mels missing"),
        ("- 1\n- 2\n", "must hold a non-empty mapping"),
    ],
)
def test_config_errors_name_the_key(tmp_path: pathlib.Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_logmel_config(path)


def test_empty_mel_bands_are_refused() -> None:
    config = PRESETS["latif2020"].replace(mel_scale="htk", mel_norm=None)
    with pytest.raises(ConfigError, match="empty mel band"):
        LogMel(config)
    with pytest.raises(ConfigError, match="unknown logmel preset"):
        LogMel("latif")


def test_presets_file_is_the_source(tmp_path: pathlib.Path) -> None:
    from ser_robot.config_io import config_file

    assert load_logmel_presets(config_file("features.yaml")) == PRESETS
    bad = tmp_path / "features.yaml"
    bad.write_text("logmel:\n  mine:\n    base: nothing\n")
    with pytest.raises(ConfigError, match="preset 'mine'"):
        load_logmel_presets(bad)
    assert LogMelConfig(16000, 400, 160, 64).n_fft == 512


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
)
def test_device_and_dtype(device: str) -> None:
    extractor = LogMel("latif2020")
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(3))
    reference = extractor(x.double())
    out = extractor.to(device)(x.to(device))
    assert out.device.type == device and out.dtype == torch.float32
    assert (out.cpu().double() - reference).abs().max() < 1e-3
