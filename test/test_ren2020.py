"""Ren et al. 2020 (seeds/001): CNN-4, VGG-16 and ResNet-50 on 64-band log-Mel images of 373 frames: the
paper's structure, padding never changes a prediction, the utterance trainer trains them with adversarial
training, and the live window exports to onnxruntime."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

from conftest import assert_padding_invariant
from ser_robot.models import build_model, load_model_config

REPO = pathlib.Path(__file__).resolve().parent.parent
NAMES = ("ren_cnn4", "ren_vgg16", "ren_resnet50")


def small(name: str, **hyper):
    return build_model(name, 64, "categorical", seed=0, **{"segment_frames": 40, "width": 0.0625, **hyper}).eval()


@pytest.mark.parametrize("name", NAMES)
def test_padding_never_changes_a_prediction(name):
    model = small(name)
    lengths = torch.tensor([40, 25, 90])  # one image, a shorter one, two and a bit
    assert_padding_invariant(model, torch.randn(3, 100, 64), lengths, junk_row=1, atol=1e-5)


def test_the_papers_structure():
    cnn4 = build_model("ren_cnn4", 64, "categorical", seed=0)
    convs = [m for m in cnn4.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512] and all(c.kernel_size == (5, 5) for c in convs)
    vgg = small("ren_vgg16", width=1.0)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in vgg.modules()) == 13  # + 2 fully connected = 16 layers
    resnet = small("ren_resnet50", width=1.0)
    assert sum(type(m).__name__ == "_Bottleneck" for m in resnet.modules()) == 16  # 3 + 4 + 6 + 3
    assert resnet.output.in_features == 2048
    for name in NAMES:
        config = load_model_config(name)
        assert config.feature_set == "logmel_ren2020" and config.hyper["segment_frames"] == 373


def test_adversarial_training_and_the_onnx_export(tiny_corpus, tmp_path):
    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.features.sets import create_extractor
    from ser_robot.inference.model import EmotionModel
    from ser_robot.train.config import load_train_config
    from ser_robot.train.data import load_waveform
    from ser_robot.train.trainer import train

    fold = leave_one_speaker_out(read_manifest(tiny_corpus))[0]
    config = load_train_config(REPO / "config/train/ren2020.yaml", {
        "model": "ren_cnn4", "epochs": 1, "batch_size": 8, "model_hyper": {"width": 0.0625, "segment_frames": 100},
        "adversarial": {"kind": "similarity", "epsilon": 0.05, "start_iteration": 0}})
    result = train(config, fold, out_dir=tmp_path, progress=False)
    assert np.isfinite(result.history[0]["train_loss"])
    frames = create_extractor("logmel_ren2020")(load_waveform(str(fold.test[0].path), 16000)[None])[0]
    served = EmotionModel(result.best_checkpoint, "cpu", backend="onnxruntime")
    assert served.backend == "onnxruntime", served.backend_note
    with torch.no_grad():
        logits = result.model(result.normalizer(frames[None]), torch.tensor([frames.shape[0]]))
    np.testing.assert_allclose(served.predict(frames.numpy()).probabilities, torch.softmax(logits, 1)[0].numpy(),
                               rtol=1e-4, atol=1e-5)


def test_table2_runs_at_tiny_size(tmp_path):
    import json

    from ser_robot.experiments import load_experiment, run_experiment

    path = REPO / "training/experiments/ren2020_table2_tiny.yaml"
    result = run_experiment(path, out=tmp_path / "results", workers=1, progress=False, cache=tmp_path / "cache")
    assert result.jobs_run == len(load_experiment(path).arms)
    assert "adversarial_training_defends" in result.markdown and "| fgsm10 | pgd10 | spsa10 |" in result.markdown
    jobs = {p.parents[2].name: json.loads(p.read_text()) for p in (tmp_path / "results" / "jobs").glob("*/rep0/*/job.json")}
    clean, attacked = jobs["cnn4_single"]["metrics"]["clean"]["uar"], jobs["cnn4_single"]["metrics"]["fgsm10"]["uar"]
    assert attacked <= clean  # the white-box attack never helps the model it attacks
