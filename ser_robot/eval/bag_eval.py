"""Evaluation of a recorded run: the ``emotion`` results of a bag against its ``ground_truth``.

The corpus player publishes one ground-truth Emotion per played utterance (``final``, window =
the utterance's span, ``label`` = the true class, ``model_id`` = ``ground_truth:<utterance id>``);
the inference node publishes its results on ``emotion``. Both are stamped on the same ROS clock.

Alignment rule, per ground-truth utterance, among the *final* results with ``speech`` true whose
window overlaps the utterance (interim results, ``final`` false, are never used):

* utterance mode (results' windows never overlap each other): the result with the largest
  overlap; ties go to the later result;
* window mode (sliding windows that overlap each other): the windows whose overlap with the
  utterance is at least half of the window, or half of the utterance when that is shorter (so
  that an utterance shorter than half a window can still match the windows that contain it);
  their probabilities are averaged and the predicted class is the argmax.

The mode is detected from the results (``mode="auto"``: window mode when two final results'
windows overlap) or given. An utterance with no such result is a *miss*: it is predicted as
:data:`MISS` (``"(none)"``), a column of its own in the confusion matrix. UAR, accuracy and
macro-F1 are given over all ground-truth utterances, misses counted as wrong (``overall``), and
over the matched utterances only (``matched``). A final speech result whose window overlaps no
ground-truth utterance is a *false alarm* (e.g. speech detected in a pause; in window mode counted
in windows).

Latency of a result: the bag's receive (log) time minus its ``header.stamp`` (the end of the
analysed audio), in ms, summarised separately for final and interim results.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_robot.bag.reader import BagInfo, bag_info, read_messages
from ser_robot.errors import BagError, DataError
from ser_robot.metrics import LatencyStats, classification_report

__all__ = [
    "EMOTION_TYPE",
    "GROUND_TRUTH_PREFIX",
    "MISS",
    "BagEvaluation",
    "GroundTruth",
    "Match",
    "Result",
    "Scores",
    "evaluate_bag",
]

EMOTION_TYPE = "ser_robot_msgs/msg/Emotion"
GROUND_TRUTH_PREFIX = "ground_truth:"
MISS = "(none)"
"""The predicted class of a ground-truth utterance that no result matched."""

MODES = ("auto", "utterance", "window")


@dataclass(frozen=True)
class GroundTruth:
    """One played utterance: its id, true class and span (ROS time, ns)."""

    id: str
    label: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class Result:
    """One message of the emotion topic; times in ns (ROS time), ``probabilities`` ``(n_labels,)``."""

    receive_ns: int
    stamp_ns: int
    start_ns: int
    end_ns: int
    final: bool
    speech: bool
    label: str
    labels: tuple[str, ...]
    probabilities: tuple[float, ...]
    model_id: str

    @property
    def latency_ms(self) -> float:
        """Receive time minus ``header.stamp``, ms."""
        return (self.receive_ns - self.stamp_ns) / 1e6


@dataclass(frozen=True)
class Match:
    """The prediction for one ground-truth utterance.

    ``predicted`` is :data:`MISS` when no result matched; ``probabilities`` ``(n_labels,)`` are the
    (averaged) probabilities of ``results``, indices into :attr:`BagEvaluation.results`.
    """

    ground_truth: GroundTruth
    predicted: str
    probabilities: tuple[float, ...] | None
    results: tuple[int, ...]

    @property
    def missed(self) -> bool:
        return self.predicted == MISS


@dataclass(frozen=True)
class Scores:
    """UAR, accuracy and macro-F1 (each in [0, 1]) and per-class recall over ``count`` utterances."""

    count: int
    uar: float
    accuracy: float
    macro_f1: float
    recall: dict[str, float]


@dataclass(frozen=True)
class BagEvaluation:
    """Everything :func:`evaluate_bag` found in one bag; see the module docstring for the rules.

    ``results``: every emotion message, in bag (receive) order. ``matches``: one per ground-truth
    utterance, in time order. ``false_alarms``: indices into ``results``. ``confusion``: counts
    ``(n_labels, n_labels + 1)``, rows true class, columns predicted class in ``labels`` order then
    :data:`MISS`. ``overall``: over all ground truths, misses counted as wrong; ``matched``: over
    the matched ones (None when none matched). ``latency``: ``"final"``, and ``"interim"`` when
    the bag has interim results.
    """

    bag: pathlib.Path
    emotion_topic: str
    ground_truth_topic: str
    mode: str
    labels: tuple[str, ...]
    model_ids: tuple[str, ...]
    results: tuple[Result, ...]
    matches: tuple[Match, ...]
    false_alarms: tuple[int, ...]
    confusion: np.ndarray
    overall: Scores
    matched: Scores | None
    latency: dict[str, LatencyStats]

    @property
    def n_matched(self) -> int:
        return sum(not m.missed for m in self.matches)

    @property
    def n_missed(self) -> int:
        return len(self.matches) - self.n_matched

    @property
    def coverage(self) -> float:
        """Fraction of ground-truth utterances that a result matched, in [0, 1]."""
        return self.n_matched / len(self.matches)

    @property
    def n_non_speech(self) -> int:
        """Emotion messages with ``speech`` false."""
        return sum(not r.speech for r in self.results)


def _ns(time: Any) -> int:
    """A builtin_interfaces/Time as ns."""
    return int(time.sec) * 1_000_000_000 + int(time.nanosec)


def _resolve_topic(info: BagInfo, name: str, role: str, hint: str) -> str:
    """The recorded topic ``name`` refers to: itself if absolute, else ``/name`` or a single ``/ns/name``."""
    names = [t.name for t in info.topics]
    if name.startswith("/"):
        candidates = [name] if name in names else []
    elif f"/{name}" in names:
        candidates = [f"/{name}"]
    else:
        candidates = [t for t in names if t.endswith(f"/{name}")]
    if not candidates:
        raise BagError(
            f"bag {info.path} has no {role} topic {name!r} (it has: {', '.join(names) or 'no topics'}); "
            f"{hint}")
    if len(candidates) > 1:
        raise BagError(
            f"bag {info.path}: the {role} topic {name!r} is ambiguous ({', '.join(candidates)}); "
            "give the full topic name")
    topic = candidates[0]
    msgtype = next(t.msgtype for t in info.topics if t.name == topic)
    if msgtype != EMOTION_TYPE:
        raise BagError(f"bag {info.path}: topic {topic} holds {msgtype}, not {EMOTION_TYPE}; give the {role} topic")
    return topic


def _read(path: pathlib.Path, emotion_topic: str, ground_truth_topic: str) -> tuple[list[Result], list[GroundTruth]]:
    results: list[Result] = []
    truths: list[GroundTruth] = []
    for message in read_messages(path, [emotion_topic, ground_truth_topic]):
        msg = message.deserialize()
        if message.topic == ground_truth_topic:
            utterance_id = msg.model_id.removeprefix(GROUND_TRUTH_PREFIX) or f"#{len(truths)}"
            truths.append(GroundTruth(utterance_id, msg.label, _ns(msg.window_start), _ns(msg.window_end)))
        else:
            if msg.speech and len(msg.probabilities) != len(msg.labels):
                raise DataError(
                    f"bag {path}: an emotion message on {emotion_topic} has {len(msg.labels)} labels but "
                    f"{len(msg.probabilities)} probabilities; the publisher is broken")
            results.append(Result(
                receive_ns=message.timestamp_ns, stamp_ns=_ns(msg.header.stamp), start_ns=_ns(msg.window_start),
                end_ns=_ns(msg.window_end), final=bool(msg.final), speech=bool(msg.speech), label=msg.label,
                labels=tuple(msg.labels), probabilities=tuple(float(p) for p in msg.probabilities),
                model_id=msg.model_id))
    return results, sorted(truths, key=lambda t: (t.start_ns, t.end_ns))


def _class_set(path: pathlib.Path, emotion_topic: str, speech: list[Result],
               truths: list[GroundTruth]) -> tuple[str, ...]:
    """The model's classes (those of the speech results), checked against the ground truth's."""
    label_sets = {r.labels for r in speech}
    true_labels = sorted({t.label for t in truths})
    if len(label_sets) > 1:
        raise DataError(
            f"bag {path}: the results on {emotion_topic} have different class sets "
            f"({'; '.join(', '.join(s) for s in sorted(label_sets))}); evaluate a bag of one model")
    if not label_sets:  # no speech result at all: every utterance is a miss
        return tuple(true_labels)
    labels = next(iter(label_sets))
    unknown = [label for label in true_labels if label not in labels]
    if unknown:
        raise DataError(
            f"bag {path}: the label sets differ: the ground truth has class(es) {', '.join(unknown)} that the "
            f"model ({', '.join(labels)}) cannot predict; evaluate a model trained on the corpus' classes, "
            "or play a corpus with the model's classes")
    return labels


def _detect_mode(finals: list[Result]) -> str:
    """'window' when two final results' windows overlap, else 'utterance'."""
    latest_end = None
    for result in sorted(finals, key=lambda r: (r.start_ns, r.end_ns)):
        if latest_end is not None and result.start_ns < latest_end:
            return "window"
        latest_end = result.end_ns if latest_end is None else max(latest_end, result.end_ns)
    return "utterance"


