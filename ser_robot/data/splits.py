"""Speaker-independent train / validation / test splits, as the papers use them.

Every split here assigns whole speakers (or whole sessions, or whole corpora) to a part; none of
them ever splits utterances at random, because a speaker heard in training makes test scores
optimistic. :class:`Fold` checks on construction that no speaker and no utterance id is in two
parts, so a hand-made fold cannot leak either.

- :func:`leave_one_speaker_out`: one fold per speaker. Lakomkin et al. (IEMOCAP, 10 folds): four
  sessions train, the test speaker's session partner is the validation speaker
  (``validation="partner"``); Latif et al. use the same scheme on IEMOCAP and MSP-IMPROV.
- :func:`leave_one_session_out`: one fold per session (both speakers of a session tested).
- :func:`predefined`: a corpus' own speaker-independent partition (DEMoS train/dev/test).
- :func:`cross_corpus`: train on one corpus, select parameters on ~30 % of the other corpus'
  speakers and test on the remaining ~70 %.
- :func:`labelled_fraction`: the labelled part of a training set for learning curves
  (MTL-AUG Fig. 3); the one function that picks utterances, and only inside a training set that
  is already speaker-independent from validation and test.

Everything is deterministic: ids and speakers are sorted before a ``numpy.random.default_rng(seed)``
shuffles them, so the same manifest and seed give the same split on every machine.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ser_robot.data.manifest import Manifest, Utterance
from ser_robot.errors import SplitError

__all__ = [
    "Fold",
    "check_speaker_independent",
    "cross_corpus",
    "labelled_fraction",
    "leave_one_session_out",
    "leave_one_speaker_out",
    "predefined",
]

PART_NAMES: tuple[str, str, str] = ("train", "validation", "test")


@dataclass(frozen=True)
class Fold:
    """One train / validation / test split; construction fails if a speaker or utterance id is in two parts.

    ``validation`` may be empty (no model selection); ``train`` and ``test`` may not.
    """

    name: str
    train: Manifest
    validation: Manifest
    test: Manifest

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SplitError(f"a fold needs a non-empty name, got {self.name!r}")
        for part in PART_NAMES:
            value = getattr(self, part)
            if not isinstance(value, Manifest):
                raise SplitError(f"fold {self.name!r}: {part} must be a Manifest, got {type(value).__name__} "
                                 "(wrap the utterances in Manifest(...))")
        for part in ("train", "test"):
            if len(getattr(self, part)) == 0:
                raise SplitError(f"fold {self.name!r}: the {part} part is empty; every fold needs training and test "
                                 "utterances (check the speakers/sessions the split was asked for)")
        parts = (self.train, self.validation, self.test)
        check_speaker_independent(*parts, names=PART_NAMES)
        _check_disjoint_ids(parts, PART_NAMES, self.name)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per part: number of utterances, speakers (in order), label counts and total duration in s."""
        return {
            part: {
                "utterances": len(manifest),
                "speakers": manifest.speakers,
                "labels": dict(sorted(manifest.label_counts().items(), key=lambda item: str(item[0]))),
                "duration_s": round(manifest.total_duration_s(), 3),
            }
            for part, manifest in zip(PART_NAMES, (self.train, self.validation, self.test))
        }


def check_speaker_independent(*parts: Manifest, names: Sequence[str] | None = None) -> None:
    """Raise :class:`SplitError` naming every speaker found in more than one of ``parts``.

    ``names`` names the parts in the message (default ``part 1``, ``part 2``, ...).
    """
    if names is None:
        names = [f"part {index}" for index in range(1, len(parts) + 1)]
    if len(names) != len(parts):
        raise SplitError(f"got {len(parts)} parts but {len(names)} names ({list(names)}); give one name per part")
    owners: dict[str, list[str]] = collections.defaultdict(list)
    for name, part in zip(names, parts):
        for speaker in part.speakers:
            owners[speaker].append(name)
    leaks = {speaker: where for speaker, where in owners.items() if len(where) > 1}
    if leaks:
        detail = "; ".join(f"{speaker!r} in {' and '.join(where)}" for speaker, where in sorted(leaks.items()))
        raise SplitError(f"split is not speaker-independent: {len(leaks)} speaker(s) in more than one part: {detail}. "
                         "Assign whole speakers to one part (use the functions of ser_robot.data.splits), and give "
                         "speakers of different corpora distinct ids")


