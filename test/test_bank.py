"""Augmentation banks (ser_robot.train.bank): keys, integrity, leakage, ablation chains, parameter distributions."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil

import numpy as np
import pytest
import torch

from ser_robot.data.manifest import read_manifest
from ser_robot.data.splits import leave_one_speaker_out
from ser_robot.errors import BankError
from ser_robot.train.bank import BankSpec, BankTrainingSet, FeatureBank, corpus_hash, ensure_bank
from ser_robot.train.config import load_train_config

# banks are rendered by the fixtures (a few seconds each on 2 idle cores); allow for a loaded machine
pytestmark = pytest.mark.timeout(600)

ROOT = pathlib.Path(__file__).resolve().parent.parent
VERSIONS = 4


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A noise bank (no babble) and a RIR bank, small."""
    from ser_robot.acoustics import build_noise_bank, build_rir_bank

    root = tmp_path_factory.mktemp("sources")
    noise = build_noise_bank(root / "noise", seconds_per_clip=3.0, clips_per_category=2)
    rooms = build_rir_bank(root / "rir", count=8)
    return noise.root, rooms.root


def _augmentation(sources, **changes):
    noise, rooms = sources
    config = load_train_config(ROOT / "config/train/lakomkin.yaml", {
        "model": "lakomkin_rnn", "augmentation": {"kind": "lakomkin", "noise_bank": str(noise), "rir_bank": str(rooms),
                                                  "mode": "bank", "versions": VERSIONS, **changes}})
    return config.augmentation


@pytest.fixture(scope="module")
def manifest(tiny_corpus):
    return read_manifest(tiny_corpus)


@pytest.fixture(scope="module")
def bank(manifest, sources, tmp_path_factory):
    spec = BankSpec.from_config(manifest, _augmentation(sources), "egemaps")
    return ensure_bank(spec, tmp_path_factory.mktemp("banks"))


def test_bank_holds_every_version_with_its_record(bank, manifest):
    assert len(bank.records) == len(manifest) and bank.versions == VERSIONS
    assert bank.features.dtype == np.float16 and bank.features.shape[1] == 34
    utterance = manifest[0]
    speaker, versions = bank.records[utterance.id]
    assert speaker == utterance.speaker and len(versions) == VERSIONS
    assert versions[0].applied == () and versions[0].params == {}  # version 0 is clean
    assert bank.steps == ("tempo", "gain", "noise", "ir")
    for version in versions[1:]:
        for step in version.applied:
            assert step in bank.steps
        if "tempo" in version.applied:
            assert 0.85 <= version.params["tempo"]["factor"] <= 1.20
        if "gain" in version.applied:
            assert -6.0 <= version.params["gain"]["gain_db"] <= 3.0


def test_clean_version_equals_the_online_features(bank, manifest):
    """Version 0 is the extractor on the file, as the trainer computes it online (float16 rounding)."""
    from ser_robot.features.sets import create_extractor
    from ser_robot.train.data import load_waveform
    from ser_robot.train.features import BatchFeaturizer

    utterance = manifest[3]
    wave = load_waveform(utterance.path)
    online = BatchFeaturizer(create_extractor("egemaps"))(wave[None, None], torch.tensor([wave.shape[0]]))
    stored = np.asarray(bank.frames(utterance.id, 0), dtype=np.float32)
    want = online.features[0].numpy()
    assert stored.shape == want.shape
    np.testing.assert_allclose(stored, want, rtol=2e-3, atol=2e-3 * np.abs(want).max())


def test_key_follows_corpus_chain_seed_and_features(manifest, sources):
    base = BankSpec.from_config(manifest, _augmentation(sources), "egemaps")
    corpus = corpus_hash(manifest)
    key = BankSpec.key_of(base.describe(corpus))
    assert key == BankSpec.key_of(base.describe(corpus))
    changed = [dataclasses.replace(base, augmentation=_augmentation(sources, p_tempo=0.0)),
               dataclasses.replace(base, seed=1), dataclasses.replace(base, versions=3),
               dataclasses.replace(base, dtype="float32")]
    assert len({key, *(BankSpec.key_of(s.describe(corpus)) for s in changed)}) == 1 + len(changed)
    fewer = base.manifest.filter(lambda u: u.speaker != base.manifest[0].speaker)
    assert corpus_hash(fewer) != corpus


