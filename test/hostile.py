"""Hostile and malformed ROS messages for the robustness tests of the feature and inference nodes (issue 7).

Two families, each as one-message builders and as an interleaved stream:

- ``AudioFrame`` (into the feature node): :func:`hostile_audio_frame` turns the next good frame of
  a stream (the *template*) into one hostile frame of a given kind (``AUDIO_KINDS``);
  :func:`hostile_audio_stream` yields good frames of a signal with bursts of hostile ones
  between them, each labelled with the feature node counter it must increment.
- ``FeatureFrames`` (into the inference node): :func:`hostile_feature_frames` likewise, from a
  good block; :func:`hostile_feature_stream` interleaves them with good blocks of a feature
  array. The inference node's counter names are its own: ``FEATURE_KINDS`` only says which
  kinds change the stream's state (so that its next good block restarts it). Speech
  probabilities (the ``vad`` topic): :func:`hostile_vad_frames` (``VAD_KINDS``);
  :func:`hostile_inference_stream` interleaves hostile blocks of both topics with the good
  feature and VAD blocks of one stream, in time order.

Every kind changes one property of a good message, so it has exactly one reason to be refused
(or one effect on the stream). Kinds that change the stream's state (``follower`` set) end a
burst: the next message is a good one, which then restarts the stream once more.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from ser_robot.audio.pcm import decode, encode
from ser_robot.streams import MAX_SEQ_JUMP
from ser_robot.ros.conversions import MAX_CHANNELS, MAX_STAMP_SEC, seconds_to_time
from ser_robot_msgs.msg import AudioFrame, FeatureFrames

__all__ = [
    "AudioKind", "AUDIO_KINDS", "FeatureKind", "FEATURE_KINDS", "Item", "audio_frame", "hostile_audio_frame",
    "hostile_audio_stream", "feature_frames", "hostile_feature_frames", "hostile_feature_stream", "VAD_KINDS",
    "vad_frames", "hostile_vad_frames", "hostile_inference_stream",
]

UINT64_MAX = 2**64 - 1
COMMON_RATES = (8000, 16000, 22050, 32000, 44100, 48000)
UNSUPPORTED_RATES = (4001, 44057, 47999, 96001, 383999)  # in range, but no short resampling filter to 16 kHz
ABSURD_RATES = (1, 100, 3999, 384001, 10**6, 2**32 - 1)


@dataclass(frozen=True)
class AudioKind:
    """A class of hostile ``AudioFrame``: the feature node counter it increments, and its side effects.

    ``follower``: the counter the stream's next good frame increments (it restarts the stream
    again), ``None`` if the frame leaves the stream alone. ``consumes_seq``: the frame takes the
    stream's next ``seq`` (the next good frame gets the one after).
    """

    name: str
    counter: str
    follower: str | None = None
    consumes_seq: bool = False


AUDIO_KINDS: dict[str, AudioKind] = {kind.name: kind for kind in (
    AudioKind("bad_length", "bad_length"),
    AudioKind("unknown_encoding", "bad_encoding"),
    AudioKind("zero_channels", "bad_channels"),
    AudioKind("too_many_channels", "bad_channels"),
    AudioKind("channel_ids_mismatch", "bad_channel_ids"),
    AudioKind("zero_rate", "bad_rate"),
    AudioKind("absurd_rate", "bad_rate"),
    AudioKind("unsupported_rate", "bad_rate"),
    AudioKind("bad_stamp", "bad_stamp"),
    AudioKind("empty", "empty"),
    AudioKind("huge_frame", "too_long"),
    AudioKind("nan", "non_finite"),
    AudioKind("inf", "non_finite"),
    AudioKind("loud", "out_of_range"),
    AudioKind("out_of_order", "out_of_order"),
    AudioKind("new_stream", "too_many_streams"),  # "streams_started" while the node has free slots
    AudioKind("rate_change", "format_changes", follower="format_changes", consumes_seq=True),
    AudioKind("channel_change", "format_changes", follower="format_changes", consumes_seq=True),
    AudioKind("seq_reset", "seq_resets", follower="seq_gaps"),
    AudioKind("seq_jump", "seq_gaps", follower="seq_resets"),
    AudioKind("seq_wrap", "seq_resets", follower="seq_resets"),
)}


class Item(NamedTuple):
    """One message of a stream: ``kind`` ("good" or a hostile kind), the ``expected`` counter, the message.

    For good messages ``expected`` is "continued" (nothing counted but ``chunks``), or the
    restart counter it causes; ``samples`` holds their float32 audio ``(frames, channels)``
    (or feature rows), ``None`` for hostile ones. ``topic``: where the message goes, when a
    stream feeds two topics.
    """

    kind: str
    expected: str
    msg: AudioFrame | FeatureFrames
    samples: np.ndarray | None = None
    topic: str = ""  # hostile_inference_stream: "features" or "vad"


def audio_frame(samples: np.ndarray, sample_rate: int, seq: int, stamp: float, frame_id: str = "head",
                encoding: str = "s16le", channel_ids: Sequence[str] = ("left_ear", "right_ear")) -> AudioFrame:
    """A good ``AudioFrame`` of samples ``(frames, channels)`` at ``sample_rate`` Hz, the first at ``stamp`` s."""
    msg = AudioFrame()
    msg.header.stamp = seconds_to_time(stamp)
    msg.header.frame_id = frame_id
    msg.seq = seq
    msg.sample_rate = sample_rate
    msg.channels = samples.shape[1]
    msg.channel_ids = list(channel_ids) if len(channel_ids) == samples.shape[1] else []
    msg.encoding = encoding
    msg.data = encode(samples, encoding)
    return msg


def _copy(template: AudioFrame) -> AudioFrame:
    msg = AudioFrame()
    msg.header.stamp.sec, msg.header.stamp.nanosec = template.header.stamp.sec, template.header.stamp.nanosec
    msg.header.frame_id = template.header.frame_id
    msg.seq, msg.sample_rate, msg.channels = template.seq, template.sample_rate, template.channels
    msg.channel_ids = list(template.channel_ids)
    msg.encoding = template.encoding
    msg.data = bytes(template.data)
    return msg


def _noise(rng: np.random.Generator, frames: int, channels: int) -> np.ndarray:
    return (0.05 * rng.standard_normal((frames, channels))).astype(np.float32)


def hostile_audio_frame(kind: str, template: AudioFrame, rng: np.random.Generator, *, max_frame_s: float = 1.0,
                        reorder_window: int = 16, intruder: int = 0) -> AudioFrame:
    """A hostile frame of ``kind`` (a key of ``AUDIO_KINDS``) made from ``template``, the stream's next good frame.

    The limits are the node's parameters (``max_frame_s`` s, ``reorder_window`` frames);
    ``intruder`` numbers the frame_id of a ``new_stream`` frame. ``out_of_order`` needs
    ``template.seq >= 2``, ``seq_reset`` a ``template.seq >= 2`` too (its follower must be a gap).
    """
    msg = _copy(template)
    channels, rate = template.channels, template.sample_rate
    samples = decode(bytes(template.data), channels, template.encoding)
    frames = samples.shape[0]
    if kind == "bad_length":
        frame_bytes = len(template.data) // frames
        msg.data = bytes(template.data) + bytes(int(rng.integers(1, frame_bytes)))
    elif kind == "unknown_encoding":
        msg.encoding = str(rng.choice(["", "s24le", "S16LE", "f32be", "f64le", "pcm", "s16le ", "u8", "é" * 3,
                                       "x" * 10000]))
    elif kind == "zero_channels":
        msg.channels, msg.channel_ids = 0, []
    elif kind == "too_many_channels":
        msg.channels = int(rng.integers(MAX_CHANNELS + 1, 256))
        msg.channel_ids = []
        msg.data = encode(_noise(rng, 4, msg.channels), template.encoding)
    elif kind == "channel_ids_mismatch":
        count = int(rng.choice([n for n in (1, 2, 3, 5, 64) if n != channels]))
        msg.channel_ids = [f"mic_{i}" for i in range(count)]
    elif kind == "zero_rate":
        msg.sample_rate = 0
    elif kind == "absurd_rate":
        msg.sample_rate = int(rng.choice(ABSURD_RATES))
    elif kind == "unsupported_rate":
        msg.sample_rate = int(rng.choice(UNSUPPORTED_RATES))
    elif kind == "bad_stamp":
        variant = int(rng.integers(3))
        if variant == 0:
            msg.header.stamp.nanosec = int(rng.integers(1_000_000_000, 2**32))
        elif variant == 1:
            msg.header.stamp.sec = int(rng.integers(-2**31, 0))
        else:  # so late that the blocks' stamps would overflow Time.sec
            msg.header.stamp.sec = int(rng.integers(MAX_STAMP_SEC + 1, 2**31))
    elif kind == "empty":
        msg.data = b""
    elif kind == "huge_frame":
        huge = math.ceil(max_frame_s * rate * float(rng.uniform(1.01, 4.0)))
        msg.data = bytes(huge * len(template.data) // frames)
    elif kind in ("nan", "inf", "loud"):
        values = samples.copy()
        positions = rng.integers(0, values.size, size=int(rng.integers(1, 4)))
        sign = float(rng.choice([-1.0, 1.0]))
        values.reshape(-1)[positions] = {"nan": np.nan, "inf": sign * np.inf,
                                         "loud": sign * 10 ** float(rng.uniform(3.5, 30))}[kind]
        msg.encoding, msg.data = "f32le", encode(values, "f32le")
    elif kind == "out_of_order":
        if template.seq < 2:
            raise ValueError("out_of_order needs a template seq >= 2")
        msg.seq = template.seq - int(rng.integers(1, min(reorder_window, template.seq - 1) + 1))
    elif kind == "new_stream":
        msg.header.frame_id = f"intruder_{intruder}" + str(rng.choice(["", "/", " ", "\u00e9", "x" * 200]))
    elif kind == "rate_change":
        msg.sample_rate = int(rng.choice([r for r in COMMON_RATES if r != rate]))
        msg.data = encode(_noise(rng, max(1, round(frames * msg.sample_rate / rate)), channels), template.encoding)
    elif kind == "channel_change":
        msg.channels = 1 if channels != 1 else 2
        msg.channel_ids = []
        msg.data = encode(_noise(rng, frames, msg.channels), template.encoding)
    elif kind == "seq_reset":
        msg.seq = 0
    elif kind == "seq_jump":
        jump = int(math.exp(rng.uniform(math.log(reorder_window + 1), math.log(MAX_SEQ_JUMP))))
        msg.seq = template.seq + min(max(jump, reorder_window + 1), MAX_SEQ_JUMP)
    elif kind == "seq_wrap":
        msg.seq = (UINT64_MAX, template.seq + MAX_SEQ_JUMP + 1, UINT64_MAX // 2)[int(rng.integers(3))]
    else:
        raise ValueError(f"unknown hostile AudioFrame kind {kind!r}; known: {', '.join(AUDIO_KINDS)}")
    return msg


def _plan(kinds: list[str], state_changing: set[str], max_burst: int) -> list[list[str]]:
    """Split hostile kinds into bursts of at most ``max_burst``, each state-changing kind ending its burst."""
    bursts: list[list[str]] = [[]]
    for kind in kinds:
        bursts[-1].append(kind)
        if kind in state_changing or len(bursts[-1]) >= max_burst:
            bursts.append([])
    return [burst for burst in bursts if burst]


def hostile_audio_stream(signal: np.ndarray, sample_rate: int, n_hostile: int, rng: np.random.Generator, *,
                         kinds: Sequence[str] | None = None, chunk_s: float = 0.01, max_burst: int = 50,
                         tail_chunks: int = 100, frame_id: str = "head", encoding: str = "s16le",
                         channel_ids: Sequence[str] = ("left_ear", "right_ear"), start_seq: int = 100,
                         start_time: float = 1000.0, max_frame_s: float = 1.0, reorder_window: int = 16,
                         free_stream_slots: int = 0, first_expected: str = "streams_started") -> Iterator[Item]:
    """Good chunks of ``signal`` ``(frames, channels)`` at ``sample_rate`` Hz (repeated as needed) with bursts of
    ``n_hostile`` hostile frames (kinds drawn uniformly from ``kinds``, default all) after the first chunks,
    then ``tail_chunks`` clean chunks.

    Each :class:`Item` names the counter its message must increment on a feature node with
    these limits that has ``free_stream_slots`` slots for new streams besides this one. The
    first good frame expects ``first_expected`` ("streams_started" for a node new to the stream).
    """
    names = list(kinds or AUDIO_KINDS)
    plan = _plan([names[i] for i in rng.integers(0, len(names), n_hostile)],
                 {name for name in names if AUDIO_KINDS[name].follower}, max_burst)
    chunk = round(chunk_s * sample_rate)
    seq, slots, intruders, follower = start_seq, free_stream_slots, 0, first_expected
    for index in range(len(plan) + tail_chunks):
        rows = np.arange(index * chunk, (index + 1) * chunk) % len(signal)
        samples = np.ascontiguousarray(signal[rows], dtype=np.float32)
        stamp = start_time + index * chunk_s
        yield Item("good", follower or "continued",
                   audio_frame(samples, sample_rate, seq, stamp, frame_id, encoding, channel_ids), samples)
        seq, follower = seq + 1, None
        if index >= len(plan):
            continue
        template = audio_frame(samples, sample_rate, seq, stamp + chunk_s, frame_id, encoding, channel_ids)
        for name in plan[index]:
            kind = AUDIO_KINDS[name]
            template.seq = seq
            msg = hostile_audio_frame(name, template, rng, max_frame_s=max_frame_s, reorder_window=reorder_window,
                                      intruder=intruders)
            expected = kind.counter
            if name == "new_stream":
                intruders += 1
                if slots > 0:
                    slots, expected = slots - 1, "streams_started"
            seq += kind.consumes_seq
            follower = kind.follower
            yield Item(name, expected, msg)


# --- FeatureFrames -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureKind:
    """A class of hostile ``FeatureFrames``; ``state_changing``: the block is usable but restarts the stream."""

    name: str
    state_changing: bool = False
    consumes_seq: bool = False


FEATURE_KINDS: dict[str, FeatureKind] = {kind.name: kind for kind in (
    FeatureKind("bad_shape"),  # num_frames * num_features != len(data)
    FeatureKind("wrong_feature_set"),
    FeatureKind("wrong_feature_names"),  # wrong count, or other names / order
    FeatureKind("nan"),
    FeatureKind("inf"),
    FeatureKind("zero_frames"),
    FeatureKind("zero_features"),
    FeatureKind("huge_block"),  # more than max_block_frames frames
    FeatureKind("bad_frame_rate"),  # 0, negative, NaN, Inf
    FeatureKind("bad_stamp"),  # nanosec >= 1e9 or sec < 0
    FeatureKind("out_of_order"),  # seq 1..reorder_window behind
    FeatureKind("new_stream"),  # a frame_id never seen (stream flood)
    FeatureKind("frame_rate_change", state_changing=True, consumes_seq=True),  # another valid rate
    FeatureKind("seq_reset", state_changing=True),  # seq 0
    FeatureKind("seq_jump", state_changing=True),  # forward by more than reorder_window
)}


def feature_frames(frames: np.ndarray, seq: int, stamp: float, feature_set: str, names: Sequence[str],
                   frame_rate: float = 100.0, frame_id: str = "head") -> FeatureFrames:
    """A good ``FeatureFrames`` block of ``frames`` ``(n, len(names))``, first frame starting at ``stamp`` s."""
    msg = FeatureFrames()
    msg.header.stamp = seconds_to_time(stamp)
    msg.header.frame_id = frame_id
    msg.seq = seq
    msg.feature_set = feature_set
    msg.frame_rate = float(frame_rate)
    msg.num_frames, msg.num_features = frames.shape
    msg.feature_names = list(names)
    msg.data = _floats(frames)
    return msg


def _floats(values: np.ndarray) -> array.array:
    data = array.array("f")
    data.frombytes(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return data


def hostile_feature_frames(kind: str, template: FeatureFrames, rng: np.random.Generator, *,
                           max_block_frames: int = 1000, reorder_window: int = 16, intruder: int = 0) -> FeatureFrames:
    """A hostile block of ``kind`` (a key of ``FEATURE_KINDS``) made from ``template``, the stream's next good block."""
    rows = np.asarray(template.data, np.float32).reshape(template.num_frames, template.num_features)
    names = list(template.feature_names)
    msg = feature_frames(rows, template.seq, template.header.stamp.sec + template.header.stamp.nanosec * 1e-9,
                         template.feature_set, names, template.frame_rate, template.header.frame_id)
    if kind == "bad_shape":
        variant = int(rng.integers(4))
        if variant == 0:
            msg.num_frames += int(rng.integers(1, 10))
        elif variant == 1:
            msg.num_features = max(0, msg.num_features - 1)
        elif variant == 2:
            msg.data = msg.data[:-int(rng.integers(1, len(msg.data) + 1))]
        else:
            msg.num_frames, msg.num_features = 2**32 - 1, 2**32 - 1
    elif kind == "wrong_feature_set":
        msg.feature_set = str(rng.choice(["", "egemaps", "logmel_latif2020", "logmel-64", "x" * 1000,
                                          template.feature_set + "_v2"]))
        if msg.feature_set == template.feature_set:
            msg.feature_set += "?"
    elif kind == "wrong_feature_names":
        variant = int(rng.integers(3))
        if variant == 0 or len(names) < 2:
            msg.feature_names = names[:-1] if names else ["extra"]
        elif variant == 1:
            msg.feature_names = names[::-1]
        else:
            msg.feature_names = [f"feature_{i}" for i in range(len(names))]
    elif kind in ("nan", "inf"):
        values = rows.copy()
        values.reshape(-1)[rng.integers(0, values.size, size=int(rng.integers(1, 4)))] = \
            np.nan if kind == "nan" else np.inf * rng.choice([-1, 1])
        msg.data = _floats(values)
    elif kind == "zero_frames":
        msg.num_frames, msg.data = 0, []
    elif kind == "zero_features":
        msg.num_features, msg.feature_names, msg.data = 0, [], []
    elif kind == "huge_block":
        count = int(rng.integers(max_block_frames + 1, 4 * max_block_frames + 1))
        msg.num_frames = count
        msg.data = _floats(np.resize(rows, (count, rows.shape[1])))
    elif kind == "bad_frame_rate":
        msg.frame_rate = float(rng.choice([0.0, -100.0, np.nan, np.inf, -np.inf]))
    elif kind == "bad_stamp":
        if rng.integers(2):
            msg.header.stamp.nanosec = int(rng.integers(1_000_000_000, 2**32))
        else:
            msg.header.stamp.sec = int(rng.integers(-2**31, 0))
    elif kind == "out_of_order":
        if template.seq < 2:
            raise ValueError("out_of_order needs a template seq >= 2")
        msg.seq = template.seq - int(rng.integers(1, min(reorder_window, template.seq - 1) + 1))
    elif kind == "new_stream":
        msg.header.frame_id = f"intruder_{intruder}"
    elif kind == "frame_rate_change":
        msg.frame_rate = float(rng.choice([r for r in (50.0, 31.25, 100.0, 200.0) if r != template.frame_rate]))
    elif kind == "seq_reset":
        msg.seq = 0
    elif kind == "seq_jump":
        msg.seq = template.seq + int(rng.integers(reorder_window + 1, 10**6))
    else:
        raise ValueError(f"unknown hostile FeatureFrames kind {kind!r}; known: {', '.join(FEATURE_KINDS)}")
    return msg


