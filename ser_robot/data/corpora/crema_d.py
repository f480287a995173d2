"""CREMA-D (Cao et al. 2014): 91 actors (1001-1091) saying 12 sentences in six emotions.

Layout of the repository (``root`` holds ``AudioWAV/`` and, optionally, the demographics)::

    AudioWAV/1001_DFA_ANG_XX.wav
    VideoDemographics.csv        columns ActorID, Age, Sex, Race, Ethnicity

File name ``<actor>_<sentence>_<emotion>_<level>.wav``: sentence IEO, TIE, IOM, IWW, TAI, MTI,
IWL, ITH, DFA, ITS, TSI, WSI (texts in :data:`SENTENCES`); emotion ANG, DIS, FEA, HAP, NEU,
SAD (kept as ``original_label``; the default label set maps ANG/HAP/NEU/SAD to
angry/happy/neutral/sad and drops DIS/FEA, ``label_set="cremad6"`` keeps all six); level LO,
MD, HI or XX (unspecified). Gender comes from ``VideoDemographics.csv`` (Sex Male/Female)
when the file is there, else it is left out. No sessions.
"""

from __future__ import annotations

import csv
import pathlib
import re

from ser_robot.data.manifest import Manifest, Utterance
from ser_robot.errors import DataError

from ._common import CorpusScan, corpus_root, resolve_label_set, sorted_files

__all__ = ["SENTENCES", "load_crema_d", "read_demographics"]

CORPUS = "crema_d"
LAYOUT = "AudioWAV/<actor 1001..1091>_<sentence>_<emotion>_<level>.wav, e.g. AudioWAV/1001_DFA_ANG_XX.wav"
DEMOGRAPHICS = "VideoDemographics.csv"
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
"""The twelve sentences of CREMA-D by code."""
_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
_SEXES = {"Male": "M", "Female": "F"}

_NAME = re.compile(r"^(?P<actor>1\d{3})_(?P<sentence>[A-Z]{3})_(?P<code>[A-Z]{3})_(?P<level>LO|MD|HI|XX)$")


def read_demographics(path: pathlib.Path) -> dict[str, str]:
    """Actor id -> gender F/M from ``VideoDemographics.csv``; :class:`DataError` on a bad column or value."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "ActorID" not in columns or "Sex" not in columns:
            raise DataError(
                f"{path}: expected columns ActorID, Age, Sex, Race, Ethnicity; found {columns}") from None
        genders = {}
        for number, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if row["Sex"] not in _SEXES:
                raise DataError(
                    f"{path}:{number}: Sex of actor {row['ActorID']!r} is {row['Sex']!r}; expected Male or Female") from None
            genders[row["ActorID"]] = _SEXES[row["Sex"]]
    return genders


def load_crema_d(root: str | pathlib.Path, *, label_set: str | None = None,
                 labels_config: str | pathlib.Path | None = None) -> Manifest:
    """CREMA-D utterances with a label in ``label_set`` (default four classes; ``"cremad6"``: all six).

    Speaker = the actor id (``"1001"``), text = the sentence, original label = the emotion code.
    """
    labels = resolve_label_set(CORPUS, label_set, labels_config)
    root = corpus_root(root, CORPUS, LAYOUT)
    genders = read_demographics(root / DEMOGRAPHICS) if (root / DEMOGRAPHICS).is_file() else {}
    scan = CorpusScan(CORPUS, root, LAYOUT, labels)
    for wav in sorted_files((root / "AudioWAV").glob("*.wav")):
        match = _NAME.match(wav.stem)
        if match is None or match["sentence"] not in SENTENCES or not 1001 <= int(match["actor"]) <= 1091:
            scan.skip(wav, "file(s) off the naming scheme <1001..1091>_<sentence>_<emotion>_<LO|MD|HI|XX>.wav")
            continue
        scan.match()
        label = scan.label(match["code"], f"CREMA-D file {wav.name}")
        if label is None:
            continue
        info = scan.audio(wav)
        if info is None:
            continue
        scan.add(Utterance(
            id=wav.stem, path=str(wav), speaker=match["actor"], corpus=CORPUS, duration_s=info[0],
            sample_rate=info[1], label=label, original_label=match["code"], gender=genders.get(match["actor"]),
            text=SENTENCES[match["sentence"]],
            extra={"sentence": match["sentence"], "level": _LEVELS[match["level"]]},
        ))
    return scan.manifest()
