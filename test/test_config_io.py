"""The typed checks of :mod:`ser_robot.config_io`: a mapping -> a (nested) dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ser_robot.config_io import check_fields, check_keys, check_value, from_mapping, setting
from ser_robot.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    seed: int = setting(0, min=0)
    rate: float = setting(0.5, min=0.0, max=1.0, what="a probability")
    count: int = setting(4, min=2)


@dataclass(frozen=True)
class Outer:
    name: str = setting(nonempty=True)
    mode: str = setting("fast", choices=("fast", "slow"))
    lr: float = setting(1e-3, above=0)
    ratio: float = setting(0.5, above=0, below=1)
    flag: bool = False
    path: str | None = None
    tags: tuple[str, ...] = setting((), choices=("a", "b", "c"), unique=True)
    point: tuple[float, float, float] = setting((0.0, 0.0, 0.0), min=0.0, max=10.0)
    extra: dict[str, Any] = setting(default_factory=dict)
    inner: Inner = setting(default_factory=Inner)
    narrow: Inner = setting(default_factory=Inner, keys=("seed",))


def _error(values: Any, where: str = "x.yaml", **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as error:
        from_mapping(Outer, values, where, **kwargs)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_defaults_fill_absent_keys_and_values_are_converted():
    config = from_mapping(Outer, {"name": "n", "lr": 1, "tags": ["a", "c"], "point": [1, 2, 3.5],
                                  "inner": {"rate": 1}, "extra": None})
    assert config == Outer(name="n", lr=1.0, tags=("a", "c"), point=(1.0, 2.0, 3.5), inner=Inner(rate=1.0))
    assert isinstance(config.lr, float) and isinstance(config.inner.rate, float) and config.extra == {}
    assert from_mapping(Outer, {"name": "n", "inner": None}).inner == Inner()  # null: an empty section


def test_unknown_keys_are_named_with_the_known_ones():
    assert _error({"name": "n", "colour": 1}).startswith("x.yaml: unknown key(s) ['colour']; known keys are ['extra',")
    message = _error({"name": "n", "inner": {"sed": 1}})
    assert "unknown key(s) ['inner.sed']; known keys are ['inner.count', 'inner.rate', 'inner.seed']" in message
    assert "known keys are ['narrow.seed']" in _error({"name": "n", "narrow": {"count": 3}})


def test_missing_required_keys_are_named_with_the_hint():
    assert _error({}, hint="see example.yaml") == "x.yaml: required key(s) ['name'] missing; see example.yaml"
    assert _error({"name": ""}) == "x.yaml: required key(s) ['name'] missing"  # '' and null count as missing
    assert _error({"name": None}) == "x.yaml: required key(s) ['name'] missing"
    assert _error([1, 2]) == "x.yaml: expected a mapping, got [1, 2]"


@pytest.mark.parametrize("values, message", [
    ({"flag": "yes"}, "key 'flag' must be true or false, got 'yes'"),
    ({"inner": {"seed": True}}, "key 'inner.seed' must be an integer >= 0, got True"),  # a bool is not an int
    ({"inner": {"seed": 1.5}}, "key 'inner.seed' must be an integer >= 0, got 1.5"),
    ({"lr": "fast"}, "key 'lr' must be a number > 0, got 'fast'"),
    ({"lr": False}, "key 'lr' must be a number > 0, got False"),
    ({"lr": float("nan")}, "key 'lr' must be a number > 0, got nan"),
    ({"lr": float("inf")}, "key 'lr' must be a number > 0, got inf"),
    ({"path": 3}, "key 'path' must be a string, got 3"),
    ({"mode": None}, "key 'mode' must be one of ['fast', 'slow'], got None"),
    ({"extra": [1]}, "key 'extra' must be a mapping, got [1]"),
    ({"inner": 5}, "key 'inner' must be a mapping, got 5"),
    ({"tags": "a"}, "key 'tags' must be a list, got 'a'"),
    ({"point": [1, 2]}, "key 'point' must be a list of 3 numbers from 0.0 to 10.0, got [1, 2]"),
])
def test_wrong_types_name_the_dotted_key_and_the_value(values, message):
    assert _error({"name": "n", **values}) == f"x.yaml: {message}"


@pytest.mark.parametrize("values, message", [
    ({"inner": {"count": 1}}, "key 'inner.count' must be an integer >= 2, got 1"),
    ({"inner": {"rate": 1.5}}, "key 'inner.rate' must be a probability from 0.0 to 1.0, got 1.5"),
    ({"lr": 0}, "key 'lr' must be a number > 0, got 0.0"),
    ({"ratio": 1}, "key 'ratio' must be a number > 0 and < 1, got 1.0"),
    ({"point": [1, 2, 11]}, "key 'point[2]' must be a number from 0.0 to 10.0, got 11.0"),
    ({"mode": "medium"}, "key 'mode' must be one of ['fast', 'slow'], got 'medium'"),
    ({"tags": ["a", "d"]}, "key 'tags[1]' must be one of ['a', 'b', 'c'], got 'd'"),
    ({"tags": ["a", "a"]}, "key 'tags' lists an item twice, got ['a', 'a']; list each once"),
])
def test_ranges_and_choices_are_checked(values, message):
    assert _error({"name": "n", **values}) == f"x.yaml: {message}"


def test_an_int_is_a_float_but_a_float_is_not_an_int():
    assert from_mapping(Inner, {"rate": 0}).rate == 0.0
    assert check_value("k", 3, float) == 3.0 and isinstance(check_value("k", 3, float), float)
    with pytest.raises(ConfigError, match=r"^key 'k' must be an integer, got 3\.0$"):
        check_value("k", 3.0, int)


def test_an_int_too_large_for_a_float_is_refused_not_raised():
    for huge in (10**400, -(10**400)):
        with pytest.raises(ConfigError, match=r"^key 'k' must be a finite number, got -?1000"):
            check_value("k", huge, float)


def test_check_fields_validates_and_converts_a_built_instance():
    @dataclass(frozen=True)
    class Checked:
        rate: float = setting(0.5, min=0.0, max=1.0)
        inner: Inner = setting(default_factory=Inner)

        def __post_init__(self) -> None:
            check_fields(self)

    assert isinstance(Checked(rate=1).rate, float)
    with pytest.raises(ConfigError, match=r"^key 'inner\.count' must be an integer >= 2, got 0$"):
        Checked(inner=Inner(count=0))


def test_a_check_hook_replaces_the_type_check():
    def count_or_all(key: str, value: Any) -> Any:
        if value == "all" or isinstance(value, int):
            return value
        raise ConfigError(f"key {key!r} must be 'all' or a count, got {value!r}")

    @dataclass(frozen=True)
    class Hooked:
        folds: str | int = setting("all", check=count_or_all)

    assert from_mapping(Hooked, {"folds": 3}).folds == 3
    with pytest.raises(ConfigError, match=r"^p: key 'folds' must be 'all' or a count, got 'x'$"):
        from_mapping(Hooked, {"folds": "x"}, "p")


def test_check_keys_and_check_value_name_where():
    assert check_keys({"a": 1}, ("a", "b"), ("a",), where="w") == {"a": 1}
    with pytest.raises(ConfigError, match=r"^w: unknown key\(s\) \['c'\]; known keys are \['a', 'b'\]$"):
        check_keys({"c": 1}, ("a", "b"), where="w")
    with pytest.raises(ConfigError, match=r"^w: required key\(s\) \['a'\] missing$"):
        check_keys({"b": 1}, ("a", "b"), ("a",), where="w")
    with pytest.raises(ConfigError, match=r"^w: key 'n' must be a non-empty string, got ''$"):
        check_value("n", "", str, where="w", nonempty=True)
    assert check_value("n", None, str | None) is None


def test_setting_refuses_an_unknown_limit():
    with pytest.raises(TypeError, match="unknown limit"):
        setting(0, minimum=1)
