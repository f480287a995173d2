"""The manifest format: round trip, relative paths, and the errors that name what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from ser_robot.data.manifest import EMOTIONS, Manifest, Utterance, audio_info, read_manifest, write_manifest
from ser_robot.errors import ManifestError


def utterance(tmp_path, uid="u1", label="sad", **fields) -> Utterance:
    path = tmp_path / "wav" / f"{uid}.wav"
    path.parent.mkdir(exist_ok=True)
    soundfile.write(str(path), np.zeros(800, np.float32), 16000)
    return Utterance(id=uid, path=str(path), speaker="s1", corpus="test", duration_s=0.05, sample_rate=16000,
                     label=label, **fields)


def test_round_trip_with_relative_paths(tmp_path):
    items = [utterance(tmp_path, "u1", "sad", gender="F", arousal=-0.5, extra={"k": 1}),
             utterance(tmp_path, "u2", None, text="unlabelled")]
    write_manifest(tmp_path / "manifest.jsonl", items)
    lines = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert lines[0]["path"] == "wav/u1.wav" and "label" not in lines[1] and "valence" not in lines[0]
    manifest = read_manifest(tmp_path / "manifest.jsonl", labels=EMOTIONS)
    assert list(manifest) == items
    assert manifest.label_counts() == {"sad": 1, None: 1} and manifest.speakers == ["s1"]
    assert audio_info(items[0].path) == (0.05, 16000)


@pytest.mark.parametrize("record, message", [
    ({"id": "a", "path": "x.wav", "speaker": "s", "corpus": "c", "duration_s": 1.0}, r"missing required field\(s\) \['sample_rate'\]"),
    ({"id": "a", "path": "x.wav", "speaker": "s", "corpus": "c", "duration_s": 1.0, "sample_rate": 16000, "mood": 1},
     r"unknown field\(s\) \['mood'\]"),
    ({"id": "a", "path": "x.wav", "speaker": "s", "corpus": "c", "duration_s": -1, "sample_rate": 16000},
     "duration_s must be a positive number"),
    ({"id": "a", "path": "x.wav", "speaker": "s", "corpus": "c", "duration_s": 1, "sample_rate": 16000, "gender": "x"},
     "gender must be one of"),
    ({"id": "a", "path": "x.wav", "speaker": "s", "corpus": "c", "duration_s": 1, "sample_rate": 16000.5},
     "sample_rate must be a positive integer"),
])
def test_bad_fields_name_the_line_and_field(tmp_path, record, message):
    path = tmp_path / "m.jsonl"
    path.write_text("\n" + json.dumps(record) + "\n")
    with pytest.raises(ManifestError, match=rf"m.jsonl:2: .*{message}"):
        read_manifest(path, check_files=False)


def test_missing_audio_unknown_label_duplicate_id_bad_json(tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest(path, [utterance(tmp_path, "u1", "bored")])
    with pytest.raises(ManifestError, match=r"unknown label 'bored'; the label set is \['angry', 'happy', 'neutral', 'sad'\]"):
        read_manifest(path, labels=EMOTIONS)
    (tmp_path / "wav" / "u1.wav").unlink()
    with pytest.raises(ManifestError, match=r"m.jsonl:1: audio file .*u1.wav of utterance 'u1' does not exist"):
        read_manifest(path)
    with pytest.raises(ManifestError, match=r"duplicate utterance id 'u2' \(entries 1 and 2\)"):
        Manifest([utterance(tmp_path, "u2"), utterance(tmp_path, "u2")])
    path.write_text('{"id": "a",\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:1: not valid JSON"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "absent.jsonl")
