"""IEMOCAP (Busso et al. 2008): five dyadic sessions, one female and one male actor each.

Layout of the release (``root`` is ``IEMOCAP_full_release`` or the folder holding it)::

    Session{1..5}/sentences/wav/<dialog>/<turn>.wav
    Session{1..5}/dialog/EmoEvaluation/<dialog>.txt

``<dialog>`` is e.g. ``Ses01F_impro01`` or ``Ses01F_script01_1`` (session 01, the female
actor wore the markers, improvised / scripted). ``<turn>`` is ``<dialog>_<F|M><3 chars>``:
the letter before the last three characters is the gender of the actor who speaks the turn,
so ``Ses01F_impro01_M003`` is spoken by the male actor of session 1, speaker ``Ses01M``. (A
few turns end in ``XX<digit>``, e.g. ``Ses03F_impro06_FXX0``.)

Each EmoEvaluation file has a header ``% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]``
and one line per turn, tab-separated::

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]

The bracket is **[valence, activation (arousal), dominance]**, in that order, each the mean of
the evaluators' ratings on IEMOCAP's 1-5 scale; the manifest keeps them on that scale. The
category code (ang, hap, exc, neu, sad, fru, sur, fea, dis, oth, xxx) is the consensus label
and is kept as ``original_label``. With the default four-class set of ``config/corpora.yaml``
(ang -> angry, hap + exc -> happy, neu -> neutral, sad -> sad, the rest dropped) the full
corpus gives 5,531 utterances: 1,103 angry, 1,636 happy, 1,708 neutral, 1,084 sad, over
10 speakers (Ses01F ... Ses05M) in sessions Session1 ... Session5.
"""

from __future__ import annotations

import pathlib
import re

from ser_robot.data.manifest import Manifest, Utterance
from ser_robot.errors import DataError

from ._common import (
    CorpusScan,
    check_choice,
    corpus_root,
    resolve_label_set,
    sorted_files,
)

__all__ = ["KINDS", "load_iemocap", "parse_emo_evaluation"]

CORPUS = "iemocap"
LAYOUT = "Session{1..5}/sentences/wav/<dialog>/<turn>.wav with Session{n}/dialog/EmoEvaluation/<dialog>.txt"
KINDS = ("all", "improvised", "scripted")
"""Values of the ``kind`` option: every dialog, improvised dialogs only, scripted dialogs only."""

_SESSION_DIR = re.compile(r"^Session([1-5])$")
_DIALOG = re.compile(r"^Ses(?P<session>0[1-5])[FM]_(?P<kind>impro|script)[0-9A-Za-z_]*$")
_TURN = re.compile(
    r"^(?P<dialog>Ses(?P<session>0[1-5])[FM]_(?:impro|script)[0-9A-Za-z_]*?)_(?P<gender>[FM])[0-9X]{3}$")
_EVAL_LINE = re.compile(
    r"^\[\s*(?P<start>[0-9.]+)\s*-\s*(?P<end>[0-9.]+)\s*\]\s+(?P<turn>\S+)\s+(?P<code>\S+)\s+"
    r"\[\s*(?P<v>[-0-9.]+)\s*,\s*(?P<a>[-0-9.]+)\s*,\s*(?P<d>[-0-9.]+)\s*\]\s*$")