def hostile_feature_stream(features: np.ndarray, n_hostile: int, rng: np.random.Generator, *, feature_set: str,
                           names: Sequence[str], block_frames: int = 100, frame_rate: float = 100.0,
                           kinds: Sequence[str] | None = None, max_burst: int = 50, tail_blocks: int = 5,
                           frame_id: str = "head", start_seq: int = 100, start_time: float = 1000.0,
                           max_block_frames: int = 1000, reorder_window: int = 16) -> Iterator[Item]:
    """Good blocks of ``features`` ``(frames, dims)`` (repeated as needed) with bursts of ``n_hostile`` hostile
    blocks between them, then ``tail_blocks`` clean blocks.

    ``Item.expected`` is "good", "restart" (a good block right after a state-changing one:
    the stream restarts again), or the hostile kind itself: mapping kinds to counters is the
    inference node's business.
    """
    kind_names = list(kinds or FEATURE_KINDS)
    plan = _plan([kind_names[i] for i in rng.integers(0, len(kind_names), n_hostile)],
                 {name for name in kind_names if FEATURE_KINDS[name].state_changing}, max_burst)
    seq, restart, intruders = start_seq, False, 0
    for index in range(len(plan) + tail_blocks):
        rows = features[np.arange(index * block_frames, (index + 1) * block_frames) % len(features)]
        stamp = start_time + index * block_frames / frame_rate
        yield Item("good", "restart" if restart else "good",
                   feature_frames(rows, seq, stamp, feature_set, names, frame_rate, frame_id), rows)
        seq, restart = seq + 1, False
        if index >= len(plan):
            continue
        template = feature_frames(rows, seq, stamp + block_frames / frame_rate, feature_set, names, frame_rate,
                                  frame_id)
        for name in plan[index]:
            template.seq = seq
            msg = hostile_feature_frames(name, template, rng, max_block_frames=max_block_frames,
                                         reorder_window=reorder_window, intruder=intruders)
            intruders += name == "new_stream"
            seq += FEATURE_KINDS[name].consumes_seq
            restart = FEATURE_KINDS[name].state_changing
            yield Item(name, name, msg)


