"""MTL-AUG (Latif et al., seeds/002): the model's contract, its switches and losses, the multitask trainer,
the Table 2 pipeline at tiny size, and the checkpoint served by the inference path."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
import torch

from conftest import assert_padding_invariant
from ser_robot.config_io import config_file
from ser_robot.errors import ConfigError, TrainError
from ser_robot.models import AUGMENTATION_TYPES, MtlAug, build_model, load_model_config

pytestmark = pytest.mark.timeout(900)

REPO = pathlib.Path(__file__).resolve().parent.parent
BANDS = 16
SMALL = {"segment_frames": 40, "channels": [4, 8], "kernel_sizes": [5, 3], "lstm_units": 6, "dense_units": 5,
         "aux_lstm_units": 7, "aux_dense_units": 6}


def small(seed: int = 0, **hyper) -> MtlAug:
    model = build_model("mtl_aug", BANDS, "categorical", seed=seed, **{**SMALL, **hyper})
    return model.eval()


def test_padding_and_batching_never_change_a_prediction():
    model = small()
    lengths = torch.tensor([40, 33, 7, 95, 1])  # one segment, shorter ones, 2.4 segments, a single frame
    assert_padding_invariant(model, torch.randn(5, 120, BANDS), lengths, junk_row=0)


def test_a_long_utterance_is_the_mean_of_its_segments_and_training_keeps_the_first():
    model = small()
    x = torch.randn(1, 95, BANDS)
    pieces = [x[:, 0:40], x[:, 40:80], x[:, 80:95]]
    expected = torch.stack([model(p, torch.tensor([p.shape[1]])) for p in pieces]).mean(0)
    torch.testing.assert_close(model(x, torch.tensor([95])), expected, rtol=1e-5, atol=1e-6)
    first = model.training_output(x, torch.tensor([95]))
    torch.testing.assert_close(first.logits, model(pieces[0], torch.tensor([40])), rtol=1e-5, atol=1e-6)
    assert first.target.shape == (1, model.padded_frames, BANDS) and first.reconstruction.shape == first.target.shape


def test_switches_build_the_table7_variants_from_one_module():
    full = small()
    assert full.aux_head is not None and full.decoder is not None and full.centres is not None
    baseline = small(augmentation_task=False, reconstruction_task=False, centre_weight=0.0, attention=False)
    assert baseline.aux_head is None and baseline.decoder is None and baseline.centres is None
    assert baseline.attention_score is None
    out = baseline.training_output(torch.randn(2, 30, BANDS), torch.tensor([30, 20]))
    assert out.augmentation_logits is None and out.reconstruction is None
    assert full.training_output(torch.randn(2, 30, BANDS), torch.tensor([30, 20])).augmentation_logits.shape == \
        (2, len(AUGMENTATION_TYPES))


def test_unlabelled_rows_train_only_the_auxiliary_tasks():
    model = small().train()
    x, lengths = torch.randn(3, 30, BANDS), torch.tensor([30, 25, 20])
    targets = torch.zeros(3, 4)
    losses = model.objective(model.training_output(x, lengths), targets, torch.zeros(3, dtype=torch.bool),
                             torch.full((3,), -1), torch.tensor([0, 1, 2]))
    assert float(losses["emotion"]) == 0.0 and float(losses["centre"]) == 0.0
    assert float(losses["augmentation"].detach()) > 0 and float(losses["reconstruction"].detach()) > 0
    losses["total"].backward()
    assert model.output.weight.grad is None or float(model.output.weight.grad.abs().sum()) == 0.0
    assert model.lstm.weight_ih_l0.grad is None or float(model.lstm.weight_ih_l0.grad.abs().sum()) == 0.0
    assert float(model.encoder[0][0].weight.grad.abs().sum()) > 0  # the encoder learns from them


def test_the_loss_weights_are_eq3_and_eq6():
    model = small(aux_weight=0.7, centre_weight=0.2).train()
    x, lengths = torch.randn(4, 30, BANDS), torch.full((4,), 30)
    labels = torch.tensor([0, 1, 2, 3])
    losses = model.objective(model.training_output(x, lengths), torch.eye(4), torch.ones(4, dtype=torch.bool), labels,
                             torch.tensor([0, 1, 2, 3]))
    expected = losses["emotion"] + 0.2 * losses["centre"] + 0.7 * (losses["augmentation"] + losses["reconstruction"])
    torch.testing.assert_close(losses["total"], expected)


def test_mixed_precision_step_keeps_float32_losses():
    """The training step under bf16 autocast (on CUDA the trainer's; here on the CPU): finite float32 losses,
    gradients for every parameter that a labelled batch trains."""
    model = small().train()
    x, lengths = torch.randn(4, 30, BANDS), torch.tensor([30, 25, 20, 12])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.training_output(x, lengths)
    losses = model.objective(out, torch.eye(4), torch.ones(4, dtype=torch.bool), torch.arange(4), torch.arange(4))
    assert all(v.dtype == torch.float32 and bool(torch.isfinite(v)) for v in losses.values())
    losses["total"].backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_with_mixed_precision(fold, tmp_path):
    from ser_robot.train.trainer import train

    result = train(_config(epochs=1, device="cuda", amp_dtype="fp16"), fold, out_dir=tmp_path, progress=False)
    assert next(result.model.parameters()).is_cuda and np.isfinite(result.history[0]["train_loss"])


def test_bad_configurations_are_named():
    with pytest.raises(ConfigError, match="categorical head only"):
        MtlAug(BANDS, "dimensional", None, **{**load_model_config("mtl_aug").hyper, **SMALL})
    with pytest.raises(ConfigError, match="do not divide"):
        build_model("mtl_aug", 18, "categorical", **SMALL)
    with pytest.raises(ConfigError, match="same length"):
        build_model("mtl_aug", BANDS, "categorical", **{**SMALL, "kernel_sizes": [5]})


def test_the_yaml_says_where_every_value_comes_from():
    config = load_model_config("mtl_aug")
    assert config.feature_set == "logmel_mtl_aug" and config.hyper["segment_frames"] == 750
    assert config.hyper["lstm_units"] == 128 and config.hyper["aux_lstm_units"] == 256
    assert config.hyper["aux_dropout"] == 0.3
    for line in config_file("models/mtl_aug.yaml").read_text().splitlines():
        if re.match(r"^\s*[a-z_]+:\s*\S", line):
            assert "#" in line and re.search(r"\d\.\d|eq\.|ours|not stated", line), line


# --- the trainer ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fold(tiny_corpus):
    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.splits import leave_one_speaker_out

    return leave_one_speaker_out(read_manifest(tiny_corpus), validation="partner")[0]


def _config(**changes):
    from ser_robot.train.config import load_train_config

    return load_train_config(REPO / "config/train/mtl_aug.yaml", {
        "epochs": 2, "batch_size": 4, "model_hyper": {"segment_frames": 120, "channels": [4, 8],
                                                      "kernel_sizes": [5, 3]}, **changes})


def test_epoch_plan_is_seeded_and_draws_every_type(fold):
    from ser_robot.train.segments import FeatureStore, plan_epoch

    store = FeatureStore(copies=[[torch.zeros(5, 2)] * 3] * 40, labels=[0, 1, 2, 3] * 8 + [-1] * 8)
    config = _config()
    plan = plan_epoch(store, config, 0)
    assert plan == plan_epoch(store, config, 0) and plan != plan_epoch(store, config, 1)
    items = [item for batch in plan for item in batch]
    assert sorted(row for row, _, _ in items) == list(range(40))  # every utterance once
    assert {kind for _, _, kind in items} == set(range(len(AUGMENTATION_TYPES)))
    assert all((copy > 0) == (kind == AUGMENTATION_TYPES.index("speed")) for _, copy, kind in items)
    for batch in plan:  # labelled and unlabelled speech never share a batch
        assert len({store.labels[row] >= 0 for row, _, _ in batch}) == 1
    none_only = _config(multitask={"augmentations": []})
    assert {kind for b in plan_epoch(store, none_only, 0) for _, _, kind in b} == {0}


def test_batches_carry_what_the_composer_applied():
    from ser_robot.features.normalization import FeatureNormalizer
    from ser_robot.train.segments import FeatureStore, make_batch

    rng = np.random.default_rng(0)
    copies = [[torch.from_numpy(rng.normal(size=(n, BANDS))).half()] * 3 for n in (50, 60, 70, 80)]
    store = FeatureStore(copies=copies, labels=[0, 1, 2, 3])
    normalizer = FeatureNormalizer([f"b{i}" for i in range(BANDS)])
    normalizer.update(copies[0][0].float()[None], torch.ones(1, 50, dtype=torch.bool))
    items = [(0, 0, 0), (1, 1, 1), (2, 0, 2), (3, 0, 3)]  # none, speed, specaugment, mixup
    batch = make_batch(store, items, normalizer, _config(), 4, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert batch["types"].tolist() == [0, 1, 2, 3]
    assert batch["hard"].tolist() == [0, 1, 2, -1]  # the mixed row has no single class for the centre loss
    assert torch.equal(batch["targets"][:3], torch.eye(4)[:3])
    assert float(batch["targets"][3].sum()) == pytest.approx(1.0)
    assert int((batch["features"][2, :70] == 0).sum()) > int((batch["features"][0, :50] == 0).sum())  # masked


def test_train_resume_and_the_unlabelled_leak_check(fold, tmp_path):
    from ser_robot.data.manifest import write_manifest
    from ser_robot.train.trainer import train

    config = _config()
    whole = train(config, fold, out_dir=tmp_path / "whole", progress=False)
    assert len(whole.history) == 2 and set(whole.history[0]["losses"]) == {"emotion", "centre", "augmentation",
                                                                           "reconstruction"}
    half = train(config.replace(epochs=1), fold, out_dir=tmp_path / "half", progress=False)
    assert len(half.history) == 1
    resumed = train(config, fold, out_dir=tmp_path / "half", resume=tmp_path / "half" / "last.pt", progress=False)
    for key, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, msg=key)
    leak = write_manifest(tmp_path / "leak.jsonl", fold.test)
    with pytest.raises(TrainError, match="validation or test speakers"):
        train(_config(multitask={"unlabelled_manifest": str(leak)}), fold, progress=False)
    with pytest.raises(ConfigError, match="multitask section applies to segment models"):
        from ser_robot.train.config import load_train_config

        train(load_train_config(REPO / "config/train/lakomkin.yaml", {"multitask": {"augmentations": []}}), fold)


def test_the_inference_path_serves_the_emotion_head(fold, tmp_path):
    from ser_robot.features.sets import create_extractor
    from ser_robot.inference.model import EmotionModel
    from ser_robot.train.data import load_waveform
    from ser_robot.train.trainer import train

    result = train(_config(epochs=1), fold, out_dir=tmp_path, progress=False)
    served = EmotionModel(result.best_checkpoint, "cpu", backend="torch")
    wave = load_waveform(str(fold.test[0].path), 16000)
    frames = create_extractor("logmel_mtl_aug")(wave[None])[0]
    prediction = served.predict(frames.numpy())
    with torch.no_grad():
        logits = result.model(result.normalizer(frames[None]), torch.tensor([frames.shape[0]]))
    np.testing.assert_allclose(prediction.probabilities, torch.softmax(logits, 1)[0].numpy(), rtol=1e-4, atol=1e-5)


# --- the experiments at tiny size ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> pathlib.Path:
    """One corpus, robot twin and banks for every tiny experiment of this module (generated once)."""
    return tmp_path_factory.mktemp("cache")


def test_table2_tiny_runs_every_arm_with_unlabelled_sessions(tmp_path, cache):
    import json

    from ser_robot.experiments import run_experiment

    result = run_experiment(REPO / "training/experiments/mtl_aug_table2_tiny.yaml", out=tmp_path / "results",
                            workers=1, progress=False, cache=cache)
    assert result.jobs_run == 3
    jobs = {p.parents[3].name: json.loads(p.read_text()) for p in
            (tmp_path / "results" / "jobs").glob("*/rep0/*/train/result.json")}
    assert jobs["mtl_aug_unlabelled"]["train_utterances"]["unlabelled"] > 0
    assert jobs["mtl_aug"]["train_utterances"]["unlabelled"] == 0
    assert all(job["fold"]["test"] and "s04" not in " ".join(job["fold"]["train"]) for job in jobs.values())
    assert "mtl_beats_stl" in result.markdown and (tmp_path / "results" / "effects.csv").is_file()
    assert "| Arm | Model | clean | robot (simulated) | 0 dB SNR | 20 dB SNR |" in result.markdown  # Table 5
    for job in (tmp_path / "results" / "jobs").glob("*/rep0/*"):
        assert {p.name for p in job.glob("predictions_*.csv")} == {f"predictions_{t}.csv" for t in
                                                                   ("clean", "robot", "snr0", "snr20")}


@pytest.mark.parametrize("name", ["table3", "table6", "table7", "fig2", "fig3"])
def test_ablation_figure_experiments_run_at_tiny_size(name, tmp_path, cache):
    from ser_robot.experiments import load_experiment, run_experiment

    path = REPO / f"training/experiments/mtl_aug_{name}_tiny.yaml"
    result = run_experiment(path, out=tmp_path / "results", workers=1, progress=False, cache=cache)
    experiment = load_experiment(path)
    assert result.jobs_run == len(experiment.arms)
    assert all(effect.name in result.markdown for effect in experiment.effects)
    if name == "table3":  # trained on one corpus, selected and tested on speakers of the other
        for job in (tmp_path / "results" / "jobs").glob("*/rep0/split0/train/result.json"):
            fold = __import__("json").loads(job.read_text())["fold"]
            assert all(s.startswith("s0") for s in fold["train"]) and len(fold["validation"]) == 1
            assert all(s.startswith("en0") for s in fold["validation"] + fold["test"]) and len(fold["test"]) == 3
    if name == "fig3":
        assert (tmp_path / "results" / "figures" / "labelled_fraction.png").stat().st_size > 10_000
        for job in (tmp_path / "results" / "jobs").glob("*/rep0/*/train/result.json"):
            counts = __import__("json").loads(job.read_text())["train_utterances"]
            stl = job.parents[3].name.startswith("stl")
            assert (counts["unlabelled"] == 0) == (stl or job.parents[3].name.endswith("f100")), job
