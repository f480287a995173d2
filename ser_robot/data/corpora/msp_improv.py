"""MSP-IMPROV (Busso et al. 2017): six dyadic sessions, one female and one male actor each.

Layout of the release (``root`` holds ``Audio/`` and the label file; a root that holds the
``session*`` folders directly, as some copies are unpacked, is accepted too)::

    Evalution.txt                 (sic, the release's spelling; Evaluation.txt is accepted)
    Audio/session{1..6}/<S01A>/<S|R|P|T>/MSP-IMPROV-S01A-F01-S-FM01.wav

File name ``MSP-IMPROV-<sentence>-<speaker>-<type>-<turn>``: ``S01A`` is target sentence 01
of the scenario meant to elicit A(ngry)/H(appy)/S(ad)/N(eutral); ``F01`` is the female actor
of session 1 (speaker ``F01``, gender F, session ``session1``); the type is R (target
sentence read), S (improvised scene), T (target sentence within the improvisation) or P
(natural interaction between scenes); the rest numbers the turn.

``Evalution.txt`` has one block per clip: a header line followed by one line per rater::

    UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:3.000000; V:2.000000; D:3.000000 ; N:3.500000;

the clip (named ``UTD-IMPROV-...`` for the ``MSP-IMPROV-...`` audio file), the consensus
category (A/H/N/S, O other, X no agreement) and the mean ratings tagged A (activation =
arousal), V (valence), D (dominance), N (naturalness) on the 1-5 scale, ``NaN`` when missing.
Fields are read by their tag, not their position. Rater lines are not used. Latif et al.
(MTL-AUG) report 7,798 utterances with these four classes (792 angry, 2,644 happy, 3,477
neutral, 885 sad) on the 12 speakers.
"""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Sequence

from ser_robot.data.manifest import Manifest, Utterance
from ser_robot.errors import ConfigError, DataError

from ._common import CorpusScan, corpus_root, resolve_label_set, sorted_files

__all__ = ["LABEL_FILES", "RECORDING_TYPES", "load_msp_improv", "parse_evaluation"]

CORPUS = "msp_improv"
LAYOUT = "Audio/session{1..6}/<S01A>/<S|R|P|T>/MSP-IMPROV-S01A-F01-S-FM01.wav with Evalution.txt"
LABEL_FILES = ("Evalution.txt", "Evaluation.txt")
RECORDING_TYPES = {"R": "read", "S": "improvised", "T": "target in improvisation", "P": "natural interaction"}

_NAME = re.compile(
    r"^MSP-IMPROV-(?P<sentence>S\d{2}[AHNS])-(?P<speaker>(?P<gender>[FM])(?P<session>0[1-6]))"
    r"-(?P<type>[RSTP])-(?P<turn>[A-Z0-9]+)$")
_HEADER = re.compile(r"^(?:UTD|MSP)-IMPROV-(?P<clip>[A-Z0-9-]+)\.avi\s*;")
_TAGS = {"A": "arousal", "V": "valence", "D": "dominance", "N": "naturalness"}


def parse_evaluation(path: pathlib.Path) -> dict[str, tuple[str, dict[str, float | None]]]:
    """Clip (``MSP-IMPROV-...`` audio name) -> (category code, {arousal, valence, dominance, naturalness})."""
    clips: dict[str, tuple[str, dict[str, float | None]]] = {}
    with path.open(encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            match = _HEADER.match(line.strip())
            if match is None:
                continue  # rater lines and blank lines
            where = f"{path}:{number}"
            fields = [field.strip() for field in line.strip().split(";")]
            code = fields[1] if len(fields) > 1 else ""
            if not re.fullmatch(r"[A-Z]", code):
                raise DataError(f"{where}: expected a one-letter category after the clip name, got {code!r}") from None
            values: dict[str, float | None] = {}
            for field in fields[2:]:
                if not field:
                    continue
                tag, _, value = field.partition(":")
                if tag.strip() not in _TAGS or not value:
                    raise DataError(
                        f"{where}: cannot read field {field!r}; expected A:<arousal>, V:<valence>, "
                        "D:<dominance>, N:<naturalness>") from None
                try:
                    number_value = float(value)
                except ValueError:
                    raise DataError(f"{where}: field {field!r} is not a number") from None
                values[_TAGS[tag.strip()]] = None if math.isnan(number_value) else number_value
            name = "MSP-IMPROV-" + match["clip"]
            if name in clips:
                raise DataError(f"{where}: clip {name} is listed twice") from None
            clips[name] = (code, values)
    return clips


def load_msp_improv(root: str | pathlib.Path, *, recording_types: Sequence[str] | None = None,
                    label_set: str | None = None, labels_config: str | pathlib.Path | None = None) -> Manifest:
    """MSP-IMPROV utterances whose consensus category is in ``label_set`` (default: the four classes).

    ``recording_types``: keep only these of R/S/T/P (default all). Speaker ``F01``, session
    ``session1``, arousal/valence/dominance on the 1-5 scale, original label = category code.
    """
    types = tuple(recording_types) if recording_types is not None else tuple(RECORDING_TYPES)
    bad = [t for t in types if t not in RECORDING_TYPES]
    if bad or not types:
        raise ConfigError(
            f"msp_improv loader option recording_types={list(types)!r}: allowed are "
            f"{', '.join(f'{k} ({v})' for k, v in RECORDING_TYPES.items())}") from None
    labels = resolve_label_set(CORPUS, label_set, labels_config)
    root = corpus_root(root, CORPUS, LAYOUT)
    audio = root / "Audio" if (root / "Audio").is_dir() else root
    scan = CorpusScan(CORPUS, root, LAYOUT, labels)
    wavs = sorted_files(audio.glob("session*/*/*/*.wav"))
    if not wavs:
        return scan.manifest()  # raises: nothing in the expected layout
    label_file = next((folder / name for name in LABEL_FILES for folder in (root, audio)
                       if (folder / name).is_file()), None)
    if label_file is None:
        raise DataError(
            f"MSP-IMPROV audio found under {audio} but no label file {' or '.join(LABEL_FILES)} in {root}") from None
    clips = parse_evaluation(label_file)
    for wav in wavs:
        match = _NAME.match(wav.stem)
        if (match is None or wav.parent.name != match["type"] or wav.parent.parent.name != match["sentence"]
                or wav.parent.parent.parent.name != f"session{int(match['session'])}"):
            scan.skip(wav, "file(s) off the naming scheme session<n>/<S01A>/<type>/MSP-IMPROV-S01A-F0<n>-<type>-<turn>.wav")
            continue
        scan.match()
        if match["type"] not in types:
            continue
        if wav.stem not in clips:
            scan.skip(wav, f"clip(s) without an entry in {label_file.name}")
            continue
        code, values = clips[wav.stem]
        label = scan.label(code, f"MSP-IMPROV clip {wav.stem} ({label_file.name})")
        if label is None:
            continue
        info = scan.audio(wav)
        if info is None:
            continue
        extra: dict = {"sentence": match["sentence"], "recording_type": match["type"]}
        if values.get("naturalness") is not None:
            extra["naturalness"] = values["naturalness"]
        scan.add(Utterance(
            id=wav.stem, path=str(wav), speaker=match["speaker"], corpus=CORPUS, duration_s=info[0],
            sample_rate=info[1], label=label, original_label=code, session=f"session{int(match['session'])}",
            gender=match["gender"], arousal=values.get("arousal"), valence=values.get("valence"),
            dominance=values.get("dominance"), extra=extra,
        ))
    return scan.manifest()
