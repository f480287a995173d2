"""The ground floor of every configuration: YAML read safely, files of the package, deep merge,
``key=value`` overrides, and the typed checks that turn a mapping into a (nested) dataclass
(:func:`from_mapping`, driven by field types and :func:`setting` limits). It imports nothing of
ser_robot but :mod:`ser_robot.errors`, so every layer (audio, features, data, models, training,
simulator, experiments, nodes) may use it.

YAML is read safely (plain data only) and, as in YAML 1.2, ``1e-9`` is a number.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import pathlib
import re
import types
import typing
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from ser_robot.errors import ConfigError

__all__ = ["parse_yaml", "read_yaml_mapping", "package_file", "config_file", "deep_merge", "parse_key_values",
           "setting", "from_mapping", "check_fields", "check_keys", "check_value"]

_T = TypeVar("_T")


class _DataLoader(yaml.SafeLoader):
    """The safe loader (plain data only) that also reads ``1e-9``, ``1e300`` and ``1.5e3`` as numbers
    (YAML 1.1 wants a dot and a signed exponent; YAML 1.2, JSON and people do not)."""


_DataLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def parse_yaml(text: str, what: str) -> Any:
    """``text`` read as YAML data; :class:`ConfigError` naming ``what`` in one line otherwise."""
    try:
        return yaml.load(text, Loader=_DataLoader)
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{what} is not plain YAML data ({_yaml_problem(exc)}); only numbers, strings, booleans, "
                          "lists and mappings are read: remove the tag") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML ({_yaml_problem(exc)}); fix it, or quote a string that holds "
                          "YAML syntax") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The problem of a YAML error and where it is, in one line."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return " ".join(f"{exc.problem}{where}".split())
    return " ".join(str(exc).split())


def package_file(relative: str | pathlib.Path) -> pathlib.Path:
    """``relative`` (e.g. ``config/ser.yaml``, ``models/default/model.pt``) in the source tree, or in
    the installed ROS package's share folder when the source tree has no such file."""
    here = pathlib.Path(__file__).resolve().parent.parent / relative
    if here.exists():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return pathlib.Path(get_package_share_directory("ser_robot")) / relative
    except Exception:  # noqa: BLE001 - no ament index: report the source-tree path
        return here


def config_file(name: str) -> pathlib.Path:
    """``config/<name>`` of the source tree, or of the installed ROS package's share folder."""
    return package_file(pathlib.Path("config") / name)


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in (nested mappings merged key by key; copies, inputs untouched).

    The one merge of every configuration: node parameters, training, simulator and experiment files.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_key_values(pairs: Sequence[str], example: str = "epochs=5 or augmentation.p_ir=0.2",
                     depth: int | None = None, form: str = "KEY") -> dict[str, Any]:
    """``KEY=VALUE`` strings (every ``--set``) -> nested mapping; a dotted KEY reaches nested keys.

    VALUE is read by :func:`parse_yaml` (plain YAML data only, ``1e-4`` a number); a later pair of
    the same key wins. ``depth``: the number of dotted parts a KEY must have (``None``: any). A
    malformed pair raises :class:`ConfigError` in one line naming it (``--set PAIR: expected
    FORM=VALUE, e.g. EXAMPLE``); whether a key exists and its value fits is the caller's to check.
    """
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        path = key.split(".")
        try:
            if not sep or not all(path) or (depth is not None and len(path) != depth):
                raise ConfigError(f"expected {form}=VALUE, e.g. {example}")
            value = parse_yaml(text, "VALUE")
            target = result
            for level, parent in enumerate(path[:-1]):
                target = target.setdefault(parent, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"an earlier --set gave {'.'.join(path[:level + 1])} the value {target!r}, "
                                      f"which has no key {path[level + 1]!r}")
            target[path[-1]] = value
        except ConfigError as exc:
            raise ConfigError(f"--set {pair}: {exc}") from None
    return result