def test_changed_audio_changes_the_corpus_hash(tiny_corpus, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.parent, copy)
    manifest = read_manifest(copy / "manifest.jsonl")
    before = corpus_hash(manifest)
    path = pathlib.Path(manifest[0].path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    assert corpus_hash(manifest) != before


def test_truncated_corrupt_and_foreign_banks_are_named_and_rebuilt(bank, tmp_path, caplog):
    copy = tmp_path / bank.key
    shutil.copytree(bank.root, copy)
    data = copy / "features.bin"
    blob = data.read_bytes()
    data.write_bytes(blob[:-10])
    with pytest.raises(BankError, match=f"{data}.*truncated"):
        FeatureBank.load(copy, bank.key)
    flipped = bytearray(blob)
    flipped[len(flipped) // 2] ^= 0xFF
    data.write_bytes(bytes(flipped))
    with pytest.raises(BankError, match=f"{data}.*corrupt"):
        FeatureBank.load(copy, bank.key)
    with pytest.raises(BankError, match="not 'another'"):
        FeatureBank.load(copy, "another")
    # ensure_bank finds the corrupt copy under its key, names it and builds it again
    spec_bank = ensure_bank(_spec_of(bank), tmp_path)
    assert "corrupt" in caplog.text and spec_bank.root == copy
    assert (copy / "features.bin").read_bytes() == blob


def _spec_of(bank):
    """The spec a bank was built from (the test's manifest and chain), rebuilt from its stored description."""
    return _SPECS[bank.key]


_SPECS: dict[str, BankSpec] = {}


@pytest.fixture(autouse=True)
def _remember_spec(bank, manifest, sources):
    _SPECS[bank.key] = BankSpec.from_config(manifest, _augmentation(sources), "egemaps")


def test_a_bank_too_big_for_the_disk_is_refused_with_its_size(manifest, sources, tmp_path, monkeypatch):
    spec = BankSpec.from_config(manifest, _augmentation(sources, versions=8), "egemaps")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(BankError, match=r"would need up to \d+\.\d+ GiB but 0\.00 GiB are free"):
        ensure_bank(spec, tmp_path)
    assert not any(tmp_path.iterdir()) or not list(tmp_path.glob("*/features.bin"))


def test_ablation_bank_never_holds_the_removed_augmentation(manifest, sources, tmp_path):
    spec = BankSpec.from_config(manifest, _augmentation(sources, p_tempo=0.0), "egemaps")
    ablated = ensure_bank(spec, tmp_path)
    applied = [v.applied for _, versions in ablated.records.values() for v in versions]
    assert not any("tempo" in a for a in applied)
    assert any("gain" in a for a in applied)  # the other steps still run


def test_training_view_refuses_test_speakers_and_their_babble(bank, manifest):
    fold = leave_one_speaker_out(manifest, validation="partner")[0]
    forbidden = [*fold.validation.speakers, *fold.test.speakers]
    assert bank.training_view(fold.train, forbidden) is fold.train
    leaking = manifest.filter(lambda u: u.speaker != fold.validation.speakers[0])  # test speaker in training
    with pytest.raises(BankError, match=f"test or validation speaker.*{fold.test.speakers[0]}"):
        bank.training_view(leaking, forbidden)
    babble = FeatureBank(bank.root, {**bank.meta, "babble_speakers": [fold.test.speakers[0]]}, bank.features)
    with pytest.raises(BankError, match=f"{fold.test.speakers[0]}.*babble"):
        babble.training_view(fold.train, forbidden)


def test_runner_refuses_a_fold_whose_babble_holds_a_test_speaker(tiny_corpus, tmp_path):
    """A noise bank whose babble mixes the corpus' own speakers would put a test speaker's voice into training."""
    from ser_robot.acoustics import build_noise_bank, build_rir_bank
    from ser_robot.experiments.runner import JobSpec, prepare_banks

    noise = build_noise_bank(tmp_path / "noise", seconds_per_clip=2.0, clips_per_category=2,
                             speech_manifest=tiny_corpus, categories=["babble", "white"])
    rooms = build_rir_bank(tmp_path / "rir", count=4)
    config = load_train_config(ROOT / "config/train/lakomkin.yaml", {
        "model": "lakomkin_cnn", "augmentation": {
            "kind": "lakomkin", "noise_bank": str(noise.root), "rir_bank": str(rooms.root), "mode": "bank",
            "versions": 2, "bank_dir": str(tmp_path / "banks"), "bank_manifest": str(tiny_corpus)}})
    folds = leave_one_speaker_out(read_manifest(tiny_corpus), validation="partner")
    job = JobSpec(arm="a", label="CNN", model="lakomkin_cnn", head="categorical", training="augmented", removed=None,
                  repetition=0, seed=0, fold_index=0, fold=folds[0].name, test_speaker=folds[0].test.speakers[0],
                  scheme="speaker", validation="partner", manifest=str(tiny_corpus), robot=str(tiny_corpus),
                  train_config=config.to_dict(), job_dir=str(tmp_path / "job"), threads=1, fingerprint="x")
    with pytest.raises(BankError, match=f"{folds[0].validation.speakers[0]}.*babble"):
        prepare_banks([job], workers=1, progress=False)
    assert not (tmp_path / "banks").exists()  # refused before anything was rendered


def test_epoch_draws_are_seeded_augmented_versions(bank, manifest):
    from ser_robot.train.data import UtteranceDataset

    dataset = UtteranceDataset(manifest)
    served = BankTrainingSet(bank, dataset, seed=3)
    first, again, other = served.draw(0), served.draw(0), served.draw(1)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.min() >= 1 and first.max() <= VERSIONS - 1  # version 0 (clean) is the normaliser's
    served.set_epoch(0)
    example = served[5]
    record = bank.records[manifest[5].id][1][int(first[5])]
    assert example.features.shape == (record.frames, 34) and example.features.dtype == torch.float32
    assert example.applied.tolist() == [s in record.applied for s in bank.steps]


def test_online_and_bank_draw_the_same_augmentation_parameters(manifest, sources, tmp_path):
    """Over an epoch, the bank's renditions and the online chain's batches follow the same distribution of
    applied steps (binomial z-test per step) and tempo factors and gains (two-sample Kolmogorov-Smirnov)."""
    from scipy import stats

    from ser_robot.train.features import build_augmentation
    from ser_robot.train.trainer import batch_generator

    versions = 12
    spec = BankSpec.from_config(manifest, _augmentation(sources, versions=versions), "egemaps")
    big = ensure_bank(spec, tmp_path, workers=2)
    bank_applied, bank_params = [], {"tempo": [], "gain": []}
    for _, records in big.records.values():
        for record in records[1:]:
            bank_applied.append([s in record.applied for s in big.steps])
            for step, name in (("tempo", "factor"), ("gain", "gain_db")):
                if step in record.applied:
                    bank_params[step].append(record.params[step][name])
    chain = build_augmentation(_augmentation(sources))
    online_applied, online_params = [], {"tempo": [], "gain": []}
    wave = torch.zeros(32, 1, 1600)
    for step in range(len(bank_applied) // 32 + 1):
        result = chain(wave, generator=batch_generator(0, 0, step))
        online_applied += result.applied.tolist()
        for name, key in (("tempo", "factor"), ("gain", "gain_db")):
            column = result.names.index(name)
            online_params[name] += result.params[name][key][result.applied[:, column]].tolist()
    bank_rates = np.mean(bank_applied, axis=0)
    online_rates = np.mean(online_applied, axis=0)
    for j, step in enumerate(big.steps):
        p = (bank_rates[j] * len(bank_applied) + online_rates[j] * len(online_applied)) / (
            len(bank_applied) + len(online_applied))
        se = np.sqrt(p * (1 - p) * (1 / len(bank_applied) + 1 / len(online_applied)))
        assert abs(bank_rates[j] - online_rates[j]) / se < 3.3, (step, bank_rates[j], online_rates[j])
    for step in ("tempo", "gain"):
        assert stats.ks_2samp(bank_params[step], online_params[step]).pvalue > 0.001, step
    # and the test can tell a different distribution apart
    assert stats.ks_2samp(bank_params["tempo"], np.asarray(online_params["tempo"]) * 1.05).pvalue < 0.001


def test_code_version_covers_the_offline_code_only():
    """Editing the live feature node's modules must not invalidate every bank (a running experiment would
    render its banks again in every job); editing an extractor or an augmentation must."""
    from ser_robot.train.bank import code_files

    files = code_files()
    assert {"features/egemaps.py", "features/logmel.py", "augment/functional.py", "acoustics/rooms.py",
            "train/features.py", "audio/resample.py"} <= set(files)
    assert not {"features/pipeline.py", "features/streaming.py", "features/vad.py"} & set(files)


def test_concurrent_builds_of_one_bank_do_not_break_each_other(bank, tmp_path):
    """Two processes may build the same bank at once (parallel jobs, a test beside a run): each renders into
    its own ``<key>.partial-<pid>``; unfinished builds of dead processes are cleared, live ones left alone."""
    import subprocess
    import sys

    spec = _spec_of(bank)
    live = tmp_path / f"{bank.key}.partial-1"  # pid 1 is alive: another process's build in progress
    dead = tmp_path / f"{bank.key}.partial-999999999"
    for folder in (live, dead):
        folder.mkdir()
        (folder / "features.bin").write_bytes(b"unfinished")
    ensure_bank(spec, tmp_path)
    assert live.is_dir() and not dead.exists()
    shutil.rmtree(tmp_path / bank.key)
    # two builds at once in two processes, from the same spec
    script = ("import pickle, sys\nfrom ser_robot.train.bank import ensure_bank\n"
              "spec = pickle.load(open(sys.argv[1], 'rb'))\nprint(ensure_bank(spec, sys.argv[2]).meta['rows'])\n")
    spec_file = tmp_path / "spec.pickle"
    spec_file.write_bytes(__import__("pickle").dumps(spec))
    runs = [subprocess.Popen([sys.executable, "-c", script, str(spec_file), str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert {int(out) for out, _ in outputs} == {bank.meta['rows']}
    assert FeatureBank.load(tmp_path / bank.key, bank.key).meta["rows"] == bank.meta["rows"]
    assert sorted(p.name for p in tmp_path.glob("*.partial-*")) == [live.name]


def test_each_epoch_serves_its_own_draw_with_loader_workers(bank, manifest):
    from ser_robot.train.data import UtteranceDataset
    from ser_robot.train.trainer import training_loader

    served = BankTrainingSet(bank, UtteranceDataset(manifest), seed=3)
    batches = [list(range(i, min(i + 4, len(served)))) for i in range(0, len(served), 4)]
    loader = training_loader(served, batches, workers=1)
    for epoch in (0, 1, 2):
        served.set_epoch(epoch)
        got = torch.cat([batch.versions for batch in loader])
        assert got.tolist() == served.draw(epoch).tolist(), f"epoch {epoch} served another epoch's versions"


@pytest.mark.parametrize("by_rendition", [False, True])
def test_speaker_statistics_of_clean_or_of_each_rendition(bank, manifest, by_rendition):
    from ser_robot.features.stream_normalization import speaker_statistics
    from ser_robot.train.data import UtteranceDataset
    from ser_robot.train.trainer import _speaker_statistics

    served = BankTrainingSet(bank, UtteranceDataset(manifest), seed=3)
    mean, std = _speaker_statistics(served, torch.device("cpu"), by_rendition)
    assert mean.shape == std.shape == (len(manifest), VERSIONS, 34)
    rows = [i for i, u in enumerate(manifest) if u.speaker == manifest[0].speaker]
    for version in range(VERSIONS):
        source = version if by_rendition else 0
        expected = speaker_statistics(torch.from_numpy(np.asarray(bank.frames(manifest[i].id, source), np.float32))
                                      for i in rows)
        assert torch.allclose(mean[rows[-1], version], expected[0].float())
        assert torch.allclose(std[rows[0], version], expected[1].float())
    assert by_rendition != torch.equal(mean[:, 0], mean[:, 1])