def _check_disjoint_ids(parts: Sequence[Manifest], names: Sequence[str], fold: str) -> None:
    owners: dict[str, list[str]] = collections.defaultdict(list)
    for name, part in zip(names, parts):
        for utterance in part:
            owners[utterance.id].append(name)
    shared = {uid: where for uid, where in owners.items() if len(where) > 1}
    if shared:
        shown = "; ".join(f"{uid!r} in {' and '.join(where)}" for uid, where in sorted(shared.items())[:5])
        more = f" (and {len(shared) - 5} more)" if len(shared) > 5 else ""
        raise SplitError(f"fold {fold!r}: {len(shared)} utterance id(s) in more than one part: {shown}{more}; "
                         "each utterance must be in exactly one part (prefix ids with the corpus name if two corpora "
                         "reuse them)")


# --- helpers -------------------------------------------------------------------------------------


def _of_speakers(manifest: Manifest, speakers: set[str] | Sequence[str]) -> Manifest:
    wanted = set(speakers)
    return manifest.filter(lambda u: u.speaker in wanted)


def _speaker_sessions(manifest: Manifest) -> dict[str, set[str | None]]:
    sessions: dict[str, set[str | None]] = collections.defaultdict(set)
    for utterance in manifest:
        sessions[utterance.speaker].add(utterance.session)
    return sessions