def read_yaml_mapping(path: str | pathlib.Path, what: str, empty_ok: bool = False) -> dict[str, Any]:
    """The top-level mapping of YAML file ``path``; :class:`ConfigError` naming ``what`` and the file otherwise."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    raw = parse_yaml(text, f"{what} {path}")
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{what} {path} must hold a non-empty mapping, got {type(raw).__name__}") from None
    return raw


# -- typed checks: a mapping -> a (nested) dataclass ---------------------------------------------------------

_LIMITS = ("min", "max", "above", "below", "choices", "nonempty", "min_items", "unique", "what", "keys", "check")


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            compare: bool = True, **limits: Any) -> Any:
    """A dataclass field with its limits in ``metadata``, read by :func:`from_mapping` and :func:`check_fields`.

    Limits: ``min``/``max`` (inclusive), ``above``/``below`` (exclusive) for numbers and the numbers of
    a list; ``choices`` for a value or the items of a list; ``nonempty`` (a string); ``min_items`` and
    ``unique`` (a list); ``what``: the noun in messages (``"a learning rate"``: "must be a learning
    rate > 0"); ``keys``: the keys a nested dataclass accepts (default: all its fields); ``check``:
    ``check(key, value) -> value``, the whole check of a field no type annotation describes.
    """
    unknown = sorted(set(limits) - set(_LIMITS))
    if unknown:
        raise TypeError(f"setting(): unknown limit(s) {unknown}; known: {list(_LIMITS)}")
    return dataclasses.field(default=default, default_factory=default_factory, compare=compare, metadata=limits)


def from_mapping(cls: type[_T], values: Any, where: str = "", *, keys: Sequence[str] | None = None,
                 hint: str = "") -> _T:
    """``values`` (e.g. a YAML mapping) checked against dataclass ``cls`` and built into one.

    Driven by the field types (``bool``, ``int``, ``float`` (an int is accepted), ``str``,
    ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``dict``, ``Any``, nested dataclasses, built
    from nested mappings) and the :func:`setting` limits. Unknown keys, missing required keys (a
    field without default; ``null`` or ``''`` count as missing), wrong types (a bool is not an int)
    and values out of range raise :class:`ConfigError` naming ``where`` and the dotted key; absent
    keys take the field defaults; ``null`` for the mapping, a nested dataclass or a dict is an empty mapping.
    ``keys``: the keys ``values`` may hold (default: every field). ``hint``: appended to the
    missing-key message (what to do).
    """
    try:
        return _build(cls, values, "", keys, hint)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}" if where else str(error)) from None


def check_fields(obj: Any, prefix: str = "") -> None:
    """Check every field of dataclass instance ``obj`` as :func:`from_mapping` does, storing the converted
    values (``1`` -> ``1.0`` for a float, lists -> tuples) even in a frozen dataclass; for ``__post_init__``."""
    for f, kind in _fields(type(obj)):
        value = _check(prefix + f.name, getattr(obj, f.name), kind, f.metadata, "")
        if value is not getattr(obj, f.name):
            object.__setattr__(obj, f.name, value)


def check_keys(values: Any, known: Sequence[str], required: Sequence[str] = (), *, where: str = "",
               prefix: str = "", hint: str = "") -> dict[str, Any]:
    """``values`` as a dict, after checking it is a mapping with only ``known`` keys and every ``required``
    one (``null`` or ``''`` count as missing); :class:`ConfigError` naming ``where`` and the keys otherwise."""
    try:
        if not isinstance(values, Mapping):
            raise ConfigError(f"{_key(prefix[:-1])}must be a mapping, got {values!r}" if prefix
                              else f"expected a mapping, got {values!r}")
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; known keys are "
                              f"{sorted(prefix + k for k in known)}")
        missing = [prefix + k for k in required if values.get(k) is None or values.get(k) == ""]
        if missing:
            raise ConfigError(f"required key(s) {missing} missing" + (f"; {hint}" if hint else ""))
        return dict(values)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}" if where else str(error)) from None


def check_value(key: str, value: Any, kind: Any, *, where: str = "", **limits: Any) -> Any:
    """``value`` of ``key`` checked against type ``kind`` and :func:`setting` ``limits``, converted as
    :func:`from_mapping` converts a field; :class:`ConfigError` naming ``where`` and ``key`` otherwise."""
    try:
        return _check(key, value, kind, limits, "")
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}" if where else str(error)) from None


def _key(key: str) -> str:
    return f"key {key!r} "


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls))


def _build(cls: type[_T], values: Any, prefix: str, keys: Sequence[str] | None, hint: str) -> _T:
    fields = {f.name: (f, kind) for f, kind in _fields(cls)}
    known = list(keys) if keys is not None else list(fields)
    required = [name for name in known if fields[name][0].default is dataclasses.MISSING
                and fields[name][0].default_factory is dataclasses.MISSING]
    values = check_keys({} if values is None else values, known, required, prefix=prefix, hint=hint)
    built = {}
    for name, value in values.items():
        f, kind = fields[name]
        built[name] = _check(prefix + name, value, kind, f.metadata, hint)
    return cls(**built)


def _check(key: str, value: Any, kind: Any, limits: Mapping[str, Any], hint: str) -> Any:
    """``value`` of ``key`` checked against type ``kind`` and ``limits`` and converted; raises :class:`ConfigError`."""
    if limits.get("check") is not None:
        return limits["check"](key, value)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(kind) if member is not type(None)]
        if value is None and len(members) < len(typing.get_args(kind)):
            return None
        if len(members) != 1:
            raise TypeError(f"{key}: a union of several types needs a check (setting(check=...))")
        kind = members[0]
    origin = typing.get_origin(kind) or kind
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            check_fields(value, key + ".")
            return value
        return _build(kind, value, key + ".", limits.get("keys"), hint)
    if kind is Any:
        return value
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_key(key)}must be a mapping, got {_shown(value)}")
        return dict(value)
    if origin is tuple:
        return _items(key, value, typing.get_args(kind), limits, hint)
    test = _TYPES.get(kind)
    if test is None:
        raise TypeError(f"{key}: no check for type {kind!r}; give the field a setting(check=...)")
    ok = test(value)
    if ok:
        value = float(value) if kind is float else str(value) if kind is str else value
        ok = _within(value, limits) and not (limits.get("nonempty") and value == "")
    if not ok:
        raise ConfigError(f"{_key(key)}must be {_describe(kind, limits)}, got {_shown(value)}")
    return value


_TYPES = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v),
          str: lambda v: isinstance(v, (str, pathlib.PurePath))}


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a 400-digit int, a long list)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _finite(value: int | float) -> bool:
    """True for a finite float or an int a float can hold (``10**400`` overflows)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _items(key: str, value: Any, args: tuple[Any, ...], limits: Mapping[str, Any], hint: str) -> tuple[Any, ...]:
    """A list (or tuple) checked item by item: ``tuple[X, ...]`` any length, ``tuple[X, Y, Z]`` that many."""
    fixed = not (len(args) == 2 and args[1] is Ellipsis)
    inner = {name: limit for name, limit in limits.items() if name not in ("min_items", "unique", "what")}
    if fixed:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{_key(key)}must be a list of {len(args)} {_describe(args[0], inner, plural=True)}, "
                              f"got {_shown(value)}")
        return tuple(_check(f"{key}[{i}]", item, kind, inner, hint) for i, (item, kind) in enumerate(zip(value, args)))
    least = limits.get("min_items", 0)
    if not isinstance(value, (list, tuple)) or len(value) < least:
        at_least = f" of at least {least} item(s)" if least else ""
        raise ConfigError(f"{_key(key)}must be a list{at_least}, got {_shown(value)}")
    items = tuple(_check(f"{key}[{i}]", item, args[0], inner, hint) for i, item in enumerate(value))
    if limits.get("unique") and len(set(items)) != len(items):
        raise ConfigError(f"{_key(key)}lists an item twice, got {list(value)!r}; list each once")
    return items


