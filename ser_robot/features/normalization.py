"""Per-dimension z-normalisation whose statistics come from a training split.

:class:`FeatureNormalizer` accumulates, in float64, the count, mean and sum of squared
deviations (Chan et al.'s parallel form of Welford's update) over any number of ``(frames,
dims)`` or ``(batch, frames, dims)`` tensors, optionally masking padded frames. ``forward``
then applies ``(x - mean) / std`` with the same buffers offline and in the live node. The
statistics travel with a model checkpoint (buffers in ``state_dict``, the feature names as the
module's extra state) or as a plain dict (:meth:`FeatureNormalizer.to_dict`), and
:meth:`FeatureNormalizer.check_compatible` refuses a feature stream with other names.

Zero variance: ``std`` is the population standard deviation (ddof 0); a dimension whose std is
below ``min_std`` (default ``1e-6``, in the features' unit) is treated as constant and only
centred (its scale is 1, as scikit-learn's ``StandardScaler`` does), so a feature that never
varied in training cannot blow up to ``1e6`` sigma when it does vary live.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ser_robot.errors import FeatureMismatchError

__all__ = ["DEFAULT_MIN_STD", "FeatureMismatchError", "FeatureNormalizer"]

DEFAULT_MIN_STD = 1e-6
"""Standard deviations below this are treated as zero: the dimension is centred, not scaled."""


class FeatureNormalizer(torch.nn.Module):
    """Z-normalisation ``(..., dims) -> (..., dims)`` with statistics from :meth:`update`.

    ``names``: one per feature dimension, in order (``FrameExtractor.names``).
    Buffers (float64): ``count`` (frames seen, int64 scalar), ``mean`` ``(dims,)``, ``m2``
    ``(dims,)`` (sum of squared deviations from the mean).
    """

    count: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor

    def __init__(self, names: Sequence[str], min_std: float = DEFAULT_MIN_STD) -> None:
        super().__init__()
        if not names:
            raise ValueError("FeatureNormalizer needs at least one feature name")
        if len(set(names)) != len(names):
            raise ValueError(f"feature names must be unique, got {list(names)}")
        if not min_std > 0:
            raise ValueError(f"min_std must be > 0, got {min_std}")
        self.names = tuple(str(n) for n in names)
        self.min_std = float(min_std)
        dims = len(self.names)
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("mean", torch.zeros(dims, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(dims, dtype=torch.float64))

    @property
    def num_features(self) -> int:
        return len(self.names)

    @property
    def fitted(self) -> bool:
        """True once at least one frame was accumulated."""
        return int(self.count) > 0

    @property
    def var(self) -> torch.Tensor:
        """``(dims,)`` float64 population variance."""
        return self.m2 / self.count.clamp_min(1)

    @property
    def std(self) -> torch.Tensor:
        """``(dims,)`` float64 standard deviation (unfloored)."""
        return self.var.sqrt()

    @property
    def scale(self) -> torch.Tensor:
        """``(dims,)`` float64 divisor used by ``forward``: ``std``, or 1 where ``std < min_std``."""
        std = self.std
        return torch.where(std < self.min_std, torch.ones_like(std), std)

    @torch.no_grad()
    def update(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Accumulate ``(frames, dims)`` or ``(batch, frames, dims)``.

        ``mask``: ``(frames,)`` / ``(batch, frames)`` bool, True for real frames (padding False).
        """
        x = torch.as_tensor(features)
        if x.dim() not in (2, 3) or x.shape[-1] != self.num_features:
            raise FeatureMismatchError(
                f"FeatureNormalizer.update expects (frames, {self.num_features}) or "
                f"(batch, frames, {self.num_features}), got shape {tuple(x.shape)}"
            ) from None
        x = x.to(device=self.mean.device, dtype=torch.float64)
        if mask is not None:
            mask = torch.as_tensor(mask, device=x.device)
            if tuple(mask.shape) != tuple(x.shape[:-1]):
                raise ValueError(f"mask shape {tuple(mask.shape)} does not match features {tuple(x.shape[:-1])}")
            x = x[mask.bool()]
        x = x.reshape(-1, self.num_features)
        n_b = x.shape[0]
        if n_b == 0:
            return
        if not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).any(dim=0).nonzero().flatten().tolist()
            raise ValueError(
                f"non-finite feature values in dimension(s) {[self.names[i] for i in bad[:5]]}; "
                "clean or mask them before accumulating"
            )
        mean_b = x.mean(dim=0)
        m2_b = ((x - mean_b) ** 2).sum(dim=0)
        n_a = int(self.count)
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * (n_b / n)
        self.m2 += m2_b + delta**2 * (n_a * n_b / n)
        self.count += n_b

    @classmethod
    def fit(
        cls,
        arrays: Iterable[torch.Tensor],
        names: Sequence[str],
        masks: Iterable[torch.Tensor | None] | None = None,
        min_std: float = DEFAULT_MIN_STD,
    ) -> FeatureNormalizer:
        """A normaliser accumulated over ``arrays`` (the training split), with optional ``masks``."""
        normalizer = cls(names, min_std=min_std)
        masks_iter = iter(masks) if masks is not None else None
        for array in arrays:
            normalizer.update(array, next(masks_iter) if masks_iter is not None else None)
        return normalizer

    def reset(self) -> None:
        """Forget the accumulated statistics."""
        self.count.zero_()
        self.mean.zero_()
        self.m2.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., dims)`` -> ``(features - mean) / scale`` in the features' dtype."""
        if not self.fitted:
            raise RuntimeError("FeatureNormalizer has no statistics yet: call update() on the training split")
        if features.shape[-1] != self.num_features:
            raise FeatureMismatchError(
                f"features have {features.shape[-1]} dimensions, the normaliser "
                f"{self.num_features} ({self.names[0]} ... {self.names[-1]})"
            ) from None
        dtype = features.dtype if features.is_floating_point() else torch.float32
        return (features.to(dtype) - self.mean.to(dtype)) / self.scale.to(dtype)

    def inverse(self, normalized: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward`: ``(..., dims)``."""
        dtype = normalized.dtype
        return normalized * self.scale.to(dtype) + self.mean.to(dtype)

    def check_compatible(self, names: Sequence[str]) -> None:
        """Raise :class:`FeatureMismatchError` unless ``names`` equal this normaliser's, in order."""
        names = tuple(str(n) for n in names)
        if names == self.names:
            return
        if len(names) != len(self.names):
            detail = f"{len(names)} features given, the statistics have {len(self.names)}"
        elif set(names) == set(self.names):
            i = next(i for i, (a, b) in enumerate(zip(names, self.names)) if a != b)
            detail = f"same features in another order: position {i} is {names[i]!r}, expected {self.names[i]!r}"
        else:
            missing = [n for n in self.names if n not in names][:5]
            extra = [n for n in names if n not in self.names][:5]
            detail = f"missing {missing}, unexpected {extra}"
        raise FeatureMismatchError(
            f"feature stream does not match the normalisation statistics: {detail}; "
            "use the feature extractor the statistics (and model) were computed with"
        ) from None

    # --- serialisation ----------------------------------------------------------------------

    def get_extra_state(self) -> dict[str, Any]:
        return {"names": list(self.names), "min_std": self.min_std}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        names = tuple(state["names"])
        if len(names) != self.num_features:
            raise FeatureMismatchError(
                f"checkpoint statistics have {len(names)} features, this normaliser {self.num_features}"
            ) from None
        self.names = names
        self.min_std = float(state["min_std"])

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON/YAML-safe) dict: names, count, mean, var, min_std."""
        return {
            "names": list(self.names),
            "count": int(self.count),
            "mean": self.mean.tolist(),
            "var": self.var.tolist(),
            "min_std": self.min_std,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureNormalizer:
        """Inverse of :meth:`to_dict`; accumulation can continue from it."""
        missing = [k for k in ("names", "count", "mean", "var") if k not in data]
        if missing:
            raise ValueError(f"normalisation statistics lack {', '.join(missing)}")
        normalizer = cls(data["names"], min_std=data.get("min_std", DEFAULT_MIN_STD))
        mean = torch.tensor(data["mean"], dtype=torch.float64)
        var = torch.tensor(data["var"], dtype=torch.float64)
        dims = normalizer.num_features
        if mean.shape != (dims,) or var.shape != (dims,):
            raise FeatureMismatchError(
                f"normalisation statistics have {len(data['names'])} names but mean/var of shapes "
                f"{tuple(mean.shape)}/{tuple(var.shape)}"
            ) from None
        count = int(data["count"])
        normalizer.count.fill_(count)
        normalizer.mean.copy_(mean)
        normalizer.m2.copy_(var * count)
        return normalizer
