"""SSAD's purifier (Su and Lee, seeds/003) as the front end of a served model: raw feature frames -> the
purifier's normaliser -> the purify network -> back to raw frames, which the model then scores as any other.

A purifier checkpoint (``purifier.pt`` of :func:`ser_robot.train.purifier.train_purifier`) carries its
configuration, weights, feature set and the normaliser of the model it was trained against; it fronts any
model on the same feature set. Each window is purified as it is scored, so streaming equals offline.
"""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np
import torch

from ser_robot.errors import CheckpointError
from ser_robot.features.normalization import FeatureNormalizer
from ser_robot.train.purifier import load_purifier

__all__ = ["PurifierFrontEnd"]


class PurifierFrontEnd:
    """A loaded purifier checkpoint; ``front_end(frames (frames, features) float32) -> purified raw frames``."""

    def __init__(self, path: str | pathlib.Path, device: torch.device) -> None:
        self.path = pathlib.Path(path)
        self.purifier, data = load_purifier(self.path)
        self.purifier.to(device).eval()
        for tensor in self.purifier.state_dict().values():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(f"purifier checkpoint {self.path} holds non-finite weights")
        self.normalizer = FeatureNormalizer.from_dict(data["normalizer"]).to(device)
        self.feature_set = str(data["feature_set"])
        self.device = device
        self.digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).to(self.device)
        normalized = self.normalizer(x)[None]
        purified = self.purifier(normalized, torch.tensor([x.shape[0]], device=self.device))[0]
        return self.normalizer.inverse(purified).float().cpu().numpy()
