"""Speaker-independent splits on in-memory manifests (no audio files needed)."""

from __future__ import annotations

import collections
import itertools

import pytest

from ser_robot.data.manifest import EMOTIONS, Manifest, Utterance
from ser_robot.data.splits import (
    Fold,
    check_speaker_independent,
    cross_corpus,
    labelled_fraction,
    leave_one_session_out,
    leave_one_speaker_out,
    predefined,
)
from ser_robot.errors import SplitError


def utt(uid: str, speaker: str, corpus: str = "iemocap", label: str | None = "neutral", session: str | None = None,
        gender: str | None = None) -> Utterance:
    return Utterance(id=uid, path=f"/data/{corpus}/{uid}.wav", speaker=speaker, corpus=corpus, duration_s=2.0,
                     sample_rate=16000, label=label, session=session, gender=gender)


def iemocap_like(per_speaker: int = 8) -> Manifest:
    """5 sessions x (F, M) speakers, ``per_speaker`` utterances each, labels cycling over EMOTIONS."""
    items = []
    for number in range(1, 6):
        for gender in ("F", "M"):
            speaker = f"Ses0{number}{gender}"
            for index in range(per_speaker):
                items.append(utt(f"{speaker}_{index:03d}", speaker, label=EMOTIONS[index % 4],
                                 session=f"Session{number}", gender=gender))
    return Manifest(items, EMOTIONS)


def corpus(name: str, genders: dict[str, str | None], per_speaker: int = 3) -> Manifest:
    return Manifest([utt(f"{name}_{s}_{i}", s, corpus=name, gender=g) for s, g in genders.items()
                     for i in range(per_speaker)])


def ids(manifest: Manifest) -> set[str]:
    return {u.id for u in manifest}


# --- Fold and the leak check --------------------------------------------------------------------


def test_fold_rejects_a_speaker_in_two_parts():
    m = iemocap_like()
    train = m.filter(lambda u: u.speaker != "Ses01F")
    test = m.filter(lambda u: u.speaker in ("Ses01F", "Ses02M"))
    with pytest.raises(SplitError, match=r"'Ses02M' in train and test"):
        Fold("leaky", train, Manifest([]), test)
    with pytest.raises(SplitError, match=r"'Ses02M' in train and validation"):
        Fold("leaky", m.filter(lambda u: u.speaker == "Ses02M"), m.filter(lambda u: u.speaker == "Ses02M"),
             m.filter(lambda u: u.speaker == "Ses01F"))


def test_fold_rejects_a_shared_utterance_id():
    train = Manifest([utt("a1", "A"), utt("x", "A")])
    test = Manifest([utt("x", "B")])
    with pytest.raises(SplitError, match=r"utterance id.*'x' in train and test"):
        Fold("dup", train, Manifest([]), test)


def test_fold_rejects_empty_parts_and_wrong_types():
    m = iemocap_like()
    with pytest.raises(SplitError, match="test part is empty"):
        Fold("f", m, Manifest([]), Manifest([]))
    with pytest.raises(SplitError, match="validation must be a Manifest, got list"):
        Fold("f", m, [], m)  # type: ignore[arg-type]


def test_check_speaker_independent_names_parts():
    a = Manifest([utt("1", "A"), utt("2", "B")])
    b = Manifest([utt("3", "B")])
    check_speaker_independent(a, Manifest([utt("4", "C")]))
    with pytest.raises(SplitError, match=r"'B' in part 1 and part 2"):
        check_speaker_independent(a, b)
    with pytest.raises(SplitError, match=r"'B' in src and tgt"):
        check_speaker_independent(a, b, names=("src", "tgt"))
    with pytest.raises(SplitError, match="one name per part"):
        check_speaker_independent(a, b, names=("only",))


def test_summary_counts_per_part():
    fold = leave_one_speaker_out(iemocap_like())[0]
    summary = fold.summary()
    assert summary["test"]["speakers"] == ["Ses01F"] and summary["test"]["utterances"] == 8
    assert summary["validation"]["speakers"] == ["Ses01M"]
    assert summary["train"]["utterances"] == 64 and summary["train"]["labels"] == {e: 16 for e in EMOTIONS}
    assert summary["train"]["duration_s"] == 128.0


