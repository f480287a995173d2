"""Evaluation: offline and bag evaluation of models, reports, baselines and corpus descriptions (the metrics
themselves are the ground-floor module :mod:`ser_robot.metrics`)."""
