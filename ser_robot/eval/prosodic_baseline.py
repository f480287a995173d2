"""A deliberately small classifier on utterance-level prosodic statistics, in leave-one-speaker-out.

It tells how learnable a corpus is from global cues alone: multinomial logistic regression
(scikit-learn) on a few descriptors of :mod:`ser_robot.eval.describe`, standardised with the
training folds' statistics, one fold per test speaker. Used to check that the synthetic
corpus' classes are learnable but not trivial.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ser_robot.data.manifest import Manifest
from ser_robot.data.splits import leave_one_speaker_out
from ser_robot.metrics import MeanStd, aggregate, classification_report

__all__ = ["BASELINE_FEATURES", "prosodic_baseline"]

BASELINE_FEATURES = ("f0_mean_st", "f0_sd_st", "level_dbfs", "level_sd_db")
"""Mean and spread of F0 (semitones) and of energy (dB): the issue's "mean/std of F0 and energy"."""


def prosodic_baseline(manifest: Manifest, rows: Sequence[dict[str, float]],
                      features: Sequence[str] = BASELINE_FEATURES) -> dict:
    """Leave-one-speaker-out UAR / accuracy / macro-F1 of logistic regression on ``features``.

    ``rows``: descriptors per utterance, in manifest order. Returns ``{"folds": [{speaker, uar,
    accuracy, macro_f1}], "summary": {metric: MeanStd}}``. NaN descriptors (no voiced frame)
    are replaced by the training mean.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(rows) != len(manifest):
        raise ValueError(f"need one descriptor row per utterance: {len(rows)} rows for {len(manifest)} utterances")
    index = {u.id: i for i, u in enumerate(manifest)}
    matrix = np.array([[row[name] for name in features] for row in rows], dtype=np.float64)
    labels = sorted({u.label for u in manifest if u.label is not None})
    folds = []
    for fold in leave_one_speaker_out(manifest, validation="none"):
        train = np.array([index[u.id] for u in fold.train])
        test = np.array([index[u.id] for u in fold.test])
        x_train, x_test = matrix[train], matrix[test]
        means = np.nanmean(x_train, axis=0)
        x_train = np.where(np.isnan(x_train), means, x_train)
        x_test = np.where(np.isnan(x_test), means, x_test)
        scaler = StandardScaler().fit(x_train)
        model = LogisticRegression(max_iter=1000).fit(scaler.transform(x_train), [u.label for u in fold.train])
        predicted = model.predict(scaler.transform(x_test))
        report = classification_report([u.label for u in fold.test], predicted, labels)
        folds.append({"speaker": fold.test.speakers[0], "uar": report["uar"], "accuracy": report["accuracy"],
                      "macro_f1": report["macro_f1"]})
    summary: dict[str, MeanStd] = aggregate([{k: v for k, v in f.items() if k != "speaker"} for f in folds])
    return {"features": list(features), "folds": folds, "summary": summary}
