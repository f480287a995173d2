"""Acceptance tests of ser_robot.models (issue "Training", part 1: models). CPU, a few seconds."""

from __future__ import annotations

import copy
import pathlib
import re

import pytest
import torch
import yaml
from torch import nn

import ser_robot.models as M
from ser_robot.config_io import config_file
from ser_robot.errors import ConfigError, FeatureMismatchError
from ser_robot.features.egemaps import EGEMAPS_NAMES

F = len(EGEMAPS_NAMES)  # 34
NAMES = ("lakomkin_rnn", "lakomkin_cnn")


def small(name: str, head: str = "categorical", seed: int = 0, **hyper) -> M.SerModel:
    """A small version of model ``name`` (fast on CPU); same code paths as the full size."""
    sizes = {"lakomkin_rnn": {"hidden_size": 16}, "lakomkin_cnn": {"channels": [16, 16, 16]}}[name]
    return M.build_model(name, F, head, seed=seed, **{**sizes, **hyper})


def batch(lengths: list[int], seed: int = 1, pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``(B, max(lengths), F)`` features padded with ``pad_value``, and ``(B,)`` lengths."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((len(lengths), max(lengths), F), pad_value)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randn(n, F, generator=g)
    return x, torch.tensor(lengths, dtype=torch.int64)


# ------------------------------------------------------------------ shapes and heads


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("head,outputs", [("categorical", 4), ("dimensional", 2)])
def test_output_shape_and_attributes(name: str, head: str, outputs: int) -> None:
    model = M.build_model(name, F, head, seed=0)  # full size, from the YAML
    x, lengths = batch([60, 33, 5])
    y = model.eval()(x, lengths)
    assert y.shape == (3, outputs) and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert (model.head, model.num_outputs, model.num_features) == (head, outputs, F)
    assert model.config["name"] == name and model.config["num_features"] == F
    # logits, not probabilities: rows do not sum to one
    if head == "categorical":
        assert not torch.allclose(y.sum(1), torch.ones(3), atol=1e-3)


def test_num_classes_is_free_for_categorical_and_refused_for_dimensional() -> None:
    assert small("lakomkin_rnn", num_classes=7).num_outputs == 7
    with pytest.raises(ConfigError, match="num_classes applies to the categorical head only"):
        M.build_model("lakomkin_cnn", F, "dimensional", num_classes=4)
    with pytest.raises(ConfigError, match="unknown head 'valence'"):
        M.build_model("lakomkin_cnn", F, "valence")


# ------------------------------------------------------------------ padding invariance


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("head", M.HEADS)
def test_padding_does_not_change_predictions_in_eval(name: str, head: str) -> None:
    model = small(name, head).eval()
    # give the CNN non-trivial running statistics first
    model.train()
    with torch.no_grad():
        for s in range(3):
            model(*batch([40, 25], seed=10 + s))
    model.eval()
    x, lengths = batch([9, 47, 3, 30], pad_value=7.5)  # garbage in the padding
    with torch.no_grad():
        together = model(x, lengths)
        alone = torch.cat([model(x[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("head", M.HEADS)
def test_forward_one_equals_forward_of_an_unpadded_utterance(name: str, head: str) -> None:
    model = small(name, head).eval()
    for n in (1, 17, 120):
        x, lengths = batch([n], seed=n)
        with torch.no_grad():
            torch.testing.assert_close(model.forward_one(x), model(x, lengths), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_padding_does_not_change_predictions_in_train(name: str) -> None:
    """Batch statistics (CNN) ignore padding: extra padded frames, whatever they hold, change nothing."""
    model = small(name, dropout=0.0).train()
    x, lengths = batch([12, 30, 4])
    longer = torch.cat([x, torch.randn(3, 25, F) * 100], dim=1)
    torch.testing.assert_close(model(x, lengths), model(longer, lengths), atol=1e-5, rtol=0)


def test_cnn_end_of_short_sequence_matches_unpadded_convolution() -> None:
    """The last frames' receptive field sees zeros in a padded batch exactly as alone."""
    model = small("lakomkin_cnn").eval()
    x, lengths = batch([3, 50])  # 3 frames < receptive field of 13
    with torch.no_grad():
        torch.testing.assert_close(model(x, lengths)[:1], model(x[:1, :3], lengths[:1]), atol=1e-5, rtol=0)


# ------------------------------------------------------------------ masked batch norm


def test_masked_batchnorm_statistics_ignore_padding() -> None:
    torch.manual_seed(0)
    lengths = torch.tensor([5, 12, 2])
    x = torch.randn(3, 6, 12) * 3 + 1
    mask = M.lengths_to_mask(lengths, 12)
    x = torch.where(mask[:, None], x, torch.tensor(1e4))  # huge values in the padding
    valid = torch.cat([x[i, :, :n] for i, n in enumerate(lengths.tolist())], dim=1)  # (C, 19)

    masked = M.MaskedBatchNorm1d(6, momentum=1.0).train()
    ref = nn.BatchNorm1d(6, momentum=1.0).train()
    y = masked(x, mask)
    y_ref = ref(valid[None])[0]
    # the statistic itself: running stats after one step (momentum 1) are the batch stats
    torch.testing.assert_close(masked.running_mean, valid.mean(1))
    torch.testing.assert_close(masked.running_var, valid.var(1, unbiased=True))
    torch.testing.assert_close(masked.running_mean, ref.running_mean)
    torch.testing.assert_close(masked.running_var, ref.running_var)
    torch.testing.assert_close(torch.cat([y[i, :, :n] for i, n in enumerate(lengths.tolist())], 1), y_ref)
    assert int(masked.num_batches_tracked) == 1
    # eval: running statistics, per frame, like BatchNorm1d
    masked.eval(), ref.eval()
    torch.testing.assert_close(masked(x, mask), ref(x))
    # same state_dict keys as BatchNorm1d, so checkpoints look familiar
    assert masked.state_dict().keys() == ref.state_dict().keys()


def test_masked_batchnorm_cumulative_momentum() -> None:
    bn = M.MaskedBatchNorm1d(2, momentum=None).train()
    xs = [torch.randn(2, 2, 8) + k for k in range(3)]
    mask = torch.ones(2, 8, dtype=torch.bool)
    for x in xs:
        bn(x, mask)
    means = torch.stack([x.mean(dim=(0, 2)) for x in xs]).mean(0)
    torch.testing.assert_close(bn.running_mean, means)


def test_masked_pooling_helpers() -> None:
    x = torch.tensor([[[1.0], [5.0], [float("nan")]]])  # (1, 3, 1): NaN in the padding
    mask = torch.tensor([[True, True, False]])
    assert M.masked_mean(x, mask).item() == 3.0
    assert M.masked_max(x.transpose(1, 2) - 10, mask).item() == -5.0


# ------------------------------------------------------------------ gradients, seeds, sizes


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("head", M.HEADS)
def test_gradients_reach_every_parameter(name: str, head: str) -> None:
    model = small(name, head).train()
    x, lengths = batch([20, 11, 6])
    x.requires_grad_(True)
    model(x, lengths).square().sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    assert x.grad[1, 11:].abs().sum() == 0 and x.grad[1, :11].abs().sum() > 0  # none into padding


@pytest.mark.parametrize("name", NAMES)
def test_seeded_init_is_deterministic_and_leaves_global_rng_alone(name: str) -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = small(name, seed=5), small(name, seed=5), small(name, seed=6)
    assert torch.equal(before, torch.random.get_rng_state())
    for (k, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), k
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def rnn_parameters(features: int, hidden: int, layers: int, outputs: int) -> int:
    """Paper's RNN: ``layers`` bidirectional GRU layers (3 gates), mean, linear."""
    total, width = 0, features
    for _ in range(layers):
        total += 2 * 3 * (hidden * width + hidden * hidden + 2 * hidden)
        width = 2 * hidden
    return total + (width + 1) * outputs


def cnn_parameters(features: int, channels: list[int], kernels: list[int], outputs: int) -> int:
    """Paper's CNN: 1-D convolutions (no bias) each with BN (scale, shift), max, linear."""
    widths = [features, *channels]
    convs = sum(a * b * k for a, b, k in zip(widths, widths[1:], kernels))
    return convs + 2 * sum(channels) + (channels[-1] + 1) * outputs


@pytest.mark.parametrize("head,outputs", [("categorical", 4), ("dimensional", 2)])
def test_parameter_counts_follow_the_architecture(head: str, outputs: int) -> None:
    rnn = M.build_model("lakomkin_rnn", F, head)
    cnn = M.build_model("lakomkin_cnn", F, head)
    h = M.load_model_config("lakomkin_rnn").hyper
    c = M.load_model_config("lakomkin_cnn").hyper
    n_rnn = sum(p.numel() for p in rnn.parameters())
    n_cnn = sum(p.numel() for p in cnn.parameters())
    assert n_rnn == rnn_parameters(F, h["hidden_size"], h["num_layers"], outputs)
    assert n_cnn == cnn_parameters(F, c["channels"], c["kernel_sizes"], outputs)
    # the shipped sizes: 2 x BiGRU(128) ~ 0.42 M, 3 x conv(128, k=5) ~ 0.19 M
    assert 400_000 < n_rnn < 450_000 and 150_000 < n_cnn < 200_000


# ------------------------------------------------------------------ registry, YAML, rebuild


@pytest.mark.parametrize("name", NAMES)
def test_model_rebuilds_from_its_config_dict(name: str) -> None:
    model = small(name, "dimensional").eval()
    stored = copy.deepcopy(model.config)  # as a checkpoint keeps it
    twin = M.rebuild_model(stored).eval()
    assert twin.config == model.config and type(twin) is type(model)
    twin.load_state_dict(model.state_dict())
    x, lengths = batch([14, 8])
    with torch.no_grad():
        torch.testing.assert_close(twin(x, lengths), model(x, lengths), atol=0, rtol=0)
    torch.save({"model": stored}, buffer := pathlib.Path(f"/tmp/ser_models_{name}.pt"))
    assert torch.load(buffer, weights_only=True)["model"] == stored  # plain data: safe to load
    buffer.unlink()


def test_rebuild_rejects_incomplete_config() -> None:
    config = small("lakomkin_rnn").config
    with pytest.raises(ConfigError, match="needs exactly the keys"):
        M.rebuild_model({k: v for k, v in config.items() if k != "head"})
    with pytest.raises(ConfigError, match="missing hyper-parameter.*dropout"):
        M.rebuild_model({**config, "hyper": {"hidden_size": 8, "num_layers": 2}})


def test_registry_and_shipped_configs() -> None:
    segment_models = {"mtl_aug", "latif_cnn", "latif_cnn_lstm", "densenet", "densenet_lstm", "densenet_lstm_highway"}
    ren = {"ren_cnn4", "ren_vgg16", "ren_resnet50"}
    assert set(M.MODELS) == set(NAMES) | segment_models | ren  # test_mtl_aug, test_latif2020, test_ren2020
    assert set(NAMES) <= set(M.model_config_names())
    rnn, cnn = M.load_model_config("lakomkin_rnn"), M.load_model_config("lakomkin_cnn")
    # what the paper states
    assert rnn.hyper["num_layers"] == 2 and isinstance(M.build_model("lakomkin_rnn", F, "categorical").gru, nn.GRU)
    assert M.build_model("lakomkin_rnn", F, "categorical").gru.bidirectional
    assert len(cnn.hyper["channels"]) == len(cnn.hyper["kernel_sizes"]) == 3
    assert rnn.num_classes == cnn.num_classes == 4 and rnn.feature_set == cnn.feature_set == "egemaps"
    model = cnn.build(F, seed=0)
    assert isinstance(model, M.LakomkinCNN) and model.receptive_field == 13


@pytest.mark.parametrize("name", NAMES)
def test_every_yaml_value_says_where_it_comes_from(name: str) -> None:
    for line in config_file(f"models/{name}.yaml").read_text().splitlines():
        if re.match(r"^\s*[a-z_]+:\s*\S", line):  # a key with a value
            assert "#" in line and ("III" in line or "IV" in line or "Fig" in line or "not stated" in line), line


def test_unknown_model_and_missing_config() -> None:
    with pytest.raises(ConfigError, match="unknown model 'lakomkin_lstm'.*lakomkin_rnn"):
        M.build_model("lakomkin_lstm", F, "categorical")
    with pytest.raises(ConfigError, match="does not exist; shipped configurations: .*lakomkin_cnn"):
        M.load_model_config("nope")


def write(tmp_path: pathlib.Path, **changes) -> pathlib.Path:
    raw = yaml.safe_load(config_file("models/lakomkin_cnn.yaml").read_text())
    for key, value in changes.items():
        if key.startswith("hyper_"):
            raw["hyper"][key.removeprefix("hyper_")] = value
        elif value is None:
            del raw[key]
        else:
            raw[key] = value
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"optimizer": "adam"}, "unknown key.*optimizer"),
        ({"head": None}, "missing key.*head"),
        ({"head": "sentiment"}, "head 'sentiment'"),
        ({"num_classes": 1}, "num_classes must be an int >= 2, got 1"),
        ({"feature_set": "mfcc"}, "feature_set 'mfcc'"),
        ({"architecture": "resnet"}, "architecture 'resnet' is not a registered model"),
        ({"hyper_pooling": "mean"}, "unknown hyper-parameter.*pooling"),
        ({"hyper_dropout": 1.5}, "key 'dropout' must be a number from 0.0 to 0.9, got 1.5"),
        ({"hyper_dropout": "0.2"}, "key 'dropout' must be a number from .*, got '0.2'"),
        ({"hyper_kernel_sizes": [5, 4, 5]}, r"key 'kernel_sizes' must be odd, got \[5, 4, 5\]"),
        ({"hyper_channels": [0, 8, 8]}, r"key 'channels\[0\]' must be an integer from 1 to 4096, got 0"),
        ({"hyper_channels": [True, 8, 8]}, r"key 'channels\[0\]' must be an integer from 1 to 4096, got True"),
        ({"hyper_channels": [8, 8]}, "'channels' \\(2 layers\\) and 'kernel_sizes' \\(3 layers\\)"),
    ],
)
def test_yaml_errors_name_the_problem(tmp_path: pathlib.Path, changes: dict, message: str) -> None:
    path = write(tmp_path, **changes)
    with pytest.raises(ConfigError, match=message):
        M.load_model_config(path)


def test_yaml_not_yaml(tmp_path: pathlib.Path) -> None:
    (path := tmp_path / "broken.yaml").write_text("hyper: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        M.load_model_config(path)


def test_build_model_hyper_errors_and_defaults() -> None:
    with pytest.raises(ConfigError, match="unknown hyper-parameter.*hidden"):
        M.build_model("lakomkin_rnn", F, "categorical", hidden=64)
    with pytest.raises(ConfigError, match="key 'num_layers' must be an integer from 1 to 8, got 0"):
        M.build_model("lakomkin_rnn", F, "categorical", num_layers=0)
    with pytest.raises(ConfigError, match="num_features must be a positive int"):
        M.build_model("lakomkin_rnn", 0, "categorical")
    model = M.build_model("lakomkin_rnn", F, "categorical", hidden_size=8)  # the rest from the YAML
    assert model.config["hyper"] == {**M.load_model_config("lakomkin_rnn").hyper, "hidden_size": 8}


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_refused(name: str) -> None:
    model = small(name).eval()
    x, lengths = batch([10, 6])
    with pytest.raises(FeatureMismatchError, match=r"\(batch, frames, 34\), got \(2, 10, 30\)"):
        model(x[..., :30], lengths)
    with pytest.raises(FeatureMismatchError, match=r"in \[1, 10\].*\[11, 6\]"):
        model(x, torch.tensor([11, 6]))
    with pytest.raises(FeatureMismatchError, match="integer tensor"):
        model(x, lengths.float())
    with pytest.raises(FeatureMismatchError, match=r"shape \(2,\)"):
        model(x, lengths[:1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name: str) -> None:
    """Same weights, same outputs on CUDA (lengths on either device), train and eval."""
    model = small(name, dropout=0.0)
    x, lengths = batch([31, 9, 17])
    cuda = torch.device("cuda")
    gpu_model = copy.deepcopy(model).to(cuda)
    for train in (True, False):
        model.train(train), gpu_model.train(train)
        with torch.no_grad():
            want = model(x, lengths)
            for lens in (lengths, lengths.to(cuda)):
                torch.testing.assert_close(gpu_model(x.to(cuda), lens).cpu(), want, atol=1e-4, rtol=1e-4)
    for key, value in model.state_dict().items():  # running statistics updated alike (twice on CUDA)
        if key.endswith("running_mean"):
            assert torch.isfinite(gpu_model.state_dict()[key]).all(), key
        elif not key.endswith(("running_var", "num_batches_tracked")):
            torch.testing.assert_close(gpu_model.state_dict()[key].cpu(), value)


# ------------------------------------------------------------------ the exact padded GRU


def _packed_reference(model: M.LakomkinRNN, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The RNN's output computed through ``PackedSequence`` with the module's own ``nn.GRU``."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from ser_robot.models.masking import lengths_to_mask, masked_mean

    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    encoded, _ = model.gru(packed)
    encoded, _ = pad_packed_sequence(encoded, batch_first=True, total_length=x.shape[1])
    return model.output(model.dropout(masked_mean(encoded, lengths_to_mask(lengths, x.shape[1]))))


@pytest.mark.parametrize("head", ["categorical", "dimensional"])
def test_padded_gru_equals_the_packed_gru_in_outputs_and_gradients(head: str) -> None:
    """The padded bidirectional stack (backward direction reversed within each length) gives the packed
    sequence's outputs and gradients, for inputs and every parameter, to 1e-5 (float32), padding of any value."""
    model = small("lakomkin_rnn", head, dropout=0.0, num_layers=2)
    x, lengths = batch([40, 1, 23, 7, 40, 2], pad_value=5.0)
    x.requires_grad_(True)
    ours, reference = model(x, lengths), _packed_reference(model, x, lengths)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(ours)
    inputs = [x, *model.parameters()]
    for got, want in zip(torch.autograd.grad((ours * weights).sum(), inputs),
                         torch.autograd.grad((reference * weights).sum(), inputs)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_reverse_within_lengths_reverses_valid_frames_only() -> None:
    x = torch.arange(12.0).reshape(2, 6, 1)
    flipped = M.lakomkin.reverse_within_lengths(x, torch.tensor([6, 3]))
    assert flipped[0, :, 0].tolist() == [5, 4, 3, 2, 1, 0]
    assert flipped[1, :, 0].tolist() == [8, 7, 6, 9, 10, 11]  # padding stays where it was
    torch.testing.assert_close(M.lakomkin.reverse_within_lengths(flipped, torch.tensor([6, 3])), x)


def test_state_dict_is_the_bidirectional_grus() -> None:
    """Checkpoints of the packed model load unchanged: the parameters are still nn.GRU's."""
    keys = set(small("lakomkin_rnn").state_dict())
    assert {"gru.weight_ih_l0", "gru.weight_hh_l1_reverse", "output.weight"} <= keys
    assert not any(k.startswith("_") for k in keys)


def test_a_model_config_file_is_read_as_plain_yaml_data(tmp_path):
    """``model_config`` files go through the same safe reader as every config: ``1e-4`` is a number, a tag is refused."""
    from ser_robot.errors import ConfigError
    from ser_robot.train.factory import load_model_hparams

    plain = tmp_path / "hyper.yaml"
    plain.write_text("dropout: 1e-4\nhidden: 64\n")
    assert load_model_hparams(str(plain)) == {"dropout": 1e-4, "hidden": 64}
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("hidden: !!python/object:os.system {}\n")
    with pytest.raises(ConfigError, match=f"model_config {tagged} is not plain YAML data"):
        load_model_hparams(str(tagged))
