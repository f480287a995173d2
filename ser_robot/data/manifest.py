"""The manifest: one JSON Lines format for every corpus, real or synthetic.

Each line is one utterance (:class:`Utterance`)::

    {"id": "Ses01F_impro01_F000", "path": "Session1/.../Ses01F_impro01_F000.wav",
     "speaker": "Ses01F", "corpus": "iemocap", "label": "neutral", "original_label": "neu",
     "session": "Session1", "gender": "F", "arousal": 2.5, "valence": 2.5, "dominance": 2.5,
     "duration_s": 1.98, "sample_rate": 16000}

``label`` is the class in the experiment's label set (the four classes ``EMOTIONS`` unless a
corpus' configuration says otherwise); ``original_label`` keeps the corpus' own code. A
missing ``label`` means unlabelled speech (LibriSpeech). Arousal / valence / dominance are on
the corpus' own scale (IEMOCAP 1-5, the synthetic corpus -1..1; ``dimension_scale`` in
``config/corpora.yaml`` names it, and the corpus player maps it onto [-1, 1]). Relative paths are relative to
the manifest file's folder. :func:`read_manifest` validates every line and names the line and
field at fault.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import pathlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from ser_robot.errors import ManifestError

__all__ = ["EMOTIONS", "GENDERS", "Utterance", "Manifest", "read_manifest", "write_manifest", "audio_info"]

EMOTIONS: tuple[str, ...] = ("angry", "happy", "neutral", "sad")
"""The four-class label set of the papers (IEMOCAP with excited merged into happy)."""

GENDERS: tuple[str, ...] = ("F", "M")

_REQUIRED = ("id", "path", "speaker", "corpus", "duration_s", "sample_rate")


@dataclass(frozen=True)
class Utterance:
    """One utterance of a corpus. ``path`` is absolute once read through :func:`read_manifest`."""

    id: str
    path: str
    speaker: str
    corpus: str
    duration_s: float
    sample_rate: int
    label: str | None = None
    original_label: str | None = None
    session: str | None = None
    gender: str | None = None
    arousal: float | None = None
    valence: float | None = None
    dominance: float | None = None
    text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, relative_to: pathlib.Path | None = None) -> dict[str, Any]:
        """The JSON object of this utterance, ``None`` fields left out, path made relative if inside ``relative_to``."""
        record = {key: value for key, value in dataclasses.asdict(self).items() if value not in (None, {})}
        if relative_to is not None:
            path = pathlib.Path(self.path)
            if path.is_absolute() and path.is_relative_to(relative_to):
                record["path"] = str(path.relative_to(relative_to))
        return record

    @classmethod
    def from_json(cls, record: Any, where: str) -> "Utterance":
        """Build and validate from a parsed JSON object; ``where`` names it in errors."""
        if not isinstance(record, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(record).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ManifestError(f"{where}: unknown field(s) {unknown}; known fields are {sorted(known)}")
        missing = [name for name in _REQUIRED if record.get(name) in (None, "")]
        if missing:
            raise ManifestError(f"{where}: missing required field(s) {missing}")
        utterance = cls(**record)
        utterance.check(where)
        return utterance

    def check(self, where: str) -> None:
        """Raise :class:`ManifestError` if a field has the wrong type or an impossible value."""
        for name in ("id", "path", "speaker", "corpus"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ManifestError(f"{where}: field {name!r} must be a non-empty string, got {getattr(self, name)!r}")
        for name in ("label", "original_label", "session", "text"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ManifestError(f"{where}: field {name!r} must be a string, got {value!r}")
        if self.gender is not None and self.gender not in GENDERS:
            raise ManifestError(f"{where}: gender must be one of {GENDERS} or absent, got {self.gender!r}")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise ManifestError(f"{where}: sample_rate must be a positive integer in Hz, got {self.sample_rate!r}")
        if not _is_number(self.duration_s) or self.duration_s <= 0:
            raise ManifestError(f"{where}: duration_s must be a positive number of seconds, got {self.duration_s!r}")
        for name in ("arousal", "valence", "dominance"):
            value = getattr(self, name)
            if value is not None and not _is_number(value):
                raise ManifestError(f"{where}: field {name!r} must be a finite number or absent, got {value!r}")
        if not isinstance(self.extra, dict):
            raise ManifestError(f"{where}: field 'extra' must be a JSON object, got {self.extra!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Manifest(Sequence[Utterance]):
    """An ordered, validated list of utterances with unique ids."""

    def __init__(self, utterances: Iterable[Utterance], labels: Sequence[str] | None = None):
        self._items = list(utterances)
        self.labels = tuple(labels) if labels is not None else None
        seen: dict[str, int] = {}
        for index, utterance in enumerate(self._items):
            if utterance.id in seen:
                raise ManifestError(
                    f"duplicate utterance id {utterance.id!r} (entries {seen[utterance.id] + 1} and {index + 1}); "
                    "ids must be unique within a manifest")
            seen[utterance.id] = index
            if self.labels is not None and utterance.label is not None and utterance.label not in self.labels:
                raise ManifestError(
                    f"utterance {utterance.id!r}: unknown label {utterance.label!r}; the label set is {list(self.labels)} "
                    "(fix the corpus' label map in config/corpora.yaml, or pass the label set this manifest uses)")

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return Manifest(self._items[index], self.labels)
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"Manifest({len(self)} utterances, {len(self.speakers)} speakers)"

    @property
    def speakers(self) -> list[str]:
        """Speakers in order of first appearance."""
        return list(dict.fromkeys(u.speaker for u in self._items))

    @property
    def sessions(self) -> list[str]:
        """Sessions (``None`` left out) in order of first appearance."""
        return list(dict.fromkeys(u.session for u in self._items if u.session is not None))

    def filter(self, keep: Callable[[Utterance], bool]) -> "Manifest":
        """A new manifest with the utterances for which ``keep`` is true."""
        return Manifest((u for u in self._items if keep(u)), self.labels)

    def label_counts(self) -> dict[str | None, int]:
        """Number of utterances per label (``None`` = unlabelled)."""
        return dict(collections.Counter(u.label for u in self._items))

    def total_duration_s(self) -> float:
        return float(sum(u.duration_s for u in self._items))


def read_manifest(path: str | pathlib.Path, labels: Sequence[str] | None = None, check_files: bool = True) -> Manifest:
    """Read and validate a JSON Lines manifest; relative audio paths become absolute.

    ``labels``: the allowed label set (``None``: any). ``check_files``: every audio file must
    exist. Raises :class:`ManifestError` naming the line and what is wrong.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} not found: generate it (ser-robot synth-corpus) or build it with a loader")
    root = path.resolve().parent
    utterances = []
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ManifestError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
            utterance = Utterance.from_json(record, where)
            audio = pathlib.Path(utterance.path)
            if not audio.is_absolute():
                audio = root / audio
            if check_files and not audio.is_file():
                raise ManifestError(f"{where}: audio file {audio} of utterance {utterance.id!r} does not exist")
            utterances.append(dataclasses.replace(utterance, path=str(audio)))
    try:
        return Manifest(utterances, labels)
    except ManifestError as error:
        raise ManifestError(f"{path}: {error}") from None


def write_manifest(path: str | pathlib.Path, utterances: Iterable[Utterance]) -> pathlib.Path:
    """Write utterances as JSON Lines (validated, unique ids); paths inside the manifest's folder become relative."""
    path = pathlib.Path(path)
    manifest = utterances if isinstance(utterances, Manifest) else Manifest(utterances)
    for index, utterance in enumerate(manifest, start=1):
        utterance.check(f"utterance {index} ({utterance.id!r})")
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.resolve().parent
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as stream:
        for utterance in manifest:
            stream.write(json.dumps(utterance.to_json(relative_to=root), ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def audio_info(path: str | pathlib.Path) -> tuple[float, int]:
    """Duration in seconds and sample rate in Hz of an audio file, from its header."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise ManifestError(f"cannot read audio file {path}: {error}") from None
    return info.frames / info.samplerate, int(info.samplerate)