class _Windows:
    """The final speech results' windows as arrays: ``index`` into the results, ``start_ns``,
    ``end_ns`` ``(k,)`` and ``probabilities`` ``(k, n_labels)``."""

    def __init__(self, results: tuple[Result, ...], n_labels: int) -> None:
        self.index = np.array([i for i, r in enumerate(results) if r.final and r.speech], dtype=np.int64)
        self.start_ns = np.array([results[i].start_ns for i in self.index], dtype=np.int64)
        self.end_ns = np.array([results[i].end_ns for i in self.index], dtype=np.int64)
        self.probabilities = np.array([results[i].probabilities for i in self.index],
                                      dtype=np.float64).reshape(len(self.index), n_labels)

    def overlap_ns(self, truth: GroundTruth) -> np.ndarray:
        """Overlap of each window with ``truth``, ns ``(k,)``; zero or negative when they do not overlap."""
        return np.minimum(self.end_ns, truth.end_ns) - np.maximum(self.start_ns, truth.start_ns)


def _match(truth: GroundTruth, windows: _Windows, mode: str, labels: tuple[str, ...]) -> Match:
    overlap = windows.overlap_ns(truth)
    if mode == "utterance":
        best = overlap.max(initial=0)
        chosen = np.flatnonzero(overlap == best)[-1:] if best > 0 else np.array([], dtype=np.int64)
    else:
        needed = np.minimum(windows.end_ns - windows.start_ns, truth.end_ns - truth.start_ns)
        chosen = np.flatnonzero((overlap > 0) & (2 * overlap >= needed))
    if len(chosen) == 0:
        return Match(truth, MISS, None, ())
    probabilities = windows.probabilities[chosen].mean(axis=0)
    return Match(truth, labels[int(np.argmax(probabilities))], tuple(float(p) for p in probabilities),
                 tuple(int(i) for i in windows.index[chosen]))


