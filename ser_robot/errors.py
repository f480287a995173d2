"""Exception types of ser_robot: one base class and one subclass per area.

Messages say what was wrong, the offending value, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "SerRobotError",
    "ConfigError",
    "AudioError",
    "AudioDeviceError",
    "AudioFormatError",
    "BagError",
    "DataError",
    "ManifestError",
    "SplitError",
    "AcousticsError",
    "FeatureMismatchError",
    "AugmentationError",
    "TrainError",
    "CheckpointError",
    "BankError",
    "NonFiniteOutputError",
    "ExperimentError",
]


class SerRobotError(Exception):
    """Base class of every error ser_robot raises on purpose."""


class ConfigError(SerRobotError):
    """A configuration file or parameter value is invalid."""


class AudioError(SerRobotError):
    """Audio capture, decoding or file reading failed."""


class AudioDeviceError(AudioError):
    """An audio input device is missing, unusable, or was lost."""


class AudioFormatError(AudioError):
    """Audio data does not match its declared encoding, channel count or rate."""


class BagError(SerRobotError):
    """A bag cannot be written, read or played."""


class DataError(SerRobotError):
    """A corpus, its layout or its labels cannot be read as expected."""


class ManifestError(DataError):
    """A manifest is malformed: missing field, unknown label, duplicate id, missing audio file."""


class SplitError(DataError):
    """A train/validation/test split cannot be built, or would leak a speaker across parts."""


class AcousticsError(DataError):
    """A noise or room-impulse-response bank cannot be built or read (bad argument, missing input)."""


class FeatureMismatchError(SerRobotError, ValueError):
    """Features do not match the normaliser (or model) they are given to: names, count or shape."""


class AugmentationError(SerRobotError, ValueError):
    """An augmentation got an input or parameter it cannot work with (shape, range, source)."""


class TrainError(SerRobotError):
    """A training run cannot start or continue: missing targets, bad model, wrong data."""


class CheckpointError(TrainError):
    """A checkpoint cannot be written, read, or does not match what it is loaded for."""


class NonFiniteOutputError(SerRobotError):
    """A model gave NaN or infinity for an input: the result must not be published."""


class BankError(TrainError):
    """An augmentation bank cannot be built, read or used for a fold (corrupt, too large, would leak)."""


class ExperimentError(SerRobotError):
    """An experiment cannot run, resume, or rebuild its tables (the message says why and what to do)."""
