"""DEMoS (Parada-Cabaleiro et al. 2019): elicited emotional speech in Italian, 68 speakers.

Layout of the release (``root`` is the unpacked ``wav_DEMoS``; every ``*.wav`` below it is
read, so its ``DEMOS/`` and ``NEU/`` folders are both found)::

    DEMOS/PR_f_03_tri01a.wav     prototypical (selected) sample
    DEMOS/NP_m_27_rab07b.wav     non-prototypical sample
    NEU/m_27_neu01a.wav          neutral sample (no PR/NP prefix)

File name ``[PR|NP_]<f|m>_<speaker 2 digits>_<emotion code><item>.wav``. The release's codes
are Italian: rab anger (rabbia), tri sadness (tristezza), gio happiness (gioia), pau fear
(paura), dis disgust (disgusto), sor surprise (sorpresa), col guilt (colpa), neu neutral.
English codes (ang, sad, hap, fea, dis, sur, gui, neu: the spelling of Ren et al.'s example
``NP_m_27_ang07b.wav``) are mapped too. The code is kept as ``original_label``; the default
label set ``demos7`` has the seven emotions and drops neutral, as Ren et al. 2020 do
(9,365 emotional samples: 1,477 anger, 1,678 disgust, 1,156 fear, 1,129 guilt, 1,395
happiness, 1,530 sadness, 1,000 surprise; 23 female and 45 male speakers).

Partition. Ren et al. split the speakers speaker-independently and gender-balanced into
24 train / 22 dev / 22 test (their Table 1) but did not publish which speaker went where.
This loader therefore builds *a partition with the same sizes, not theirs*: deterministic
for a given ``seed`` (speakers ordered by a hash of seed and speaker id, no RNG state),
stratified by gender, sizes scaled in proportion (largest remainder) when the tree has
fewer than 68 speakers. Alternatively ``partition_file`` (CSV with header
``speaker,partition``) gives the assignment. The partition is stored in each utterance's
``session`` field as ``train``, ``dev`` or ``test``.
"""

from __future__ import annotations

import csv
import hashlib
import pathlib
import re
from collections.abc import Mapping, Sequence

from ser_robot.data.manifest import Manifest, Utterance
from ser_robot.errors import ConfigError, DataError

from ._common import (
    CorpusScan,
    check_choice,
    corpus_root,
    resolve_label_set,
    sorted_files,
)

__all__ = ["PARTITIONS", "PARTITION_SIZES", "SUBSETS", "load_demos", "read_partition_file", "speaker_partition"]

CORPUS = "demos"
LAYOUT = "**/[PR_|NP_]<f|m>_<speaker NN>_<emotion code><item>.wav, e.g. DEMOS/NP_m_27_rab07b.wav"
PARTITIONS = ("train", "dev", "test")
PARTITION_SIZES: Mapping[str, int] = {"train": 24, "dev": 22, "test": 22}
"""Speakers per partition in Ren et al. 2020, Table 1 (68 speakers)."""
SUBSETS = ("all", "prototypical", "non_prototypical")
"""Values of the ``subset`` option: every file, PR_ files only, NP_ files only."""

_NAME = re.compile(
    r"^(?:(?P<prototypicality>PR|NP)_)?(?P<gender>[fm])_(?P<speaker>\d{2})_(?P<code>[a-z]{3})(?P<item>[0-9a-z]*)$")


