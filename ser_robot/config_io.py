"""The ground floor of every configuration: YAML read safely, files of the package, deep merge and
``key=value`` overrides. It imports nothing of ser_robot but :mod:`ser_robot.errors`, so every layer
(audio, features, data, models, training, simulator, experiments, nodes) may use it.

YAML is read safely (plain data only) and, as in YAML 1.2, ``1e-9`` is a number.
"""

from __future__ import annotations

import copy
import pathlib
import re
from typing import Any, Mapping, Sequence

import yaml

from ser_robot.errors import ConfigError

__all__ = ["parse_yaml", "read_yaml_mapping", "package_file", "config_file", "deep_merge", "parse_key_values"]


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
