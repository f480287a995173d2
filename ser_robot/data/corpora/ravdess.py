"""RAVDESS (Livingstone & Russo 2018): 24 actors, North-American English, speech and song.

Layout of the audio downloads (``root`` holds the ``Actor_*`` folders of
``Audio_Speech_Actors_01-24.zip``, and of the song zip if wanted)::

    Actor_01/03-01-05-01-02-01-01.wav

File name: seven two-digit fields modality-vocal channel-emotion-intensity-statement-
repetition-actor. Modality 03 = audio-only (the only one with .wav files); vocal channel 01
speech, 02 song; emotion 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful,
07 disgust, 08 surprised; intensity 01 normal, 02 strong; statement 01 "Kids are talking by
the door", 02 "Dogs are sitting by the door"; repetition 01/02; actor 01-24, odd = male,
even = female. The emotion field is kept as ``original_label``; the default label set maps
01/03/04/05 to neutral/happy/sad/angry and drops calm, fearful, disgust and surprised,
``label_set="ravdess8"`` keeps all eight. Speech only unless ``include_song``. No sessions.
"""

from __future__ import annotations

import pathlib
import re

from ser_robot.data.manifest import Manifest, Utterance

from ._common import CorpusScan, corpus_root, resolve_label_set, sorted_files

__all__ = ["STATEMENTS", "load_ravdess"]

CORPUS = "ravdess"
LAYOUT = ("Actor_<01..24>/<modality>-<channel>-<emotion>-<intensity>-<statement>-<repetition>-<actor>.wav, "
          "e.g. Actor_01/03-01-05-01-02-01-01.wav")
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
_INTENSITIES = {"01": "normal", "02": "strong"}
_CHANNELS = {"01": "speech", "02": "song"}

_NAME = re.compile(
    r"^(?P<modality>0[1-3])-(?P<channel>0[12])-(?P<code>\d{2})-(?P<intensity>0[12])-(?P<statement>0[12])"
    r"-(?P<repetition>0[12])-(?P<actor>\d{2})$")


def load_ravdess(root: str | pathlib.Path, *, include_song: bool = False, label_set: str | None = None,
                 labels_config: str | pathlib.Path | None = None) -> Manifest:
    """RAVDESS audio-only utterances with a label in ``label_set`` (default four classes).

    Speaker = the folder name (``Actor_01``), gender M for odd actors and F for even ones,
    text = the statement, original label = the two-digit emotion field.
    """
    labels = resolve_label_set(CORPUS, label_set, labels_config)
    root = corpus_root(root, CORPUS, LAYOUT)
    scan = CorpusScan(CORPUS, root, LAYOUT, labels)
    for wav in sorted_files(root.glob("Actor_*/*.wav")):
        match = _NAME.match(wav.stem)
        if (match is None or not 1 <= int(match["actor"]) <= 24 or wav.parent.name != f"Actor_{match['actor']}"
                or match["modality"] != "03"):
            scan.skip(wav, "file(s) off the naming scheme "
                           "Actor_<NN>/03-<channel>-<emotion>-<intensity>-<statement>-<repetition>-<NN>.wav")
            continue
        scan.match()
        if match["channel"] == "02" and not include_song:
            continue
        label = scan.label(match["code"], f"RAVDESS file {wav.name}")
        if label is None:
            continue
        info = scan.audio(wav)
        if info is None:
            continue
        actor = int(match["actor"])
        scan.add(Utterance(
            id=wav.stem, path=str(wav), speaker=wav.parent.name, corpus=CORPUS, duration_s=info[0],
            sample_rate=info[1], label=label, original_label=match["code"], gender="M" if actor % 2 else "F",
            text=STATEMENTS[match["statement"]],
            extra={"vocal_channel": _CHANNELS[match["channel"]], "intensity": _INTENSITIES[match["intensity"]],
                   "repetition": int(match["repetition"])},
        ))
    return scan.manifest()