# --- speech probabilities (the vad topic) and both topics of one stream ---------------------------

VAD_SET, VAD_NAMES, VAD_RATE = "silero-vad", ("speech_probability",), 31.25

# FEATURE_KINDS but for names (the vad topic's names are not checked), plus two of the VAD's own.
VAD_KINDS: dict[str, FeatureKind] = {
    **{name: kind for name, kind in FEATURE_KINDS.items() if name != "wrong_feature_names"},
    "out_of_range": FeatureKind("out_of_range"),  # a probability below 0 or above 1
    "two_columns": FeatureKind("two_columns"),  # (windows, 2): not one probability per window
}


def vad_frames(probabilities: np.ndarray, seq: int, stamp: float, frame_id: str = "head") -> FeatureFrames:
    """A good ``vad`` block: speech probabilities ``(windows,)`` of 32 ms windows, the first starting at ``stamp`` s."""
    return feature_frames(np.asarray(probabilities, np.float32).reshape(-1, 1), seq, stamp, VAD_SET, VAD_NAMES,
                          VAD_RATE, frame_id)


def hostile_vad_frames(kind: str, template: FeatureFrames, rng: np.random.Generator, *, max_block_windows: int = 1000,
                       reorder_window: int = 16, intruder: int = 0) -> FeatureFrames:
    """A hostile ``vad`` block of ``kind`` (a key of ``VAD_KINDS``) made from ``template``, the next good one."""
    if kind not in VAD_KINDS:
        raise ValueError(f"unknown hostile vad kind {kind!r}; known: {', '.join(VAD_KINDS)}")
    if kind not in ("out_of_range", "two_columns"):
        return hostile_feature_frames(kind, template, rng, max_block_frames=max_block_windows,
                                      reorder_window=reorder_window, intruder=intruder)
    rows = np.asarray(template.data, np.float32).reshape(template.num_frames, 1)
    stamp = template.header.stamp.sec + template.header.stamp.nanosec * 1e-9
    if kind == "out_of_range":
        values = rows.copy()
        values[int(rng.integers(len(values)))] = float(rng.choice([-1e-3, -1.0, 1.001, 2.0, 1e30, -1e30]))
        msg = vad_frames(values, template.seq, stamp, template.header.frame_id)
    else:
        msg = feature_frames(np.concatenate([rows, rows], axis=1), template.seq, stamp, VAD_SET,
                             (*VAD_NAMES, "speech_probability_2"), VAD_RATE, template.header.frame_id)
    return msg


