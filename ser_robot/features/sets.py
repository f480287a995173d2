"""Feature sets by name: what the feature node computes and what a model checkpoint records.

``egemaps``: the 34 eGEMAPS-like low-level descriptors (:mod:`ser_robot.features.egemaps`).
``logmel_<preset>``: log-Mel frames of a paper's preset (:mod:`ser_robot.features.logmel`).
Modules are imported on first use, so listing the names costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported only when an extractor is created
    from ser_robot.features.base import FrameExtractor

__all__ = ["FEATURE_SETS", "create_extractor"]

FEATURE_SETS: tuple[str, ...] = ("egemaps", "logmel_latif2020", "logmel_mtl_aug", "logmel_ren2020", "logmel_ssad")


def create_extractor(name: str) -> "FrameExtractor":
    """A new extractor of feature set ``name`` (see :data:`FEATURE_SETS`)."""
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {name!r}; choose one of {FEATURE_SETS}")
    if name == "egemaps":
        from ser_robot.features.egemaps import EGeMAPS

        return EGeMAPS()
    from ser_robot.features.logmel import LogMel

    return LogMel(name.removeprefix("logmel_"))
