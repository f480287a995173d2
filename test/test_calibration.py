"""Calibration metrics: ECE, temperature scaling, abstention."""

import numpy as np
import pytest

from ser_robot.eval.calibration import (abstention_curve, expected_calibration_error, fit_temperature,
                                        read_predictions, reliability_diagram, softmax)


def sample(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax at ``temperature`` is calibrated: each target is drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, 4))
    probabilities = softmax(logits, temperature)
    targets = np.array([rng.choice(4, p=p) for p in probabilities])
    return logits, targets


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    logits, targets = sample(20000, temperature=1.0)
    assert expected_calibration_error(softmax(logits), targets) < 0.02
    assert expected_calibration_error(softmax(logits, 0.3), targets) > 0.1  # sharpened: overconfident
    one_hot = np.eye(4)[targets]
    assert expected_calibration_error(one_hot, targets) == 0.0


def test_temperature_scaling_recovers_the_temperature():
    logits, targets = sample(20000, temperature=2.5, seed=1)
    assert fit_temperature(logits, targets) == pytest.approx(2.5, rel=0.08)


def test_abstention_keeps_the_confident_ones(tmp_path):
    logits, targets = sample(5000, temperature=1.0, seed=2)
    rows = abstention_curve(softmax(logits), targets)
    assert rows[0] == {"threshold": 0.0, "kept": 1.0, "accuracy": pytest.approx(np.mean(logits.argmax(1) == targets))}
    kept = [r["kept"] for r in rows]
    assert kept == sorted(kept, reverse=True) and rows[-1]["accuracy"] > rows[0]["accuracy"]
    png = reliability_diagram({"test": (softmax(logits), targets)}, tmp_path / "reliability.png")
    assert png.stat().st_size > 0


def test_read_predictions_of_the_shipped_model():
    from conftest import ROOT

    predictions = read_predictions(ROOT / "models/default/predictions/voices_clean.csv")  # p_<class> columns
    assert predictions.labels == ("angry", "happy", "neutral", "sad") and len(predictions.targets) == 160
    np.testing.assert_allclose(softmax(predictions.logits).sum(axis=1), 1.0, atol=1e-6)


def test_dimensional_predictions_are_refused(tmp_path):
    path = tmp_path / "dimensional.csv"
    path.write_text("id,speaker,arousal_true,valence_true,arousal_pred,valence_pred\nu1,s,0.1,0.2,0.3,0.4\n")
    with pytest.raises(ValueError, match="no logit_<class> or p_<class> columns"):
        read_predictions(path)


@pytest.mark.ros
def test_a_result_below_min_confidence_is_published_as_uncertain(rclpy_context):
    from ser_robot.inference.engine import EmotionResult
    from ser_robot.inference.model import Prediction
    from ser_robot.ros.inference_node import emotion_message, result_line

    labels = ("angry", "happy", "neutral", "sad")
    result = EmotionResult(10.0, 12.0, True, True, 0.9, Prediction(np.array([0.4, 0.3, 0.2, 0.1], np.float32)), 200)
    sure = emotion_message(result, "head", "head", labels, "m", min_confidence=0.4)
    unsure = emotion_message(result, "head", "head", labels, "m", min_confidence=0.5)
    assert (sure.label, sure.speech) == ("angry", True)
    assert (unsure.label, unsure.speech, unsure.confidence) == ("", True, pytest.approx(0.4))
    assert list(unsure.probabilities) == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert "uncertain" in result_line(unsure, 0.1) and "angry" in result_line(sure, 0.1)


def test_calibration_command_writes_its_report(tmp_path):
    from conftest import ROOT, ser_robot

    done = ser_robot("calibration", str(ROOT / "models/default/predictions/voices_clean.csv"), "--out",
                     str(tmp_path / "c"))
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "c" / "README.md").read_text()
    assert "Expected calibration error (10 bins): " in report and (tmp_path / "c" / "reliability.png").is_file()
    bad = tmp_path / "bad.csv"
    bad.write_text("id,true\nu1,angry\n")
    refused = ser_robot("calibration", str(bad), "--out", str(tmp_path / "d"))
    assert refused.returncode != 0 and "no logit_<class> or p_<class> columns" in refused.stderr
