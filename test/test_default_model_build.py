"""`ser-robot build-model` at a tiny size: the default model's recipe (diverse voices, whole engine and
language held out, level normaliser and speaker normalisation in training) end to end, its card
scored through the inference path, with the baseline side by side."""

from __future__ import annotations

import json
import pathlib

import pytest
import yaml

from conftest import ser_robot
from ser_robot.errors import ConfigError
from ser_robot.inference.model import EmotionModel

ROOT = pathlib.Path(__file__).resolve().parents[1]
# the module fixture builds a model (banks, training, evaluation): minutes on 2 busy cores
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    folder = tmp_path_factory.mktemp("build")
    recipe = yaml.safe_load((ROOT / "training/default_model.yaml").read_text())
    recipe["cache"] = str(folder / "cache")
    recipe["validation_session"] = "en02"  # picks the epoch and fits the temperature
    recipe["corpus"]["synth"]["sentences"] = 1
    recipe["corpus"]["noise_bank"] = {"seed": 0, "seconds_per_clip": 2.0, "clips_per_category": 4}
    recipe["corpus"]["rir_bank"] = {"seed": 0, "count": 8}
    recipe["train"]["config"] = str(ROOT / recipe["train"]["config"])
    recipe["train"]["overrides"].update(epochs=1, augmentation={"kind": "lakomkin", "mode": "bank", "versions": 2})
    config = folder / "build.yaml"
    config.write_text(yaml.safe_dump(recipe))
    result = ser_robot("build-model", str(config), "--out", str(folder / "model"), "--work", str(folder / "work"),
                       "--workers", "2", "--threads", "1", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((folder / "cache" / "banks").glob("*/features.bin")), "the banks belong in the recipe's cache"
    return folder / "model"


def test_held_out_engine_language_and_voices_are_never_trained_on(tiny_build):
    report = json.loads((tiny_build / "metrics.json").read_text())
    held = report["held_out"]
    assert set(held) == {"voices", "engine flite", "language de"}
    trained = set(report["fold"]["train"])
    for speakers in held.values():
        assert speakers and not trained & set(speakers)
    assert all(s.startswith("fl") for s in held["engine flite"])
    assert all(s.startswith("de") for s in held["language de"])
    for name in held:
        for condition in ("clean", "robot"):
            metrics = report["metrics"][f"{name} / {condition}"]
            assert 0 <= metrics["uar"] <= 1 and 0 <= metrics["ece"] <= 1
            assert 0 <= report["baseline"][f"{name} / {condition}"] <= 1
    assert [row["gain_db"] for row in report["gain_sweep"]["rows"]] == [-30, -20, -10, 0, 10]
    card = (tiny_build / "MODEL_CARD.md").read_text()
    assert "synthetic corpus" in card and "engine flite / robot" in card and "baseline UAR" in card


def test_the_temperature_is_fitted_on_validation_voices_only(tiny_build):
    report = json.loads((tiny_build / "metrics.json").read_text())
    calibration = report["calibration"]
    validation = set(report["fold"]["validation"])
    assert validation and set(calibration["fitted_on"]) == validation
    assert not validation & set(report["fold"]["train"]) and not validation & set(report["fold"]["test"])
    assert calibration["utterances"] == 2 * 4 * len(validation)  # 1 sentence x 4 emotions, clean and robot
    assert 0 <= calibration["ece_after"] <= 1 and 0 <= calibration["ece_before"] <= 1
    model = EmotionModel(tiny_build / "model.pt", device="cpu", backend="torch")
    assert model.temperature == pytest.approx(calibration["temperature"]) and 0.05 <= model.temperature <= 20
    assert (tiny_build / "reliability.png").stat().st_size > 0
    assert "softmax(logits / T)" in (tiny_build / "MODEL_CARD.md").read_text()


def test_the_model_normalises_each_stream(tiny_build):
    model = EmotionModel(tiny_build / "model.pt", device="cpu", backend="torch")
    stream = model.new_stream()
    assert stream is not None and stream.frames_seen == 0
    assert model.stream_normalization.prior_frames > 0


@pytest.mark.parametrize("change, message", [
    ({"seed": -1}, r"key 'seed' must be an integer >= 0, got -1"),
    ({"held_out_engines": "flite"}, r"key 'held_out_engines' must be a list"),
    ({"bogus": 1}, r"unknown key\(s\) \['bogus'\]"),
    ({"validation_session": "en01"}, r"validation_session must differ from held_out_session \('en01'\)"),
    ({"train": {"config": "nowhere.yaml"}}, r"train: config 'nowhere.yaml' not found"),
    ({"corpus": {"synth": {"speakers": 12, "sentences": 2}, "noisy": {"snr_db": [10]}}},
     r"noisy test sets are an experiment's"),
])
def test_a_wrong_build_file_is_refused_naming_the_key(tmp_path, change, message):
    from ser_robot.experiments.default_model import load_model_build

    recipe = yaml.safe_load((ROOT / "training/default_model.yaml").read_text())
    recipe["train"]["config"] = str(ROOT / recipe["train"]["config"])
    recipe.update(change)
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError, match=message):
        load_model_build(path)


def test_mtl_aug_builds_through_the_same_recipe(tmp_path):
    """training/mtl_aug_model.yaml at tiny size: the multitask trainer inside build-model, with the level
    normaliser on its training features, scored on the same held-out sets and served by the inference path."""
    recipe = yaml.safe_load((ROOT / "training/mtl_aug_model.yaml").read_text())
    recipe["cache"] = str(tmp_path / "cache")
    recipe["corpus"]["synth"]["sentences"] = 1
    recipe["corpus"]["noise_bank"] = {"seed": 0, "seconds_per_clip": 2.0, "clips_per_category": 4}
    recipe["corpus"]["rir_bank"] = {"seed": 0, "count": 8}
    recipe["train"]["config"] = str(ROOT / recipe["train"]["config"])
    recipe["train"]["overrides"].update(epochs=1, model_hyper={"segment_frames": 300, "channels": [4, 8],
                                                               "kernel_sizes": [5, 3]})
    config = tmp_path / "build.yaml"
    config.write_text(yaml.safe_dump(recipe))
    result = ser_robot("build-model", str(config), "--out", str(tmp_path / "model"), "--work", str(tmp_path / "work"),
                       "--workers", "2", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert report["model"] == "mtl_aug" and report["level_normalization"] == "agc"
    assert {"engine flite / robot", "language de / clean", "voices / clean"} <= set(report["metrics"])
    assert report["calibration"]["fitted_on"] == report["fold"]["validation"]
    model = EmotionModel(tmp_path / "model" / "model.pt", "cpu")
    assert model.feature_set == "logmel_mtl_aug" and model.backend == "onnxruntime"
    assert "augmentation-type classification" in (tmp_path / "model" / "MODEL_CARD.md").read_text()

