"""LibriSpeech (Panayotov et al. 2015): read English audiobooks, unlabelled speech for MTL-AUG.

Layout of the OpenSLR archives once unpacked (``root`` is the ``LibriSpeech`` folder)::

    SPEAKERS.TXT                                          ID | SEX | SUBSET | MINUTES | NAME
    <subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt 4 digits>.flac
    <subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   "<utt id> <TRANSCRIPT>" per line

``<subset>`` is one of :data:`SUBSETS` (e.g. ``train-clean-100``); ``SPEAKERS.TXT`` lines
starting with ``;`` are comments. Utterances are unlabelled (``label`` absent), ``text`` is the
transcript, gender from ``SPEAKERS.TXT`` (absent if the file or the speaker's line is), and
``session`` is the subset.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Sequence

from ser_robot.data.manifest import Manifest, Utterance
from ser_robot.errors import ConfigError, DataError

from ._common import CorpusScan, corpus_root, sorted_files

__all__ = ["SUBSETS", "load_librispeech", "read_speakers", "read_transcripts"]

CORPUS = "librispeech"
LAYOUT = ("<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac with <speaker>-<chapter>.trans.txt, "
          "e.g. train-clean-100/19/198/19-198-0001.flac")
SUBSETS = ("dev-clean", "dev-other", "test-clean", "test-other", "train-clean-100", "train-clean-360",
           "train-other-500")

_NAME = re.compile(r"^(?P<speaker>\d+)-(?P<chapter>\d+)-(?P<utt>\d+)$")


def read_speakers(path: pathlib.Path) -> dict[str, str]:
    """Speaker id -> gender F/M from ``SPEAKERS.TXT``; :class:`DataError` naming a malformed line."""
    genders: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip() or line.lstrip().startswith(";"):
                continue
            fields = [field.strip() for field in line.split("|", 4)]  # names may contain '|'
            if len(fields) < 3 or not fields[0].isdigit() or fields[1] not in ("F", "M"):
                raise DataError(
                    f"{path}:{number}: expected 'ID | SEX | SUBSET | MINUTES | NAME' with SEX F or M, "
                    f"got {line.strip()!r}") from None
            genders[fields[0]] = fields[1]
    return genders


def read_transcripts(path: pathlib.Path) -> dict[str, str]:
    """Utterance id -> transcript from one ``<speaker>-<chapter>.trans.txt``."""
    texts: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            utt, _, text = line.strip().partition(" ")
            if not _NAME.match(utt) or not text:
                raise DataError(
                    f"{path}:{number}: expected '<speaker>-<chapter>-<utt> TRANSCRIPT', got {line.strip()!r}") from None
            texts[utt] = text
    return texts


def load_librispeech(root: str | pathlib.Path, *, subsets: Sequence[str] | None = None) -> Manifest:
    """LibriSpeech utterances of ``subsets`` (default: every subset folder present under ``root``).

    Speaker = the LibriSpeech speaker id, ``extra['chapter']`` the chapter id. Utterances without
    a transcript line are skipped and warned about.
    """
    if isinstance(subsets, str):
        subsets = [subsets]
    bad = [s for s in subsets or () if s not in SUBSETS]
    if bad:
        raise ConfigError(f"librispeech loader option subsets: unknown subset(s) {', '.join(bad)}; "
                          f"known: {', '.join(SUBSETS)}") from None
    root = corpus_root(root, CORPUS, LAYOUT)
    if not any((root / s).is_dir() for s in SUBSETS) and (root / "LibriSpeech").is_dir():
        root = root / "LibriSpeech"
    if subsets is None:
        chosen = [s for s in SUBSETS if (root / s).is_dir()]
    else:
        chosen = list(dict.fromkeys(subsets))
        missing = [s for s in chosen if not (root / s).is_dir()]
        if missing:
            raise DataError(f"LibriSpeech subset folder(s) {', '.join(missing)} not found under {root}") from None
    genders = read_speakers(root / "SPEAKERS.TXT") if (root / "SPEAKERS.TXT").is_file() else {}
    scan = CorpusScan(CORPUS, root, LAYOUT, None)
    for subset in chosen:
        transcripts: dict[pathlib.Path, dict[str, str]] = {}
        for flac in sorted_files((root / subset).glob("*/*/*.flac")):
            match = _NAME.match(flac.stem)
            if (match is None or match["speaker"] != flac.parent.parent.name
                    or match["chapter"] != flac.parent.name):
                scan.skip(flac, "file(s) off the naming scheme <speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac")
                continue
            scan.match()
            folder = flac.parent
            if folder not in transcripts:
                trans = folder / f"{match['speaker']}-{match['chapter']}.trans.txt"
                transcripts[folder] = read_transcripts(trans) if trans.is_file() else {}
            text = transcripts[folder].get(flac.stem)
            if text is None:
                scan.skip(flac, "utterance(s) without a transcript line")
                continue
            info = scan.audio(flac)
            if info is None:
                continue
            scan.add(Utterance(
                id=flac.stem, path=str(flac), speaker=match["speaker"], corpus=CORPUS, duration_s=info[0],
                sample_rate=info[1], session=subset, gender=genders.get(match["speaker"]), text=text,
                extra={"chapter": match["chapter"]},
            ))
    return scan.manifest()
