"""Hostile input (issue 7): malformed and hostile messages into the feature node and the inference node.

No crash, every hostile message counted on diagnostics under its reason, and correct output
again from the next good message. The messages come from :mod:`hostile`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter

import numpy as np
import pytest
import torch
from rclpy.lifecycle import TransitionCallbackReturn

from conftest import Recorder
from hostile import (
    AUDIO_KINDS,
    FEATURE_KINDS,
    VAD_KINDS,
    audio_frame,
    feature_frames,
    hostile_audio_stream,
    hostile_feature_stream,
    hostile_inference_stream,
    vad_frames,
)

from ser_robot.audio.resample import resample
from ser_robot.errors import AudioFormatError
from ser_robot.features.pipeline import FeaturePipeline
from ser_robot.streams import MAX_SEQ_JUMP
from ser_robot.features.sets import create_extractor

FEATURE_SET = "logmel_latif2020"  # the fastest set: the test is about the adapter, not the features
RATE = 16000  # the good stream's rate (no resampling: cheaper); the rate_change frames bring the others
RESTART_KEYS = ("streams_started", "seq_gaps", "seq_resets", "format_changes")
SUCCESS = TransitionCallbackReturn.SUCCESS


def speech(seconds: float = 2.0, rate: int = RATE) -> np.ndarray:
    """A voiced, speech-like stereo signal ``(frames, 2)``: harmonics of a moving F0, the ears differ."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.7 * t)) / rate
    mono = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.3 + 0.2 * np.sin(2 * np.pi * 2 * t) ** 2) * 0.2
    return np.stack([mono, 0.7 * mono], axis=1).astype(np.float32)


def feature_node(name: str, **overrides):
    from ser_robot.config import validate_node_params
    from ser_robot.ros.feature_node import FeatureNode
    from ser_robot.ros.runner import parameter_overrides

    # Frames go straight into the callback, far faster than real time: no per-stream budget unless a test sets one;
    # every seq gap restarts the stream (the generator's labels say so), none is concealed; no level normaliser (its
    # state outlives restarts, and the checks compare each segment with the plain extractor).
    params = validate_node_params("features", {"feature_set": FEATURE_SET, "block_frames": 20, "max_stream_speed": 0.0,
                                               "conceal_gap_s": 0.0, "level_normalization": "off", **overrides})
    return FeatureNode(name, parameter_overrides=parameter_overrides(params))


def expected_counts(items) -> tuple[Counter, Counter]:
    """(counter -> expected value over all messages, counter -> contribution of the good messages)."""
    return Counter(item.expected for item in items), Counter(item.expected for item in items if item.kind == "good")


def check_counts(totals: dict, items) -> None:
    """Every counter equals what the messages' labels predict; the hostile ones' counters sum to their number."""
    from ser_robot.ros.feature_node import DROP_REASONS

    expected, by_good = expected_counts(items)
    hostile = [item for item in items if item.kind != "good"]
    for key in (*DROP_REASONS, *RESTART_KEYS):
        assert int(totals[key]) == expected[key], key
    assert int(totals["received"]) == len(items)
    assert int(totals["chunks"]) + int(totals["dropped"]) == len(items)
    assert int(totals["chunks"]) == expected["continued"] + sum(expected[key] for key in RESTART_KEYS)
    attributable = {kind.counter for kind in AUDIO_KINDS.values()} | {"streams_started"}
    assert sum(int(totals[key]) - by_good[key] for key in attributable) == len(hostile)


def segments(items, stream: str = "head") -> list[tuple[int, np.ndarray]]:
    """The stream's segments as the node must see them: ``(rate Hz, audio (frames, channels))`` per (re)start.

    A frame counted as a restart starts a segment, a "continued" one extends it, dropped ones
    are left out (they must not touch the stream).
    """
    from ser_robot.ros.conversions import audio_frame_samples

    out: list[tuple[int, list[np.ndarray]]] = []
    for item in items:
        if item.msg.header.frame_id != stream or item.expected not in ("continued", *RESTART_KEYS):
            continue
        if item.expected != "continued":
            out.append((item.msg.sample_rate, []))
        out[-1][1].append(audio_frame_samples(item.msg))
    return [(rate, np.concatenate(parts)) for rate, parts in out]


