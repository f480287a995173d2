"""Loaders of real emotional-speech corpora: a local root in the corpus' own layout -> a :class:`Manifest`.

One module per corpus (its docstring states the layout and label coding); the label sets and
maps of all of them live in ``config/corpora.yaml`` (:mod:`.labels`). Every loader gives
absolute audio paths, durations and sample rates from the file headers, ids unique and
sorted, ``corpus`` = its registry name, and the corpus' own code as ``original_label``. It
raises :class:`DataError` for a missing root or one without files of the expected pattern,
and for a label code the label file does not know; files off the naming scheme are skipped
and reported in one :class:`CorpusWarning`. Bad option values raise :class:`ConfigError`.

>>> manifest = load_corpus("iemocap", "/data/IEMOCAP_full_release")      # doctest: +SKIP
>>> manifest = load_corpus("emodb", "/data/emodb", label_set="emodb7")  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import pathlib
from collections.abc import Callable
from typing import Any

from ser_robot.data.manifest import Manifest
from ser_robot.errors import DataError

from ._common import CorpusWarning
from .crema_d import load_crema_d
from .demos import load_demos, speaker_partition
from .emodb import load_emodb
from .iemocap import load_iemocap
from .labels import (
    CorpusLabels,
    LabelSet,
    corpus_labels,
    default_corpora_config_path,
    load_corpora_config,
)
from .librispeech import load_librispeech
from .msp_improv import load_msp_improv
from .ravdess import load_ravdess

__all__ = [
    "CORPORA",
    "CorpusLabels",
    "CorpusLoader",
    "CorpusWarning",
    "LabelSet",
    "corpus_labels",
    "corpus_names",
    "default_corpora_config_path",
    "load_corpora_config",
    "load_corpus",
    "load_crema_d",
    "load_demos",
    "load_emodb",
    "load_iemocap",
    "load_librispeech",
    "load_msp_improv",
    "load_ravdess",
    "speaker_partition",
]

CorpusLoader = Callable[..., Manifest]
"""``loader(root, **options) -> Manifest``; options are keyword-only."""

CORPORA: dict[str, CorpusLoader] = {
    "iemocap": load_iemocap,
    "msp_improv": load_msp_improv,
    "emodb": load_emodb,
    "ravdess": load_ravdess,
    "crema_d": load_crema_d,
    "demos": load_demos,
    "librispeech": load_librispeech,
}
"""Registry name -> loader. The name is also each utterance's ``corpus`` field."""


def corpus_names() -> list[str]:
    """Names of the registered corpora, in registry order."""
    return list(CORPORA)


def load_corpus(name: str, root: str | pathlib.Path, **options: Any) -> Manifest:
    """Load corpus ``name`` from ``root`` with the loader's keyword ``options``.

    Raises :class:`DataError` for an unknown corpus or option name (listing the known ones).
    """
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}") from None
    loader = CORPORA[name]
    accepted = [p.name for p in inspect.signature(loader).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(
            f"corpus {name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(accepted)}") from None
    return loader(root, **options)
