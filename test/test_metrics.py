"""ser_robot.metrics against scikit-learn / SciPy on random inputs, and on cases worked out by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics
import torch

from ser_robot.metrics import (
    MeanStd,
    accuracy,
    aggregate,
    classification_report,
    concordance_correlation,
    confusion_matrix,
    format_mean_std,
    macro_f1,
    mae,
    pearson_r,
    per_class_recall,
    regression_report,
    unweighted_average_recall,
)

EMOTIONS = ["angry", "happy", "neutral", "sad"]
SEEDS = range(40)


def _random_labels(seed: int, as_strings: bool) -> tuple[np.ndarray, np.ndarray, list]:
    """Random y_true, y_pred over 2-6 classes; some seeds leave classes out of y_true, y_pred or both."""
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 7))
    n = int(rng.integers(1, 60))
    true_classes = rng.choice(n_classes, size=int(rng.integers(1, n_classes + 1)), replace=False)
    y_true = rng.choice(true_classes, size=n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, n_classes, size=n))
    labels = list(range(n_classes))
    if as_strings:
        names = np.array([f"class_{i}" for i in labels])
        return names[y_true], names[y_pred], names.tolist()
    return y_true, y_pred, labels


# --------------------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("as_strings", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_classification_matches_sklearn(seed: int, as_strings: bool):
    y_true, y_pred, labels = _random_labels(seed, as_strings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # y_pred classes absent from y_true; ill-defined F1
        expected_uar = sklearn.metrics.balanced_accuracy_score(y_true, y_pred)
        expected_recall = sklearn.metrics.recall_score(
            y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
        expected_f1_default = sklearn.metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)
        expected_f1_labels = sklearn.metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    assert accuracy(y_true, y_pred) == pytest.approx(sklearn.metrics.accuracy_score(y_true, y_pred))
    assert unweighted_average_recall(y_true, y_pred) == pytest.approx(expected_uar)
    assert unweighted_average_recall(y_true, y_pred, labels) == pytest.approx(expected_uar)
    present = np.unique(y_true)
    assert expected_uar == pytest.approx(sklearn.metrics.recall_score(y_true, y_pred, labels=present, average="macro"))
    recall = per_class_recall(y_true, y_pred, labels)
    assert list(recall) == labels
    np.testing.assert_allclose(list(recall.values()), expected_recall, equal_nan=True)
    assert macro_f1(y_true, y_pred) == pytest.approx(expected_f1_default)
    assert macro_f1(y_true, y_pred, labels) == pytest.approx(expected_f1_labels)
    counts = confusion_matrix(y_true, y_pred, labels)
    assert counts.dtype == np.int64 and counts.shape == (len(labels), len(labels))
    np.testing.assert_array_equal(counts, sklearn.metrics.confusion_matrix(y_true, y_pred, labels=labels))
    for normalise in ("true", "pred", "all"):
        expected = sklearn.metrics.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalise)
        rates = confusion_matrix(y_true, y_pred, labels, normalise=normalise)
        # ours: nan where a row (column) has no utterances; scikit-learn: 0
        np.testing.assert_allclose(np.nan_to_num(rates), expected)
    rates = confusion_matrix(y_true, y_pred, labels, normalise="true")
    np.testing.assert_allclose(np.diag(rates), list(recall.values()), equal_nan=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_matches_sklearn_and_scipy(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 80))
    y_true = rng.uniform(1, 5, size=n)
    y_pred = 0.6 * y_true + rng.normal(0.5, 0.7, size=n)
    assert mae(y_true, y_pred) == pytest.approx(sklearn.metrics.mean_absolute_error(y_true, y_pred))
    r = scipy.stats.pearsonr(y_true, y_pred).statistic
    assert pearson_r(y_true, y_pred) == pytest.approx(r)
    # CCC = r * 2 s_x s_y / (s_x^2 + s_y^2 + (mean_x - mean_y)^2), population std: an independent form
    sx, sy = np.std(y_true), np.std(y_pred)
    expected_ccc = r * 2 * sx * sy / (sx**2 + sy**2 + (y_true.mean() - y_pred.mean()) ** 2)
    assert concordance_correlation(y_true, y_pred) == pytest.approx(expected_ccc)
    assert concordance_correlation(y_true, y_pred) == pytest.approx(concordance_correlation(y_pred, y_true))
    assert abs(concordance_correlation(y_true, y_pred)) <= abs(pearson_r(y_true, y_pred)) + 1e-12


# --------------------------------------------------------------------------- worked out by hand

# 10 utterances, 3 classes; a = angry, h = happy, s = sad.
HAND_TRUE = ["a", "a", "a", "a", "h", "h", "s", "s", "s", "s"]
HAND_PRED = ["a", "a", "a", "h", "h", "a", "s", "s", "a", "s"]
# Confusion matrix (rows true a, h, s; columns predicted a, h, s):
#   a: 3 1 0     recall a = 3/4
#   h: 1 1 0     recall h = 1/2
#   s: 1 0 3     recall s = 3/4
# accuracy = (3 + 1 + 3) / 10 = 0.7
# UAR = (3/4 + 1/2 + 3/4) / 3 = 2/3        (accuracy weights a and s twice as much as h)
# F1 = 2 TP / (2 TP + FP + FN):  a: 6 / (6 + 2 + 1) = 2/3,  h: 2 / (2 + 1 + 1) = 1/2,  s: 6 / (6 + 0 + 1) = 6/7
# macro F1 = (2/3 + 1/2 + 6/7) / 3 = (28 + 21 + 36) / 126 = 85/126


def test_hand_computed_three_classes():
    labels = ["a", "h", "s"]
    assert accuracy(HAND_TRUE, HAND_PRED) == pytest.approx(0.7)
    assert unweighted_average_recall(HAND_TRUE, HAND_PRED) == pytest.approx(2 / 3)
    assert per_class_recall(HAND_TRUE, HAND_PRED, labels) == pytest.approx({"a": 0.75, "h": 0.5, "s": 0.75})
    assert macro_f1(HAND_TRUE, HAND_PRED) == pytest.approx(85 / 126)
    np.testing.assert_array_equal(confusion_matrix(HAND_TRUE, HAND_PRED, labels), [[3, 1, 0], [1, 1, 0], [1, 0, 3]])
    np.testing.assert_allclose(
        confusion_matrix(HAND_TRUE, HAND_PRED, labels, normalise="true"),
        [[0.75, 0.25, 0], [0.5, 0.5, 0], [0.25, 0, 0.75]])
    # label order is the caller's: reversed labels reverse rows and columns
    np.testing.assert_array_equal(confusion_matrix(HAND_TRUE, HAND_PRED, labels[::-1]), [[3, 0, 1], [0, 1, 1], [0, 1, 3]])


def test_hand_computed_absent_class():
    # A fourth class "n" that nobody said and nobody predicted:
    labels = ["a", "h", "n", "s"]
    # UAR ignores it (no recall without true utterances): still 2/3
    assert unweighted_average_recall(HAND_TRUE, HAND_PRED, labels) == pytest.approx(2 / 3)
    recall = per_class_recall(HAND_TRUE, HAND_PRED, labels)
    assert math.isnan(recall["n"]) and recall["h"] == 0.5
    # macro F1 over the given labels counts it as F1 0: 85/126 * 3/4 = 85/168
    assert macro_f1(HAND_TRUE, HAND_PRED, labels) == pytest.approx(85 / 168)
    rates = confusion_matrix(HAND_TRUE, HAND_PRED, labels, normalise="true")
    assert np.all(np.isnan(rates[2])) and not np.any(np.isnan(np.delete(rates, 2, axis=0)))
    # A class predicted but never true: it lowers accuracy and the other recalls, adds no recall of its own.
    # true a a h h, predicted a n h h: recall a = 1/2, h = 1 -> UAR 3/4; F1 a = 2/3, h = 1, n = 0 -> 5/9
    assert unweighted_average_recall(["a", "a", "h", "h"], ["a", "n", "h", "h"]) == pytest.approx(0.75)
    assert macro_f1(["a", "a", "h", "h"], ["a", "n", "h", "h"]) == pytest.approx(5 / 9)


def test_hand_computed_regression():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # mean 3, population variance 2
    assert concordance_correlation(x, x) == pytest.approx(1.0)
    # y = x + c: cov = var = 2, CCC = 2 * 2 / (2 + 2 + c^2) = 4 / (4 + c^2); c = 2 -> 1/2, while r stays 1
    assert concordance_correlation(x, x + 2) == pytest.approx(0.5)
    assert pearson_r(x, x + 2) == pytest.approx(1.0)
    # y = 2x on [1, 2, 3]: var x = 2/3, var y = 8/3, cov = 4/3, means 2 and 4:
    # CCC = (8/3) / (2/3 + 8/3 + 4) = 8/22 = 4/11
    assert concordance_correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(4 / 11)
    assert concordance_correlation(x, -x + 6) == pytest.approx(-1.0)  # same mean and variance, reversed
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)  # (1 + 0 + 2) / 3
    # deviations (-1, 0, 1) and (-1, 1, 0): r = 1 / sqrt(2 * 2) = 1/2
    assert pearson_r([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)


def test_constant_inputs_give_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(pearson_r([2, 2, 2], [1, 2, 3]))
        assert math.isnan(pearson_r([1, 2, 3], [0, 0, 0]))
        assert math.isnan(pearson_r([1.0], [2.0]))
        assert math.isnan(concordance_correlation([0.1] * 3, [0.1] * 3))
        assert concordance_correlation([1, 1, 1], [3, 3, 3]) == 0.0  # cov 0 / (0 + 0 + 4)
        assert concordance_correlation([1, 1, 1], [0, 1, 2]) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(scipy.stats.pearsonr([2, 2, 2], [1, 2, 3]).statistic)  # the same convention as SciPy


# --------------------------------------------------------------------------- input types


def test_int_labels_torch_tensors_and_lists_agree():
    y_true, y_pred, labels = _random_labels(3, as_strings=False)
    reference = classification_report(y_true, y_pred, labels)
    for convert in (list, torch.tensor, lambda a: torch.tensor(a).to(torch.int32)):
        report = classification_report(convert(y_true), convert(y_pred), convert(labels))
        for key in ("accuracy", "uar", "macro_f1"):
            assert report[key] == pytest.approx(reference[key])
        np.testing.assert_array_equal(report["confusion_matrix"], reference["confusion_matrix"])
        assert report["labels"] == labels
    values = torch.linspace(-1, 1, 20, dtype=torch.float64, requires_grad=True)
    array = values.detach().numpy()
    assert concordance_correlation(values, values * 0.5) == pytest.approx(concordance_correlation(array, array * 0.5))
    assert mae(values.float(), torch.zeros(20)) == pytest.approx(float(values.detach().abs().mean()))


def test_classification_report():
    report = classification_report(HAND_TRUE, HAND_PRED, ["a", "h", "s"])
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["uar"] == pytest.approx(2 / 3)
    assert report["macro_f1"] == pytest.approx(85 / 126)
    assert report["recall"] == pytest.approx({"a": 0.75, "h": 0.5, "s": 0.75})
    np.testing.assert_array_equal(report["confusion_matrix"], [[3, 1, 0], [1, 1, 0], [1, 0, 3]])
    assert report["labels"] == ["a", "h", "s"]


def test_regression_report():
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(30, 2))
    y_pred = y_true + rng.normal(scale=0.5, size=(30, 2))
    report = regression_report(y_true, y_pred, names=("arousal", "valence"))
    assert list(report) == ["arousal", "valence"]
    for i, name in enumerate(report):
        assert report[name] == pytest.approx({
            "mae": mae(y_true[:, i], y_pred[:, i]),
            "pearson_r": pearson_r(y_true[:, i], y_pred[:, i]),
            "ccc": concordance_correlation(y_true[:, i], y_pred[:, i]),
        })
    assert list(regression_report(y_true, y_pred)) == ["dim0", "dim1"]
    assert set(regression_report(y_true[:, 0], y_pred[:, 0])) == {"mae", "pearson_r", "ccc"}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: accuracy([1, 2, 3], [1, 2]), "lengths 3 and 2"),
        (lambda: accuracy([], []), "empty"),
        (lambda: unweighted_average_recall(["a", "b"], ["a", "c"], labels=["a", "b"]), "y_pred holds the label 'c'"),
        (lambda: per_class_recall(["a", "x"], ["a", "a"], ["a", "b"]), "y_true holds the label 'x'"),
        (lambda: confusion_matrix([0, 1], [0, 1], [0, 1, 1]), "more than once"),
        (lambda: confusion_matrix([0, 1], [0, 1], []), "non-empty"),
        (lambda: confusion_matrix([0, 1], [0, 1], [0, 1], normalise="rows"), "normalise must be one of"),
        (lambda: accuracy(["a", "b"], [0, 1]), "y_true holds strings and y_pred holds numbers"),
        (lambda: macro_f1([0, 1], [[0.2, 0.8], [0.9, 0.1]]), r"shape \(2, 2\).*argmax"),
        (lambda: accuracy([0.0, math.nan], [0, 1]), "non-finite label"),
        (lambda: classification_report([0, 1], [0, 1], ["0", "1"]), "y_true holds the label 0"),
        (lambda: mae([1.0, math.inf], [1.0, 2.0]), r"y_true holds the non-finite value inf at index \(1,\)"),
        (lambda: pearson_r([1.0, 2.0], [1.0, math.nan]), "y holds the non-finite value nan"),
        (lambda: concordance_correlation([1.0, 2.0], [1.0, 2.0, 3.0]), "same shape"),
        (lambda: mae([], []), "empty"),
        (lambda: mae(["a"], ["b"]), "real numbers"),
        (lambda: mae(np.zeros((3, 2)), np.zeros((3, 2))), r"shape \(n,\)"),
        (lambda: regression_report(np.zeros((3, 2)), np.zeros((3, 2)), names=["arousal"]), "2 distinct names"),
        (lambda: regression_report(np.zeros(3), np.zeros(3), names=["arousal"]), "1-D"),
        (lambda: aggregate([]), "non-empty"),
        (lambda: aggregate([{"uar": 0.5}, {"uar": 0.6, "accuracy": 0.7}]), r"run 1 .*extra \['accuracy'\]"),
        (lambda: format_mean_std(0.5, 0.1, digits=-1), "digits"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_aggregate_rejects_a_run_that_is_not_a_mapping():
    with pytest.raises(TypeError, match="run 1 is a list"):
        aggregate([{"uar": 0.5}, [0.6]])


# --------------------------------------------------------------------------- over runs


def test_aggregate_sample_std():
    runs = [{"accuracy": 0.60, "uar": 0.50}, {"accuracy": 0.62, "uar": 0.55}, {"accuracy": 0.64, "uar": 0.60}]
    result = aggregate(runs)
    assert list(result) == ["accuracy", "uar"]
    # accuracy: mean 0.62, deviations -0.02 0 0.02, sample variance (0.0004 + 0.0004) / 2 = 0.0004, std 0.02
    assert result["accuracy"] == pytest.approx(MeanStd(0.62, 0.02, 3))
    assert result["uar"].std == pytest.approx(np.std([0.50, 0.55, 0.60], ddof=1))
    assert result["uar"].n == 3


def test_aggregate_reports_nan_and_single_run():
    labels = ["a", "h", "n", "s"]
    reports = [
        classification_report(HAND_TRUE, HAND_PRED, labels),       # no "n" utterance: recall/n is nan
        classification_report(["n", "a"], ["n", "h"], labels),
    ]
    result = aggregate(reports)
    assert "confusion_matrix" not in result and "labels" not in result
    recall_n = result["recall/n"]  # nan in the first run is left out, not propagated
    assert recall_n.mean == 1.0 and math.isnan(recall_n.std) and recall_n.n == 1
    assert result["recall/a"].mean == pytest.approx((0.75 + 0.0) / 2) and result["recall/a"].n == 2
    assert result["uar"].mean == pytest.approx((2 / 3 + 0.5) / 2)
    single = aggregate([{"ccc": 0.4}])["ccc"]
    assert single.mean == 0.4 and math.isnan(single.std) and single.n == 1
    assert aggregate([{"r": math.nan}, {"r": math.nan}])["r"].n == 0
    nested = aggregate([regression_report(np.arange(5.0), np.arange(5.0) + 1.0)] * 2)
    assert nested["ccc"] == pytest.approx(MeanStd(concordance_correlation(np.arange(5.0), np.arange(5.0) + 1.0), 0.0, 2))


def test_format_mean_std():
    assert format_mean_std(61.3, 2.14) == "61.3 ± 2.1"
    assert format_mean_std(0.6134, 0.0214, digits=1, scale=100) == "61.3 ± 2.1"
    assert format_mean_std(0.6134, 0.0214, digits=3) == "0.613 ± 0.021"
    assert format_mean_std(0.6134, math.nan, scale=100) == "61.3"
    assert MeanStd(0.6134, 0.0214, 10).format(2, scale=100) == "61.34 ± 2.14"


def test_latency_stats_keep_the_last_window_and_report_ms():
    from ser_robot.metrics import LatencyStats

    stats = LatencyStats(window=3)
    assert stats.count == 0 and math.isnan(stats.p50_ms) and math.isnan(stats.max_ms)
    for latency_s in (9.0, 0.01, 0.02, 0.03):
        stats.add(latency_s)
    assert stats.count == 3 and stats.max_ms == pytest.approx(30.0)  # 9 s fell out of the window
    assert stats.p50_ms == pytest.approx(20.0) and stats.percentile(50) == pytest.approx(0.02)
    every = LatencyStats([0.01, 0.02, 0.03, 0.04], window=None)
    assert (every.count, every.p90_ms) == (4, pytest.approx(37.0))
