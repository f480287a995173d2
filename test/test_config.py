import pathlib

import pytest
import yaml

from ser_robot.config import NODE_PARAMS, load_config, validate_node_params
from ser_robot.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid_and_names_every_declared_parameter():
    config = load_config(ROOT / "config" / "ser.yaml")
    raw = yaml.safe_load((ROOT / "config" / "ser.yaml").read_text())
    for node, specs in NODE_PARAMS.items():
        assert set(raw[node]["ros__parameters"]) == {s.name for s in specs}, node
        assert config.node_params(node) == {s.name: s.default for s in specs}, node


@pytest.mark.parametrize(
    "node, values, message",
    [
        ("microphone", {"chunk_ms": 0}, r"'chunk_ms' of node 'microphone' is 0.0, below its minimum"),
        ("microphone", {"encoding": "mp3"}, r"'encoding' .* got 'mp3'; allowed values: s16le, f32le"),
        ("microphone", {"channels": "two"}, r"'channels' .* must be of type int"),
        ("microphone", {"channels": 1}, r"'channel_ids' .* has 2 name\(s\) but 'channels' is 1"),
        ("microphone", {"sample_rat": 16000}, r"unknown parameter\(s\) sample_rat for node 'microphone'"),
        ("recorder", {"topics": "audio"}, r"'topics' .* must be a list of strings"),
        ("runner", {"nodes": ["speaker"]}, r"got 'speaker'; allowed values"),
    ],
)
def test_bad_values_are_rejected_naming_the_parameter(node, values, message):
    with pytest.raises(ConfigError, match=message):
        validate_node_params(node, values)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("microphone:\n  device: x\n")
    with pytest.raises(ConfigError, match="exactly one key, 'ros__parameters'"):
        load_config(bad)
    two_sources = tmp_path / "two.yaml"
    two_sources.write_text("runner:\n  ros__parameters:\n    nodes: [microphone, file_source]\n")
    with pytest.raises(ConfigError, match="at most one audio source"):
        load_config(two_sources)


def test_overrides_apply_on_top_of_the_file():
    config = load_config(ROOT / "config" / "ser.yaml", overrides={"microphone": {"sample_rate": 16000}})
    assert config.node_params("microphone")["sample_rate"] == 16000
    assert config.node_params("microphone")["device"] == ""
