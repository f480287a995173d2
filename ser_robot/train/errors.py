"""Exceptions of :mod:`ser_robot.train`.

Configuration problems raise :class:`ser_robot.errors.ConfigError` (re-exported here); everything
else that stops a training run on purpose raises :class:`TrainError` or a subclass.
"""

from __future__ import annotations

from ser_robot.errors import ConfigError, SerRobotError

__all__ = ["ConfigError", "TrainError", "CheckpointError"]


class TrainError(SerRobotError):
    """A training run cannot start or continue: missing targets, bad model, wrong data."""


class CheckpointError(TrainError):
    """A checkpoint cannot be written, read, or does not match what it is loaded for."""
