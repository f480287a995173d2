"""Tests of ser_robot.train: config, data, SortaGrad, features after augmentation, the training loop,
reproducibility, safe checkpoints, resume, and DDP (2 gloo processes == 1 process).

Everything trains a tiny masked-mean model (below) on a 4-speaker synthetic corpus built once per
module; the whole file runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from ser_robot.data.manifest import read_manifest
from ser_robot.data.splits import leave_one_speaker_out
from ser_robot.errors import ConfigError
from ser_robot.features.sets import create_extractor
from ser_robot.train import (
    AugmentationConfig,
    BatchFeaturizer,
    CheckpointError,
    SortaGradBatchSampler,
    TrainConfig,
    UtteranceDataset,
    build_augmentation,
    collate,
    load_checkpoint,
    load_model,
    load_train_config,
    load_waveform,
    save_checkpoint,
    train,
)
from ser_robot.train.config import parse_overrides
from ser_robot.train.data import shard

REPO = pathlib.Path(__file__).resolve().parent.parent


class TinyModel(torch.nn.Module):
    """Masked mean over frames -> Linear -> tanh -> dropout -> Linear.

    ``(batch, frames, dims)``, ``(batch,)`` -> ``(batch, outputs)``.
    """

    def __init__(self, num_features: int, num_outputs: int, head: str, hidden: int = 16, dropout: float = 0.0):
        super().__init__()
        self.head, self.num_outputs, self.num_features = head, num_outputs, num_features
        self.config = {"num_features": num_features, "num_outputs": num_outputs, "head": head, "hidden": hidden,
                       "dropout": dropout}
        self.proj = torch.nn.Linear(num_features, hidden)
        self.drop = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(hidden, num_outputs)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(features.shape[1], device=features.device)[None] < lengths[:, None])[..., None]
        pooled = (features * mask).sum(dim=1) / lengths[:, None].to(features.dtype)
        return self.out(self.drop(torch.tanh(self.proj(pooled))))


def tiny_factory(name, hparams, *, num_features, num_outputs, head):
    assert name == "tiny"
    return TinyModel(num_features, num_outputs, head, **hparams)


def tiny_config(tmp: pathlib.Path | None = None, hparams: dict | None = None, **changes) -> TrainConfig:
    """A fast configuration of the tiny model (hyper-parameters written to a model-config YAML)."""
    model_config = None
    if hparams is not None:
        import yaml

        model_config = tmp / "tiny.yaml"
        model_config.write_text(yaml.safe_dump(hparams))
    values = {"model": "tiny", "model_config": str(model_config) if model_config else None,
              "feature_set": "logmel_ren2020", "epochs": 2, "batch_size": 5, "lr": 1e-2, "workers": 0, "cache": True}
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pathlib.Path:
    from ser_robot.data.synth.corpus import generate_corpus

    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out, speakers=4, sentences=2, seed=0, workers=1, progress=False)
    return out / "manifest.jsonl"


@pytest.fixture(scope="module")
def fold(corpus):
    return leave_one_speaker_out(read_manifest(corpus))[0]


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


# --- configuration -------------------------------------------------------------------------------


def test_default_yaml_loads_with_the_papers_settings():
    config = load_train_config(REPO / "config" / "train" / "lakomkin.yaml")
    assert (config.lr, config.clip, config.batch_size, config.lr_factor, config.sortagrad) == (3e-4, 1.0, 32, 0.5, True)
    assert config.augmentation.kind == "lakomkin" and config.monitor_metric == "uar"
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_the_channel_augmentation_is_off_by_default_and_leaves_older_keys_alone():
    config = load_train_config(REPO / "config" / "train" / "lakomkin.yaml")
    assert config.augmentation.p_channel == 0.0 and "p_channel" not in config.to_dict()["augmentation"]
    on = load_train_config(REPO / "config" / "train" / "lakomkin.yaml", {"augmentation": {"p_channel": 0.5}})
    assert on.to_dict()["augmentation"]["p_channel"] == 0.5 and TrainConfig.from_dict(on.to_dict()) == on


@pytest.mark.parametrize("data, match", [
    ({"model": "m", "learning_rate": 1}, r"unknown key\(s\) \['learning_rate'\]"),
    ({"feature_set": "egemaps"}, r"required key\(s\) \['model'\] missing; set 'model' to a model's registry name"),
    ({"model": "m", "batch_size": "32"}, "'batch_size' must be an integer >= 1, got '32'"),
    ({"model": "m", "lr": -1}, "'lr' must be a learning rate > 0"),
    ({"model": "m", "head": "both"}, "'head' must be one of"),
    ({"model": "m", "head": "dimensional", "monitor": "uar"}, "'monitor' must be one of"),
    ({"model": "m", "augmentation": {"kind": "lakomkin", "p_ir": 2}}, "'augmentation.p_ir' must be a probability from 0.0 to 1.0"),
    ({"model": "m", "augmentation": {"noise": 1}}, r"augmentation\.noise"),
])
def test_bad_config_names_the_key(tmp_path, data, match):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=match) as error:
        load_train_config(path)
    assert str(path) in str(error.value)


def test_overrides_reach_nested_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: m\naugmentation: {kind: lakomkin}\n")
    config = load_train_config(path, parse_overrides(["epochs=3", "augmentation.p_ir=0.25"]))
    assert config.epochs == 3 and config.augmentation.p_ir == 0.25 and config.augmentation.kind == "lakomkin"


# --- data ----------------------------------------------------------------------------------------


def test_dataset_collate_and_resampled_stereo_file(tmp_path, fold):
    dataset = UtteranceDataset(fold.train)
    assert dataset.labels == ("angry", "happy", "neutral", "sad")
    batch = collate([dataset[i] for i in (0, 1, 2)])
    lengths = [dataset[i].waveform.shape[0] for i in (0, 1, 2)]
    assert batch.waveforms.shape == (3, 1, max(lengths)) and batch.lengths.tolist() == lengths
    short = int(np.argmin(lengths))
    assert torch.all(batch.waveforms[short, 0, lengths[short]:] == 0)
    assert batch.labels.tolist() == [dataset.labels.index(fold.train[i].label) for i in (0, 1, 2)]
    assert torch.allclose(batch.dimensional[0], torch.tensor([fold.train[0].arousal, fold.train[0].valence]))
    # a 22.05 kHz stereo file: channels averaged, resampled to 16 kHz
    t = np.arange(22050) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    soundfile.write(tmp_path / "x.wav", stereo, 22050)
    wave = load_waveform(tmp_path / "x.wav", 16000)
    assert wave.dtype == torch.float32 and abs(wave.shape[0] - 16000) <= 2
    peak = float(wave[2000:14000].abs().max())
    assert peak == pytest.approx(0.375, rel=0.02)  # mean of the two channels' amplitudes


def test_sortagrad_first_epoch_sorted_then_seeded_buckets():
    durations = list(np.random.default_rng(0).uniform(1, 10, size=37))
    sampler = SortaGradBatchSampler(durations, batch_size=4, seed=3, bucket_batches=2)
    first = sampler.global_batches(0)
    flat = [i for b in first for i in b]
    assert flat == sorted(range(37), key=lambda i: (durations[i], i)) and [len(b) for b in first][-1] == 1
    later = sampler.global_batches(1)
    flat = [i for b in later for i in b]
    assert sorted(flat) == list(range(37)) and flat != sorted(flat, key=lambda i: durations[i])
    for batch in later:  # each batch sorted within its bucket
        assert [durations[i] for i in batch] == sorted(durations[i] for i in batch)
    assert later == SortaGradBatchSampler(durations, 4, seed=3, bucket_batches=2).global_batches(1)
    assert later != sampler.global_batches(2) != SortaGradBatchSampler(durations, 4, seed=4).global_batches(1)
    sampler.set_epoch(1)
    assert list(sampler) == later and len(sampler) == 10
    # DDP: the ranks' shards put together are the global batches; an empty shard gets a stand-in
    ranks = [SortaGradBatchSampler(durations, 4, seed=3, bucket_batches=2, rank=r, world_size=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(1)
    for step, parts in enumerate(zip(*ranks)):
        real = [shard(later[step], r, 3) for r in range(3)]
        assert [i for part in real for i in part] == later[step]
        assert all(p == (q or later[step][:1]) for p, q in zip(parts, real))


# --- features after augmentation ------------------------------------------------------------------


def test_augmentation_runs_before_feature_extraction(fold):
    dataset = UtteranceDataset(fold.train)
    batch = collate([dataset[i] for i in range(4)])
    chain = build_augmentation(AugmentationConfig(kind="lakomkin", p_tempo=1.0, p_gain=1.0, p_noise=1.0))
    extractor = create_extractor("logmel_ren2020")
    featurizer = BatchFeaturizer(extractor, augmentation=chain)
    clean = featurizer(batch.waveforms, batch.lengths)
    augmented = featurizer(batch.waveforms, batch.lengths, augment=True, generator=torch.Generator().manual_seed(0))
    assert augmented.names == ("tempo", "gain", "noise") and augmented.applied.all()
    # tempo changed the lengths, and the frame counts follow the augmented waveforms
    waves = chain(batch.waveforms, batch.lengths, generator=torch.Generator().manual_seed(0))
    assert torch.equal(augmented.lengths, torch.tensor([extractor.frame_count(int(n)) for n in waves.lengths]))
    assert not torch.equal(augmented.lengths, clean.lengths)
    expected = extractor(waves.x[:, 0])
    n = int(augmented.lengths[0])
    assert torch.allclose(augmented.features[0, :n], expected[0, :n], atol=1e-5)
    assert torch.all(augmented.features[0, n:] == 0)
    # the clean path never augments
    assert clean.applied.shape == (4, 0)


# --- the training loop ----------------------------------------------------------------------------


def test_training_runs_and_loss_decreases_on_egemaps(fold, tmp_path):
    config = tiny_config(feature_set="egemaps", epochs=4, batch_size=4)
    result = train(config, fold, model_factory=tiny_factory, progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert result.history[0]["epoch"] == 1 and "uar" in result.history[0]["validation"]
    assert set(result.test) >= {"accuracy", "uar", "macro_f1", "confusion_matrix", "loss"}
    assert result.test["utterances"] == len(fold.test) and result.throughput > 0
    assert 1 <= result.best_epoch <= 4 and result.best_metric == result.validation["uar"]
    assert result.normalizer.names == tuple(create_extractor("egemaps").names)


def test_dimensional_head_trains_with_mse_and_reports_mae(fold):
    config = tiny_config(head="dimensional", epochs=2)
    result = train(config, fold, model_factory=tiny_factory, progress=False)
    assert result.model.num_outputs == 2
    assert set(result.test) >= {"arousal", "valence", "mae", "ccc", "pearson_r", "loss"}
    assert result.best_metric == pytest.approx(result.validation["mae"])


def test_same_seed_same_weights_with_augmentation(fold, tmp_path):
    config = tiny_config(tmp_path, hparams={"dropout": 0.2}, augmentation=AugmentationConfig(kind="lakomkin"))
    first = train(config, fold, model_factory=tiny_factory, progress=False)
    second = train(config, fold, model_factory=tiny_factory, progress=False)
    for key, value in _state(first.model).items():
        assert torch.equal(value, _state(second.model)[key]), key
    assert first.history[-1]["augmented"] and sum(first.history[-1]["augmented"].values()) > 0
    other = train(config.replace(seed=1), fold, model_factory=tiny_factory, progress=False)
    assert not torch.equal(_state(other.model)["out.weight"], _state(first.model)["out.weight"])
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run


def test_checkpoint_round_trip_weights_only(fold, tmp_path):
    config = tiny_config(tmp_path, hparams={"hidden": 8})
    result = train(config, fold, model_factory=tiny_factory, progress=False, out_dir=tmp_path / "run")
    for name in ("best.pt", "last.pt"):
        raw = torch.load(tmp_path / "run" / name, weights_only=True)  # no pickled objects inside
        assert raw["labels"] == list(result.labels) and raw["features"]["set"] == "logmel_ren2020"
        assert raw["model"]["hparams"] == {"hidden": 8} and raw["sample_rate"] == 16000
    model, normalizer, ckpt = load_model(tmp_path / "run" / "best.pt", factory=tiny_factory)
    for key, value in _state(result.model).items():
        assert torch.equal(model.state_dict()[key], value)
    assert normalizer.to_dict() == result.normalizer.to_dict() and ckpt["kind"] == "best"
    report = json.loads((tmp_path / "run" / "result.json").read_text())
    assert report["test"]["uar"] == pytest.approx(result.test["uar"])
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == config.epochs + 1
    with pytest.raises(CheckpointError, match="cannot store a"):
        save_checkpoint(tmp_path / "x.pt", {**ckpt, "extra": object()})
    torch.save({"format": "ser_robot.checkpoint", "version": 1, "payload": TinyModel(2, 2, "categorical")},
               tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match="only an unsafe load could build") as refused:
        load_checkpoint(tmp_path / "unsafe.pt")
    assert "weights_only" not in str(refused.value)  # PyTorch's unsafe advice is never passed on


def test_resume_equals_uninterrupted_run(fold, tmp_path):
    augmentation = AugmentationConfig(kind="lakomkin")
    config = tiny_config(tmp_path, hparams={"dropout": 0.2}, epochs=4, augmentation=augmentation, lr_patience=0)
    straight = train(config, fold, model_factory=tiny_factory, progress=False)
    train(config.replace(epochs=2), fold, model_factory=tiny_factory, progress=False, out_dir=tmp_path / "part")
    resumed = train(config, fold, model_factory=tiny_factory, progress=False, out_dir=tmp_path / "part",
                    resume=tmp_path / "part" / "last.pt")
    for key, value in _state(straight.model).items():
        torch.testing.assert_close(_state(resumed.model)[key], value, rtol=0, atol=1e-6)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in straight.history])
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in straight.history]
    assert resumed.best_epoch == straight.best_epoch and resumed.test["uar"] == straight.test["uar"]
    with pytest.raises(CheckpointError, match=r"differs from the checkpoint's in \['lr'\]"):
        train(config.replace(lr=1e-3), fold, model_factory=tiny_factory, progress=False,
              resume=tmp_path / "part" / "last.pt")


# --- DDP ------------------------------------------------------------------------------------------

DDP_CHANGES = {"epochs": 2, "batch_size": 5}  # 16 training utterances: batches 5, 5, 5, 1 (one rank idle)


def _ddp_worker(manifest: str, out: str) -> None:
    """Run under torchrun: train the tiny model, rank 0 saves weights and metrics to ``out``."""
    fold = leave_one_speaker_out(read_manifest(manifest))[0]
    result = train(tiny_config(**DDP_CHANGES), fold, model_factory=tiny_factory, progress=False)
    if int(os.environ["RANK"]) == 0:
        torch.save({"state": _state(result.model), "losses": [h["train_loss"] for h in result.history],
                    "validation": result.validation["uar"], "test": result.test["uar"],
                    "world_size": int(os.environ["WORLD_SIZE"])}, out)


def test_ddp_two_processes_equal_one_process(corpus, fold, tmp_path):
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               __file__, str(corpus), str(out)]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = torch.load(out, weights_only=True)
    assert ddp["world_size"] == 2
    single = train(tiny_config(**DDP_CHANGES), fold, model_factory=tiny_factory, progress=False)
    # tolerance: the gradient all-reduce sums in another order than one process (float32; seen: 1.5e-8)
    for key, value in _state(single.model).items():
        torch.testing.assert_close(ddp["state"][key], value, rtol=1e-5, atol=1e-6)
    assert ddp["losses"] == pytest.approx([h["train_loss"] for h in single.history], rel=1e-5)
    assert ddp["validation"] == single.validation["uar"] and ddp["test"] == single.test["uar"]


if __name__ == "__main__":  # the torchrun worker of test_ddp_two_processes_equal_one_process
    _ddp_worker(sys.argv[1], sys.argv[2])