def speaker_partition(speakers: Mapping[str, str | None], seed: int = 0,
                      sizes: Mapping[str, int] = PARTITION_SIZES) -> dict[str, str]:
    """Speaker -> partition, gender-stratified, with ``sizes`` scaled to the number of speakers.

    ``speakers`` maps speaker id to gender (F/M or ``None``). The total per partition is the
    largest-remainder share of ``sizes``; each gender gets its share of every partition the same
    way. Order within a gender is by SHA-256 of ``"<seed>:<speaker>"``: the same input and seed
    give the same partition on every machine and Python version.
    """
    names = list(sizes)
    if len(speakers) < len(names):
        raise DataError(
            f"cannot split {len(speakers)} speaker(s) into {len(names)} speaker-independent partitions "
            f"({', '.join(names)}): need at least one speaker per partition") from None
    totals = _shares(len(speakers), [sizes[n] for n in names])
    by_gender: dict[str | None, list[str]] = {}
    for speaker in sorted(speakers):
        by_gender.setdefault(speakers[speaker], []).append(speaker)
    remaining = list(totals)
    assignment: dict[str, str] = {}
    groups = sorted(by_gender.items(), key=lambda item: (-len(item[1]), str(item[0])))
    for index, (_, group) in enumerate(groups):
        counts = remaining if index == len(groups) - 1 else _capped_shares(len(group), totals, remaining)
        order = sorted(group, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
        start = 0
        for name, count in zip(names, counts):
            for speaker in order[start:start + count]:
                assignment[speaker] = name
            start += count
        remaining = [r - c for r, c in zip(remaining, counts)]
    return assignment


def _shares(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder, ties to the earlier), each >= 1."""
    raw = [total * w / sum(weights) for w in weights]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))[: total - sum(counts)]:
        counts[i] += 1
    for i, count in enumerate(counts):  # a partition must never be empty
        if count == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            counts[donor] -= 1
            counts[i] = 1
    return counts


def _capped_shares(total: int, weights: Sequence[int], caps: Sequence[int]) -> list[int]:
    """Like :func:`_shares` without the >= 1 rule, never above ``caps`` (what other groups left)."""
    raw = [total * w / sum(weights) for w in weights]
    counts = [min(int(r), c) for r, c in zip(raw, caps)]
    for i in sorted(range(len(raw)), key=lambda i: (-(raw[i] - int(raw[i])), i)):
        if sum(counts) < total and counts[i] < caps[i]:
            counts[i] += 1
    while sum(counts) < total:  # caps cut some shares: fill where room is left
        counts[max(range(len(counts)), key=lambda j: (caps[j] - counts[j], -j))] += 1
    return counts


def read_partition_file(path: str | pathlib.Path) -> dict[str, str]:
    """Speaker -> partition from a CSV with header ``speaker,partition`` (train/dev/test)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"DEMoS partition file {path} does not exist") from None
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        if [c.strip() for c in reader.fieldnames or []] != ["speaker", "partition"]:
            raise DataError(f"{path}: expected the header 'speaker,partition', got {reader.fieldnames}") from None
        partition: dict[str, str] = {}
        for number, row in enumerate(reader, start=2):
            speaker, part = _speaker_key(row["speaker"] or ""), (row["partition"] or "").strip()
            if part not in PARTITIONS:
                raise DataError(f"{path}:{number}: partition {part!r} is not one of {', '.join(PARTITIONS)}") from None
            if speaker in partition:
                raise DataError(f"{path}:{number}: speaker {speaker} is listed twice") from None
            partition[speaker] = part
    return partition


def _speaker_key(value: str) -> str:
    value = value.strip()
    return value.zfill(2) if value.isdigit() else value


def load_demos(root: str | pathlib.Path, *, subset: str = "all", partition_file: str | pathlib.Path | None = None,
               seed: int = 0, label_set: str | None = None,
               labels_config: str | pathlib.Path | None = None) -> Manifest:
    """DEMoS utterances with a label in ``label_set`` (default ``demos7``), ``session`` = train/dev/test.

    ``subset``: ``"all"``, ``"prototypical"`` (PR_) or ``"non_prototypical"`` (NP_). The partition
    covers every speaker found in the tree (before any filtering), so it does not depend on
    ``subset`` or ``label_set``. Speaker = the two-digit id, gender from the file name.
    """
    check_choice("subset", subset, SUBSETS, CORPUS)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"demos loader option seed must be an integer, got {seed!r}") from None
    labels = resolve_label_set(CORPUS, label_set, labels_config)
    root = corpus_root(root, CORPUS, LAYOUT)
    scan = CorpusScan(CORPUS, root, LAYOUT, labels)
    kept: list[tuple[pathlib.Path, re.Match, str, tuple[float, int]]] = []
    genders: dict[str, str] = {}
    for wav in sorted_files(root.rglob("*.wav")):
        match = _NAME.match(wav.stem)
        if match is None:
            scan.skip(wav, "file(s) off the naming scheme [PR_|NP_]<f|m>_<NN>_<code><item>.wav")
            continue
        gender = match["gender"].upper()
        if genders.setdefault(match["speaker"], gender) != gender:
            raise DataError(
                f"DEMoS speaker {match['speaker']} appears as both genders (e.g. {wav.name}); "
                "speaker numbers are unique in the corpus, check the tree") from None
        scan.match()
        proto = match["prototypicality"]
        if (subset == "prototypical" and proto != "PR") or (subset == "non_prototypical" and proto != "NP"):
            continue
        label = scan.label(match["code"], f"DEMoS file {wav.name}")
        if label is None:
            continue
        info = scan.audio(wav)
        if info is not None:
            kept.append((wav, match, label, info))
    if partition_file is not None:
        partition = read_partition_file(partition_file)
        missing = sorted(set(genders) - set(partition))
        if missing:
            raise DataError(f"partition file {partition_file} has no line for speaker(s) {', '.join(missing)}") from None
    elif genders:
        partition = speaker_partition(genders, seed)
    for wav, match, label, (duration, rate) in kept:
        proto = match["prototypicality"]
        scan.add(Utterance(
            id=wav.stem, path=str(wav), speaker=match["speaker"], corpus=CORPUS, duration_s=duration,
            sample_rate=rate, label=label, original_label=match["code"], session=partition[match["speaker"]],
            gender=genders[match["speaker"]],
            extra={"prototypicality": proto} if proto else {},
        ))
    return scan.manifest()
