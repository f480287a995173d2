import pathlib

import pytest
import yaml

from ser_robot.config import (NODE_PARAMS, ParamSpec, load_config, namespace_problem, parse_overrides,
                              topic_name_problem, validate_node_params)
from ser_robot.config_io import parse_yaml
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
        ("microphone", {"chunk_ms": 0}, r"node 'microphone': key 'chunk_ms' must be a number from 1.0 to 1000.0, got 0.0"),
        ("microphone", {"encoding": "mp3"}, r"key 'encoding' must be one of \['s16le', 'f32le'\], got 'mp3'"),
        ("microphone", {"channels": "two"}, r"key 'channels' must be an integer from 1 to 64, got 'two'"),
        ("microphone", {"channels": 1}, r"key 'channel_ids' has 2 name\(s\) but 'channels' is 1"),
        ("microphone", {"sample_rat": 16000}, r"unknown parameter\(s\) sample_rat for node 'microphone'"),
        ("recorder", {"topics": "audio"}, r"key 'topics' must be a list, got 'audio'"),
        ("runner", {"nodes": ["speaker"]}, r"key 'nodes\[0\]' must be one of \['microphone', .*\], got 'speaker'"),
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


# --- numbers, topic names, output folders, YAML (issue 16: field reliability) -------------------

FLOAT_SPECS = [(node, spec) for node, specs in NODE_PARAMS.items() for spec in specs if spec.kind is float]


