"""Latif et al. 2020 (seeds/000): the five models' contract (segments, posterior averaging, padding), their
switches, the segment trainer's ``sampling: all`` (every segment a sample, speed copies as extra data, mixup
on every batch, the paper's schedule), the served checkpoint, and Tables 1, 2 and 4 at tiny size."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest
import torch

from conftest import assert_padding_invariant
from ser_robot.config_io import config_file
from ser_robot.errors import ConfigError
from ser_robot.models import MODELS, SegmentModel, build_model, load_model_config
from ser_robot.train.config import SEGMENT_MODELS

pytestmark = pytest.mark.timeout(900)

REPO = pathlib.Path(__file__).resolve().parent.parent
BANDS = 16
NAMES = ("latif_cnn", "latif_cnn_lstm", "densenet", "densenet_lstm", "densenet_lstm_highway")
SMALL = {
    "latif_cnn": {"segment_frames": 32, "channels": [4, 6], "kernel_sizes": [5, 3], "lstm_units": 6, "dense_units": 5},
    "densenet": {"segment_frames": 32, "stem_channels": 4, "stem_kernel": 3, "stem_stride": 1, "stem_pool": 2,
                 "blocks": [2, 2, 2], "growth": 3, "dense_units": 7},
    "densenet_lstm_highway": {"segment_frames": 32, "stem_channels": 4, "stem_kernel": 3, "stem_stride": 2,
                              "stem_pool": 1, "blocks": [2, 2], "growth": 3, "lstm_units": 6, "dense_units": 5},
}
SMALL["latif_cnn_lstm"] = SMALL["latif_cnn"]
SMALL["densenet_lstm"] = {**SMALL["densenet"], "lstm_units": 6}


def small(name: str, seed: int = 0, **hyper) -> SegmentModel:
    return build_model(name, BANDS, "categorical", seed=seed, **{**SMALL[name], **hyper}).eval()


def test_every_segment_model_is_registered_and_trained_by_the_segment_trainer():
    assert set(SEGMENT_MODELS) == {name for name, cls in MODELS.items() if getattr(cls, "SEGMENT_TRAINED", False)}
    assert set(NAMES) <= set(SEGMENT_MODELS)


@pytest.mark.parametrize("name", NAMES)
def test_padding_and_segmentation_never_change_a_prediction(name):
    model = small(name)
    lengths = torch.tensor([32, 20, 75, 1])  # one segment, a shorter one, 2.3 segments, a single frame
    batch = assert_padding_invariant(model, torch.randn(4, 80, BANDS), lengths, junk_row=1)
    torch.testing.assert_close(torch.softmax(batch, 1).sum(1), torch.ones(4))


@pytest.mark.parametrize("name", ["densenet_lstm_highway", "latif_cnn"])
def test_an_utterance_is_the_mean_of_its_segments_posteriors(name):
    model = small(name)
    x = torch.randn(1, 75, BANDS)
    pieces = [x[:, 0:32], x[:, 32:64], x[:, 64:75]]
    posteriors = torch.cat([torch.softmax(model(p, torch.tensor([p.shape[1]])), 1) for p in pieces])
    torch.testing.assert_close(torch.softmax(model(x, torch.tensor([75])), 1), posteriors.mean(0, keepdim=True),
                               rtol=1e-5, atol=1e-6)


def test_switches_build_the_densenet_variants_from_one_module():
    proposed = small("densenet_lstm_highway")
    assert proposed.lstm is not None and proposed.skips is not None and len(proposed.skips) == 2
    assert sum(type(m).__name__ == "Highway" for m in proposed.classifier) == 3
    plain = small("densenet")
    assert plain.lstm is None and plain.skips is None and plain.grid.output_size == 3
    assert len(plain.blocks) == 3 and len(plain.transitions) == 2
    assert small("densenet_lstm").lstm is not None
    assert isinstance(small("latif_cnn_lstm").temporal, torch.nn.LSTM)
    assert not isinstance(small("latif_cnn").temporal, torch.nn.LSTM)


def test_batch_normalisation_comes_before_every_non_linearity_of_a_dense_block():
    layer = small("densenet_lstm_highway").blocks[0][0].body
    assert [type(m).__name__ for m in layer] == ["BatchNorm2d", "ReLU", "Conv2d"]


def test_the_paper_sizes_and_the_source_of_every_value():
    proposed = load_model_config("densenet_lstm_highway").hyper
    assert proposed["blocks"] == [6, 6] and proposed["growth"] == 24 and proposed["dropout"] == 0.5
    assert proposed["segment_frames"] == 256 and proposed["dense_units"] == 128 and proposed["highway_layers"] == 3
    baseline = load_model_config("densenet").hyper
    assert baseline["blocks"] == [6, 6, 6] and baseline["growth"] == 16 and baseline["dense_units"] == 1000
    for name in NAMES:
        assert load_model_config(name).feature_set == "logmel_latif2020"
        for line in config_file(f"models/{name}.yaml").read_text().splitlines():
            if re.match(r"^\s*[a-z_]+:\s*\S", line) and not line.startswith(("architecture", "head", "num_classes")):
                assert "#" in line and re.search(r"\d\.\d|\d\)|ours|not stated|unused|as |\[37\]|eq\.", line), line


def test_bad_configurations_are_named():
    with pytest.raises(ConfigError, match="temporal"):
        small("densenet", temporal="gru")
    with pytest.raises(ConfigError, match="too small for a transition"):
        small("densenet", segment_frames=8, blocks=[1, 1, 1, 1, 1])
    with pytest.raises(ConfigError, match="categorical head only"):
        build_model("densenet", BANDS, "dimensional", **SMALL["densenet"])


# --- the trainer, sampling: all --------------------------------------------------------------------------------


def _config(**changes):
    from ser_robot.train.config import load_train_config

    return load_train_config(REPO / "config/train/latif2020.yaml", {
        "epochs": 2, "batch_size": 8, "model": "densenet_lstm_highway",
        "model_hyper": {**SMALL["densenet_lstm_highway"], "segment_frames": 64}, **changes})


@pytest.fixture(scope="module")
def fold(tiny_corpus):
    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.splits import leave_one_speaker_out

    return leave_one_speaker_out(read_manifest(tiny_corpus), validation="partner")[0]


def test_every_segment_of_every_copy_is_a_training_row(fold):
    from ser_robot.features.sets import create_extractor
    from ser_robot.train.data import label_set
    from ser_robot.train.features import BatchFeaturizer
    from ser_robot.train.segments import _stores, plan_epoch

    featurizer = BatchFeaturizer(create_extractor("logmel_latif2020"))
    labels = label_set(fold.train)
    clean_config = _config()
    model = build_model("densenet_lstm_highway", 128, "categorical", **clean_config.model_hyper)
    clean, count = _stores(clean_config, fold, labels, featurizer, model, show=False)
    assert count == len(fold.train) and all(clean.clean) and all(c[0].shape[0] <= 64 for c in clean.copies)
    assert len(clean.labels) > len(fold.train)  # utterances longer than one segment give several rows
    both = _config(multitask={"augmentations": ["speed", "mixup"]})
    rows, _ = _stores(both, fold, labels, featurizer, model, show=False)
    assert sum(rows.clean) == len(clean.labels) and len(rows.labels) > 2.5 * len(clean.labels)  # two speed copies
    plan = plan_epoch(rows, both, 0)
    items = [item for batch in plan for item in batch]
    assert sorted(row for row, _, _ in items) == list(range(len(rows.labels)))  # every row, once
    assert {kind for _, _, kind in items} == {3}  # every batch mixed
    assert {kind for b in plan_epoch(clean, clean_config, 0) for _, _, kind in b} == {0}
    with pytest.raises(ConfigError, match="sampling: draw"):
        from ser_robot.train.trainer import train

        train(_config(multitask={"augmentations": ["specaugment"]}), fold)


def test_the_papers_schedule_halves_without_restoring_and_stops_after_the_patience(fold, tmp_path):
    from ser_robot.train.trainer import train

    result = train(_config(epochs=6, lr_patience=1, early_stop_patience=2, lr=1e-9,
                           multitask={"min_lr": 1e-12}),
                   fold, out_dir=tmp_path, progress=False)  # a learning rate too small to improve after epoch 1
    improved = [h["improved"] for h in result.history]
    assert improved[0] and result.stopped_early
    first_bad = improved.index(False)
    assert len(result.history) <= first_bad + 2  # stopped two epochs after the last improvement
    lrs = [h["lr"] for h in result.history]
    assert lrs[first_bad + 1] == pytest.approx(lrs[first_bad] / 2)  # halved after one bad epoch (lr_patience 1)


def test_the_served_checkpoint_averages_posteriors(fold, tmp_path):
    from ser_robot.features.sets import create_extractor
    from ser_robot.inference.model import EmotionModel
    from ser_robot.train.data import load_waveform
    from ser_robot.train.trainer import train

    result = train(_config(epochs=1, multitask={"augmentations": ["speed", "mixup"]}), fold, out_dir=tmp_path,
                   progress=False)
    wave = load_waveform(str(fold.test[0].path), 16000)
    frames = create_extractor("logmel_latif2020")(wave[None])[0]
    assert frames.shape[0] > 64  # several segments
    with torch.no_grad():
        logits = result.model(result.normalizer(frames[None]), torch.tensor([frames.shape[0]]))
    for backend in ("torch", "onnxruntime"):
        served = EmotionModel(result.best_checkpoint, "cpu", backend=backend)
        assert served.backend == backend, served.backend_note
        prediction = served.predict(frames.numpy())
        np.testing.assert_allclose(prediction.probabilities, torch.softmax(logits, 1)[0].numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=backend)


# --- the experiments at tiny size ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> pathlib.Path:
    """One corpus, robot twin and noisy copies for every tiny experiment of this module (generated once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("name", ["table1", "table2", "table4"])
def test_tables_run_at_tiny_size(name, tmp_path, cache):
    from ser_robot.experiments import load_experiment, run_experiment

    path = REPO / f"training/experiments/latif2020_{name}_tiny.yaml"
    result = run_experiment(path, out=tmp_path / "results", workers=1, progress=False, cache=cache)
    experiment = load_experiment(path)
    assert result.jobs_run == len(experiment.arms) * experiment.protocol.repetitions
    assert all(effect.name in result.markdown for effect in experiment.effects)
    models = {json.loads(p.read_text())["model"]
              for p in (tmp_path / "results" / "jobs").glob("*/rep0/*/job.json")}
    if name == "table1":  # the five models train
        assert models == set(NAMES)
    if name == "table2":
        for job in (tmp_path / "results" / "jobs").glob("*/rep0/*"):
            assert {p.name for p in job.glob("predictions_*.csv")} >= {f"predictions_{t}.csv" for t in
                                                                       ("snr0", "snr20", "fgsm", "bim")}
        assert "| fgsm | bim |" in result.markdown  # Table 3: the same models under attack
