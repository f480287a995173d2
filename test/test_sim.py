"""Robot re-recording simulator (ser_robot.sim)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import soundfile
import yaml

from ser_robot.acoustics import (
    CATEGORIES,
    build_noise_bank,
    build_rir_bank,
    measure_rt60,
)
from ser_robot.data.manifest import read_manifest
from ser_robot.errors import AcousticsError, ConfigError
from ser_robot.sim import (
    Simulator,
    check_disjoint,
    condition_noise,
    lab_room_in_bank,
    load_sim_config,
    sim_categories,
    simulate_robot,
    training_conditions,
)

QUIET = {"background": {"enabled": False}, "ego_noise": {"enabled": False}, "events": {"enabled": False},
         "microphone": {"self_noise": False}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pathlib.Path:
    from ser_robot.data.synth.corpus import generate_corpus

    out = tmp_path_factory.mktemp("synth")
    generate_corpus(out, speakers=2, sentences=1, seed=0, workers=1, progress=False)
    return out / "manifest.jsonl"


@pytest.fixture(scope="module")
def noise_bank(tmp_path_factory):
    """The simulator's categories plus two others, 2 clips of 4 s each (clip 0 train, clip 1 robot test)."""
    categories = [*sim_categories(load_sim_config()), "pink", "white"]
    return build_noise_bank(tmp_path_factory.mktemp("noise"), seconds_per_clip=4.0, clips_per_category=2,
                            categories=categories)


@pytest.fixture(scope="module")
def robot_runs(corpus, noise_bank, tmp_path_factory):
    """The corpus simulated twice: with 2 worker processes and in this process, into different folders."""
    root = tmp_path_factory.mktemp("robot")
    overrides = {"events": {"probability": 0.5}}
    parallel = simulate_robot(corpus, root / "parallel", noise_bank=noise_bank, seed=7, workers=2, progress=False,
                              overrides=overrides)
    serial = simulate_robot(corpus, root / "serial", noise_bank=noise_bank.root, seed=7, workers=1, progress=False,
                            overrides=overrides)
    return root, parallel, serial


