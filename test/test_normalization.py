"""FeatureNormalizer: streaming statistics equal the all-at-once ones, masks, zero variance,
checkpoint and dict round trips, name checks."""

from __future__ import annotations

import io
import json

import pytest
import torch

from ser_robot.features.normalization import FeatureMismatchError, FeatureNormalizer

NAMES = ("a", "b", "c")


def data(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(50, 3), (4, 30, 3), (1, 3), (200, 3)]
    return [torch.randn(s, generator=g) * torch.tensor([1.0, 10.0, 0.1]) + torch.tensor([5.0, -3.0, 1e3]) for s in shapes]


def test_streaming_statistics_equal_batch_statistics() -> None:
    arrays = data()
    normalizer = FeatureNormalizer.fit(arrays, NAMES)
    flat = torch.cat([a.reshape(-1, 3) for a in arrays]).double()
    assert int(normalizer.count) == flat.shape[0]
    assert torch.allclose(normalizer.mean, flat.mean(0), rtol=1e-12, atol=1e-9)
    assert torch.allclose(normalizer.std, flat.std(0, unbiased=False), rtol=1e-9)
    z = normalizer(flat.float())
    assert z.dtype == torch.float32
    assert torch.allclose(z.double().mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(z.double().std(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(normalizer.inverse(z), flat.float(), atol=1e-3)


def test_large_offset_is_stable() -> None:
    """float64 Welford/Chan merging keeps a tiny variance on a huge mean."""
    x = 1e6 + torch.randn(1000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1e-3
    normalizer = FeatureNormalizer(["x"])
    for part in x.split(7):
        normalizer.update(part)
    assert float(normalizer.std[0]) == pytest.approx(float(x.std(unbiased=False)), rel=1e-6)


def test_mask_excludes_padding() -> None:
    g = torch.Generator().manual_seed(2)
    batch = torch.randn(2, 10, 3, generator=g)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :7] = True
    mask[1, :4] = True
    padded = batch.clone()
    padded[~mask] = 1e9  # padding must not leak in
    normalizer = FeatureNormalizer(NAMES)
    normalizer.update(padded, mask)
    expected = torch.cat([batch[0, :7], batch[1, :4]]).double()
    assert int(normalizer.count) == 11
    assert torch.allclose(normalizer.mean, expected.mean(0))
    with pytest.raises(ValueError, match="mask shape"):
        normalizer.update(batch, mask[:, :5])


def test_zero_variance_is_only_centred() -> None:
    x = torch.tensor([[1.0, 2.0], [1.0, 4.0]])
    normalizer = FeatureNormalizer.fit([x], ["const", "var"])
    assert normalizer.scale.tolist() == [1.0, 1.0]  # std of "var" is 1.0, "const" floored to 1
    out = normalizer(torch.tensor([[1.0, 3.0], [3.0, 3.0]]))
    assert out.tolist() == [[0.0, 0.0], [2.0, 0.0]]
    assert torch.isfinite(out).all()


def test_state_dict_round_trip_carries_names() -> None:
    normalizer = FeatureNormalizer.fit(data(), NAMES)
    buffer = io.BytesIO()
    torch.save(normalizer.state_dict(), buffer)
    buffer.seek(0)
    restored = FeatureNormalizer(["x", "y", "z"])
    restored.load_state_dict(torch.load(buffer, weights_only=False))
    assert restored.names == NAMES
    x = torch.randn(5, 3)
    assert torch.equal(restored(x), normalizer(x))
    model = torch.nn.Sequential(normalizer, torch.nn.Linear(3, 2))  # travels inside a model too
    assert "0.mean" in model.state_dict() and "0._extra_state" in model.state_dict()


def test_dict_round_trip_and_continued_accumulation() -> None:
    arrays = data()
    normalizer = FeatureNormalizer.fit(arrays[:2], NAMES)
    plain = json.loads(json.dumps(normalizer.to_dict()))
    restored = FeatureNormalizer.from_dict(plain)
    assert restored.names == NAMES
    for array in arrays[2:]:
        restored.update(array)
    full = FeatureNormalizer.fit(arrays, NAMES)
    assert torch.allclose(restored.mean, full.mean) and torch.allclose(restored.m2, full.m2)
    with pytest.raises(FeatureMismatchError, match="2 names but mean/var"):
        FeatureNormalizer.from_dict({**plain, "names": ["a", "b"]})


def test_check_compatible() -> None:
    normalizer = FeatureNormalizer(NAMES)
    normalizer.check_compatible(["a", "b", "c"])
    with pytest.raises(FeatureMismatchError, match="2 features given, the statistics have 3"):
        normalizer.check_compatible(["a", "b"])
    with pytest.raises(FeatureMismatchError, match="another order: position 0 is 'b', expected 'a'"):
        normalizer.check_compatible(["b", "a", "c"])
    with pytest.raises(FeatureMismatchError, match=r"missing \['c'\], unexpected \['d'\]"):
        normalizer.check_compatible(["a", "b", "d"])


def test_errors() -> None:
    normalizer = FeatureNormalizer(NAMES)
    with pytest.raises(RuntimeError, match="no statistics yet"):
        normalizer(torch.zeros(2, 3))
    with pytest.raises(FeatureMismatchError, match=r"got shape \(4, 2\)"):
        normalizer.update(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="non-finite"):
        normalizer.update(torch.tensor([[0.0, float("nan"), 0.0]]))
    normalizer.update(torch.randn(4, 3))
    with pytest.raises(FeatureMismatchError, match="features have 4 dimensions"):
        normalizer(torch.zeros(2, 4))
