"""Label sets of the real corpora, read from ``config/corpora.yaml`` and validated on load.

Each corpus section lists its label ``codes`` (code -> meaning), a ``default_label_set`` and
``label_sets`` (name -> ``labels`` in class-index order and a ``map`` from every code to a label
or ``null``, which drops the utterance), and optionally the ``dimension_scale`` of its
arousal / valence ratings. Loaders hold no label table of their own: this file is
the one place where label defaults live. A code met in a corpus but absent from ``codes`` is a
:class:`DataError`; a malformed file is a :class:`ConfigError` naming the corpus and key.
"""

from __future__ import annotations

import functools
import math
import pathlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


from ser_robot.config_io import config_file, read_yaml_mapping
from ser_robot.errors import ConfigError, DataError

__all__ = ["CorpusLabels", "LabelSet", "corpus_labels", "default_corpora_config_path", "load_corpora_config",
           "dimension_scale", "to_unit_scale", "unit_dimension"]

_SECTION_KEYS = {"codes", "default_label_set", "label_sets"}
_OPTIONAL_SECTION_KEYS = {"dimension_scale"}
UNIT_SCALE = (-1.0, 1.0)
_LABEL_SET_KEYS = {"labels", "map"}


@dataclass(frozen=True)
class LabelSet:
    """One label set of a corpus: its classes (in index order) and the code -> label map."""

    corpus: str
    name: str
    labels: tuple[str, ...]
    mapping: Mapping[str, str | None]

    def map(self, code: str, where: str) -> str | None:
        """The label of ``code`` (``None``: dropped). Raises :class:`DataError` for an unknown code."""
        try:
            return self.mapping[code]
        except KeyError:
            raise DataError(
                f"{where}: unknown {self.corpus} label code {code!r}; known codes: {', '.join(self.mapping)} "
                "(add it to the corpus' codes and label maps in config/corpora.yaml if the corpus really uses it)"
            ) from None


@dataclass(frozen=True)
class CorpusLabels:
    """The label coding of one corpus: its codes, label sets and default label set."""

    corpus: str
    codes: Mapping[str, str]
    label_sets: Mapping[str, LabelSet]
    default_label_set: str
    dimension_scale: tuple[float, float] = UNIT_SCALE  # (low, high) of its arousal / valence ratings

    def label_set(self, name: str | None = None) -> LabelSet:
        """The label set ``name`` (``None``: the default). Raises :class:`ConfigError` for an unknown name."""
        name = self.default_label_set if name is None else name
        if name not in self.label_sets:
            raise ConfigError(
                f"unknown label set {name!r} for corpus {self.corpus!r}; "
                f"known label sets: {', '.join(self.label_sets)} (defined in config/corpora.yaml)"
            ) from None
        return self.label_sets[name]


def default_corpora_config_path() -> pathlib.Path:
    """``config/corpora.yaml`` of the source tree (or of the installed ROS package share folder)."""
    return config_file("corpora.yaml")


def load_corpora_config(path: str | pathlib.Path | None = None) -> dict[str, CorpusLabels]:
    """Read and validate a corpora label file (default ``config/corpora.yaml``); corpus name -> labels."""
    path = pathlib.Path(path) if path is not None else default_corpora_config_path()
    path = path.resolve()
    try:
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = None
    return dict(_load(path, version))


@functools.lru_cache(maxsize=16)
def _load(path: pathlib.Path, version: tuple[int, int] | None) -> tuple[tuple[str, CorpusLabels], ...]:
    """Parse ``path``; cached per file version (modification time and size)."""
    raw = read_yaml_mapping(path, "corpora label file")
    return tuple((str(corpus), _parse_corpus(str(corpus), section, path)) for corpus, section in raw.items())


def corpus_labels(corpus: str, path: str | pathlib.Path | None = None) -> CorpusLabels:
    """The validated label coding of ``corpus``; :class:`ConfigError` if the file has no section for it."""
    config = load_corpora_config(path)
    if corpus not in config:
        where = path if path is not None else default_corpora_config_path()
        raise ConfigError(
            f"{where} has no section for corpus {corpus!r}; sections: {', '.join(config)}") from None
    return config[corpus]


def _scale(corpus: str) -> tuple[float, float]:
    config = load_corpora_config()
    return config[corpus].dimension_scale if corpus in config else UNIT_SCALE


def dimension_scale(corpora: Iterable[str]) -> tuple[float, float]:
    """The rating scale ``(low, high)`` shared by ``corpora`` (those without one: [-1, 1]);
    :class:`ConfigError` when they differ (map their ratings onto one scale first)."""
    scales = {corpus: _scale(corpus) for corpus in corpora}
    if len(set(scales.values())) > 1:
        raise ConfigError(f"the corpora rate arousal / valence on different scales ({scales}); "
                          "train a dimensional model on corpora of one scale")
    return next(iter(scales.values()), UNIT_SCALE)