def hostile_inference_stream(features: np.ndarray, probabilities: np.ndarray, n_hostile: int,
                             rng: np.random.Generator, *, feature_set: str, names: Sequence[str],
                             frame_rate: float = 100.0, block_frames: int = 10, vad_block_windows: int = 3,
                             max_burst: int = 50, tail_s: float = 3.0, frame_id: str = "head",
                             start_seq: int = 100, start_time: float = 1000.0, max_block_frames: int = 1000,
                             max_block_windows: int = 1000, reorder_window: int = 16,
                             kinds: Sequence[tuple[str, str]] | None = None) -> Iterator[Item]:
    """One stream's good feature blocks of ``features`` ``(frames, dims)`` and VAD blocks of ``probabilities``
    ``(windows,)`` (both repeated as needed: give them the same duration), merged in time order, with
    bursts of ``n_hostile`` hostile blocks of both topics between them, then ``tail_s`` s of clean blocks.

    ``kinds``: the ``(topic, kind)`` pairs to draw from uniformly (default: every kind of
    ``FEATURE_KINDS`` on "features" and of ``VAD_KINDS`` on "vad"). A hostile block is made from the
    next good block of its topic (its seq, stamp and data); the first burst comes once both topics
    have started. ``Item.expected`` is the kind for a
    hostile block, "good" for a good one, or "after_<kind>" for the first good block of a topic
    after a state-changing block of that topic; no hostile block of that topic comes in between
    (the node's reaction to that good block depends on the kind: its business).
    """
    pairs = list(kinds or [("features", k) for k in FEATURE_KINDS] + [("vad", k) for k in VAD_KINDS])
    table = {"features": FEATURE_KINDS, "vad": VAD_KINDS}
    drawn = [pairs[i] for i in rng.integers(0, len(pairs), n_hostile)]
    plan = _plan(drawn, {pair for pair in pairs if table[pair[0]][pair[1]].state_changing}, max_burst)
    vad_rate = VAD_RATE

    def good(topic: str, index: int) -> tuple[float, np.ndarray]:
        if topic == "features":
            rows = features[np.arange(index * block_frames, (index + 1) * block_frames) % len(features)]
            return start_time + index * block_frames / frame_rate, rows
        rows = probabilities[np.arange(index * vad_block_windows, (index + 1) * vad_block_windows) % len(probabilities)]
        return start_time + index * vad_block_windows / vad_rate, rows

    def message(topic: str, index: int, seq: int) -> tuple[FeatureFrames, np.ndarray]:
        stamp, rows = good(topic, index)
        if topic == "features":
            return feature_frames(rows, seq, stamp, feature_set, names, frame_rate, frame_id), rows
        return vad_frames(rows, seq, stamp, frame_id), rows

    index = {"features": 0, "vad": 0}
    seq = {"features": start_seq, "vad": start_seq}
    after: dict[str, str] = {}  # topic -> state-changing kind whose follower has not come yet
    intruders, burst, end_time = 0, 0, None
    while True:
        topic = min(index, key=lambda t: (good(t, index[t])[0], t))
        stamp = good(topic, index[topic])[0]
        if end_time is not None and stamp >= end_time:
            return
        msg, rows = message(topic, index[topic], seq[topic])
        kind = after.pop(topic, None)
        yield Item("good", f"after_{kind}" if kind else "good", msg, rows, topic)
        index[topic] += 1
        seq[topic] += 1
        if burst >= len(plan):
            if end_time is None:
                end_time = stamp + tail_s
            continue
        if after or not all(index.values()):  # a follower has not come yet, or a topic has not started: no burst
            continue
        for topic, name in plan[burst]:
            template = message(topic, index[topic], seq[topic])[0]
            maker = hostile_feature_frames if topic == "features" else hostile_vad_frames
            limit = {"max_block_frames": max_block_frames} if topic == "features" else \
                {"max_block_windows": max_block_windows}
            hostile = maker(name, template, rng, reorder_window=reorder_window, intruder=intruders, **limit)
            intruders += name == "new_stream"
            kind = table[topic][name]
            seq[topic] += kind.consumes_seq
            if kind.state_changing:
                after[topic] = name
            yield Item(name, name, hostile, None, topic)
        burst += 1