def _within(value: Any, limits: Mapping[str, Any]) -> bool:
    choices = limits.get("choices")
    if choices is not None:
        return value in choices
    low, high, above, below = (limits.get(name) for name in ("min", "max", "above", "below"))
    return ((low is None or value >= low) and (high is None or value <= high)
            and (above is None or value > above) and (below is None or value < below))


def _describe(kind: Any, limits: Mapping[str, Any], plural: bool = False) -> str:
    """What a value must be: ``an integer >= 1``, ``a number from 0.0 to 1.0``, ``one of ['a', 'b']``."""
    if limits.get("choices") is not None:
        return f"one of {list(limits['choices'])}"
    nouns = {bool: ("true or false", "booleans"), int: ("an integer", "integers"),
             str: ("a non-empty string" if limits.get("nonempty") else "a string", "strings"),
             float: ("a number" if any(limits.get(n) is not None for n in ("min", "max", "above", "below"))
                     else "a finite number", "numbers")}
    noun = limits.get("what") or nouns.get(kind, (getattr(kind, "__name__", str(kind)),) * 2)[plural]
    low, high = limits.get("min"), limits.get("max")
    if low is not None and high is not None:
        return f"{noun} from {low} to {high}"
    bounds = [f"{sign} {limits[name]}" for name, sign in (("min", ">="), ("above", ">"), ("max", "<="), ("below", "<"))
              if limits.get(name) is not None]
    return " and ".join([f"{noun} {bounds[0]}", *bounds[1:]]) if bounds else noun