def _check_choice(argument: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SplitError(f"{argument} must be one of {list(choices)}, got {value!r}")


def _check_manifest(manifest: Any, argument: str = "manifest") -> None:
    if not isinstance(manifest, Manifest):
        raise SplitError(f"{argument} must be a Manifest, got {type(manifest).__name__} (read it with read_manifest)")
    if len(manifest) == 0:
        raise SplitError(f"{argument} is empty; nothing to split")


def _fold_name(test: Sequence[str], validation: Sequence[str]) -> str:
    name = "test=" + "+".join(test)
    return name + ",val=" + "+".join(validation) if validation else name


# --- cross-validation schemes ----------------------------------------------------------------------


def leave_one_speaker_out(
    manifest: Manifest,
    validation: Literal["partner", "none", "next"] = "partner",
    test_speakers: Sequence[str] | None = None,
) -> list[Fold]:
    """One fold per speaker (manifest speaker order): that speaker is the test set.

    ``validation``: ``"partner"`` (Lakomkin et al., IEMOCAP: the other speaker(s) of the test
    speaker's ``session`` validate), ``"next"`` (the next speaker in manifest order, cyclic, for
    corpora without sessions), ``"none"`` (empty validation). Everyone else trains.
    ``test_speakers``: only these folds (default: all speakers). Fold names read
    ``test=Ses01F,val=Ses01M``.
    """
    _check_manifest(manifest)
    _check_choice("validation", validation, ("partner", "none", "next"))
    speakers = manifest.speakers
    needed = 2 if validation == "none" else 3
    if len(speakers) < needed:
        raise SplitError(f"leave-one-speaker-out with validation={validation!r} needs at least {needed} speakers, "
                         f"the manifest has {len(speakers)} ({speakers})")
    if test_speakers is None:
        chosen = speakers
    else:
        if isinstance(test_speakers, str):
            raise SplitError(f"test_speakers must be a list of speaker ids, got the string {test_speakers!r}")
        unknown = [s for s in test_speakers if s not in speakers]
        if unknown:
            raise SplitError(f"test_speakers {unknown} are not in the manifest; its speakers are {speakers}")
        chosen = list(dict.fromkeys(test_speakers))
    sessions = _speaker_sessions(manifest) if validation == "partner" else {}
    folds = []
    for speaker in chosen:
        if validation == "partner":
            held = _partners(speaker, sessions)
        elif validation == "next":
            held = [speakers[(speakers.index(speaker) + 1) % len(speakers)]]
        else:
            held = []
        excluded = {speaker, *held}
        train = manifest.filter(lambda u, out=excluded: u.speaker not in out)
        if len(train) == 0:
            raise SplitError(f"fold test={speaker}: no training speaker left after holding out {sorted(excluded)}; "
                             "the corpus needs more speakers for this scheme")
        folds.append(Fold(_fold_name([speaker], held), train, _of_speakers(manifest, held),
                          _of_speakers(manifest, [speaker])))
    return folds


def _partners(speaker: str, sessions: dict[str, set[str | None]]) -> list[str]:
    """The other speakers of ``speaker``'s one session, in manifest order."""
    own = sessions[speaker]
    if None in own:
        raise SplitError(f"speaker {speaker!r} has utterances without a session, so validation='partner' cannot find "
                         "a session partner; record sessions in the manifest or use validation='next'")
    if len(own) > 1:
        raise SplitError(f"speaker {speaker!r} appears in several sessions {sorted(own)}, so the session partner is "
                         "ambiguous; use validation='next' or fix the sessions in the manifest")
    (session,) = own
    partners = [other for other, theirs in sessions.items() if other != speaker and session in theirs]
    if not partners:
        raise SplitError(f"session {session!r} of speaker {speaker!r} has no other speaker to validate on; "
                         "use validation='next' or 'none' for this corpus")
    return partners


def leave_one_session_out(manifest: Manifest, validation: Literal["none", "next"] = "none") -> list[Fold]:
    """One fold per session (manifest session order): all speakers of that session are the test set.

    ``validation="next"`` holds out the next session (cyclic) for validation. Every utterance needs
    a session and every speaker must belong to one session only (otherwise use
    :func:`leave_one_speaker_out`). Fold names read ``test=Session1,val=Session2``.
    """
    _check_manifest(manifest)
    _check_choice("validation", validation, ("none", "next"))
    missing = sorted({u.speaker for u in manifest if u.session is None})
    if missing:
        raise SplitError(f"speaker(s) {missing} have utterances without a session; leave-one-session-out needs a "
                         "session on every utterance (use leave_one_speaker_out for this corpus)")
    spread = {s: sorted(v) for s, v in _speaker_sessions(manifest).items() if len(v) > 1}  # type: ignore[type-var]
    if spread:
        raise SplitError(f"speaker(s) recorded in several sessions would leak across folds: {spread}; "
                         "use leave_one_speaker_out for this corpus")
    sessions = manifest.sessions
    needed = 2 if validation == "none" else 3
    if len(sessions) < needed:
        raise SplitError(f"leave-one-session-out with validation={validation!r} needs at least {needed} sessions, "
                         f"the manifest has {len(sessions)} ({sessions})")
    folds = []
    for index, session in enumerate(sessions):
        held = [sessions[(index + 1) % len(sessions)]] if validation == "next" else []
        excluded = {session, *held}
        folds.append(Fold(
            _fold_name([session], held),
            manifest.filter(lambda u, out=excluded: u.session not in out),
            manifest.filter(lambda u, val=held: u.session in val),
            manifest.filter(lambda u, tst=session: u.session == tst),
        ))
    return folds


def _field(utterance: Utterance, field: str) -> Any:
    if field in _FIELDS:
        return getattr(utterance, field)
    return utterance.extra.get(field)


_FIELDS = {f.name for f in dataclasses.fields(Utterance)} - {"extra"}


def predefined(
    manifest: Manifest,
    field: str = "session",
    train: str = "train",
    validation: str | None = "dev",
    test: str = "test",
) -> Fold:
    """The corpus' own partition: utterances whose ``field`` is ``train`` / ``validation`` / ``test``.

    ``field`` is an :class:`Utterance` attribute or a key of ``extra`` (DEMoS' loader stores
    train/dev/test in ``session``). ``validation=None``: no validation part. Every utterance must
    fall in one part, and the result is still checked for speaker leaks.
    """
    _check_manifest(manifest)
    values = {"train": train, "validation": validation, "test": test}
    given = [v for v in values.values() if v is not None]
    if len(set(given)) != len(given):
        raise SplitError(f"the train/validation/test values must differ, got {values}")
    found = collections.Counter(_field(u, field) for u in manifest)
    for part, value in values.items():
        if value is not None and found[value] == 0:
            raise SplitError(f"no utterance has {field}={value!r} for the {part} part; values of {field!r} in the "
                             f"manifest are {sorted(map(str, found))}")
    stray = {str(v): n for v, n in found.items() if v not in given}
    if stray:
        raise SplitError(f"{sum(stray.values())} utterance(s) have a {field!r} value outside {given}: {stray}; "
                         "filter them out of the manifest first or name their part")
    parts = {part: manifest.filter(lambda u, v=value: _field(u, field) == v) if value is not None
             else Manifest([], manifest.labels) for part, value in values.items()}
    name = f"{field}:train={train},val={validation},test={test}" if validation else f"{field}:train={train},test={test}"
    return Fold(name, parts["train"], parts["validation"], parts["test"])


def _speaker_genders(manifest: Manifest) -> dict[str, str | None]:
    genders: dict[str, set[str | None]] = collections.defaultdict(set)
    for utterance in manifest:
        genders[utterance.speaker].add(utterance.gender)
    known = {s: g - {None} for s, g in genders.items()}
    mixed = {s: sorted(g) for s, g in known.items() if len(g) > 1}
    if mixed:
        raise SplitError(f"speaker(s) with utterances of different genders: {mixed}; fix the manifest's gender field")
    return {s: next(iter(g)) if g else None for s, g in known.items()}


def _largest_remainder(sizes: dict[Any, int], total: int, rng: np.random.Generator) -> dict[Any, int]:
    """Split ``total`` over strata in proportion to ``sizes``; remainder ties broken by ``rng``."""
    grand = sum(sizes.values())
    keys = sorted(sizes, key=str)
    quotas = {k: total * sizes[k] / grand for k in keys}
    counts = {k: math.floor(quotas[k]) for k in keys}
    tiebreak = dict(zip(keys, rng.permutation(len(keys))))
    order = sorted(keys, key=lambda k: (-(quotas[k] - counts[k]), tiebreak[k]))
    for k in order[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def cross_corpus(source: Manifest, target: Manifest, selection_fraction: float = 0.3, seed: int = 0) -> Fold:
    """Train on all of ``source``; split ``target`` BY SPEAKER into validation and test.

    ``round(selection_fraction * n)`` of the target's n speakers (at least 1, at most n - 1)
    go to validation (parameter selection), the rest to test. Speakers are stratified by
    gender (unknown gender is its own stratum), sorted, then shuffled with
    ``default_rng(seed)``: deterministic for a seed. Speaker ids must differ between the corpora.
    """
    _check_manifest(source, "source")
    _check_manifest(target, "target")
    if isinstance(selection_fraction, bool) or not isinstance(selection_fraction, (int, float)) \
            or not 0 < selection_fraction < 1:
        raise SplitError(f"selection_fraction must be a number strictly between 0 and 1 (0.3 = 30 % of the target "
                         f"speakers for parameter selection), got {selection_fraction!r}")
    speakers = target.speakers
    if len(speakers) < 2:
        raise SplitError(f"the target corpus has {len(speakers)} speaker(s) {speakers}; a cross-corpus split needs at "
                         "least 2 (one for parameter selection, one for test)")
    shared = sorted(set(source.speakers) & set(speakers))
    if shared:
        raise SplitError(f"speaker id(s) {shared} appear in both the source and the target corpus; give each corpus' "
                         "speakers distinct ids (e.g. prefix them with the corpus name)")
    rng = np.random.default_rng(seed)
    genders = _speaker_genders(target)
    strata: dict[str | None, list[str]] = collections.defaultdict(list)
    for speaker in sorted(speakers):
        strata[genders[speaker]].append(speaker)
    total = min(max(1, math.floor(selection_fraction * len(speakers) + 0.5)), len(speakers) - 1)
    counts = _largest_remainder({g: len(s) for g, s in strata.items()}, total, rng)
    selected: set[str] = set()
    for gender in sorted(strata, key=str):
        members = strata[gender]
        selected.update(members[i] for i in rng.permutation(len(members))[: counts[gender]])
    validation = [s for s in speakers if s in selected]
    test = [s for s in speakers if s not in selected]
    name = f"train={_corpora(source)},val/test={_corpora(target)},seed={seed}"
    return Fold(name, source, _of_speakers(target, validation), _of_speakers(target, test))


def _corpora(manifest: Manifest) -> str:
    return "+".join(dict.fromkeys(u.corpus for u in manifest))


def labelled_fraction(manifest: Manifest, fraction: float, seed: int = 0) -> tuple[Manifest, Manifest]:
    """Keep labels on ``fraction`` of the labelled utterances; return ``(labelled, rest)``.

    ``rest`` (treated as unlabelled) also holds any utterance that had no label to begin with.
    The labelled part has ``round(fraction * n)`` (at least 1) of the n labelled utterances,
    stratified by label (each label within one utterance of its share) and, within a label, by
    speaker. Deterministic for a seed, and nested: with the same seed, a smaller fraction's
    labelled set is a subset of a larger fraction's, so points of a learning curve (MTL-AUG
    Fig. 3) differ only by the added labels. Both parts keep the manifest's order.

    How: every labelled utterance gets a rank that does not depend on ``fraction`` (speakers
    interleaved in proportion inside each label, labels interleaved in proportion overall, random
    offsets from ``default_rng(seed)``); the labelled set is the lowest-ranked prefix.
    """
    _check_manifest(manifest)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise SplitError(f"fraction must be a number in (0, 1] (the share of labelled utterances to keep), "
                         f"got {fraction!r}")
    labelled = sorted((u for u in manifest if u.label is not None), key=lambda u: u.id)
    if not labelled:
        raise SplitError("the manifest has no labelled utterance; labelled_fraction needs labels to keep")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Utterance]] = collections.defaultdict(list)
    for utterance in labelled:
        by_label[utterance.label].append(utterance)  # type: ignore[index]
    keys: list[tuple[float, float, str]] = []
    for label in sorted(by_label):
        ordered = _interleave(by_label[label], lambda u: u.speaker, rng)
        offset = rng.random()
        keys.extend(((rank + offset) / len(ordered), rng.random(), u.id) for rank, u in enumerate(ordered))
    keys.sort()
    count = max(1, math.floor(fraction * len(labelled) + 0.5))
    chosen = {uid for _, _, uid in keys[:count]}
    return (manifest.filter(lambda u: u.id in chosen), manifest.filter(lambda u: u.id not in chosen))


def _interleave(items: list[Utterance], group: Any, rng: np.random.Generator) -> list[Utterance]:
    """``items`` (sorted) shuffled within groups, then merged so every prefix holds each group in proportion."""
    groups: dict[str, list[Utterance]] = collections.defaultdict(list)
    for item in items:
        groups[group(item)].append(item)
    keyed = []
    for name in sorted(groups):
        members = groups[name]
        shuffled = [members[i] for i in rng.permutation(len(members))]
        offset = rng.random()
        keyed.extend(((rank + offset) / len(shuffled), rng.random(), item.id, item) for rank, item in enumerate(shuffled))
    keyed.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in keyed]