def _scores(true: list[str], predicted: list[str], labels: list[str]) -> Scores:
    report = classification_report(true, predicted, labels)
    return Scores(len(true), report["uar"], report["accuracy"], report["macro_f1"], report["recall"])


def evaluate_bag(bag: str | pathlib.Path, emotion_topic: str = "emotion", ground_truth_topic: str = "ground_truth",
                 mode: str = "auto") -> BagEvaluation:
    """Align the bag's emotion results with its ground truth and score them (rules: module docstring).

    Topic names without a leading '/' match ``/name`` or a single namespaced ``/ns/name``.
    ``mode``: ``"auto"``, ``"utterance"`` or ``"window"``. Raises :class:`BagError` for a missing
    bag or topic, :class:`DataError` for a bag without ground truth or results, or whose label
    sets differ.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    path = pathlib.Path(bag)
    info = bag_info(path)
    emotion = _resolve_topic(info, emotion_topic, "emotion",
                             "record the inference node's output (ser-robot record emotion ground_truth), "
                             "or name the recorded topic (--emotion-topic)")
    ground_truth = _resolve_topic(info, ground_truth_topic, "ground-truth",
                                  "record the corpus player's ground_truth topic with the results, "
                                  "or name the recorded topic (--ground-truth-topic)")
    results_list, truths = _read(path, emotion, ground_truth)
    if not truths:
        raise DataError(f"bag {path} has no ground-truth message on {ground_truth}; record a run in which the "
                        "corpus player plays utterances")
    if not results_list:
        raise DataError(f"bag {path} has no emotion result on {emotion}; was the inference node running "
                        "while recording?")
    results = tuple(results_list)
    labels = _class_set(path, emotion, [r for r in results if r.final and r.speech], truths)
    if mode == "auto":
        mode = _detect_mode([r for r in results if r.final])
    windows = _Windows(results, len(labels))
    matches = tuple(_match(truth, windows, mode, labels) for truth in truths)
    touches_truth = np.zeros(len(windows.index), dtype=bool)
    for truth in truths:
        touches_truth |= windows.overlap_ns(truth) > 0
    false_alarms = tuple(int(i) for i in windows.index[~touches_truth])

    true = [m.ground_truth.label for m in matches]
    predicted = [m.predicted for m in matches]
    with_miss = classification_report(true, predicted, [*labels, MISS])
    # MISS is never a true class, so its F1 is 0 and the macro-F1 over labels + MISS is
    # n / (n + 1) times the macro-F1 over the model's n classes.
    overall = Scores(len(true), with_miss["uar"], with_miss["accuracy"],
                     with_miss["macro_f1"] * (len(labels) + 1) / len(labels),
                     {label: with_miss["recall"][label] for label in labels})
    hits = [m for m in matches if not m.missed]
    matched = (_scores([m.ground_truth.label for m in hits], [m.predicted for m in hits], list(labels))
               if hits else None)

    latency = {}
    for kind, final in (("final", True), ("interim", False)):
        latencies = [r.latency_ms for r in results if r.final == final]
        if latencies:
            latency[kind] = LatencyStats([ms / 1e3 for ms in latencies], window=None)
    return BagEvaluation(
        bag=path, emotion_topic=emotion, ground_truth_topic=ground_truth, mode=mode, labels=labels,
        model_ids=tuple(sorted({r.model_id for r in results if r.model_id})), results=results, matches=matches,
        false_alarms=false_alarms, confusion=with_miss["confusion_matrix"][: len(labels)],
        overall=overall, matched=matched, latency=latency)
