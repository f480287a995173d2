"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005): ten actors, German.

Layout of the download (``root`` holds ``wav/``)::

    wav/03a01Fa.wav

File name ``<speaker 2 digits><text 3 chars><emotion letter><version letter>.wav``: speaker
03, 08, 09, 10, 11, 12, 13, 14, 15 or 16; text a01 ... b10; emotion W anger (Aerger/Wut),
L boredom (Langeweile), E disgust (Ekel), A fear (Angst), F happiness (Freude), T sadness
(Trauer), N neutral; version a, b, ... The letter is kept as ``original_label``; the default
label set maps W/F/N/T to angry/happy/neutral/sad and drops the rest, ``label_set="emodb7"``
gives the seven classes (both in ``config/corpora.yaml``). Speaker genders are those of the
corpus documentation. No sessions.
"""

from __future__ import annotations

import pathlib
import re

from ser_robot.data.manifest import Manifest, Utterance

from ._common import CorpusScan, corpus_root, resolve_label_set, sorted_files

__all__ = ["SPEAKER_GENDERS", "load_emodb"]

CORPUS = "emodb"
LAYOUT = "wav/<speaker 2 digits><text a01..b10><emotion letter><version letter>.wav, e.g. wav/03a01Fa.wav"
SPEAKER_GENDERS = {"03": "M", "08": "F", "09": "F", "10": "M", "11": "M",
                   "12": "M", "13": "F", "14": "F", "15": "M", "16": "F"}
"""Gender of each EmoDB speaker, from the corpus documentation."""

_NAME = re.compile(r"^(?P<speaker>\d{2})(?P<text>[ab]\d{2})(?P<code>[A-Z])(?P<version>[a-z])$")


def load_emodb(root: str | pathlib.Path, *, label_set: str | None = None,
               labels_config: str | pathlib.Path | None = None) -> Manifest:
    """EmoDB utterances with a label in ``label_set`` (default four classes; ``"emodb7"``: all seven).

    Speaker = the two-digit code (``"03"``), gender from :data:`SPEAKER_GENDERS`, original
    label = the emotion letter.
    """
    labels = resolve_label_set(CORPUS, label_set, labels_config)
    root = corpus_root(root, CORPUS, LAYOUT)
    scan = CorpusScan(CORPUS, root, LAYOUT, labels)
    for wav in sorted_files((root / "wav").glob("*.wav")):
        match = _NAME.match(wav.stem)
        if match is None:
            scan.skip(wav, "file(s) off the naming scheme <speaker><text><emotion><version>.wav")
            continue
        if match["speaker"] not in SPEAKER_GENDERS:
            scan.skip(wav, f"file(s) of a speaker not in EmoDB ({', '.join(SPEAKER_GENDERS)})")
            continue
        scan.match()
        label = scan.label(match["code"], f"EmoDB file {wav.name}")
        if label is None:
            continue
        info = scan.audio(wav)
        if info is None:
            continue
        scan.add(Utterance(
            id=wav.stem, path=str(wav), speaker=match["speaker"], corpus=CORPUS, duration_s=info[0],
            sample_rate=info[1], label=label, original_label=match["code"],
            gender=SPEAKER_GENDERS[match["speaker"]],
            extra={"text_code": match["text"], "version": match["version"]},
        ))
    return scan.manifest()
