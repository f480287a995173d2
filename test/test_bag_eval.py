import json

import numpy as np
import pytest

from conftest import ser_robot
from ser_robot.bag import BagWriter, ser_robot_typestore
from ser_robot.errors import BagError, DataError
from ser_robot.eval.bag_eval import MISS, evaluate_bag
from ser_robot.eval.bag_report import write_bag_report
from ser_robot.metrics import macro_f1

LABELS = ("angry", "happy", "neutral", "sad")
EMOTION = "ser_robot_msgs/msg/Emotion"
T0_NS = 1_700_000_000 * 10**9  # a realistic ROS time
MODEL = "cnn:0123abcd"


def _ns(offset_s: float) -> int:
    return T0_NS + round(offset_s * 1e9)


def _emotion(start_s: float, end_s: float, probabilities=None, *, label: str = "", final: bool = True,
             model_id: str = MODEL, labels=LABELS):
    """An Emotion message over [start_s, end_s] (s after T0); no ``probabilities`` = no speech."""
    types = ser_robot_typestore().types
    Time, Header = types["builtin_interfaces/msg/Time"], types["std_msgs/msg/Header"]

    def time(offset_s: float):
        return Time(sec=_ns(offset_s) // 10**9, nanosec=_ns(offset_s) % 10**9)

    speech = probabilities is not None
    probs = np.asarray(probabilities if speech else np.zeros(len(labels)), dtype=np.float32)
    if speech and not label:
        label = labels[int(np.argmax(probs))]
    return types[EMOTION](
        header=Header(stamp=time(end_s), frame_id="head"), source_id="audio",
        window_start=time(start_s), window_end=time(end_s), final=final, speech=speech,
        speech_probability=0.9 if speech else 0.1, label=label, confidence=float(probs.max()),
        labels=list(labels), probabilities=probs, arousal=float("nan"), valence=float("nan"), model_id=model_id)


def _one_hot(label: str, p: float = 0.9) -> list[float]:
    rest = (1 - p) / (len(LABELS) - 1)
    return [p if name == label else rest for name in LABELS]


def _truth(utterance_id: str, label: str, start_s: float, end_s: float):
    return _emotion(start_s, end_s, _one_hot(label, 1.0), label=label, model_id=f"ground_truth:{utterance_id}")


def _write_bag(path, truths, results, emotion_topic="/emotion", ground_truth_topic="/ground_truth"):
    """``truths``: (id, label, start_s, end_s); ``results``: (message, receive time in s after T0)."""
    with BagWriter(path) as writer:
        for utterance_id, label, start_s, end_s in truths:
            writer.write_message(ground_truth_topic, EMOTION, _ns(start_s), _truth(utterance_id, label, start_s, end_s))
        for message, receive_s in results:
            writer.write_message(emotion_topic, EMOTION, _ns(receive_s), message)
    return path


def _utterance_results(spans, predicted, delay_s=0.1):
    """One final result per span, predicting ``predicted[i]``, received ``delay_s`` after its end."""
    return [(_emotion(start, end, _one_hot(label)), end + delay_s) for (start, end), label in zip(spans, predicted)]


SPANS = [(1.0, 3.0), (4.0, 6.5), (7.5, 9.0), (10.0, 12.0), (13.0, 14.5), (15.5, 17.0)]


def test_perfect_predictions_give_uar_one(tmp_path):
    truths = [(f"u{i}", label, *span) for i, (label, span) in enumerate(zip(LABELS, SPANS))]
    # the VAD segments start a little late and end a little early
    results = _utterance_results([(s + 0.1, e - 0.05) for s, e in SPANS[:4]], LABELS)
    evaluation = evaluate_bag(_write_bag(tmp_path / "bag", truths, results))
    assert evaluation.mode == "utterance"
    assert evaluation.emotion_topic == "/emotion" and evaluation.ground_truth_topic == "/ground_truth"
    assert evaluation.labels == LABELS and evaluation.model_ids == (MODEL,)
    assert evaluation.overall.uar == 1.0 and evaluation.overall.accuracy == 1.0
    assert evaluation.overall.macro_f1 == pytest.approx(1.0)
    assert evaluation.coverage == 1.0 and evaluation.false_alarms == ()
    np.testing.assert_array_equal(evaluation.confusion, np.hstack([np.eye(4, dtype=int), np.zeros((4, 1), int)]))
    assert evaluation.matched.uar == 1.0
    assert [m.ground_truth.id for m in evaluation.matches] == ["u0", "u1", "u2", "u3"]


def test_known_confusion_gives_exact_matrix(tmp_path):
    true = ["angry", "angry", "happy", "neutral", "sad", "sad"]
    predicted = ["angry", "happy", "happy", "sad", "sad", "neutral"]
    truths = [(f"u{i}", label, *span) for i, (label, span) in enumerate(zip(true, SPANS))]
    evaluation = evaluate_bag(_write_bag(tmp_path / "bag", truths, _utterance_results(SPANS, predicted)))
    expected = [[1, 1, 0, 0, 0],
                [0, 1, 0, 0, 0],
                [0, 0, 0, 1, 0],
                [0, 0, 1, 1, 0]]
    np.testing.assert_array_equal(evaluation.confusion, expected)
    assert evaluation.overall.uar == pytest.approx((0.5 + 1 + 0 + 0.5) / 4)
    assert evaluation.overall.accuracy == pytest.approx(0.5)
    assert evaluation.overall.macro_f1 == pytest.approx(macro_f1(true, predicted, LABELS))
    assert evaluation.overall.recall == {"angry": 0.5, "happy": 1.0, "neutral": 0.0, "sad": 0.5}
    assert evaluation.matched == evaluation.overall


def test_utterance_mode_takes_the_largest_overlap_ties_to_the_later(tmp_path):
    truths = [("split", "happy", 1.0, 5.0), ("tie", "sad", 10.0, 12.0)]
    results = [
        (_emotion(1.0, 2.0, _one_hot("angry")), 2.1),  # 1 s of the utterance
        (_emotion(2.3, 5.0, _one_hot("happy")), 5.1),  # 2.7 s: chosen
        (_emotion(9.0, 11.0, _one_hot("neutral")), 11.1),  # 1 s
        (_emotion(11.0, 13.0, _one_hot("sad")), 13.1),  # 1 s, later: chosen
    ]
    evaluation = evaluate_bag(_write_bag(tmp_path / "bag", truths, results))
    assert [m.predicted for m in evaluation.matches] == ["happy", "sad"]
    assert [m.results for m in evaluation.matches] == [(1,), (3,)]


def test_interim_results_are_ignored(tmp_path):
    truths = [("u0", "angry", 1.0, 4.0)]
    results = [
        (_emotion(1.0, 2.0, _one_hot("sad"), final=False), 2.05),
        (_emotion(1.0, 3.0, _one_hot("sad"), final=False), 3.05),
        (_emotion(1.0, 4.0, _one_hot("angry")), 4.2),
        (_emotion(6.0, 6.5, _one_hot("sad"), final=False), 6.55),  # interim in the pause: no false alarm
    ]
    evaluation = evaluate_bag(_write_bag(tmp_path / "bag", truths, results))
    assert evaluation.matches[0].predicted == "angry" and evaluation.matches[0].results == (2,)
    assert evaluation.false_alarms == ()
    assert evaluation.latency["final"].count == 1 and evaluation.latency["interim"].count == 3
    assert evaluation.latency["interim"].max_ms == pytest.approx(50.0)


def test_window_mode_averages_the_windows_covering_half(tmp_path):
    truths = [("long", "happy", 10.0, 14.0), ("short", "sad", 20.5, 21.5)]
    probabilities = {
        8: [1.0, 0.0, 0.0, 0.0],  # overlaps 1 s < half the window: left out
        9: [0.55, 0.45, 0.0, 0.0],
        10: [0.55, 0.45, 0.0, 0.0],
        11: [0.55, 0.45, 0.0, 0.0],
        12: [0.0, 1.0, 0.0, 0.0],
        13: [1.0, 0.0, 0.0, 0.0],  # overlaps 1 s: left out
        17: [0.0, 0.0, 0.2, 0.8],  # the short utterance: windows holding half of it
        18: [0.0, 0.0, 0.2, 0.8],
        19: [0.0, 0.0, 0.6, 0.4],
        20: [0.0, 0.0, 0.2, 0.8],
        21: [0.0, 0.0, 0.2, 0.8],
    }
    results = [(_emotion(start, start + 3.0, probabilities.get(start)), start + 3.25) for start in range(0, 22)]
    evaluation = evaluate_bag(_write_bag(tmp_path / "bag", truths, results))
    assert evaluation.mode == "window"
    long, short = evaluation.matches
    assert long.results == (9, 10, 11, 12)
    np.testing.assert_allclose(long.probabilities, [0.4125, 0.5875, 0.0, 0.0], atol=1e-6)
    assert long.predicted == "happy"  # the mean decides, not the majority of windows
    assert short.results == (18, 19, 20, 21) and short.predicted == "sad"
    assert evaluation.n_non_speech == 22 - len(probabilities)
    assert evaluation.false_alarms == (17,)  # the window [17, 20] s overlaps no utterance
    assert evaluation.latency["final"].p50_ms == pytest.approx(250.0) and "interim" not in evaluation.latency


def test_misses_and_false_alarms_are_counted(tmp_path):
    truths = [("u0", "angry", 1.0, 3.0), ("u1", "happy", 4.0, 6.5), ("u2", "neutral", 7.5, 9.0)]
    results = _utterance_results([(1.0, 3.0), (4.0, 6.5)], ["angry", "happy"])
    results += [(_emotion(3.2, 3.8, _one_hot("sad")), 3.9), (_emotion(9.5, 9.9), 10.0)]  # speech in a pause, silence
    evaluation = evaluate_bag(_write_bag(tmp_path / "bag", truths, results))
    assert evaluation.coverage == pytest.approx(2 / 3) and evaluation.n_missed == 1
    assert evaluation.matches[2].predicted == MISS and evaluation.matches[2].results == ()
    assert evaluation.false_alarms == (1,)  # results are in receive order
    assert evaluation.n_non_speech == 1
    assert evaluation.confusion[2].tolist() == [0, 0, 0, 0, 1]
    assert evaluation.overall.accuracy == pytest.approx(2 / 3)
    assert evaluation.overall.uar == pytest.approx(2 / 3)  # recalls 1, 1, 0
    assert evaluation.overall.macro_f1 == pytest.approx(2 / 4)  # F1 1, 1, 0 and 0 for the absent sad
    assert evaluation.matched.count == 2 and evaluation.matched.accuracy == 1.0 and evaluation.matched.uar == 1.0


def test_no_speech_result_misses_everything(tmp_path):
    truths = [("u0", "angry", 1.0, 3.0), ("u1", "sad", 4.0, 5.0)]
    results = [(_emotion(start, start + 1.0), start + 1.1) for start in range(6)]
    evaluation = evaluate_bag(_write_bag(tmp_path / "bag", truths, results))
    assert evaluation.labels == ("angry", "sad") and evaluation.coverage == 0.0 and evaluation.matched is None
    assert evaluation.overall.uar == 0.0 and evaluation.confusion[:, -1].tolist() == [1, 1]
    report = write_bag_report(evaluation, tmp_path / "report").read_text()
    assert "| utterances | 2 | 0 |" in report


def test_latency_percentiles_from_receive_times(tmp_path):
    truths = [("u0", "angry", 0.0, 1.0)]
    # final results ending at 2 s, 4 s, ... received 10, 20, ..., 110 ms later, in shuffled order
    delays_ms = [70, 10, 110, 40, 20, 90, 60, 30, 100, 50, 80]
    results = [(_emotion(2.0 * k + 1.0, 2.0 * k + 2.0, _one_hot("sad")), 2.0 * k + 2.0 + d / 1000)
               for k, d in enumerate(delays_ms)]
    results += [(_emotion(0.0, 0.5 * k, _one_hot("angry"), final=False), 0.5 * k + 0.005) for k in (1, 2)]
    latency = evaluate_bag(_write_bag(tmp_path / "bag", truths, results)).latency
    final = latency["final"]
    assert final.count == 11
    assert (final.p50_ms, final.p90_ms, final.p99_ms, final.max_ms) == pytest.approx((60.0, 100.0, 109.0, 110.0))
    assert latency["interim"].count == 2 and latency["interim"].p99_ms == pytest.approx(5.0)


def test_namespaced_topics_are_found(tmp_path):
    bag = _write_bag(tmp_path / "bag", [("u0", "sad", 1.0, 2.0)], _utterance_results([(1.0, 2.0)], ["sad"]),
                     emotion_topic="/robot1/emotion", ground_truth_topic="/robot1/ground_truth")
    evaluation = evaluate_bag(bag)
    assert evaluation.emotion_topic == "/robot1/emotion" and evaluation.overall.accuracy == 1.0


def test_clear_errors(tmp_path):
    truths = [("u0", "angry", 1.0, 3.0)]
    results = _utterance_results([(1.0, 3.0)], ["angry"])
    bag = _write_bag(tmp_path / "bag", truths, results)
    with pytest.raises(BagError, match=r"bag .*bag has no emotion topic 'emo'.*/emotion, /ground_truth.*record"):
        evaluate_bag(bag, emotion_topic="emo")
    with pytest.raises(BagError, match="has no ground-truth topic 'truth'.*corpus player"):
        evaluate_bag(bag, ground_truth_topic="truth")
    with pytest.raises(BagError, match="does not exist"):
        evaluate_bag(tmp_path / "none")

    with BagWriter(tmp_path / "silent") as writer:
        writer.add_topic("/ground_truth", EMOTION)
        writer.write_message("/emotion", EMOTION, _ns(1.0), _emotion(0.0, 1.0))
    with pytest.raises(DataError, match="silent has no ground-truth message on /ground_truth"):
        evaluate_bag(tmp_path / "silent")

    other = _write_bag(tmp_path / "other", [("u0", "bored", 1.0, 3.0)], results)
    with pytest.raises(DataError, match="label sets differ.*bored.*angry, happy, neutral, sad"):
        evaluate_bag(other)

    with BagWriter(tmp_path / "audio") as writer:
        text = ser_robot_typestore().types["std_msgs/msg/String"](data="x")
        writer.write_message("/emotion", "std_msgs/msg/String", 1, text)
        writer.write_message("/ground_truth", EMOTION, _ns(1.0), _truth("u0", "angry", 0.0, 1.0))
    with pytest.raises(BagError, match="/emotion holds std_msgs/msg/String, not ser_robot_msgs/msg/Emotion"):
        evaluate_bag(tmp_path / "audio")


def test_report_files_in_utterance_mode(tmp_path):
    truths = [("u0", "angry", 1.0, 3.0), ("u1", "happy", 4.0, 6.5), ("u2", "neutral", 7.5, 9.0)]
    results = [(_emotion(1.0, 2.0, _one_hot("sad"), final=False), 2.05)]
    results += _utterance_results([(1.0, 3.0), (4.0, 6.5)], ["angry", "sad"])
    results.append((_emotion(3.2, 3.8, _one_hot("sad")), 3.9))  # a false alarm
    evaluation = evaluate_bag(_write_bag(tmp_path / "bag", truths, results))
    report = write_bag_report(evaluation, tmp_path / "report", command="ser-robot evaluate-bag bag")
    text = report.read_text()
    assert "| angry | 1 | 0 | 0 | 0 | 0 |" in text and "| neutral | 0 | 0 | 0 | 0 | 1 |" in text
    assert "`ser-robot evaluate-bag bag`" in text and MODEL in text and "1 missed; 1 false alarm(s)" in text
    assert "| interim | 1 |" in text
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["confusion_matrix"]["columns_predicted"][-1] == MISS
    assert metrics["all_ground_truth"]["recall"]["sad"] is None  # no sad utterance: no recall
    assert [u["predicted"] for u in metrics["utterances"]] == ["angry", "sad", MISS]
    for png in ("timeline.png", "confusion.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"


def test_cli_writes_the_report_folder(tmp_path):
    truths = [(f"u{i}", label, 3.0 * i + 1.0, 3.0 * i + 3.0) for i, label in enumerate(LABELS * 2)]
    results = []
    for k in range(0, 96, 2):  # windows of 3 s every 0.5 s (start = k / 4 s)
        start = k / 4
        centre = start + 1.5
        active = [t for t in truths if t[2] <= centre <= t[3]]
        probabilities = _one_hot(active[0][1], 0.7) if active else None
        results.append((_emotion(start, start + 3.0, probabilities), start + 3.12))
    bag = _write_bag(tmp_path / "run1", truths, results)
    done = ser_robot("evaluate-bag", str(bag))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "run1_report"
    assert "window mode" in done.stdout and "UAR" in done.stdout and "p99 120.0 ms" in done.stdout
    assert f"report: {out / 'report.md'}" in done.stdout
    for name in ("report.md", "metrics.json", "timeline.png", "confusion.png"):
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "window" and metrics["ground_truth_utterances"] == 8
    assert metrics["latency_ms"]["final"]["p50"] == pytest.approx(120.0)
    assert "ser-robot evaluate-bag" in (out / "report.md").read_text()

    failed = ser_robot("evaluate-bag", str(bag), "--emotion-topic", "results")
    assert failed.returncode == 2
    assert "ser-robot evaluate-bag: error: bag" in failed.stderr and "no emotion topic 'results'" in failed.stderr