# --- leave-one-speaker-out -----------------------------------------------------------------------


def test_loso_partner_is_lakomkin_protocol():
    m = iemocap_like()
    folds = leave_one_speaker_out(m, validation="partner")
    assert len(folds) == 10
    assert [f.name for f in folds[:3]] == ["test=Ses01F,val=Ses01M", "test=Ses01M,val=Ses01F", "test=Ses02F,val=Ses02M"]
    for fold, speaker in zip(folds, m.speakers):
        assert fold.test.speakers == [speaker]
        partner = speaker[:-1] + ("M" if speaker.endswith("F") else "F")
        assert fold.validation.speakers == [partner]
        assert set(fold.train.speakers) == set(m.speakers) - {speaker, partner}  # four sessions train
        assert len(fold.train) + len(fold.validation) + len(fold.test) == len(m)
    tested = collections.Counter(u.id for f in folds for u in f.test)
    assert set(tested) == ids(m) and set(tested.values()) == {1}


def test_loso_next_and_none():
    m = iemocap_like()
    nxt = leave_one_speaker_out(m, validation="next")
    assert [f.validation.speakers for f in nxt] == [[s] for s in m.speakers[1:] + m.speakers[:1]]
    assert nxt[-1].name == "test=Ses05M,val=Ses01F"
    none = leave_one_speaker_out(m, validation="none")
    assert all(len(f.validation) == 0 and len(f.train) == len(m) - 8 for f in none)
    assert none[0].name == "test=Ses01F"


def test_loso_subset_of_test_speakers():
    folds = leave_one_speaker_out(iemocap_like(), test_speakers=["Ses03M"])
    assert [f.name for f in folds] == ["test=Ses03M,val=Ses03F"]
    with pytest.raises(SplitError, match=r"\['nobody'\] are not in the manifest"):
        leave_one_speaker_out(iemocap_like(), test_speakers=["nobody"])


def test_loso_partner_errors_name_the_session_or_speaker():
    lonely = Manifest([utt("a", "A", session="S1"), utt("b", "B", session="S1"), utt("c", "C", session="S2"),
                       utt("d", "D", session="S3"), utt("e", "E", session="S3")])
    with pytest.raises(SplitError, match=r"session 'S2' of speaker 'C' has no other speaker.*validation='next'"):
        leave_one_speaker_out(lonely)
    no_session = Manifest([utt("a", "A"), utt("b", "B"), utt("c", "C")])
    with pytest.raises(SplitError, match=r"speaker 'A' has utterances without a session"):
        leave_one_speaker_out(no_session)
    assert len(leave_one_speaker_out(no_session, validation="next")) == 3
    spread = Manifest([utt("a", "A", session="S1"), utt("a2", "A", session="S2"), utt("b", "B", session="S1"),
                       utt("c", "C", session="S2")])
    with pytest.raises(SplitError, match=r"'A' appears in several sessions \['S1', 'S2'\]"):
        leave_one_speaker_out(spread)


def test_loso_bad_arguments():
    m = iemocap_like()
    with pytest.raises(SplitError, match=r"validation must be one of \['partner', 'none', 'next'\], got 'random'"):
        leave_one_speaker_out(m, validation="random")  # type: ignore[arg-type]
    with pytest.raises(SplitError, match="needs at least 3 speakers"):
        leave_one_speaker_out(m.filter(lambda u: u.session == "Session1"))
    with pytest.raises(SplitError, match="manifest is empty"):
        leave_one_speaker_out(Manifest([]))


# --- leave-one-session-out -----------------------------------------------------------------------


def test_loso_session():
    m = iemocap_like()
    folds = leave_one_session_out(m)
    assert len(folds) == 5 and folds[0].name == "test=Session1"
    assert folds[2].test.speakers == ["Ses03F", "Ses03M"]
    tested = collections.Counter(u.id for f in folds for u in f.test)
    assert set(tested) == ids(m) and set(tested.values()) == {1}
    nxt = leave_one_session_out(m, validation="next")
    assert nxt[4].name == "test=Session5,val=Session1"
    assert nxt[4].validation.speakers == ["Ses01F", "Ses01M"] and len(nxt[4].train) == 3 * 16