def _speech_db(x: np.ndarray, fs: int = 16000) -> float:
    """Active speech level, computed independently of the simulator: 20 ms frames within 35 dB of the loudest."""
    frame = fs // 50
    power = np.mean(x[:, : x.shape[1] // frame * frame].reshape(2, -1, frame) ** 2, axis=(0, 2))
    return float(10 * np.log10(power[power >= power.max() * 10 ** -3.5].mean()))


def _gcc_phat_lag(left: np.ndarray, right: np.ndarray, max_lag: int) -> int:
    """Lag (samples) by which ``right`` trails ``left`` (positive: the left ear hears it first)."""
    n = 2 * len(left)
    spectrum = np.fft.rfft(right, n) * np.conj(np.fft.rfft(left, n))
    cc = np.fft.irfft(spectrum / np.maximum(np.abs(spectrum), 1e-12), n)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([cc[: max_lag + 1], cc[-max_lag:]])
    return int(lags[np.argmax(values)])


def test_same_ids_labels_16k_stereo_pcm16(corpus, robot_runs):
    root, robot, _ = robot_runs
    clean = read_manifest(corpus)
    assert len(clean) == 8
    assert [u.id for u in robot] == [u.id for u in clean]
    assert [(u.label, u.speaker, u.session) for u in robot] == [(u.label, u.speaker, u.session) for u in clean]
    on_disk = read_manifest(root / "parallel" / "manifest.jsonl")
    assert [u.id for u in on_disk] == [u.id for u in clean]
    for utterance, source in zip(on_disk, clean):
        info = soundfile.info(utterance.path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 2, "PCM_16")
        assert info.frames == soundfile.info(source.path).frames
        sim = utterance.extra["robot_sim"]
        assert sim["condition"] == "test" and sim["seed"] == 7 and sim["room"]["distance_m"] == pytest.approx(1.6)
        assert {"background", "ego_noise", "event", "microphone", "speech_level_dbfs"} <= set(sim)
        assert utterance.extra["prosody"] == source.extra["prosody"]  # the corpus' own extra is kept
    assert any(u.extra["robot_sim"]["event"] for u in on_disk)  # probability 0.5 over 8 utterances, seed 7
    assert any(u.extra["robot_sim"]["event"] is None for u in on_disk)
    summary = yaml.safe_load((root / "parallel" / "sim_config.yaml").read_text())
    assert summary["seed"] == 7 and summary["config"]["room"]["source_distance_m"] == 1.6


def test_deterministic_across_workers_alone_and_resumed(corpus, noise_bank, robot_runs):
    root, parallel, serial = robot_runs
    for a, b in zip(parallel, serial):
        assert pathlib.Path(a.path).read_bytes() == pathlib.Path(b.path).read_bytes()
        assert a.extra == b.extra
    # one utterance re-simulated alone equals its corpus version
    config = load_sim_config(overrides={"events": {"probability": 0.5}})
    alone = Simulator(config, noise_bank, seed=7).simulate_file(read_manifest(corpus)[5].path, parallel[5].id)
    recorded, _ = soundfile.read(parallel[5].path, dtype="int16")
    np.testing.assert_array_equal(alone.pcm, recorded)
    # another seed gives another recording
    other = Simulator(config, noise_bank, seed=8).simulate_file(read_manifest(corpus)[5].path, parallel[5].id)
    assert not np.array_equal(other.pcm, recorded)
    # resuming skips finished utterances (files untouched) and returns the same manifest
    stamps = [pathlib.Path(u.path).stat().st_mtime_ns for u in parallel]
    again = simulate_robot(corpus, root / "parallel", noise_bank=noise_bank, seed=7, workers=1, progress=False,
                           overrides={"events": {"probability": 0.5}})
    assert [pathlib.Path(u.path).stat().st_mtime_ns for u in again] == stamps
    assert [u.extra for u in again] == [u.extra for u in parallel]


def test_the_ears_differ(robot_runs):
    _, robot, _ = robot_runs
    for utterance in robot:
        audio, _ = soundfile.read(utterance.path, dtype="float64")
        left, right = audio[:, 0], audio[:, 1]
        assert not np.array_equal(left, right)
        assert np.corrcoef(left, right)[0, 1] < 0.99  # noise and reverberation differ per ear
        assert np.max(np.abs(audio)) < 1.0


@pytest.mark.parametrize("reference", ["utterance", "fixed"])
def test_snr_of_each_noise_stage_matches_the_config(corpus, noise_bank, reference):
    path, uid = read_manifest(corpus)[2].path, read_manifest(corpus)[2].id
    base = {**QUIET, "levels": {"reference": reference}}
    clean = Simulator(load_sim_config(overrides=base), noise_bank, seed=1).simulate_file(path, uid).audio
    speech_db = _speech_db(clean.astype(np.float64))
    config = load_sim_config()
    gain = config.microphone.gain_db  # the fixed reference is before the microphone gain, the output after
    stages = {"background": config.background.snr_db, "ego_noise": config.ego_noise.snr_db}
    for stage, snr in stages.items():
        noisy = Simulator(load_sim_config(overrides={**base, stage: {"enabled": True}}), noise_bank,
                          seed=1).simulate_file(path, uid).audio
        noise_db = 10 * np.log10(np.mean((noisy.astype(np.float64) - clean) ** 2))
        reference_db = speech_db if reference == "utterance" else config.levels.reference_dbfs + gain
        assert reference_db - noise_db == pytest.approx(snr, abs=1.5), stage
    # an event, when it happens, sits snr_db below the speech while it sounds
    with_event = Simulator(load_sim_config(overrides={**base, "events": {"enabled": True, "probability": 1.0}}),
                           noise_bank, seed=1).simulate_file(path, uid)
    event_db = _speech_db(with_event.audio.astype(np.float64) - clean)
    reference_db = speech_db if reference == "utterance" else config.levels.reference_dbfs + gain
    assert reference_db - event_db == pytest.approx(config.events.snr_db, abs=1.5)
    assert with_event.params["event"]["from"]["room"] == "lab"


@pytest.mark.parametrize("rt60", [0.3, 0.45, 0.7])
def test_lab_room_rt60_matches_the_config(rt60):
    config = load_sim_config(overrides={**QUIET, "room": {"rt60_s": rt60}})
    simulator = Simulator(config, None)
    for ear in simulator.speech_ir.ir:
        assert measure_rt60(ear, 16000) == pytest.approx(rt60, rel=0.2)


@pytest.mark.parametrize("azimuth", [60.0, -60.0, 0.0])
def test_interaural_time_and_level_difference_follow_the_azimuth(azimuth):
    config = load_sim_config(overrides={**QUIET, "room": {"source_azimuth_deg": azimuth}})
    burst = np.random.default_rng(0).standard_normal(16000) * 0.05
    audio = Simulator(config, None).simulate(burst, 16000, "burst").audio.astype(np.float64)
    lag = _gcc_phat_lag(audio[0], audio[1], max_lag=16)
    expected = 0.15 * np.sin(np.radians(azimuth)) / 343.0 * 16000  # free-field ITD, samples
    assert np.sign(lag) == np.sign(np.round(expected))
    assert abs(lag - expected) <= 2.0
    # head shadow: above 2 kHz the near ear is louder (diluted by the reverberation, which is not shadowed)
    from scipy import signal

    freqs, psd = signal.welch(audio, fs=16000, nperseg=512)
    band = (freqs > 2000) & (freqs < 6000)
    ild = 10 * np.log10(psd[0, band].sum() / psd[1, band].sum())
    if azimuth == 0:
        assert abs(ild) < 1.0
    else:
        assert np.sign(ild) == np.sign(azimuth) and abs(ild) > 2.0


@pytest.mark.parametrize("overrides, match", [
    ({"room": {"wall": 1}}, r"unknown key\(s\) \['room\.wall'\]; known keys are \['room\.dims_m',"),
    ({"bogus": 1}, r"unknown key\(s\) \['bogus'\]"),
    ({"room": {"rt60_s": -0.2}}, r"key 'room\.rt60_s' must be a number from 0\.1 to 3\.0, got -0\.2"),
    ({"events": {"probability": "often"}}, r"key 'events\.probability' must be a number from 0\.0 to 1\.0, got 'often'"),
    ({"background": {"categories": ["babble"]}}, r"key 'background\.categories\[0\]' must be one of \['white', .*\], got 'babble'"),
    ({"loudspeaker": {"ripple": [[900.0, 2.0]]}}, r"key 'loudspeaker\.ripple\[0\]' must be \[centre_hz, gain_db, q\]"),
    ({"loudspeaker": {"highpass_hz": 900.0, "lowpass_hz": 800.0}}, r"key 'loudspeaker\.lowpass_hz' must be a number from 1000\.0 to 7840\.0, got 800\.0"),
    ({"room": {"source_distance_m": 5.0}}, r"loudspeaker .* is not inside room\.dims_m"),
    ({"room": {"rt60_s": 0.1, "dims_m": [20.0, 20.0, 10.0]}}, r"room\.rt60_s 0\.1 s is impossible"),
    ({"condition": "robot"}, r"key 'condition' must be one of \['test', 'train'\], got 'robot'"),
    ({"head": {"shadow": "yes"}}, r"key 'head\.shadow' must be true or false"),
])
def test_config_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_sim_config(overrides=overrides)


def test_config_missing_key_and_bad_file(tmp_path):
    from ser_robot.sim import default_sim_config_path

    raw = yaml.safe_load(default_sim_config_path().read_text())
    del raw["ego_noise"]["snr_db"]
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"lab\.yaml: required key\(s\) \['ego_noise\.snr_db'\] missing; every key must be set"):
        load_sim_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_sim_config(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="condition 'train' .* pass rir_bank"):
        Simulator(load_sim_config(overrides={**QUIET, "condition": "train"}), None)


def test_robot_test_condition_is_disjoint_from_training(noise_bank, tmp_path):
    config = load_sim_config()
    rirs = build_rir_bank(tmp_path / "rirs", count=4, seed=0, rt60_range=(0.2, 0.3),
                          room_size_range=((3.0, 4.0), (3.0, 4.0), (2.5, 2.8)), sources_per_room=2,
                          test_fraction=0.5, max_order_cap=10)
    robot_test = condition_noise(noise_bank, config, "test")
    assert set(robot_test.categories) == set(sim_categories(config))
    train = training_conditions(noise_bank, rirs, config)
    check_disjoint(train.noise, robot_test)
    assert not set(train.noise.categories) & {c for c in CATEGORIES if CATEGORIES[c].family == "ego"}
    assert set(train.excluded_categories) == {"ego_fan", "ego_robot"}
    with_ego = training_conditions(noise_bank, rirs, config, include_ego=True)
    assert {"ego_fan", "ego_robot"} <= set(with_ego.noise.categories)
    check_disjoint(with_ego.noise, robot_test)
    with pytest.raises(AcousticsError, match="share"):
        check_disjoint(noise_bank, robot_test)
    assert {r.split for r in train.rirs.records} == {"train"} and not lab_room_in_bank(config, rirs)
    # the train condition of the simulator draws training rooms and training clips only
    simulator = Simulator(config.replace(condition="train", events={"probability": 1.0}), noise_bank, seed=0,
                          rir_bank=rirs)
    train_files = {r.file for r in train.rirs.records}
    train_clips = {r.file for r in with_ego.noise.records}
    for index in range(4):
        params = simulator.simulate(np.random.default_rng(index).standard_normal(8000) * 0.05, 16000,
                                    f"u{index}").params
        assert params["room"]["rir"] in train_files and params["event"]["from"]["rir"] in train_files
        assert {params[s]["clip"] for s in ("background", "ego_noise", "event")} <= train_clips


def test_a_bank_room_equal_to_the_lab_is_refused(noise_bank, tmp_path):
    config = load_sim_config()
    dims = config.room.dims_m
    rirs = build_rir_bank(tmp_path / "labrirs", count=2, seed=0, rt60_range=(config.room.rt60_s,) * 2,
                          room_size_range=tuple((d, d) for d in dims), sources_per_room=1, test_fraction=0.0,
                          max_order_cap=3, distance_range=(1.0, 1.5))
    assert lab_room_in_bank(config, rirs)
    with pytest.raises(AcousticsError, match="is the robot lab room"):
        training_conditions(noise_bank, rirs, config)


def test_plot_rerecording(robot_runs, corpus, tmp_path):
    from ser_robot.sim import plot_rerecording

    _, robot, _ = robot_runs
    png = plot_rerecording(read_manifest(corpus)[0].path, robot[0].path, tmp_path / "rerecording.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_manifest_extra_is_json(robot_runs):
    root, _, _ = robot_runs
    for line in (root / "parallel" / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert record["sample_rate"] == 16000 and "robot_sim" in record["extra"]


def test_loudspeaker_response_band_limits_ripple_and_saturation():
    from scipy import signal

    from ser_robot.sim.loudspeaker import loudspeaker_sos, peaking_sos, soft_clip

    freqs, h = signal.sosfreqz(peaking_sos(1000.0, 3.0, 2.0, 16000), worN=[1000.0, 100.0, 7000.0], fs=16000)
    np.testing.assert_allclose(20 * np.log10(np.abs(h)), [3.0, 0.0, 0.0], atol=0.05)
    ls = load_sim_config().loudspeaker
    freqs, h = signal.sosfreqz(loudspeaker_sos(ls.highpass_hz, ls.highpass_order, ls.lowpass_hz, ls.lowpass_order,
                                               ls.ripple, 16000), worN=4096, fs=16000)
    db = 20 * np.log10(np.abs(h) + 1e-12)
    assert db[np.argmin(np.abs(freqs - 40.0))] < -15.0  # bass roll-off
    assert db[np.argmin(np.abs(freqs - 7900.0))] < -10.0  # treble roll-off
    passband = db[(freqs > 300) & (freqs < 5000)]
    assert passband.max() < 3.5 and passband.min() > -3.5 and passband.max() - passband.min() > 2.0  # ripple
    np.testing.assert_allclose(soft_clip(np.array([1e-3, 0.5, 1.0]), 1.0), np.tanh([1e-3, 0.5, 1.0]))


def test_diffuse_background_is_coherent_at_low_and_independent_at_high_frequencies():
    from scipy import signal

    from ser_robot.sim.levels import diffuse_pair

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(64000), rng.standard_normal(64000)
    pair = diffuse_pair(a, b, 0.15, 16000)
    freqs, coherence = signal.coherence(pair[0], pair[1], fs=16000, nperseg=512)
    assert coherence[(freqs > 50) & (freqs < 250)].mean() > 0.8
    assert coherence[freqs > 3000].mean() < 0.1
    assert 10 * np.log10(np.mean(pair[1] ** 2) / np.mean(pair[0] ** 2)) == pytest.approx(0.0, abs=0.2)


def test_cli_simulates_a_corpus_and_draws_it(corpus, noise_bank, tmp_path):
    from conftest import ser_robot

    out = tmp_path / "twin"
    result = ser_robot("simulate-robot", "--corpus", str(corpus), "--out", str(out), "--noise-bank",
                       str(noise_bank.root), "--workers", "1", "--plot")
    assert result.returncode == 0, result.stderr
    assert "robot twin of" in result.stdout and "8 utterances" in result.stdout
    assert len(list(out.glob("*_clean_vs_robot.png"))) == 1