def parse_emo_evaluation(path: pathlib.Path) -> dict[str, tuple[str, float, float, float, float, float]]:
    """Turn -> (code, valence, arousal, dominance, start_s, end_s) from one EmoEvaluation file.

    Only lines starting with ``[`` are turn lines (evaluator lines start with ``C-``/``A-``, the
    header with ``%``). A turn line that does not parse is a :class:`DataError` naming it.
    """
    turns: dict[str, tuple[str, float, float, float, float, float]] = {}
    with path.open(encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.startswith("["):
                continue
            match = _EVAL_LINE.match(line.rstrip("\r\n"))
            if match is None:
                raise DataError(
                    f"{path}:{number}: cannot parse IEMOCAP evaluation line {line.strip()!r}; expected "
                    "'[START - END]<tab>TURN<tab>CODE<tab>[V, A, D]'") from None
            turn = match["turn"]
            if turn in turns:
                raise DataError(f"{path}:{number}: turn {turn} is evaluated twice") from None
            turns[turn] = (match["code"], float(match["v"]), float(match["a"]), float(match["d"]),
                           float(match["start"]), float(match["end"]))
    return turns


def load_iemocap(root: str | pathlib.Path, *, kind: str = "all", label_set: str | None = None,
                 labels_config: str | pathlib.Path | None = None) -> Manifest:
    """IEMOCAP utterances with a label in ``label_set`` (default: the four classes).

    ``kind``: ``"all"``, ``"improvised"`` or ``"scripted"`` dialogs. ``labels_config``: a
    corpora label file other than ``config/corpora.yaml``. Speaker ``Ses01M``, session
    ``Session1``, gender F/M, arousal/valence/dominance on the 1-5 scale, original label = code.
    """
    check_choice("kind", kind, KINDS, CORPUS)
    labels = resolve_label_set(CORPUS, label_set, labels_config)
    root = corpus_root(root, CORPUS, LAYOUT)
    if not any(_SESSION_DIR.match(p.name) for p in root.iterdir()) and (root / "IEMOCAP_full_release").is_dir():
        root = root / "IEMOCAP_full_release"
    scan = CorpusScan(CORPUS, root, LAYOUT, labels)
    sessions = sorted(p for p in root.iterdir() if p.is_dir() and _SESSION_DIR.match(p.name))
    for session_dir in sessions:
        session = int(_SESSION_DIR.match(session_dir.name).group(1))
        wavs = sorted_files(session_dir.glob("sentences/wav/*/*.wav"))
        if not wavs:
            continue
        evaluations = _read_evaluations(session_dir, scan)
        for wav in wavs:
            _add_turn(wav, session, evaluations, kind, scan)
    return scan.manifest()


def _read_evaluations(session_dir: pathlib.Path, scan: CorpusScan) -> dict[str, tuple]:
    folder = session_dir / "dialog" / "EmoEvaluation"
    if not folder.is_dir():
        raise DataError(
            f"IEMOCAP {session_dir.name} has wav files but no label folder {folder}: expected "
            f"{session_dir.name}/dialog/EmoEvaluation/<dialog>.txt") from None
    evaluations: dict[str, tuple] = {}
    for path in sorted_files(folder.glob("*.txt")):
        if not _DIALOG.match(path.stem):
            scan.skip(path, "EmoEvaluation file not named after a dialog")
            continue
        evaluations.update(parse_emo_evaluation(path))
    return evaluations


def _add_turn(wav: pathlib.Path, session: int, evaluations: dict[str, tuple], kind: str,
              scan: CorpusScan) -> None:
    match = _TURN.match(wav.stem)
    if match is None or match["dialog"] != wav.parent.name or int(match["session"]) != session:
        scan.skip(wav, "file(s) off the naming scheme Session<n>/sentences/wav/<dialog>/<dialog>_<F|M><3 chars>.wav")
        return
    scan.match()
    improvised = "_impro" in match["dialog"]
    if (kind == "improvised" and not improvised) or (kind == "scripted" and improvised):
        return
    if wav.stem not in evaluations:
        scan.skip(wav, "turn(s) without a line in EmoEvaluation")
        return
    code, valence, arousal, dominance, start, end = evaluations[wav.stem]
    label = scan.label(code, f"IEMOCAP turn {wav.stem}")
    if label is None:
        return
    info = scan.audio(wav)
    if info is None:
        return
    gender = match["gender"]
    scan.add(Utterance(
        id=wav.stem, path=str(wav), speaker=f"Ses{session:02d}{gender}", corpus=CORPUS,
        duration_s=info[0], sample_rate=info[1], label=label, original_label=code,
        session=f"Session{session}", gender=gender, arousal=arousal, valence=valence, dominance=dominance,
        extra={"dialog": match["dialog"], "kind": "improvised" if improvised else "scripted",
               "start_s": start, "end_s": end},
    ))