def test_loso_session_errors():
    spread = Manifest([utt("a", "A", session="S1"), utt("a2", "A", session="S2"), utt("b", "B", session="S3")])
    with pytest.raises(SplitError, match=r"several sessions would leak.*'A': \['S1', 'S2'\]"):
        leave_one_session_out(spread)
    with pytest.raises(SplitError, match=r"\['B'\] have utterances without a session"):
        leave_one_session_out(Manifest([utt("a", "A", session="S1"), utt("b", "B")]))
    with pytest.raises(SplitError, match="needs at least 3 sessions"):
        leave_one_session_out(iemocap_like().filter(lambda u: u.session in ("Session1", "Session2")), "next")


# --- predefined ----------------------------------------------------------------------------------


def demos_like() -> Manifest:
    parts = {"train": ["s1", "s2", "s3"], "dev": ["s4"], "test": ["s5", "s6"]}
    return Manifest([utt(f"{s}_{i}", s, corpus="demos", session=part) for part, speakers in parts.items()
                     for s in speakers for i in range(2)])


def test_predefined_partition():
    fold = predefined(demos_like())
    assert (fold.train.speakers, fold.validation.speakers, fold.test.speakers) == (["s1", "s2", "s3"], ["s4"],
                                                                                   ["s5", "s6"])
    assert fold.name == "session:train=train,val=dev,test=test"
    no_val = predefined(demos_like().filter(lambda u: u.session != "dev"), validation=None)
    assert len(no_val.validation) == 0


def test_predefined_errors():
    m = demos_like()
    with pytest.raises(SplitError, match=r"no utterance has session='valid' for the validation part"):
        predefined(m, validation="valid")
    with pytest.raises(SplitError, match=r"outside \['train', 'test'\]: \{'dev': 2\}"):
        predefined(m, validation=None)
    leaky = Manifest(list(m) + [utt("s1_test", "s1", corpus="demos", session="test")])
    with pytest.raises(SplitError, match=r"'s1' in train and test"):
        predefined(leaky)


# --- cross-corpus --------------------------------------------------------------------------------


EMODB_GENDERS = {f"emodb{i:02d}": ("F" if i % 2 else "M") for i in range(10)}


def test_cross_corpus_splits_target_by_speaker_gender_balanced():
    source, target = iemocap_like(), corpus("emodb", EMODB_GENDERS)
    fold = cross_corpus(source, target)
    assert fold.train is source
    assert len(fold.validation.speakers) == 3 and len(fold.test.speakers) == 7
    assert ids(fold.validation) | ids(fold.test) == ids(target)
    assert not set(fold.validation.speakers) & set(fold.test.speakers)
    for seed in range(20):  # 3 of 5F+5M: always 2+1, never 3+0
        genders = collections.Counter(EMODB_GENDERS[s] for s in cross_corpus(source, target, seed=seed).validation.speakers)
        assert sorted(genders.values()) == [1, 2]
    big = corpus("big", {f"b{i:02d}": ("F" if i < 10 else "M") for i in range(20)}, per_speaker=1)
    for seed in range(5):
        genders = collections.Counter(u.gender for u in cross_corpus(source, big, seed=seed).validation)
        assert genders == {"F": 3, "M": 3}
    assert len(cross_corpus(source, big, selection_fraction=0.5).validation.speakers) == 10


def test_cross_corpus_is_deterministic_per_seed():
    source, target = iemocap_like(), corpus("emodb", EMODB_GENDERS)
    chosen = [tuple(cross_corpus(source, target, seed=s).validation.speakers) for s in range(10)]
    assert chosen == [tuple(cross_corpus(source, target, seed=s).validation.speakers) for s in range(10)]
    assert len(set(chosen)) > 3
    reordered = Manifest(reversed(list(target)))
    assert set(cross_corpus(source, reordered, seed=4).validation.speakers) == set(chosen[4])