def test_every_number_has_a_range():
    with pytest.raises(TypeError, match="numeric parameter 'gain' needs both min and max"):
        ParamSpec("gain", 1.0, "Gain.", min=0.0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("node, spec", FLOAT_SPECS, ids=[f"{n}.{s.name}" for n, s in FLOAT_SPECS])
def test_non_finite_numbers_are_rejected(node, spec, value):
    with pytest.raises(ConfigError, match=rf"node '{node}': key '{spec.name}' must be a number from .*, got {value}$"):
        validate_node_params(node, {spec.name: value})


def test_topic_and_namespace_rules_agree_with_rclpy():
    from rclpy.expand_topic_name import expand_topic_name
    from rclpy.validate_full_topic_name import validate_full_topic_name
    from rclpy.validate_namespace import validate_namespace
    from rclpy.validate_topic_name import validate_topic_name

    names = ["audio", "/a/b", "robot1/audio", "_a", "a__b", "~", "~/x", "{node}/x", "a/{node}x", "{ns}/b",
             "{namespace}", "", "bad topic!", "a//b", "//a", "~//x", "1abc", "a/1b", "9", "a/", "/", "/~", "a~",
             "x{", "{}", "{foo}/x", "a/{ns}", "a-b", "a.b", "é"]
    for name in names:
        try:
            validate_topic_name(name)
            validate_full_topic_name(expand_topic_name(name, "node", "/ns"))
            valid = True
        except Exception:  # noqa: BLE001 - rclpy raises several types
            valid = False
        assert (topic_name_problem(name) == "") == valid, (name, topic_name_problem(name))
    assert topic_name_problem("~x")  # rcl takes it as '~' + 'x'; the documented rule wants '~/x'
    for namespace in ["", "/", "robot1", "/robot1", "a/b", "/a/b/", "a//b", "1a", "~", "{node}", "a b", "//"]:
        try:
            validate_namespace(namespace if namespace.startswith("/") else "/" + namespace)
            valid = True
        except Exception:  # noqa: BLE001 - rclpy raises several types
            valid = False
        assert (namespace_problem(namespace) == "") == valid, (namespace, namespace_problem(namespace))


@pytest.mark.parametrize("node, values, message", [
    ("features", {"output_topic": "bad topic!"},
     r"node 'features': key 'output_topic' got 'bad topic!': not a valid ROS topic name \(it contains ' ', '!'\); use"),
    ("recorder", {"topics": ["audio", "no spaces allowed"]},
     r"node 'recorder': key 'topics' got 'no spaces allowed': not a valid ROS topic name \(it contains ' '\)"),
    ("inference", {"vad_topic": "a//b"}, r"'vad_topic' .* \(it contains '//'\)"),
    ("recorder", {"output": "/proc/self/bag"},
     r"node 'recorder': key 'output' got '/proc/self/bag': no folder can be created in /proc/self \(.*\); choose"),
    ("recorder", {"output": "/"}, r"node 'recorder': key 'output' got '/': it exists already; choose a new folder"),
])
def test_topics_and_output_folders_are_checked_before_any_node_starts(node, values, message):
    with pytest.raises(ConfigError, match=message):
        validate_node_params(node, values)


def test_a_new_output_folder_is_accepted_and_nothing_is_left_behind(tmp_path):
    params = validate_node_params("recorder", {"output": str(tmp_path / "bags" / "run1")})
    assert params["output"] == str(tmp_path / "bags" / "run1")
    assert list(tmp_path.iterdir()) == []


def test_numbers_in_exponent_notation_are_numbers():
    assert parse_yaml("1e-9", "x") == 1e-9 and parse_yaml("1e300", "x") == 1e300
    assert parse_yaml("[1.5e3, -2E+2, .5e1]", "x") == [1500.0, -200.0, 5.0]
    assert parse_yaml("10", "x") == 10 and parse_yaml("1.0", "x") == 1.0 and parse_yaml(".nan", "x") != 0
    assert parse_yaml("1e", "x") == "1e" and parse_yaml("v1e3", "x") == "v1e3" and parse_yaml("yes", "x") is True


@pytest.mark.parametrize("pair, message", [
    ("features.max_frame_s=.nan",
     r"^--set features.max_frame_s=.nan: node 'features': key 'max_frame_s' must be a number from 0.001 to 60.0, "
     r"got nan$"),
    ("recorder.max_duration_s=1e300", r"^--set recorder.max_duration_s=1e300: .* must be a number from 0.0 to 10000000.0, got 1e\+300$"),
    ("inference.window_s=!!python/object:os.system x",
     r"^--set inference.window_s=!!python/object:os.system x: VALUE is not plain YAML data \(could not determine a "
     r"constructor for the tag .*\); only numbers, strings, booleans, lists and mappings are read: remove the tag$"),
    ("inference.window_s=[1,", r"^--set inference.window_s=\[1,: VALUE is not valid YAML \(.* at line 1, column 4\)"),
    ("features.window_s=3", r"^--set features.window_s=3: unknown parameter window_s for node 'features'"),
    ("window_s=3", r"^--set window_s=3: expected NODE.PARAM=VALUE"),
])
def test_set_errors_name_the_set_option_in_one_line(pair, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse_overrides([pair])
    assert "\n" not in str(error.value)


def test_set_values_in_exponent_notation_are_numbers_and_range_checked():
    assert parse_overrides(["recorder.max_duration_s=1e3", "features.max_frame_s=5e-1"]) == {
        "recorder": {"max_duration_s": 1000.0}, "features": {"max_frame_s": 0.5}}
    with pytest.raises(ConfigError, match="must be a number from 0.001 to 60.0, got 1e-09"):
        parse_overrides(["features.max_frame_s=1e-9"])


def test_config_file_yaml_errors_are_one_line(tmp_path):
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("features:\n  ros__parameters:\n    max_frame_s: !!python/object/apply:os.system [x]\n")
    with pytest.raises(ConfigError, match=rf"^configuration file {tagged} is not plain YAML data .* line 3") as error:
        load_config(tagged)
    assert "\n" not in str(error.value)
    numbers = tmp_path / "numbers.yaml"
    numbers.write_text("features:\n  ros__parameters:\n    max_frame_s: 5e-1\n")
    assert load_config(numbers).node_params("features")["max_frame_s"] == 0.5


# --- ser-robot train --set: the same YAML reading as ser-robot run --set -------------------------


def test_train_set_values_are_read_like_run_set_values():
    from ser_robot.train.config import load_train_config, parse_overrides as parse_train_overrides

    overrides = parse_train_overrides(["lr=1e-4", "clip=5E-1", "augmentation.p_ir=2.5e-1", "epochs=3",
                                       "augmentation.kind=lakomkin", "model_config="])
    assert overrides == {"lr": 1e-4, "clip": 0.5, "augmentation": {"p_ir": 0.25, "kind": "lakomkin"}, "epochs": 3,
                         "model_config": None}
    assert parse_train_overrides(["epochs=3", "epochs=5"]) == {"epochs": 5}
    config = load_train_config(ROOT / "config" / "train" / "lakomkin.yaml", parse_train_overrides(["lr=1e-4"]))
    assert config.lr == 1e-4


@pytest.mark.parametrize("pair, message", [
    ("optimizer.lr=!!python/object:os.system x",
     r"^--set optimizer.lr=!!python/object:os.system x: VALUE is not plain YAML data \(could not determine a "
     r"constructor for the tag .*\); only numbers, strings, booleans, lists and mappings are read: remove the tag$"),
    ("lr=!!python/object/apply:os.system [x]", r"^--set lr=!!python/object/apply:os.system \[x\]: VALUE is not plain"),
    ("lr=[1,", r"^--set lr=\[1,: VALUE is not valid YAML \(.* at line 1, column 4\)"),
    ("lr", r"^--set lr: expected KEY=VALUE, e.g. epochs=5"),
    ("=3", r"^--set =3: expected KEY=VALUE"),
    ("augmentation..p_ir=0.2", r"^--set augmentation..p_ir=0.2: expected KEY=VALUE"),
])
def test_train_set_errors_name_the_set_option_in_one_line(pair, message):
    from ser_robot.train.config import parse_overrides as parse_train_overrides

    with pytest.raises(ConfigError, match=message) as error:
        parse_train_overrides([pair])
    assert "\n" not in str(error.value)


def test_train_set_of_a_nested_key_under_a_plain_value_is_refused():
    from ser_robot.train.config import parse_overrides as parse_train_overrides

    with pytest.raises(ConfigError, match=r"^--set augmentation.p_ir=0.2: an earlier --set gave augmentation the "
                                          r"value 'none', which has no key 'p_ir'$"):
        parse_train_overrides(["augmentation=none", "augmentation.p_ir=0.2"])
