"""Noise bank and room impulse responses (ser_robot.acoustics)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from ser_robot.acoustics import (
    CATEGORIES,
    CLIP_RMS_DBFS,
    PEAK_LIMIT,
    SAMPLE_RATE,
    AcousticsError,
    NoiseBank,
    RirBank,
    build_noise_bank,
    build_rir_bank,
    category_rng,
    generate_noise,
    measure_rt60,
)
from ser_robot.acoustics.ego_noise import fan_ego_noise
from ser_robot.acoustics.noise import coloured, fan_noise
from ser_robot.data.manifest import read_manifest

NO_SPEECH = [name for name, category in CATEGORIES.items() if not category.needs_speech]
WITH_SPEECH = [name for name, category in CATEGORIES.items() if category.needs_speech]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from ser_robot.data.synth.corpus import generate_corpus

    out = tmp_path_factory.mktemp("synth")
    generate_corpus(out, speakers=4, sentences=2, seed=0, workers=1, progress=False)
    return out / "manifest.jsonl"


@pytest.fixture(scope="module")
def rir_bank(tmp_path_factory):
    """Two moderately sized, near-cubic rooms (RT60 0.4-0.5 s), two sources each; one room is the test room."""
    return build_rir_bank(tmp_path_factory.mktemp("rirs"), count=4, seed=3, rt60_range=(0.4, 0.5),
                          room_size_range=((5.5, 6.0), (4.5, 5.0), (3.0, 3.2)), distance_range=(1.0, 2.0),
                          sources_per_room=2, test_fraction=0.5)


def _level_ok(samples: np.ndarray, params: dict) -> None:
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert np.all(np.isfinite(samples))
    assert np.max(np.abs(samples)) <= PEAK_LIMIT + 1e-6
    level = 20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    if params["peak_limited"]:
        assert level < CLIP_RMS_DBFS and np.max(np.abs(samples)) == pytest.approx(PEAK_LIMIT, abs=1e-4)
    else:
        assert level == pytest.approx(CLIP_RMS_DBFS, abs=0.05)


@pytest.mark.parametrize("category", NO_SPEECH)
def test_every_category_is_deterministic_finite_and_at_the_documented_level(category):
    first = generate_noise(category, category_rng(0, category, 0), 1.5)
    again = generate_noise(category, category_rng(0, category, 0), 1.5)
    other = generate_noise(category, category_rng(1, category, 0), 1.5)
    assert first.samples.shape == (int(1.5 * SAMPLE_RATE),)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert first.params == again.params
    assert not np.array_equal(first.samples, other.samples)
    _level_ok(first.samples, first.params)
    json.dumps(first.params)  # goes into the bank's manifest


@pytest.mark.parametrize("colour, slope_db_per_octave", [("white", 0.0), ("pink", -3.0), ("brown", -6.0), ("blue", 3.0)])
def test_coloured_noise_slope(colour, slope_db_per_octave):
    samples = coloured(np.random.default_rng(0), 8.0, colour)
    freqs, psd = signal.welch(samples, fs=SAMPLE_RATE, nperseg=4096)
    band = (freqs >= 100) & (freqs <= 4000)
    slope = np.polyfit(np.log2(freqs[band]), 10 * np.log10(psd[band]), 1)[0]
    assert slope == pytest.approx(slope_db_per_octave, abs=0.4)


def _peak_db(samples: np.ndarray, freq_hz: float) -> float:
    """Level at ``freq_hz`` above the median level of the octave around it, dB."""
    freqs, psd = signal.welch(samples, fs=SAMPLE_RATE, nperseg=8192)
    near = np.abs(freqs - freq_hz) <= 4
    octave = (freqs > freq_hz / np.sqrt(2)) & (freqs < freq_hz * np.sqrt(2))
    return float(10 * np.log10(psd[near].max() / np.median(psd[octave])))


def test_fan_tones_peak_at_the_blade_pass_frequency():
    computer, params = fan_noise(np.random.default_rng(0), 4.0, rpm=2400, blades=7, tonal_db=6.0)
    assert params["blade_pass_hz"] == pytest.approx(280.0)
    assert _peak_db(computer, 280.0) > 15
    robot, params = fan_ego_noise(np.random.default_rng(0), 4.0, rpm=3000, blades=7, drift=0.002, tonal_db=6.0)
    assert params["blade_pass_hz"] == pytest.approx(350.0)
    assert _peak_db(robot, 350.0) > 15


def test_babble_never_uses_an_excluded_speaker(tiny_corpus, tmp_path):
    manifest = read_manifest(tiny_corpus)
    speakers = manifest.speakers
    excluded = speakers[:2]
    bank = build_noise_bank(tmp_path / "bank", seed=0, seconds_per_clip=2.0, clips_per_category=3,
                            speech_manifest=tiny_corpus, exclude_speakers=excluded, categories=WITH_SPEECH)
    assert bank.categories == WITH_SPEECH
    owner = {u.id: u.speaker for u in manifest}
    for record in bank.records:
        babble = record.params if record.category == "babble" else record.params["babble"]
        assert babble["speakers"] and not set(babble["speakers"]) & set(excluded)
        assert {owner[u] for u in babble["utterances"]} <= set(speakers[2:])
        _level_ok(bank.audio(record), record.params)
    with pytest.raises(AcousticsError, match="exclude_speakers"):
        build_noise_bank(tmp_path / "none", speech_manifest=tiny_corpus, exclude_speakers=speakers, categories=["babble"])
    with pytest.raises(AcousticsError, match="speech_manifest"):
        build_noise_bank(tmp_path / "none", categories=["babble"])


def test_noise_bank_cache_round_trip_and_sampling(tmp_path):
    out = tmp_path / "bank"
    arguments = {"seed": 5, "seconds_per_clip": 1.0, "clips_per_category": 2,
                 "categories": ["pink", "ego_fan", "household_synth"]}
    bank = build_noise_bank(out, **arguments)
    files = sorted(out.rglob("*.wav")) + [out / "manifest.json"]
    assert len(files) == 7
    mtimes = {path: path.stat().st_mtime_ns for path in files}
    again = build_noise_bank(out, **arguments)
    assert {path: path.stat().st_mtime_ns for path in files} == mtimes
    loaded = NoiseBank.load(out / "manifest.json")
    assert loaded.records == bank.records == again.records
    assert loaded.categories == ["pink", "ego_fan", "household_synth"]
    assert [r.index for r in loaded.clips("ego_fan")] == [0, 1]
    grown = build_noise_bank(out, **{**arguments, "clips_per_category": 3})
    assert len(grown) == 9
    assert all(path.stat().st_mtime_ns == mtimes[path] for path in files if path.suffix == ".wav")

    noise = bank.sample(np.random.default_rng(1), 2.5)  # longer than a clip: loops
    assert noise.shape == (int(2.5 * SAMPLE_RATE),) and noise.dtype == np.float32
    np.testing.assert_array_equal(noise, bank.sample(np.random.default_rng(1), 2.5))
    _, record, _ = bank.sample_with_info(np.random.default_rng(2), 0.5, categories=["pink"])
    assert record.category == "pink"

    train, test = grown.split_categories(train=["pink", "household_synth"], test=["ego_fan"])
    assert set(train.categories).isdisjoint(test.categories)
    with pytest.raises(AcousticsError, match="overlap"):
        grown.split_categories(train=["pink"], test=["pink", "ego_fan"])
    train, test = grown.split_clips(test_fraction=0.3)
    assert {r.index for r in train.records} == {0, 1} and {r.index for r in test.records} == {2}
    with pytest.raises(AcousticsError, match="unknown noise category"):
        build_noise_bank(out, categories=["rain"])


def test_rir_bank_shape_rt60_itd_and_disjoint_conditions(rir_bank, tmp_path):
    assert len(rir_bank) == 4
    for record in rir_bank.records:
        ir = rir_bank.ir(record)
        assert ir.shape == (2, record.length) and np.all(np.isfinite(ir))
        assert measure_rt60(ir[0], SAMPLE_RATE) == pytest.approx(record.rt60_target_s, rel=0.2)
        # interaural time difference of the direct paths: right minus left arrival, samples
        stop = min(record.direct_delay_samples) + 12
        left, right = ir[0, :stop].astype(np.float64), ir[1, :stop].astype(np.float64)
        lag = int(np.argmax(signal.correlate(right, left, mode="full"))) - (stop - 1)
        expected = record.direct_delay_samples[1] - record.direct_delay_samples[0]
        if abs(record.azimuth_deg) > 10:
            assert np.sign(lag) == np.sign(record.azimuth_deg) == np.sign(expected)
    train, test = rir_bank.split()
    assert len(train) and len(test)
    assert {r.room for r in train.records}.isdisjoint({r.room for r in test.records})
    assert test.sample(np.random.default_rng(0)).record.split == "test"
    assert RirBank.load(rir_bank.root).records == rir_bank.records


def test_rir_bank_is_deterministic_and_cached(rir_bank, tmp_path):
    again = build_rir_bank(tmp_path / "again", count=4, seed=3, rt60_range=(0.4, 0.5),
                           room_size_range=((5.5, 6.0), (4.5, 5.0), (3.0, 3.2)), distance_range=(1.0, 2.0),
                           sources_per_room=2, test_fraction=0.5)
    assert [r.file for r in again.records] == [r.file for r in rir_bank.records]
    np.testing.assert_array_equal(again.ir(again.records[0]), rir_bank.ir(rir_bank.records[0]))
    mtimes = {p: p.stat().st_mtime_ns for p in again.root.rglob("*") if p.is_file()}
    build_rir_bank(again.root, **{k: again.settings[k] for k in ("count", "seed", "sources_per_room", "test_fraction")},
                   rt60_range=(0.4, 0.5), room_size_range=((5.5, 6.0), (4.5, 5.0), (3.0, 3.2)), distance_range=(1.0, 2.0))
    assert {p: p.stat().st_mtime_ns for p in again.root.rglob("*") if p.is_file()} == mtimes


def test_measure_rt60_of_an_exponential_decay():
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    ir = rng.standard_normal(t.size) * 10 ** (-3 * t / 0.5)  # 60 dB in 0.5 s
    assert measure_rt60(ir, SAMPLE_RATE, decay_db=20) == pytest.approx(0.5, rel=0.05)
    assert measure_rt60(ir, SAMPLE_RATE, decay_db=30) == pytest.approx(0.5, rel=0.05)
    with pytest.raises(AcousticsError, match="decays only"):
        measure_rt60(np.ones(100), SAMPLE_RATE)


def test_cli_builds_both_banks(tmp_path):
    from conftest import ser_robot

    result = ser_robot("build-noise-bank", "--out", str(tmp_path / "noise"), "--seconds", "1", "--clips", "1",
                       "--categories", "white", "ego_fan")
    assert result.returncode == 0, result.stderr
    assert "2 categories x 1 clips" in result.stdout
    result = ser_robot("build-rir-bank", "--out", str(tmp_path / "rir"), "--count", "2", "--rt60", "0.3", "0.4")
    assert result.returncode == 0, result.stderr
    assert "2 two-ear impulse responses" in result.stdout
    result = ser_robot("build-noise-bank", "--out", str(tmp_path / "noise"), "--categories", "rain")
    assert result.returncode == 2 and "rain" in result.stderr