def test_cross_corpus_without_genders_and_extremes():
    source = iemocap_like()
    fold = cross_corpus(source, corpus("x", {"a": None, "b": None}), selection_fraction=0.01)
    assert len(fold.validation.speakers) == 1 and len(fold.test.speakers) == 1
    fold = cross_corpus(source, corpus("x", {"a": None, "b": None, "c": None}), selection_fraction=0.99)
    assert len(fold.validation.speakers) == 2 and len(fold.test.speakers) == 1


def test_cross_corpus_errors():
    source = iemocap_like()
    with pytest.raises(SplitError, match=r"target corpus has 1 speaker\(s\) \['a'\]"):
        cross_corpus(source, corpus("x", {"a": "F"}))
    with pytest.raises(SplitError, match=r"speaker id\(s\) \['Ses01F'\] appear in both"):
        cross_corpus(source, corpus("x", {"Ses01F": "F", "b": "M"}))
    for bad in (0, 1, 1.5, -0.2, True, "0.3"):
        with pytest.raises(SplitError, match="selection_fraction must be a number strictly between 0 and 1"):
            cross_corpus(source, corpus("x", EMODB_GENDERS), selection_fraction=bad)  # type: ignore[arg-type]
    mixed = Manifest([utt("a1", "a", corpus="x", gender="F"), utt("a2", "a", corpus="x", gender="M"),
                      utt("b1", "b", corpus="x", gender="M")])
    with pytest.raises(SplitError, match=r"different genders: \{'a': \['F', 'M'\]\}"):
        cross_corpus(source, mixed)


# --- labelled fraction ---------------------------------------------------------------------------


def test_labelled_fraction_is_stratified_by_label_and_speaker():
    m = iemocap_like(per_speaker=40)  # 400 utterances, 100 per label, 10 per label and speaker
    for fraction in (0.1, 0.25, 0.5, 0.8):
        labelled, rest = labelled_fraction(m, fraction, seed=3)
        assert len(labelled) == round(fraction * 400) and len(labelled) + len(rest) == 400
        assert not ids(labelled) & ids(rest)
        for label, count in labelled.label_counts().items():
            assert abs(count - fraction * 100) <= 1, (fraction, label, count)
        per_speaker = collections.Counter(u.speaker for u in labelled)
        assert all(abs(n - fraction * 40) <= 2 for n in per_speaker.values()), per_speaker
        assert [u.id for u in labelled] == [u.id for u in m if u.id in ids(labelled)]  # manifest order kept


def test_labelled_fraction_is_nested_and_deterministic():
    m = iemocap_like(per_speaker=20)
    fractions = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 0.86, 1.0)
    sets = [ids(labelled_fraction(m, f, seed=7)[0]) for f in fractions]
    assert all(small < large for small, large in itertools.pairwise(sets))
    assert sets[-1] == ids(m)
    assert sets == [ids(labelled_fraction(m, f, seed=7)[0]) for f in fractions]
    assert ids(labelled_fraction(m, 0.3, seed=8)[0]) != sets[3]
    shuffled = Manifest(sorted(m, key=lambda u: u.id[::-1]), EMOTIONS)
    assert ids(labelled_fraction(shuffled, 0.3, seed=7)[0]) == sets[3]


def test_labelled_fraction_leaves_unlabelled_speech_in_the_rest():
    m = Manifest(list(iemocap_like(per_speaker=4)) + [utt(f"libri{i}", "libri", label=None) for i in range(5)])
    labelled, rest = labelled_fraction(m, 0.5)
    assert len(labelled) == 20 and all(u.label is not None for u in labelled)
    assert {f"libri{i}" for i in range(5)} <= ids(rest)
    assert len(labelled_fraction(m, 0.001)[0]) == 1


def test_labelled_fraction_errors():
    m = iemocap_like()
    for bad in (0, -0.1, 1.01, float("nan"), True, None):
        with pytest.raises(SplitError, match=r"fraction must be a number in \(0, 1\]"):
            labelled_fraction(m, bad)  # type: ignore[arg-type]
    with pytest.raises(SplitError, match="no labelled utterance"):
        labelled_fraction(Manifest([utt("a", "A", label=None)]), 0.5)
