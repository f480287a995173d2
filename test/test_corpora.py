"""Corpus loaders on small fake trees that follow each corpus' layout and naming exactly."""

from __future__ import annotations

import collections
import pathlib
import re
import warnings

import numpy as np
import pytest
import soundfile

from ser_robot.data.corpora import (
    CORPORA,
    CorpusWarning,
    corpus_names,
    load_corpora_config,
    load_corpus,
    speaker_partition,
)
from ser_robot.data.manifest import EMOTIONS, read_manifest, write_manifest
from ser_robot.errors import ConfigError, DataError

ROOT = pathlib.Path(__file__).resolve().parent.parent
RATE = 16000


def audio(path: pathlib.Path, seconds: float = 0.1, rate: int = RATE) -> pathlib.Path:
    """A short silent mono file (format from the suffix: .wav or .flac)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.zeros(int(seconds * rate), dtype=np.float32), rate)
    return path


def text(path: pathlib.Path, content: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def load_quietly(name: str, root: pathlib.Path, **options):
    """Load and fail on any CorpusWarning (for trees with nothing to skip)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorpusWarning)
        return load_corpus(name, root, **options)


def by_id(manifest) -> dict:
    return {u.id: u for u in manifest}


def check_common(manifest, name: str, root: pathlib.Path) -> None:
    ids = [u.id for u in manifest]
    assert ids == sorted(ids)
    for u in manifest:
        assert u.corpus == name
        assert pathlib.Path(u.path).is_absolute() and pathlib.Path(u.path).is_file()
        assert pathlib.Path(u.path).is_relative_to(root.resolve())
        assert u.sample_rate == RATE and u.duration_s > 0


# --- IEMOCAP -------------------------------------------------------------------------------

