"""Evaluation: the metrics the speech emotion recognition papers report, and mean ± std over runs."""

from ser_robot.eval.metrics import (
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

__all__ = [
    "MeanStd",
    "accuracy",
    "aggregate",
    "classification_report",
    "concordance_correlation",
    "confusion_matrix",
    "format_mean_std",
    "macro_f1",
    "mae",
    "pearson_r",
    "per_class_recall",
    "regression_report",
    "unweighted_average_recall",
]