def to_unit_scale(value: Any, scale: tuple[float, float]) -> Any:
    """``value`` (a number, array or tensor) on the rating scale ``(low, high)`` mapped onto [-1, 1]."""
    low, high = scale
    return 2.0 * (value - low) / (high - low) - 1.0


def unit_dimension(value: float | None, corpus: str) -> float:
    """An arousal / valence rating of ``corpus`` mapped from its ``dimension_scale`` onto [-1, 1]
    (NaN when missing); corpora without a scale (the synthetic corpus) are on [-1, 1] already."""
    return math.nan if value is None else float(to_unit_scale(float(value), _scale(corpus)))


def _parse_corpus(corpus: str, section: Any, path: pathlib.Path) -> CorpusLabels:
    where = f"{path}: corpus {corpus!r}"
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a mapping with keys {sorted(_SECTION_KEYS)}") from None
    _check_keys(section, _SECTION_KEYS, where, optional=_OPTIONAL_SECTION_KEYS)
    scale = section.get("dimension_scale", list(UNIT_SCALE))
    if (not isinstance(scale, list) or len(scale) != 2 or not all(isinstance(v, (int, float)) for v in scale)
            or not scale[0] < scale[1]):
        raise ConfigError(f"{where}: 'dimension_scale' must be [low, high] with low < high, got {scale!r}") from None
    codes = section["codes"]
    if not isinstance(codes, dict) or not codes:
        raise ConfigError(f"{where}: 'codes' must be a non-empty mapping code -> meaning") from None
    for code, meaning in codes.items():
        _check_code(code, f"{where}, codes")
        if not isinstance(meaning, str) or not meaning:
            raise ConfigError(f"{where}, codes: meaning of {code!r} must be a non-empty string, got {meaning!r}") from None
    sets = section["label_sets"]
    if not isinstance(sets, dict) or not sets:
        raise ConfigError(f"{where}: 'label_sets' must be a non-empty mapping name -> label set") from None
    label_sets = {str(name): _parse_label_set(corpus, str(name), spec, codes, where) for name, spec in sets.items()}
    default = section["default_label_set"]
    if default not in label_sets:
        raise ConfigError(
            f"{where}: default_label_set {default!r} is not one of its label sets ({', '.join(label_sets)})") from None
    return CorpusLabels(corpus=corpus, codes=dict(codes), label_sets=label_sets, default_label_set=default,
                        dimension_scale=(float(scale[0]), float(scale[1])))


def _parse_label_set(corpus: str, name: str, spec: Any, codes: dict, where: str) -> LabelSet:
    where = f"{where}, label set {name!r}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping with keys {sorted(_LABEL_SET_KEYS)}") from None
    _check_keys(spec, _LABEL_SET_KEYS, where)
    labels = spec["labels"]
    if (not isinstance(labels, list) or not labels
            or not all(isinstance(label, str) and label for label in labels)):
        raise ConfigError(f"{where}: 'labels' must be a non-empty list of strings, got {labels!r}") from None
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: 'labels' lists a label twice: {labels}") from None
    mapping = spec["map"]
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: 'map' must be a mapping code -> label or null, got {mapping!r}") from None
    for code, label in mapping.items():
        _check_code(code, f"{where}, map")
        if code not in codes:
            raise ConfigError(
                f"{where}, map: code {code!r} is not among the corpus' codes ({', '.join(codes)})") from None
        if label is not None and label not in labels:
            raise ConfigError(
                f"{where}, map: code {code!r} maps to {label!r}, which is not in labels {labels} "
                "(use null to drop the code)") from None
    missing = [code for code in codes if code not in mapping]
    if missing:
        raise ConfigError(
            f"{where}, map: code(s) {', '.join(missing)} not mapped; map every code to a label or null") from None
    unused = [label for label in labels if label not in mapping.values()]
    if unused:
        raise ConfigError(f"{where}: label(s) {', '.join(unused)} have no code mapped to them") from None
    return LabelSet(corpus=corpus, name=name, labels=tuple(labels), mapping=dict(mapping))


def _check_keys(section: dict, expected: set[str], where: str, optional: set[str] = frozenset()) -> None:
    problems = []
    unknown = sorted(str(key) for key in set(section) - expected - optional)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)}")
    missing = sorted(expected - set(section))
    if missing:
        problems.append(f"missing key(s) {', '.join(missing)}")
    if problems:
        also = f" and optionally {', '.join(sorted(optional))}" if optional else ""
        raise ConfigError(f"{where}: {'; '.join(problems)} (expected exactly {', '.join(sorted(expected))}{also})") from None


def _check_code(code: Any, where: str) -> None:
    if not isinstance(code, str) or not code:
        hint = " (quote numeric codes, e.g. \"01\": YAML reads 01 as the integer 1)" if isinstance(code, int) else ""
        raise ConfigError(f"{where}: code {code!r} must be a non-empty string{hint}") from None