def make_iemocap(root: pathlib.Path) -> pathlib.Path:
    release = root / "IEMOCAP_full_release"
    turns = {
        1: {"Ses01F_impro01": [("F000", "neu", "2.5000, 2.5000, 2.5000"), ("M000", "ang", "1.5000, 4.0000, 3.5000"),
                               ("F001", "exc", "4.0000, 3.5000, 3.0000"), ("M001", "fru", "2.0000, 3.0000, 3.0000")],
            "Ses01F_script01_1": [("F000", "hap", "4.5000, 3.0000, 3.0000"), ("M002", "sad", "1.0000, 1.5000, 2.0000"),
                                  ("MXX0", "sad", "2.0000, 2.0000, 2.0000")]},
        2: {"Ses02M_impro03": [("F000", "neu", "3.0000, 2.0000, 2.5000"), ("M000", "xxx", "3.0000, 3.0000, 3.0000")]},
    }
    for session, dialogs in turns.items():
        for dialog, lines in dialogs.items():
            body = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            for index, (turn, code, vad) in enumerate(lines):
                utt = f"{dialog}_{turn}"
                audio(release / f"Session{session}/sentences/wav/{dialog}/{utt}.wav", 0.1 + 0.05 * index)
                body += [f"[{index}.0000 - {index}.9000]\t{utt}\t{code}\t[{vad}]",
                         "C-E1:\tNeutral state;\t()", "A-E1:\tval 3;\tact 2;\tdom  2;\t()", ""]
            text(release / f"Session{session}/dialog/EmoEvaluation/{dialog}.txt", "\n".join(body) + "\n")
    audio(release / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F002.wav")  # no evaluation line
    audio(release / "Session1/sentences/wav/Ses01F_impro01/notes.wav")  # off the naming scheme
    return release


def test_iemocap_four_classes(tmp_path):
    release = make_iemocap(tmp_path)
    with pytest.warns(CorpusWarning, match=r"skipped 2 file\(s\).*1 file\(s\) off the naming scheme.*"
                                           r"1 turn\(s\) without a line in EmoEvaluation"):
        manifest = load_corpus("iemocap", tmp_path)  # the folder holding IEMOCAP_full_release works too
    check_common(manifest, "iemocap", release)
    assert manifest.labels == EMOTIONS
    utts = by_id(manifest)
    assert sorted(utts) == sorted([
        "Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_F001", "Ses01F_script01_1_F000",
        "Ses01F_script01_1_M002", "Ses01F_script01_1_MXX0", "Ses02M_impro03_F000"])
    assert manifest.label_counts() == {"neutral": 2, "angry": 1, "happy": 2, "sad": 2}
    assert {u.id: u.original_label for u in manifest}["Ses01F_impro01_F001"] == "exc"
    male = utts["Ses01F_impro01_M000"]  # female-led dialog, turn spoken by the male actor
    assert (male.speaker, male.gender, male.session, male.label) == ("Ses01M", "M", "Session1", "angry")
    assert (male.valence, male.arousal, male.dominance) == (1.5, 4.0, 3.5)  # [V, A, D] order
    assert male.extra == {"dialog": "Ses01F_impro01", "kind": "improvised", "start_s": 1.0, "end_s": 1.9}
    assert utts["Ses01F_script01_1_MXX0"].speaker == "Ses01M"
    assert utts["Ses02M_impro03_F000"].speaker == "Ses02F"
    assert set(manifest.speakers) == {"Ses01F", "Ses01M", "Ses02F"}
    assert set(manifest.sessions) == {"Session1", "Session2"}
    assert utts["Ses01F_impro01_M000"].duration_s == pytest.approx(0.15)


def test_iemocap_improvised_or_scripted_only(tmp_path):
    make_iemocap(tmp_path)
    with pytest.warns(CorpusWarning):
        improvised = load_corpus("iemocap", tmp_path, kind="improvised")
    with pytest.warns(CorpusWarning):
        scripted = load_corpus("iemocap", tmp_path, kind="scripted")
    assert len(improvised) == 4 and all(u.extra["kind"] == "improvised" for u in improvised)
    assert len(scripted) == 3 and all("_script" in u.id for u in scripted)
    with pytest.raises(ConfigError, match=r"kind='both' is not allowed; choose one of 'all', 'improvised', 'scripted'"):
        load_corpus("iemocap", tmp_path, kind="both")


def test_iemocap_layout_and_label_errors(tmp_path):
    release = make_iemocap(tmp_path)
    evaluation = release / "Session2/dialog/EmoEvaluation/Ses02M_impro03.txt"
    evaluation.write_text(evaluation.read_text().replace("\txxx\t", "\tzzz\t"))
    with pytest.raises(DataError, match=r"Ses02M_impro03_M000: unknown iemocap label code 'zzz'; known codes: ang"):
        load_corpus("iemocap", release)
    evaluation.write_text("[1.0 - 2.0]\tSes02M_impro03_F000\tneu\t[2.5, 2.5]\n")
    with pytest.raises(DataError, match=r"Ses02M_impro03.txt:1: cannot parse IEMOCAP evaluation line"):
        load_corpus("iemocap", release)
    evaluation.unlink()
    (release / "Session2/dialog/EmoEvaluation").rmdir()
    with pytest.raises(DataError, match=r"Session2 has wav files but no label folder"):
        load_corpus("iemocap", release)


# --- MSP-IMPROV ----------------------------------------------------------------------------

MSP_EVALUATION = """UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:4.200000; V:1.800000; D:3.600000 ; N:3.500000;
P1-p; Angry; Frustrated; A:4; V:2; D:4; N:3;
P2-p; Angry; A:5; V:1; D:3; N:4;

UTD-IMPROV-S01A-M01-R-MF01.avi; N; A:2.000000; V:3.000000; D:NaN ; N:4.000000;
P1-p; Neutral; A:2; V:3; D:; N:4;

UTD-IMPROV-S03H-F02-T-FM02.avi; H; A:3.400000; V:4.600000; D:3.000000 ; N:3.000000;
P3-p; Happy; A:3; V:5; D:3; N:3;

UTD-IMPROV-S03H-M02-P-MF03.avi; O; A:3.000000; V:3.000000; D:3.000000 ; N:2.000000;
P3-p; Other; A:3; V:3; D:3; N:2;

UTD-IMPROV-S05S-M02-S-MF01.avi; S; A:1.600000; V:1.400000; D:2.200000 ; N:3.800000;
"""


def make_msp_improv(root: pathlib.Path) -> pathlib.Path:
    for name in ("S01A-F01-S-FM01", "S01A-M01-R-MF01", "S03H-F02-T-FM02", "S03H-M02-P-MF03",
                 "S05S-M02-S-MF01", "S05S-F02-S-FM04"):  # the last has no entry in Evalution.txt
        sentence, speaker, kind, _ = name.split("-")
        audio(root / f"Audio/session{int(speaker[1:])}/{sentence}/{kind}/MSP-IMPROV-{name}.wav")
    audio(root / "Audio/session1/S01A/S/MSP-IMPROV-S01A-F02-S-FM01.wav")  # session folder disagrees
    text(root / "Evalution.txt", MSP_EVALUATION)
    return root


def test_msp_improv_four_classes_and_dimensions(tmp_path):
    root = make_msp_improv(tmp_path)
    with pytest.warns(CorpusWarning, match=r"skipped 2 file\(s\).*1 clip\(s\) without an entry in Evalution.txt"):
        manifest = load_corpus("msp_improv", root)
    check_common(manifest, "msp_improv", root)
    utts = by_id(manifest)
    assert sorted(utts) == ["MSP-IMPROV-S01A-F01-S-FM01", "MSP-IMPROV-S01A-M01-R-MF01",
                            "MSP-IMPROV-S03H-F02-T-FM02", "MSP-IMPROV-S05S-M02-S-MF01"]
    angry = utts["MSP-IMPROV-S01A-F01-S-FM01"]
    assert (angry.label, angry.original_label, angry.speaker, angry.gender, angry.session) == (
        "angry", "A", "F01", "F", "session1")
    assert (angry.arousal, angry.valence, angry.dominance) == (4.2, 1.8, 3.6)
    assert angry.extra == {"sentence": "S01A", "recording_type": "S", "naturalness": 3.5}
    neutral = utts["MSP-IMPROV-S01A-M01-R-MF01"]
    assert (neutral.label, neutral.speaker, neutral.dominance) == ("neutral", "M01", None)  # D:NaN
    assert utts["MSP-IMPROV-S05S-M02-S-MF01"].label == "sad"
    assert set(manifest.speakers) == {"F01", "M01", "F02", "M02"}
    assert set(manifest.sessions) == {"session1", "session2"}
    with pytest.warns(CorpusWarning):
        read_only = load_corpus("msp_improv", root, recording_types=["R"])
    assert [u.id for u in read_only] == ["MSP-IMPROV-S01A-M01-R-MF01"]


def test_msp_improv_label_file_errors(tmp_path):
    root = make_msp_improv(tmp_path)
    (root / "Evalution.txt").rename(root / "notes.txt")
    with pytest.raises(DataError, match=r"no label file Evalution.txt or Evaluation.txt"):
        load_corpus("msp_improv", root)
    text(root / "Evaluation.txt", MSP_EVALUATION.replace("; A:4.200000", "; Q:4.2"))
    with pytest.raises(DataError, match=r"Evaluation.txt:1: cannot read field 'Q:4.2'"):
        load_corpus("msp_improv", root)
    text(root / "Evaluation.txt", MSP_EVALUATION.replace("avi; H;", "avi; Z;"))
    with pytest.raises(DataError, match=r"unknown msp_improv label code 'Z'"):
        load_corpus("msp_improv", root)


# --- EmoDB ---------------------------------------------------------------------------------

def make_emodb(root: pathlib.Path) -> pathlib.Path:
    for name in ("03a01Fa", "08a02Wb", "09b03Nc", "10a04Ta", "11a05La", "13b01Ea", "14b09Aa"):
        audio(root / "wav" / f"{name}.wav", 0.2)
    audio(root / "wav/99a01Fa.wav")  # not an EmoDB speaker
    audio(root / "wav/03a01Fa_copy.wav")  # off the naming scheme
    return root


def test_emodb_four_and_seven_classes(tmp_path):
    root = make_emodb(tmp_path)
    with pytest.warns(CorpusWarning, match=r"skipped 2 file\(s\)"):
        manifest = load_corpus("emodb", root)
    check_common(manifest, "emodb", root)
    assert {u.id: (u.label, u.original_label, u.speaker, u.gender) for u in manifest} == {
        "03a01Fa": ("happy", "F", "03", "M"), "08a02Wb": ("angry", "W", "08", "F"),
        "09b03Nc": ("neutral", "N", "09", "F"), "10a04Ta": ("sad", "T", "10", "M")}
    assert manifest.sessions == []
    with pytest.warns(CorpusWarning):
        seven = load_corpus("emodb", root, label_set="emodb7")
    assert seven.labels == ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness")
    assert {u.id: u.label for u in seven} == {
        "03a01Fa": "happiness", "08a02Wb": "anger", "09b03Nc": "neutral", "10a04Ta": "sadness",
        "11a05La": "boredom", "13b01Ea": "disgust", "14b09Aa": "fear"}
    assert by_id(seven)["13b01Ea"].gender == "F" and by_id(seven)["11a05La"].gender == "M"
    with pytest.raises(ConfigError, match=r"unknown label set 'emodb9' for corpus 'emodb'; known label sets: emotions4, emodb7"):
        load_corpus("emodb", root, label_set="emodb9")


def test_unreadable_audio_is_skipped_and_reported(tmp_path):
    root = make_emodb(tmp_path)
    text(root / "wav/12a07Wa.wav", "not audio")
    audio(root / "wav/16b10Fa.wav", 0.0)
    with pytest.warns(CorpusWarning, match=r"skipped 4 file\(s\).*1 empty audio file \(0 samples\) \(e.g. wav/16b10Fa.wav\)"
                                           r".*1 unreadable audio file \(e.g. wav/12a07Wa.wav\)"):
        manifest = load_corpus("emodb", root)
    assert len(manifest) == 4


def test_emodb_unknown_emotion_letter(tmp_path):
    audio(tmp_path / "wav/03a01Xa.wav")
    with pytest.raises(DataError, match=r"EmoDB file 03a01Xa.wav: unknown emodb label code 'X'"):
        load_corpus("emodb", tmp_path)


# --- RAVDESS -------------------------------------------------------------------------------

def make_ravdess(root: pathlib.Path) -> pathlib.Path:
    for name in ("03-01-05-01-02-01-01", "03-01-01-01-01-01-01", "03-01-03-02-01-02-02", "03-01-02-01-01-01-02",
                 "03-02-04-01-01-01-02"):  # the last one is song
        audio(root / f"Actor_{name[-2:]}" / f"{name}.wav")
    audio(root / "Actor_01/03-01-05-01-02-01-02.wav")  # actor field disagrees with the folder
    audio(root / "Actor_01/01-01-05-01-02-01-01.wav")  # modality 01 (full AV) is not audio
    return root


def test_ravdess_speech_four_classes(tmp_path):
    root = make_ravdess(tmp_path)
    with pytest.warns(CorpusWarning, match=r"skipped 2 file\(s\)"):
        manifest = load_corpus("ravdess", root)
    check_common(manifest, "ravdess", root)
    assert {u.id: (u.label, u.original_label, u.speaker, u.gender) for u in manifest} == {
        "03-01-05-01-02-01-01": ("angry", "05", "Actor_01", "M"),
        "03-01-01-01-01-01-01": ("neutral", "01", "Actor_01", "M"),
        "03-01-03-02-01-02-02": ("happy", "03", "Actor_02", "F")}
    happy = by_id(manifest)["03-01-03-02-01-02-02"]
    assert happy.text == "Kids are talking by the door"
    assert happy.extra == {"vocal_channel": "speech", "intensity": "strong", "repetition": 2}
    assert by_id(manifest)["03-01-05-01-02-01-01"].text == "Dogs are sitting by the door"
    with pytest.warns(CorpusWarning):
        eight = load_corpus("ravdess", root, label_set="ravdess8", include_song=True)
    assert {u.id: u.label for u in eight} == {
        "03-01-05-01-02-01-01": "angry", "03-01-01-01-01-01-01": "neutral", "03-01-03-02-01-02-02": "happy",
        "03-01-02-01-01-01-02": "calm", "03-02-04-01-01-01-02": "sad"}
    assert by_id(eight)["03-02-04-01-01-01-02"].extra["vocal_channel"] == "song"


# --- CREMA-D -------------------------------------------------------------------------------

def make_crema_d(root: pathlib.Path, demographics: bool = True) -> pathlib.Path:
    for name in ("1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TIE_SAD_LO", "1002_IOM_DIS_XX", "1003_IWW_NEU_MD"):
        audio(root / "AudioWAV" / f"{name}.wav", 0.3)
    audio(root / "AudioWAV/1001_XYZ_ANG_XX.wav")  # no such sentence
    audio(root / "AudioWAV/0999_DFA_ANG_XX.wav")  # no such actor
    if demographics:
        text(root / "VideoDemographics.csv", "ActorID,Age,Sex,Race,Ethnicity\n"
             "1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n")
    return root


def test_crema_d_with_and_without_demographics(tmp_path):
    root = make_crema_d(tmp_path / "with")
    with pytest.warns(CorpusWarning, match=r"skipped 2 file\(s\)"):
        manifest = load_corpus("crema_d", root)
    check_common(manifest, "crema_d", root)
    assert {u.id: (u.label, u.original_label, u.speaker, u.gender) for u in manifest} == {
        "1001_DFA_ANG_XX": ("angry", "ANG", "1001", "M"), "1001_IEO_HAP_HI": ("happy", "HAP", "1001", "M"),
        "1002_TIE_SAD_LO": ("sad", "SAD", "1002", "F"), "1003_IWW_NEU_MD": ("neutral", "NEU", "1003", None)}
    first = by_id(manifest)["1001_DFA_ANG_XX"]
    assert first.text == "Don't forget a jacket." and first.extra == {"sentence": "DFA", "level": "unspecified"}
    assert first.duration_s == pytest.approx(0.3)
    with pytest.warns(CorpusWarning):
        bare = load_corpus("crema_d", make_crema_d(tmp_path / "without", demographics=False), label_set="cremad6")
    assert len(bare) == 5 and all(u.gender is None for u in bare)
    text(root / "VideoDemographics.csv", "ActorID,Age,Sex,Race,Ethnicity\n1001,51,male?,Caucasian,Not Hispanic\n")
    with pytest.raises(DataError, match=r"VideoDemographics.csv:2: Sex of actor '1001' is 'male\?'; expected Male or Female"):
        load_corpus("crema_d", root)


# --- DEMoS ---------------------------------------------------------------------------------

DEMOS_FILES = [
    "DEMOS/PR_f_01_rab01a", "DEMOS/NP_f_01_tri02b", "NEU/f_01_neu01a",
    "DEMOS/NP_f_02_gio03a", "DEMOS/PR_f_02_col01b",
    "DEMOS/NP_m_03_ang07b", "DEMOS/PR_m_03_pau02a",
    "DEMOS/PR_m_04_dis01a", "NEU/m_04_neu02b",
    "DEMOS/NP_m_05_sor04a", "DEMOS/NP_m_05_sad01a",
    "DEMOS/PR_m_06_gui01a", "DEMOS/NP_m_06_hap05c",
]


def make_demos(root: pathlib.Path) -> pathlib.Path:
    for name in DEMOS_FILES:
        audio(root / f"{name}.wav")
    return root


def test_demos_seven_classes_and_partition(tmp_path):
    root = make_demos(tmp_path)
    manifest = load_quietly("demos", root)
    check_common(manifest, "demos", root)
    assert manifest.labels == ("anger", "disgust", "fear", "guilt", "happiness", "sadness", "surprise")
    assert len(manifest) == 11  # the two neutral samples are left out, as in Ren et al.
    assert manifest.label_counts() == {"anger": 2, "sadness": 2, "happiness": 2, "guilt": 2, "fear": 1,
                                       "disgust": 1, "surprise": 1}
    utts = by_id(manifest)
    assert (utts["NP_m_03_ang07b"].label, utts["NP_m_03_ang07b"].original_label) == ("anger", "ang")
    assert (utts["PR_f_01_rab01a"].label, utts["PR_f_01_rab01a"].original_label) == ("anger", "rab")
    assert (utts["PR_f_02_col01b"].speaker, utts["PR_f_02_col01b"].gender) == ("02", "F")
    assert utts["PR_f_02_col01b"].extra == {"prototypicality": "PR"}
    assert collections.Counter(u.gender for u in manifest) == {"F": 4, "M": 7}
    # 6 speakers: Ren et al.'s 24/22/22 scaled to 2/2/2, one partition per speaker
    partition = {u.speaker: u.session for u in manifest}
    assert sorted(partition) == ["01", "02", "03", "04", "05", "06"]
    assert collections.Counter(partition.values()) == {"train": 2, "dev": 2, "test": 2}
    assert all(u.session == partition[u.speaker] for u in manifest)
    assert {u.speaker: u.session for u in load_quietly("demos", root)} == partition  # deterministic
    by_seed = {tuple(sorted({u.speaker: u.session for u in load_quietly("demos", root, seed=s)}.items()))
               for s in range(8)}
    assert len(by_seed) > 1  # the seed changes the partition
    eight = load_quietly("demos", root, label_set="demos8")
    assert len(eight) == 13 and by_id(eight)["f_01_neu01a"].label == "neutral"
    assert "prototypicality" not in by_id(eight)["f_01_neu01a"].extra
    assert {u.speaker: u.session for u in eight} == partition  # partition ignores the label set
    prototypical = load_quietly("demos", root, subset="prototypical")
    assert sorted(u.id for u in prototypical) == ["PR_f_01_rab01a", "PR_f_02_col01b", "PR_m_03_pau02a",
                                                  "PR_m_04_dis01a", "PR_m_06_gui01a"]
    four = load_quietly("demos", root, label_set="emotions4")
    assert four.label_counts() == {"angry": 2, "sad": 2, "happy": 2, "neutral": 2}


def test_demos_partition_file(tmp_path):
    root = make_demos(tmp_path / "corpus")
    given = {"01": "test", "02": "train", "03": "train", "04": "dev", "05": "dev", "06": "train"}
    csv = text(tmp_path / "split.csv", "speaker,partition\n" + "".join(
        f"{int(s)},{p}\n" for s, p in given.items()))  # "1" matches speaker "01"
    manifest = load_quietly("demos", root, partition_file=csv)
    assert {u.speaker: u.session for u in manifest} == given
    text(csv, "speaker,partition\n01,test\n02,train\n")
    with pytest.raises(DataError, match=r"has no line for speaker\(s\) 03, 04, 05, 06"):
        load_corpus("demos", root, partition_file=csv)
    text(csv, "speaker,partition\n01,validation\n")
    with pytest.raises(DataError, match=r"split.csv:2: partition 'validation' is not one of train, dev, test"):
        load_corpus("demos", root, partition_file=csv)
    text(csv, "speaker;partition\n01;test\n")
    with pytest.raises(DataError, match=r"expected the header 'speaker,partition'"):
        load_corpus("demos", root, partition_file=csv)


def test_demos_errors(tmp_path):
    root = make_demos(tmp_path)
    audio(root / "DEMOS/PR_f_07_xyz01a.wav")
    with pytest.raises(DataError, match=r"DEMoS file PR_f_07_xyz01a.wav: unknown demos label code 'xyz'"):
        load_corpus("demos", root)
    (root / "DEMOS/PR_f_07_xyz01a.wav").unlink()
    audio(root / "DEMOS/PR_m_01_tri03a.wav")
    with pytest.raises(DataError, match=r"speaker 01 appears as both genders"):
        load_corpus("demos", root)
    (root / "DEMOS/PR_m_01_tri03a.wav").unlink()
    for name in DEMOS_FILES:
        if "_0" in name and not any(f"_{s}_" in name for s in ("01", "02")):
            (root / f"{name}.wav").unlink()
    with pytest.raises(DataError, match=r"cannot split 2 speaker\(s\) into 3 speaker-independent partitions"):
        load_corpus("demos", root)


def test_speaker_partition_has_ren_sizes_and_balances_gender():
    speakers = {f"{i:02d}": "F" if i % 3 == 0 else "M" for i in range(1, 70) if i != 35}  # 68: 23 F, 45 M
    assert collections.Counter(speakers.values()) == {"F": 23, "M": 45}
    partition = speaker_partition(speakers, seed=0)
    assert collections.Counter(partition.values()) == {"train": 24, "dev": 22, "test": 22}
    females = collections.Counter(p for s, p in partition.items() if speakers[s] == "F")
    assert sorted(females.values()) == [7, 8, 8]
    assert partition == speaker_partition(dict(reversed(list(speakers.items()))), seed=0)
    assert partition != speaker_partition(speakers, seed=1)
    with pytest.raises(DataError, match=r"cannot split 2 speaker\(s\) into 3"):
        speaker_partition({"01": "F", "02": "M"})


# --- LibriSpeech ---------------------------------------------------------------------------

SPEAKERS_TXT = """; Some speakers
;ID  |SEX| SUBSET           |MINUTES| NAME
19   | F | train-clean-100  | 25.19 | Kara Shallenberg
60   | M | train-clean-100  | 20.18 | |CBW|Simon
84   | F | dev-clean        |  8.02 | Christie Nowak
"""


def make_librispeech(root: pathlib.Path) -> pathlib.Path:
    corpus = root / "LibriSpeech"
    text(corpus / "SPEAKERS.TXT", SPEAKERS_TXT)
    for utt in ("0000", "0001", "0002"):
        audio(corpus / f"train-clean-100/19/198/19-198-{utt}.flac", 0.2)
    text(corpus / "train-clean-100/19/198/19-198.trans.txt",
         "19-198-0000 NORTHANGER ABBEY\n19-198-0001 CHAPTER ONE\n")  # no line for 0002
    audio(corpus / "dev-clean/84/121123/84-121123-0000.flac")
    text(corpus / "dev-clean/84/121123/84-121123.trans.txt", "84-121123-0000 GO DO YOU HEAR\n")
    audio(corpus / "dev-clean/84/121123/85-121123-0001.flac")  # speaker field disagrees with the folder
    return corpus


def test_librispeech_unlabelled_with_transcripts(tmp_path):
    corpus = make_librispeech(tmp_path)
    with pytest.warns(CorpusWarning, match=r"1 utterance\(s\) without a transcript line .*19-198-0002.flac"):
        manifest = load_corpus("librispeech", tmp_path)
    check_common(manifest, "librispeech", corpus)
    assert manifest.labels is None
    assert {u.id: (u.speaker, u.gender, u.session, u.text) for u in manifest} == {
        "19-198-0000": ("19", "F", "train-clean-100", "NORTHANGER ABBEY"),
        "19-198-0001": ("19", "F", "train-clean-100", "CHAPTER ONE"),
        "84-121123-0000": ("84", "F", "dev-clean", "GO DO YOU HEAR")}
    assert all(u.label is None and u.original_label is None for u in manifest)
    assert by_id(manifest)["19-198-0000"].extra == {"chapter": "198"}
    with pytest.warns(CorpusWarning):
        dev = load_corpus("librispeech", corpus, subsets=["dev-clean"])
    assert [u.id for u in dev] == ["84-121123-0000"]
    with pytest.raises(ConfigError, match=r"unknown subset\(s\) train-clean-50"):
        load_corpus("librispeech", corpus, subsets=["train-clean-50"])
    with pytest.raises(DataError, match=r"subset folder\(s\) test-clean not found"):
        load_corpus("librispeech", corpus, subsets=["test-clean"])


# --- all corpora ---------------------------------------------------------------------------

EXPECTED = {
    "iemocap": "Session{1..5}/sentences/wav/<dialog>/<turn>.wav",
    "msp_improv": "Audio/session{1..6}/<S01A>/<S|R|P|T>/MSP-IMPROV-S01A-F01-S-FM01.wav",
    "emodb": "wav/03a01Fa.wav",
    "ravdess": "Actor_01/03-01-05-01-02-01-01.wav",
    "crema_d": "AudioWAV/1001_DFA_ANG_XX.wav",
    "demos": "NP_m_27_rab07b.wav",
    "librispeech": "train-clean-100/19/198/19-198-0001.flac",
}


def test_registry():
    assert corpus_names() == ["iemocap", "msp_improv", "emodb", "ravdess", "crema_d", "demos", "librispeech"]
    assert set(EXPECTED) == set(CORPORA)
    with pytest.raises(DataError, match=r"unknown corpus 'tess'; known corpora: iemocap, msp_improv, emodb, "
                                        r"ravdess, crema_d, demos, librispeech"):
        load_corpus("tess", "/nowhere")
    with pytest.raises(DataError, match=r"corpus 'emodb' has no option\(s\) seed; its options: label_set, labels_config"):
        load_corpus("emodb", "/nowhere", seed=1)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_missing_root(name, tmp_path):
    with pytest.raises(DataError, match=rf"{name} root .*missing does not exist; pass the folder"):
        load_corpus(name, tmp_path / "missing")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_wrong_layout_names_the_expected_pattern(name, tmp_path):
    audio(tmp_path / "some" / "file.wav")
    pattern = re.escape(EXPECTED[name])
    with pytest.raises(DataError, match=rf"no {name} files found under .*: expected .*{pattern}"):
        load_corpus(name, tmp_path)


def test_a_loaded_manifest_round_trips(tmp_path):
    manifest = load_quietly("demos", make_demos(tmp_path / "demos"))
    path = write_manifest(tmp_path / "demos.jsonl", manifest)
    assert list(read_manifest(path, labels=manifest.labels)) == list(manifest)


# --- config/corpora.yaml -------------------------------------------------------------------

def test_shipped_label_config():
    config = load_corpora_config(ROOT / "config" / "corpora.yaml")
    assert set(config) == set(CORPORA) - {"librispeech"}
    for name, corpus in config.items():
        assert corpus.label_set().labels == (
            ("anger", "disgust", "fear", "guilt", "happiness", "sadness", "surprise") if name == "demos" else EMOTIONS)
    iemocap = config["iemocap"].label_set("emotions4")
    assert {code: iemocap.mapping[code] for code in ("hap", "exc", "fru")} == {"hap": "happy", "exc": "happy", "fru": None}
    assert {name: corpus.dimension_scale for name, corpus in config.items() if corpus.dimension_scale != (-1, 1)} == {
        "iemocap": (1.0, 5.0), "msp_improv": (1.0, 5.0)}  # the corpora with dimensional ratings


GOOD_SECTION = """
emodb:
  codes: {W: anger, N: neutral}
  default_label_set: two
  label_sets:
    two:
      labels: [angry, neutral]
      map: {W: angry, N: neutral}
"""


@pytest.mark.parametrize("edit, message", [
    (("map: {W: angry, N: neutral}", "map: {W: angry}"), r"label set 'two', map: code\(s\) N not mapped"),
    (("map: {W: angry, N: neutral}", "map: {W: angry, N: calm}"), r"maps to 'calm', which is not in labels"),
    (("map: {W: angry, N: neutral}", "map: {W: angry, N: neutral, X: null}"), r"code 'X' is not among the corpus' codes"),
    (("codes: {W: anger, N: neutral}", "codes: {W: anger, N: neutral, 01: x}"),
     r"code 1 must be a non-empty string \(quote numeric"),
    (("default_label_set: two", "default_label_set: three"), r"default_label_set 'three' is not one of its label sets"),
    (("default_label_set: two", "default: two"), r"unknown key\(s\) default; missing key\(s\) default_label_set"),
    (("labels: [angry, neutral]", "labels: [angry, neutral, angry]"), r"'labels' lists a label twice"),
    (("labels: [angry, neutral]", "labels: [angry, neutral, sad]"), r"label\(s\) sad have no code mapped"),
    (("default_label_set: two", "default_label_set: two\n  dimension_scale: [5, 1]"),
     r"'dimension_scale' must be \[low, high\] with low < high, got \[5, 1\]"),
    (("default_label_set: two", "default_label_set: two\n  dimension_scale: 5"), r"'dimension_scale' must be"),
])
def test_label_config_errors(tmp_path, edit, message):
    path = text(tmp_path / "corpora.yaml", GOOD_SECTION.replace(*edit))
    with pytest.raises(ConfigError, match=message):
        load_corpora_config(path)


def test_loader_uses_another_label_file(tmp_path):
    root = make_emodb(tmp_path / "emodb")
    section = (GOOD_SECTION
               .replace("codes: {W: anger, N: neutral}",
                        "codes: {W: anger, N: neutral, F: joy, T: sadness, L: boredom, E: disgust, A: fear}")
               .replace("map: {W: angry, N: neutral}",
                        "map: {W: angry, N: neutral, F: null, T: null, L: null, E: null, A: null}"))
    labels = text(tmp_path / "corpora.yaml", section)
    with pytest.warns(CorpusWarning):
        manifest = load_corpus("emodb", root, labels_config=labels)
    assert manifest.labels == ("angry", "neutral")
    assert {u.id: u.label for u in manifest} == {"08a02Wb": "angry", "09b03Nc": "neutral"}
    with pytest.raises(ConfigError, match=r"has no section for corpus 'ravdess'; sections: emodb"):
        load_corpus("ravdess", make_ravdess(tmp_path / "ravdess"), labels_config=labels)
    with pytest.raises(ConfigError, match=r"corpora label file .*nothing.yaml does not exist"):
        load_corpus("emodb", root, labels_config=tmp_path / "nothing.yaml")


def test_cli_writes_a_corpus_manifest(tmp_path):
    from conftest import ser_robot

    root = make_emodb(tmp_path / "emodb")
    out = tmp_path / "emodb.jsonl"
    result = ser_robot("corpus-manifest", "emodb", str(root), "--out", str(out), "--option", "label_set=emodb7")
    assert result.returncode == 0, result.stderr
    assert "emodb: 7 utterances, 7 speakers" in result.stdout and "skipped 2 file(s)" in result.stderr
    assert len(read_manifest(out)) == 7
    result = ser_robot("corpus-manifest", "emodb", str(root), "--out", str(out), "--option", "speed=2")
    assert result.returncode == 2 and "corpus 'emodb' has no option(s) speed" in result.stderr
