"""What every corpus loader shares: root checks, audio headers, skip accounting, the manifest.

A loader walks its corpus' own layout and hands each file to a :class:`CorpusScan`, which
reads the audio header, applies the label set, counts what it skips and why (warned once, as
a :class:`CorpusWarning`, never silent) and builds the sorted :class:`Manifest`.
"""

from __future__ import annotations

import collections
import logging
import pathlib
import warnings
from collections.abc import Iterable, Sequence

from ser_robot.data.manifest import Manifest, Utterance, audio_info
from ser_robot.errors import ConfigError, DataError, ManifestError

from .labels import LabelSet, corpus_labels

__all__ = ["CorpusScan", "CorpusWarning", "check_choice", "corpus_root", "resolve_label_set", "sorted_files"]

log = logging.getLogger("ser_robot.data.corpora")

_EXAMPLES = 3


class CorpusWarning(UserWarning):
    """Files of a corpus tree were skipped (name off the naming scheme, no label line, unreadable audio)."""


def corpus_root(root: str | pathlib.Path, corpus: str, layout: str) -> pathlib.Path:
    """``root`` as an absolute folder; :class:`DataError` naming the expected layout if it is not one."""
    path = pathlib.Path(root).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise DataError(
            f"{corpus} root {path} {what}; pass the folder that holds the corpus in its own layout: {layout}"
        ) from None
    return path.resolve()


def resolve_label_set(corpus: str, label_set: str | None, labels_config: str | pathlib.Path | None) -> LabelSet:
    """The label set ``label_set`` (``None``: the default) of ``corpus`` from the corpora label file."""
    return corpus_labels(corpus, labels_config).label_set(label_set)


def check_choice(name: str, value: object, choices: Sequence[object], corpus: str) -> None:
    """Raise :class:`ConfigError` if a loader option is not one of its allowed values."""
    if value not in choices:
        raise ConfigError(
            f"{corpus} loader option {name}={value!r} is not allowed; choose one of "
            f"{', '.join(repr(c) for c in choices)}") from None


class CorpusScan:
    """Collects the utterances of one corpus tree and what was skipped, then builds the manifest.

    ``pattern`` is the layout the loader looks for, quoted in warnings and errors.
    """

    def __init__(self, corpus: str, root: pathlib.Path, pattern: str, label_set: LabelSet | None):
        self.corpus = corpus
        self.root = root
        self.pattern = pattern
        self.label_set = label_set
        self.matched = 0
        self._utterances: list[Utterance] = []
        self._skipped: dict[str, list[str]] = collections.defaultdict(list)
        self._dropped: collections.Counter[str] = collections.Counter()

    def skip(self, path: pathlib.Path | str, reason: str) -> None:
        """Count a file left out for ``reason`` (reported once in a :class:`CorpusWarning`)."""
        self._skipped[reason].append(self._relative(path))

    def match(self) -> None:
        """Count a file that follows the corpus' naming scheme (whether or not it ends up kept)."""
        self.matched += 1

    def label(self, code: str, where: str) -> str | None:
        """Label of ``code`` in the label set; ``None`` (counted) when the set drops it.

        An unknown code is a :class:`DataError`: the corpus uses a code the label file does not know.
        """
        assert self.label_set is not None, "label() needs a label set"
        label = self.label_set.map(code, where)
        if label is None:
            self._dropped[code] += 1
        return label

    def audio(self, path: pathlib.Path) -> tuple[float, int] | None:
        """``(duration_s, sample_rate)`` from the header; ``None`` (counted) if unreadable or empty."""
        try:
            duration, rate = audio_info(path)
        except ManifestError:
            self.skip(path, "unreadable audio file")
            return None
        if duration <= 0:
            self.skip(path, "empty audio file (0 samples)")
            return None
        return duration, rate

    def add(self, utterance: Utterance) -> None:
        self._utterances.append(utterance)

    def manifest(self) -> Manifest:
        """The manifest, sorted by id. Warns about skipped files; :class:`DataError` if nothing matched."""
        skipped = sum(len(paths) for paths in self._skipped.values())
        if self.matched == 0:
            detail = f" ({skipped} file(s) there do not follow it: {self._summary()})" if skipped else ""
            raise DataError(
                f"no {self.corpus} files found under {self.root}: expected {self.pattern}{detail}; "
                "is this the corpus' root folder, unpacked as distributed?") from None
        if skipped:
            message = (f"{self.corpus}: skipped {skipped} file(s) under {self.root}: {self._summary()}; "
                       f"expected layout {self.pattern}")
            warnings.warn(message, CorpusWarning, stacklevel=3)
        if self._dropped:
            log.info("%s: label set %r drops %d utterance(s): %s", self.corpus, self.label_set.name,
                     sum(self._dropped.values()),
                     ", ".join(f"{code} x{count}" for code, count in sorted(self._dropped.items())))
        utterances = sorted(self._utterances, key=lambda u: u.id)
        return Manifest(utterances, self.label_set.labels if self.label_set is not None else None)

    @property
    def dropped(self) -> dict[str, int]:
        """Number of utterances the label set dropped, per code."""
        return dict(self._dropped)

    def _summary(self) -> str:
        parts = []
        for reason, paths in sorted(self._skipped.items()):
            examples = ", ".join(paths[:_EXAMPLES]) + (", ..." if len(paths) > _EXAMPLES else "")
            parts.append(f"{len(paths)} {reason} (e.g. {examples})")
        return "; ".join(parts)

    def _relative(self, path: pathlib.Path | str) -> str:
        path = pathlib.Path(path)
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def sorted_files(paths: Iterable[pathlib.Path]) -> list[pathlib.Path]:
    """Regular files among ``paths``, in a deterministic order."""
    return sorted(p for p in paths if p.is_file())