def offline(stream_segments: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Features and VAD probabilities of each segment fed alone (whole-signal, not streamed), concatenated."""
    from ser_robot.features.vad import SileroVad

    extractor, vad = create_extractor(FEATURE_SET), SileroVad()
    features, probabilities = [], []
    for rate, audio in stream_segments:
        mono = resample(audio.mean(axis=1), rate, 16000)
        features.append(extractor(torch.from_numpy(mono)[None])[0].numpy())
        vad.reset()
        probabilities.append(vad.push(mono))
    return np.concatenate(features), np.concatenate(probabilities)


def published_rows(messages, stream: str = "head") -> np.ndarray:
    """All rows of the stream's FeatureFrames, in publishing order."""
    return np.concatenate([np.asarray(m.data, np.float32).reshape(m.num_frames, m.num_features)
                           for m in messages if m.header.frame_id == stream])


def close(streamed: np.ndarray, expected: np.ndarray) -> bool:
    return streamed.shape == expected.shape and np.max(np.abs(streamed - expected) / (1 + np.abs(expected))) < 1e-3


def check_well_formed(messages) -> None:
    for m in messages:
        assert len(m.data) == m.num_frames * m.num_features and np.isfinite(np.asarray(m.data)).all()


def test_pipeline_seq_policy():
    """Late/duplicate seq dropped; reset to 0, long rewind, huge jump and format change restart; gaps counted."""
    pipeline = FeaturePipeline(create_extractor(FEATURE_SET), block_frames=10, reorder_window=4)
    chunk = speech(0.01)
    events = []
    for seq, rate, channels in [(5, RATE, 2), (6, RATE, 2), (6, RATE, 2), (3, RATE, 2), (7, RATE, 2),
                                (2, RATE, 2), (0, RATE, 2), (1, RATE, 2), (4, RATE, 2), (5, 44100, 2),
                                (6, 44100, 1), (3, 44100, 2), (7 + MAX_SEQ_JUMP + 1, 44100, 1)]:
        samples = chunk[:441, :channels] if rate == 44100 else chunk[:, :channels]
        pipeline.push(samples, rate, seq, seq * 0.01)
        events.append(pipeline.last_event)
    assert events == ["started", "continued", "out_of_order", "out_of_order", "continued", "seq_reset",
                      "seq_reset", "continued", "seq_gap", "format_change", "format_change", "out_of_order",
                      "seq_reset"]
    c = dataclasses.replace(pipeline.counters)
    assert (c.out_of_order, c.seq_resets, c.seq_gaps, c.format_changes, c.restarts) == (3, 3, 1, 2, 7)
    assert c.chunks == len(events) - 3
    for bad_rate in (0, 3999, 44057, 383999, 384001):
        with pytest.raises(AudioFormatError, match="unsupported sample rate"):
            pipeline.push(chunk, bad_rate, 100, 0.0)
    with pytest.raises(AudioFormatError, match="NaN"):
        pipeline.push(np.full_like(chunk, np.nan), RATE, 100, 0.0)
    assert pipeline.counters == c and all(pipeline.supports_rate(r) for r in (8000, 11025, 22050, 44100, 96000, 384000))


def test_stamp_jump_with_continuous_seq_restarts_the_stream_at_the_new_time():
    """A source whose time line broke (an outage) while its seq went on: later blocks carry the new stamps."""
    pipeline = FeaturePipeline(create_extractor(FEATURE_SET), block_frames=10, stamp_tolerance_s=0.5)
    chunk = speech(0.01)
    blocks, events = [], []
    for seq in range(300):  # 3 s of 10 ms chunks; 4 s of outage after the first 1.5 s, seq continuous
        stamp = 100.0 + seq * 0.01 + (4.0 if seq >= 150 else 0.0) + (0.2 if seq >= 250 else 0.0)
        blocks += pipeline.push(chunk, RATE, seq, stamp)[0]
        events.append(pipeline.last_event)
    assert events.count("stamp_jump") == 1 and events[150] == "stamp_jump"  # 0.2 s of jitter is tolerated
    assert (pipeline.counters.stamp_jumps, pipeline.counters.restarts) == (1, 2)
    after = [b for b in blocks if b.start_time > 101.5]
    assert after and after[0].start_time == pytest.approx(105.5) and after[0].first_index == 0
    assert all(b.start_time < 101.5 for b in blocks[:len(blocks) - len(after)])
    with pytest.raises(ValueError, match="stamp_tolerance_s"):
        FeaturePipeline(create_extractor(FEATURE_SET), stamp_tolerance_s=0.0)


def test_short_gap_is_concealed_with_silence_and_the_stream_goes_on():
    """Frames lost in transport (a flood on the topic): a short gap becomes silence, a long one restarts."""
    extractor = create_extractor(FEATURE_SET)
    signal = speech(1.0)
    lost = set(range(40, 45))  # 50 ms lost
    reference = FeaturePipeline(extractor, block_frames=10)  # given silence where the frames were lost
    concealed = FeaturePipeline(extractor, block_frames=10, conceal_gap_s=0.25)
    blocks, expected = [], []
    for seq in range(100):
        chunk = signal[seq * 160:(seq + 1) * 160]
        expected += reference.push(np.zeros_like(chunk) if seq in lost else chunk, RATE, seq, 5.0 + seq * 0.01)[0]
        if seq not in lost:
            blocks += concealed.push(chunk, RATE, seq, 5.0 + seq * 0.01)[0]
            assert concealed.last_event == ("gap_concealed" if seq == 45 else "started" if seq == 0 else "continued")
    blocks += concealed.finish()[0]
    expected += reference.finish()[0]
    c = concealed.counters
    assert (c.seq_gaps, c.gaps_concealed, c.samples_lost, c.restarts) == (1, 1, 5 * 160, 1)
    assert [b.start_time for b in blocks] == [b.start_time for b in expected]
    assert all(close(b.frames, e.frames) for b, e in zip(blocks, expected))  # as if silence had come
    longer = FeaturePipeline(extractor, block_frames=10, conceal_gap_s=0.25)
    for seq in (0, 1, 30):  # 280 ms lost: longer than conceal_gap_s
        longer.push(signal[:160], RATE, seq, 5.0 + seq * 0.01)
    assert longer.last_event == "seq_gap" and longer.counters.restarts == 2
    shifted = FeaturePipeline(extractor, block_frames=10, conceal_gap_s=0.25)
    for seq, stamp in ((0, 5.0), (1, 5.01), (5, 6.5)):  # short gap, but the stamp says 1.5 s passed
        shifted.push(signal[:160], RATE, seq, stamp)
    assert shifted.last_event == "seq_gap"


@pytest.mark.ros
def test_10000_hostile_frames_into_the_callback(rclpy_context):
    """10,000 hostile AudioFrames of every kind, interleaved with good ones, straight into the callback."""
    node = feature_node("features_hostile", vad=True, max_streams=3, stream_timeout_s=0.0)
    try:
        assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
        node._features_publisher, node._vad_publisher, node._diagnostics_publisher = Recorder(), Recorder(), Recorder()
        rng = np.random.default_rng(7)
        items = list(hostile_audio_stream(speech(), RATE, 10_000, rng, chunk_s=0.03, tail_chunks=40,
                                          free_stream_slots=2))
        assert {item.kind for item in items} == {"good", *AUDIO_KINDS}
        assert sum(item.kind != "good" for item in items) == 10_000
        for item in items:
            node._on_audio(item.msg)  # never raises
        node._report()
        check_counts(node.totals(), items)
        values = {kv.key: kv.value for kv in node._diagnostics_publisher.messages[-1].status[0].values}
        check_counts(values, items)  # the same on diagnostics
        assert node.counts["internal_error"] == 0 and len(node.streams) == 3
        assert node.trigger_deactivate() == SUCCESS  # flushes the last blocks

        # every stretch of good audio, the one after each burst included, gives the features of that audio alone
        stream_segments = segments(items)
        assert len(stream_segments) == sum(item.expected in RESTART_KEYS for item in items
                                           if item.msg.header.frame_id == "head")
        features, probabilities = offline(stream_segments)
        assert close(published_rows(node._features_publisher.messages), features)
        assert np.allclose(published_rows(node._vad_publisher.messages)[:, 0], probabilities, atol=1e-4)
        tail = offline(stream_segments[-1:])[0]  # the last segment runs through the clean tail (>= 1 s)
        assert len(tail) >= 100 and close(published_rows(node._features_publisher.messages)[-len(tail):], tail)
        check_well_formed(node._features_publisher.messages + node._vad_publisher.messages)
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_stream_limit_and_expiry(rclpy_context):
    """Frames of streams beyond max_streams are dropped until a silent stream expires; bad frames open none."""
    node = feature_node("features_streams", vad=False, max_streams=2, stream_timeout_s=5.0)
    try:
        node.trigger_configure()
        node._features_publisher = Recorder()
        chunk = speech(0.1)
        bad = audio_frame(chunk, RATE, 0, 1.0, "c")
        bad.encoding = "s24le"
        for stream in ("a", "b"):
            node._on_audio(audio_frame(chunk, RATE, 0, 1.0, stream))
        node._on_audio(bad)
        node._on_audio(audio_frame(chunk, RATE, 0, 1.0, "c"))
        assert sorted(node.streams) == ["a", "b"]
        assert (node.counts["bad_encoding"], node.counts["too_many_streams"]) == (1, 1)
        assert node.expire_streams(time.monotonic() + 1.0) == []
        assert sorted(node.expire_streams(time.monotonic() + 6.0)) == ["a", "b"]
        assert node.streams == {} and node.counts["streams_expired"] == 2
        assert {m.header.frame_id for m in node._features_publisher.messages} == {"a", "b"}  # last blocks flushed
        node._on_audio(audio_frame(chunk, RATE, 0, 1.0, "c"))
        totals = node.totals()
        assert list(node.streams) == ["c"] and totals["chunks"] == 3 and totals["restarts"] == 3
        assert totals["received"] == totals["chunks"] + totals["dropped"] == 5
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_internal_error_is_contained(rclpy_context, monkeypatch):
    """A bug in the pipeline is counted (internal_error, diagnostics at ERROR), the stream starts afresh."""
    node = feature_node("features_faulty", vad=False)
    try:
        node.trigger_configure()
        node._features_publisher, node._diagnostics_publisher = Recorder(), Recorder()
        chunk = speech(0.1)
        node._on_audio(audio_frame(chunk, RATE, 0, 1.0))

        def broken(*args, **kwargs):
            raise RuntimeError("injected fault")

        monkeypatch.setattr(FeaturePipeline, "push", broken)
        node._on_audio(audio_frame(chunk, RATE, 1, 1.1))  # does not raise
        assert node.counts["internal_error"] == 1 and "head" not in node.streams
        monkeypatch.undo()
        node._on_audio(audio_frame(chunk, RATE, 2, 1.2))
        assert node.streams["head"].pipeline.last_event == "started" and node.totals()["chunks"] == 2
        node._report()
        assert node._diagnostics_publisher.messages[-1].status[0].level == b"\x02"  # ERROR
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_hostile_frames_over_dds(rclpy_context):
    """Hundreds of hostile frames over DDS, paced; diagnostics count each; features after the burst are right."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS
    from ser_robot_msgs.msg import AudioFrame, FeatureFrames

    node = feature_node("features_dds", vad=False, max_streams=3, stream_timeout_s=0.0, max_frame_s=0.25)
    probe = rclpy.create_node("hostile_probe")
    executor = SingleThreadedExecutor()
    spinner = None
    try:
        assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
        features, diagnostics = [], []
        probe.create_subscription(FeatureFrames, "features", features.append, QoSProfile(depth=1000,
                                  reliability=ReliabilityPolicy.RELIABLE))
        probe.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, DIAGNOSTICS_QOS)
        publisher = probe.create_publisher(AudioFrame, "audio", RELIABLE_QOS)
        executor.add_node(node)
        executor.add_node(probe)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (publisher.get_subscription_count() >= 1
                                                   and node._features_publisher.get_subscription_count() >= 1):
            time.sleep(0.01)

        items = list(hostile_audio_stream(speech(1.0), RATE, 300, np.random.default_rng(3), chunk_s=0.03,
                                          max_frame_s=0.25, free_stream_slots=2, tail_chunks=40))
        assert {item.kind for item in items} == {"good", *AUDIO_KINDS}
        for sent, item in enumerate(items, start=1):
            publisher.publish(item.msg)
            deadline = time.monotonic() + 5  # pace: the next frame once this one is in (none lost in transport)
            while node.counts["received"] < sent and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert node.counts["received"] == sent, f"frame {sent} ({item.kind}) did not arrive"

        def last_values() -> dict:
            return {kv.key: kv.value for kv in diagnostics[-1].status[0].values} if diagnostics else {}

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
                last_values().get("received") == str(len(items))
                and last_values().get("blocks_published") == str(len(features))):
            time.sleep(0.05)
        values = last_values()
        assert values.get("received") == str(len(items)), values
        check_counts(values, items)
        assert values["internal_error"] == "0" and diagnostics[-1].status[0].level in (b"\x00", b"\x01")

        expected, _ = offline(segments(items))
        streamed = published_rows(features)  # all but the last segment's unflushed frames
        assert len(streamed) >= len(expected) - 2 * 20
        assert close(streamed, expected[:len(streamed)])
        check_well_formed(features)
    finally:
        executor.shutdown()
        if spinner is not None:
            spinner.join(timeout=5)
        probe.destroy_node()
        node.destroy_node()


def test_hostile_feature_frames_generator():
    """The FeatureFrames generator (for the inference node): every kind, one flaw each, bursts end on restarts."""
    names = [f"mel_{i:03d}" for i in range(8)]
    rows = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    items = list(hostile_feature_stream(rows, 600, np.random.default_rng(1), feature_set=FEATURE_SET, names=names,
                                        block_frames=10, max_block_frames=50))
    assert {item.kind for item in items} == {"good", *FEATURE_KINDS}
    previous = None
    for item in items:
        m = item.msg
        consistent = (len(m.data) == m.num_frames * m.num_features and list(m.feature_names) == names
                      and m.feature_set == FEATURE_SET and np.isfinite(np.asarray(m.data)).all()
                      and m.num_frames > 0 and np.isfinite(m.frame_rate) and m.frame_rate > 0
                      and m.header.stamp.sec >= 0 and m.header.stamp.nanosec < 10**9 and m.num_frames <= 50)
        assert consistent == (item.kind in ("good", "out_of_order", "new_stream", "frame_rate_change", "seq_reset",
                                            "seq_jump")), item.kind
        if previous is not None and FEATURE_KINDS[previous].state_changing:
            assert item.kind == "good" and item.expected == "restart"
        previous = None if item.kind == "good" else item.kind


# --- inference node -------------------------------------------------------------------------------

# hostile kind -> the inference node counter it increments (the same on both topics)
INFERENCE_COUNTERS = {
    "bad_shape": "bad_shape", "wrong_feature_set": "mismatched_features", "wrong_feature_names": "mismatched_features",
    "nan": "non_finite", "inf": "non_finite", "zero_frames": "empty", "zero_features": "empty",
    "huge_block": "too_long", "bad_frame_rate": "bad_rate", "bad_stamp": "bad_stamp", "out_of_order": "out_of_order",
    "new_stream": "too_many_streams",  # "streams_started" while the node has free slots
    "frame_rate_change": "mismatched_features", "out_of_range": "out_of_range", "two_columns": "mismatched_features",
    "seq_reset": "seq_resets",  # accepted: on time, the stream goes on
    "seq_jump": "seq_gaps",  # accepted: on time, the stream goes on
}
# state-changing kind -> what the next good block of its topic increments
FOLLOWERS = {
    "frame_rate_change": ("seq_gaps",),  # dropped, but it took a seq: a gap of one; on time, the stream goes on
    "seq_reset": ("seq_gaps", "stream_restarts"),  # seq 1 expected; its time slot is taken: the clock went back
    "seq_jump": ("seq_resets", "stream_restarts"),  # far behind the jump; the clock went back
}
ACCEPTED = ("streams_started", "seq_gaps", "seq_resets")  # counters of hostile blocks the node uses
# the counters a hostile block can end in: their sum over the hostile blocks is their number
ATTRIBUTABLE = ("bad_shape", "empty", "too_long", "bad_rate", "bad_stamp", "non_finite", "out_of_range",
                "mismatched_features", "too_many_streams", "out_of_order", "internal_error", *ACCEPTED)


def inference_node(name: str, checkpoint, **overrides):
    from ser_robot.config import validate_node_params
    from ser_robot.ros.inference_node import InferenceNode
    from ser_robot.ros.runner import parameter_overrides

    params = validate_node_params("inference", {"model": str(checkpoint), "device": "cpu", **overrides})
    node = InferenceNode(name, parameter_overrides=parameter_overrides(params))
    assert node.trigger_configure() == SUCCESS
    return node


@pytest.fixture(scope="module")
def good_blocks(tiny_corpus):
    """Real egemaps features ``(frames, 34)``, VAD probabilities ``(windows,)`` and names: two synthetic-corpus
    utterances between silences, cut to 16 k frames / 5 k windows so that both repeat with one period."""
    import soundfile

    from ser_robot.data.manifest import read_manifest

    silence = np.zeros(8000, np.float32)
    parts = [silence]
    for utterance in list(read_manifest(tiny_corpus))[:2]:
        samples, rate = soundfile.read(utterance.path, dtype="float32")
        assert rate == 16000
        parts += [samples, silence]
    extractor = create_extractor("egemaps")
    pipeline = FeaturePipeline(extractor, block_frames=10**6, vad=True, vad_block_windows=10**6)
    audio = np.concatenate(parts)[:, None]
    features, vad = pipeline.push(audio, 16000, 0, 0.0)
    more_features, more_vad = pipeline.finish()
    features = np.concatenate([b.frames for b in features + more_features])
    probabilities = np.concatenate([b.frames[:, 0] for b in vad + more_vad])
    periods = min(len(features) // 16, len(probabilities) // 5)
    assert periods >= 20 and (probabilities[:5 * periods] > 0.5).mean() > 0.2  # seconds of it, with speech
    return features[:16 * periods], probabilities[:5 * periods], list(extractor.names)


def inference_labels(items, free_stream_slots: int) -> list[tuple[str, ...]]:
    """The counters each message must increment on an inference node new to the stream with that many free slots
    besides it (the first good block opens the stream)."""
    labels, slots = [], free_stream_slots
    for index, item in enumerate(items):
        if item.kind == "good":
            label = FOLLOWERS[item.expected[len("after_"):]] if item.expected.startswith("after_") else ()
            labels.append(("streams_started", *label) if index == 0 else label)
        elif item.kind == "new_stream" and slots > 0:
            slots -= 1
            labels.append(("streams_started",))
        else:
            labels.append((INFERENCE_COUNTERS[item.kind],))
    return labels


def check_inference_counts(totals: dict, items, labels) -> None:
    """Every counter equals what the labels predict; the hostile blocks' counters sum to their number.

    A good block after a seq_reset or seq_jump is counted twice (a seq event and a stream restart),
    as the feature node's restart keys are; the attributable sum leaves the good blocks' counts out.
    """
    from ser_robot.ros.inference_node import DROP_REASONS

    expected = Counter(key for label in labels for key in label)
    by_good = Counter(key for item, label in zip(items, labels) if item.kind == "good" for key in label)
    for key in (*DROP_REASONS, *ACCEPTED, "stream_restarts"):
        assert int(totals[key]) == expected[key], key
    used = sum(item.kind == "good" or label[0] in ACCEPTED for item, label in zip(items, labels))
    assert int(totals["received"]) == len(items) and int(totals["blocks"]) == used
    assert int(totals["blocks"]) + int(totals["dropped"]) == len(items)
    assert int(totals["feature_blocks"]) + int(totals["vad_blocks"]) == used
    hostile = sum(item.kind != "good" for item in items)
    assert sum(int(totals[key]) - by_good[key] for key in ATTRIBUTABLE) == hostile
    assert int(totals["internal_error"]) == 0 and int(totals["time_jumps"]) == 0


def block_of(msg) -> tuple[float, np.ndarray]:
    from ser_robot.ros.conversions import time_to_seconds

    return time_to_seconds(msg.header.stamp), np.asarray(msg.data, np.float32).reshape(msg.num_frames,
                                                                                         msg.num_features)


def reference_results(model, settings, items, labels, stream: str = "head"):
    """The stream's results from a bare StreamInference fed the blocks the node must use, in order: the good ones
    and the usable hostile ones (seq_reset, seq_jump: on time, their data that of the next good block), a
    fresh one from each good block that restarts the stream; ``(results, results of the last engine)``."""
    from ser_robot.inference import StreamInference

    engine, results, last = StreamInference(model, settings), [], []
    for item, label in zip(items, labels):
        if item.msg.header.frame_id != stream or not (item.kind == "good" or label[0] in ACCEPTED):
            continue
        if "stream_restarts" in label:
            results += engine.finish()
            engine, last = StreamInference(model, settings), []
        stamp, block = block_of(item.msg)
        new = engine.push_vad(stamp, block[:, 0]) if item.topic == "vad" else engine.push_features(stamp, block)
        results, last = results + new, last + new
    new = engine.finish()
    return results + new, last + new


def check_emotions(messages, results) -> None:
    from ser_robot.ros.conversions import time_to_seconds

    assert len(messages) == len(results)
    for msg, result in zip(messages, results):
        assert (msg.final, msg.speech) == (result.final, result.speech)
        assert time_to_seconds(msg.window_start) == pytest.approx(result.window_start, abs=1e-6)
        assert time_to_seconds(msg.window_end) == pytest.approx(result.window_end, abs=1e-6)
        if result.prediction is not None:
            np.testing.assert_allclose(msg.probabilities, result.prediction.probabilities, atol=1e-5)


def test_expression_topic_names():
    """A stream's name becomes a valid ROS4HRI voice topic, or None when nothing valid is left."""
    from ser_robot.ros.inference_node import expression_topic

    assert expression_topic("head_mics") == "/humans/voices/head_mics/expression"
    assert expression_topic("intruder 7/é__x") == "/humans/voices/intruder_7_x/expression"
    assert expression_topic("2nd") == "/humans/voices/v2nd/expression" and expression_topic("/ /") is None


@pytest.mark.ros
@pytest.mark.parametrize("mode", ["utterance", "window"])
def test_10000_hostile_blocks_into_the_inference_callbacks(mode, rclpy_context, tiny_checkpoint, good_blocks):
    """10,000 hostile FeatureFrames of every kind on both topics, interleaved with good blocks, into the callbacks.

    Results come often (interim ones every 0.1 s of speech, windows every 0.1 s) so that a hostile
    block that leaked into the stream would show.
    """
    features, probabilities, names = good_blocks
    settings = {"interim_s": 0.1} if mode == "utterance" else {"window_s": 1.0, "hop_s": 0.1}
    node = inference_node(f"inference_hostile_{mode}", tiny_checkpoint(), max_streams=3, stream_timeout_s=0.0,
                          max_block_s=1.0, mode=mode, **settings)
    try:
        node._emotion_publisher, node._diagnostics_publisher = Recorder(), Recorder()
        items = list(hostile_inference_stream(
            features, probabilities, 10_000, np.random.default_rng(11), feature_set="egemaps", names=names,
            max_burst=30, tail_s=6.0, max_block_frames=node.inference.max_frames["features"],
            max_block_windows=node.inference.max_frames["vad"]))
        kinds = {(item.topic, item.kind) for item in items}
        assert kinds == {(t, "good") for t in ("features", "vad")} | {("features", k) for k in FEATURE_KINDS} | \
            {("vad", k) for k in VAD_KINDS}
        assert sum(item.kind != "good" for item in items) == 10_000
        for item in items:
            (node._on_vad if item.topic == "vad" else node._on_features)(item.msg)  # never raises
        node._report()
        labels = inference_labels(items, free_stream_slots=2)
        check_inference_counts(node.totals(), items, labels)
        status = node._diagnostics_publisher.messages[-1].status[0]
        check_inference_counts({kv.key: kv.value for kv in status.values}, items, labels)  # the same on diagnostics
        assert status.level == b"\x02"  # ERROR: blocks of other features came in this period
        assert len(node.streams) == 3
        assert node.trigger_activate() == SUCCESS and node.trigger_deactivate() == SUCCESS  # finishes the streams

        # the results are those of the usable blocks alone, and after the last restart those of the good ones
        expected, last = reference_results(node.model, node.settings, items, labels)
        emotions = [m for m in node._emotion_publisher.messages if m.header.frame_id == "head"]
        check_emotions(emotions, expected)
        assert len(emotions) > 300 and sum(r.final and r.speech for r in last) >= 2  # speech after the last burst
        assert int(node.totals()["stream_restarts"]) > 100
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_inference_stream_limit_expiry_and_publisher_restart(rclpy_context, tiny_checkpoint, good_blocks):
    """Beyond max_streams new streams wait for one to expire (finished: its results published); bad blocks open
    none; a publisher that restarts with an earlier clock restarts its stream."""
    features, _, names = good_blocks
    node = inference_node("inference_streams", tiny_checkpoint(), max_streams=2, stream_timeout_s=5.0)
    try:
        node._emotion_publisher = Recorder()
        speech_probabilities = np.full(40, 0.9, np.float32)  # 1.28 s of speech: one utterance when finished

        def feed(stream: str, seq: int, stamp: float) -> None:  # 1.28 s of both
            node._on_features(feature_frames(features[:128], seq, stamp, "egemaps", names, frame_id=stream))
            node._on_vad(vad_frames(speech_probabilities, seq, stamp, frame_id=stream))

        feed("a", 0, 10.0)
        feed("b", 0, 10.0)
        bad = vad_frames(speech_probabilities, 0, 10.0, frame_id="c")
        bad.feature_set = "egemaps"
        node._on_vad(bad)
        feed("c", 0, 10.0)
        assert sorted(node.streams) == ["a", "b"]
        assert (node.counts["mismatched_features"], node.counts["too_many_streams"]) == (1, 2)
        assert node.expire_streams(time.monotonic() + 1.0) == [] and node._emotion_publisher.messages == []
        assert sorted(node.expire_streams(time.monotonic() + 6.0)) == ["a", "b"]
        assert node.streams == {} and node.counts["streams_expired"] == 2
        finished = node._emotion_publisher.messages
        assert sorted(m.header.frame_id for m in finished) == ["a", "b"] and all(m.final and m.speech for m in finished)

        feed("c", 7, 10.0)
        feed("c", 8, 11.28)
        feed("c", 0, 3.0)  # the publisher restarted, its clock earlier: the stream restarts, its result published
        totals = node.totals()  # both topics reset, the stream restarted once (at the first)
        assert (totals["seq_resets"], totals["stream_restarts"], totals["out_of_order"]) == (2, 1, 0)
        assert [m.header.frame_id for m in node._emotion_publisher.messages[2:]] == ["c"]
        node._on_features(feature_frames(features[:128], 1, 3.0, "egemaps", names, frame_id="c"))
        totals = node.totals()  # the next seq, but a time already past: dropped
        assert (totals["seq_resets"], totals["stream_restarts"], totals["out_of_order"]) == (2, 1, 1)
        assert totals["received"] == totals["blocks"] + totals["dropped"] == 14
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_inference_internal_error_is_contained(rclpy_context, tiny_checkpoint, good_blocks, monkeypatch):
    """A bug in the engine is counted (internal_error, diagnostics at ERROR); the stream starts afresh."""
    from ser_robot.inference import StreamInference

    features, probabilities, names = good_blocks
    node = inference_node("inference_faulty", tiny_checkpoint())
    try:
        node._emotion_publisher, node._diagnostics_publisher = Recorder(), Recorder()
        node._on_features(feature_frames(features[:10], 0, 1.0, "egemaps", names))

        def broken(*args, **kwargs):
            raise RuntimeError("injected fault")

        monkeypatch.setattr(StreamInference, "push_vad", broken)
        node._on_vad(vad_frames(probabilities[:3], 0, 1.0))  # does not raise
        assert node.counts["internal_error"] == 1 and "head" not in node.streams
        monkeypatch.undo()
        node._on_features(feature_frames(features[10:20], 1, 1.1, "egemaps", names))
        totals = node.totals()
        assert totals["streams_started"] == 2 and totals["blocks"] == 2 and totals["dropped"] == 1
        node._report()
        assert node._diagnostics_publisher.messages[-1].status[0].level == b"\x02"  # ERROR
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_hostile_blocks_into_the_inference_node_over_dds(rclpy_context, tiny_checkpoint, good_blocks):
    """Hundreds of hostile blocks on both topics over DDS (RELIABLE, paced); diagnostics count each one."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS
    from ser_robot_msgs.msg import Emotion, FeatureFrames

    features, probabilities, names = good_blocks
    node = inference_node("inference_dds", tiny_checkpoint(), max_streams=3, stream_timeout_s=0.0, max_block_s=1.0,
                          mode="window", window_s=1.0, hop_s=0.1)
    probe = rclpy.create_node("hostile_inference_probe")
    executor = SingleThreadedExecutor()
    spinner = None
    try:
        assert node.trigger_activate() == SUCCESS
        emotions, diagnostics = [], []
        probe.create_subscription(Emotion, "emotion", emotions.append,
                                  QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        probe.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, DIAGNOSTICS_QOS)
        publishers = {topic: probe.create_publisher(FeatureFrames, topic, RELIABLE_QOS) for topic in ("features", "vad")}
        executor.add_node(node)
        executor.add_node(probe)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (all(p.get_subscription_count() >= 1 for p in publishers.values())
                                                   and node._emotion_publisher.get_subscription_count() >= 1):
            time.sleep(0.01)

        items = list(hostile_inference_stream(
            features, probabilities, 300, np.random.default_rng(5), feature_set="egemaps", names=names,
            tail_s=4.0, max_block_frames=node.inference.max_frames["features"],
            max_block_windows=node.inference.max_frames["vad"]))
        assert {item.kind for item in items} == {"good", *FEATURE_KINDS, *VAD_KINDS}
        for sent, item in enumerate(items, start=1):
            publishers[item.topic].publish(item.msg)
            deadline = time.monotonic() + 5  # pace: the next block once this one is in (none lost in transport)
            while node.counts["received"] < sent and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert node.counts["received"] == sent, f"block {sent} ({item.topic} {item.kind}) did not arrive"

        def last_values() -> dict:
            return {kv.key: kv.value for kv in diagnostics[-1].status[0].values} if diagnostics else {}

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (last_values().get("received") == str(len(items))
                                                   and last_values().get("emotions_published") == str(len(emotions))):
            time.sleep(0.05)
        values = last_values()
        assert values.get("received") == str(len(items)), values
        labels = inference_labels(items, free_stream_slots=2)
        check_inference_counts(values, items, labels)
        assert values["emotions_published"] == str(len(emotions)) and len(emotions) > 0

        expected, _ = reference_results(node.model, node.settings, items, labels)  # all but the unfinished last ones
        streamed = [m for m in emotions if m.header.frame_id == "head"]
        assert len(expected) - 2 <= len(streamed) <= len(expected) and len(streamed) > 20
        check_emotions(streamed, expected[:len(streamed)])
    finally:
        executor.shutdown()
        if spinner is not None:
            spinner.join(timeout=5)
        probe.destroy_node()
        node.destroy_node()


def test_drops_of_two_severities_on_one_stream_leave_it_alive(rclpy_context, tiny_checkpoint, good_blocks):
    """Field defect: a block with a NaN frame rate (WARNING), then, a throttle period later, one with another
    feature set (ERROR) on the live stream's frame_id. rclpy refuses a logging call site whose severity
    changes, which counted the second block twice (mismatched_features and internal_error) and forgot the
    stream. Each is now counted once and the stream goes on."""
    features, _, names = good_blocks
    node = inference_node("inference_two_severities", tiny_checkpoint())
    try:
        node._emotion_publisher, node._diagnostics_publisher = Recorder(), Recorder()
        node._on_features(feature_frames(features[:10], 0, 1.0, "egemaps", names))
        node._on_features(feature_frames(features[10:20], 1, 1.1, "egemaps", names, frame_rate=float("nan")))
        node._next_warning = 0.0  # the throttle period has passed
        node._on_features(feature_frames(features[10:20], 1, 1.1, "logmel_lakomkin", names))
        assert node.counts["bad_rate"] == 1 and node.counts["mismatched_features"] == 1
        assert node.counts["internal_error"] == 0 and "head" in node.streams
        node._on_features(feature_frames(features[10:20], 1, 1.1, "egemaps", names))
        assert node.totals()["streams_started"] == 1  # the good stream went on, not restarted
    finally:
        node.destroy_node()
