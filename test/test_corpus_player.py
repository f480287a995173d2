"""Corpus player: the programme's timeline, selection and chunks; the node over DDS, to a topic and to the virtual ears."""

import math
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import soundfile

from conftest import ROOT
from ser_robot.audio.chunk import AudioChunk
from ser_robot.audio.corpus_player import DevicePlayer, Programme, label_set, select_utterances
from ser_robot.audio.devices import resolve_output_device
from ser_robot.audio.resample import resample
from ser_robot.data.manifest import EMOTIONS, Manifest, Utterance, read_manifest, write_manifest
from ser_robot.errors import AudioDeviceError, AudioError, DataError, ManifestError


def burst(seconds: float, rate: int, freq: float, amp: float = 0.5) -> np.ndarray:
    """A sine burst, float32 ``(n,)``, exactly representable in a 16-bit file."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (np.round(amp * np.sin(2 * np.pi * freq * t) * 32768) / 32768).astype(np.float32)


def make_manifest(tmp_path, specs, name="manifest.jsonl"):
    """Write one WAV per spec ``(id, speaker, label, seconds, rate, freq)``; return the manifest path and the signals."""
    utterances, signals = [], {}
    for index, (uid, speaker, label, seconds, rate, freq) in enumerate(specs):
        signal_ = burst(seconds, rate, freq)
        path = tmp_path / f"{uid}.wav"
        soundfile.write(str(path), signal_, rate, subtype="PCM_16")
        signals[uid] = signal_
        utterances.append(Utterance(id=uid, path=str(path), speaker=speaker, corpus="test", label=label,
                                    duration_s=len(signal_) / rate, sample_rate=rate,
                                    arousal=0.1 * index if label else None, valence=-0.5 if index == 0 else None))
    return write_manifest(tmp_path / name, utterances), signals


THREE = [("u1", "spk_a", "angry", 0.25, 16000, 440.0),
         ("u2", "spk_b", "sad", 0.1, 16000, 660.0),
         ("u3", "spk_a", "happy", 0.3, 16000, 880.0)]


def expected_stream(signals, order, pause, tail=True):
    """The mono programme built by hand: a pause before each utterance (and after the last)."""
    parts = []
    for uid in order:
        parts += [np.zeros(pause, np.float32), signals[uid]]
    if tail:
        parts.append(np.zeros(pause, np.float32))
    return np.concatenate(parts)


# -- library ------------------------------------------------------------------------------

def test_timeline_chunks_and_stamps_follow_the_pauses(tmp_path):
    path, signals = make_manifest(tmp_path, THREE)
    programme = Programme.from_manifest(path, pause_s=0.2, channels=2, chunk_ms=10.0)
    assert programme.sample_rate == 16000 and programme.blocksize == 160
    assert [c.utterance.id for c in programme.cues] == ["u1", "u2", "u3"]
    assert [(c.start, c.frames) for c in programme.cues] == [(3200, 4000), (10400, 1600), (15200, 4800)]
    assert programme.cues[1].start_s == pytest.approx(0.65) and programme.cues[1].end_s == pytest.approx(0.75)
    assert programme.total_frames == 20000 + 3200 and programme.duration_s == pytest.approx(1.45)
    assert list(programme.timeline()) == programme.cues

    chunks = list(programme.chunks(start_time=1000.0))
    audio = np.concatenate([c.samples for c in chunks])
    expected = expected_stream(signals, ["u1", "u2", "u3"], 3200)
    assert audio.shape == (len(expected), 2) and audio.dtype == np.float32
    np.testing.assert_array_equal(audio[:, 0], expected)
    np.testing.assert_array_equal(audio[:, 1], expected)
    assert {c.num_frames for c in chunks} == {160} and len(chunks) == 23200 // 160
    frames_before = np.cumsum([0] + [c.num_frames for c in chunks[:-1]])
    np.testing.assert_allclose([c.time for c in chunks], 1000.0 + frames_before / 16000, rtol=0, atol=1e-9)


def test_looping_repeats_the_pass_on_one_media_clock(tmp_path):
    path, signals = make_manifest(tmp_path, THREE[:2])
    programme = Programme.from_manifest(path, pause_s=0.05, channels=1, chunk_ms=7.0, loop=True)
    assert math.isinf(programme.total_frames)
    timeline = programme.timeline()
    cues = [next(timeline) for _ in range(5)]
    assert [c.utterance.id for c in cues] == ["u1", "u2", "u1", "u2", "u1"]
    assert cues[2].start == cues[0].start + programme.pass_frames == 800 + 4000 + 800 + 1600 + 800
    chunks = programme.chunks(start_time=0.0)
    taken = [next(chunks) for _ in range(3 * programme.pass_frames // programme.blocksize)]
    audio = np.concatenate([c.samples[:, 0] for c in taken])
    one_pass = expected_stream(signals, ["u1", "u2"], 800, tail=False)
    np.testing.assert_array_equal(audio[: 2 * len(one_pass)], np.tile(one_pass, 2))
    assert taken[-1].time == pytest.approx((len(taken) - 1) * programme.blocksize / 16000, abs=1e-9)


def test_last_chunk_is_short_and_no_pause_is_allowed(tmp_path):
    path, signals = make_manifest(tmp_path, THREE[:1])
    programme = Programme.from_manifest(path, pause_s=0.0, channels=3, chunk_ms=15.0)
    chunks = list(programme.chunks(5.0))
    assert [c.num_frames for c in chunks] == [240] * 16 + [160]
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), np.repeat(signals["u1"][:, None], 3, 1))


def test_other_rates_are_resampled_to_the_most_common_rate(tmp_path):
    specs = [("a", "s", "angry", 0.2, 16000, 300.0), ("b", "s", "sad", 0.15, 8000, 500.0),
             ("c", "s", "happy", 0.1, 16000, 700.0)]
    path, signals = make_manifest(tmp_path, specs)
    programme = Programme.from_manifest(path, pause_s=0.01)
    assert programme.sample_rate == 16000
    cue = programme.cues[1]
    assert cue.frames == 2 * len(signals["b"])
    audio = np.concatenate([c.samples[:, 0] for c in programme.chunks()])
    np.testing.assert_allclose(audio[cue.start:cue.end], resample(signals["b"], 8000, 16000), atol=1e-6)
    # an explicit output rate resamples the others
    at_8k = Programme.from_manifest(path, pause_s=0.01, sample_rate=8000)
    assert [c.frames for c in at_8k.cues] == [1600, 1200, 800]


def test_stereo_files_are_mixed_to_mono(tmp_path):
    path, _ = make_manifest(tmp_path, THREE[:1])
    wav = tmp_path / "u1.wav"
    left, right = burst(0.1, 16000, 200.0), burst(0.1, 16000, 300.0)
    soundfile.write(str(wav), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    programme = Programme.from_manifest(path, pause_s=0.0)
    np.testing.assert_allclose(programme.load(programme.cues[0]), (left + right) / 2, atol=1e-7)


def test_selection_by_speaker_limit_and_seeded_shuffle(tmp_path):
    specs = [(f"u{i}", f"spk{i % 3}", EMOTIONS[i % 4], 0.05, 16000, 200.0 + i) for i in range(12)]
    specs.append(("unlabelled", "spk0", None, 0.05, 16000, 100.0))
    path, _ = make_manifest(tmp_path, specs)
    manifest = read_manifest(path)

    def ids(utterances):
        return [u.id for u in utterances]

    assert ids(select_utterances(manifest)) == [f"u{i}" for i in range(12)]  # unlabelled left out
    assert ids(select_utterances(manifest, ["spk1"])) == ["u1", "u4", "u7", "u10"]
    assert ids(select_utterances(manifest, ["spk2", "spk1"], limit=3)) == ["u1", "u2", "u4"]
    first = ids(select_utterances(manifest, ["*"], shuffle=True, seed=7))
    assert first == ids(select_utterances(manifest, ["*"], shuffle=True, seed=7))
    assert first != ids(select_utterances(manifest, ["*"], shuffle=True, seed=8))
    assert sorted(first) == sorted(ids(select_utterances(manifest)))
    assert ids(select_utterances(manifest, shuffle=True, seed=7, limit=4)) == first[:4]


def test_selection_errors_say_what_to_do(tmp_path):
    specs = [("a", "spk0", "angry", 0.05, 16000, 200.0), ("b", "spk1", None, 0.05, 16000, 200.0)]
    path, _ = make_manifest(tmp_path, specs)
    manifest = read_manifest(path)
    with pytest.raises(DataError, match=r"speaker\(s\) \['nobody'\] not in the manifest; its speakers are \['spk0', 'spk1'\]"):
        select_utterances(manifest, ["spk0", "nobody"])
    with pytest.raises(DataError, match="no labelled utterance among the 1 selected"):
        select_utterances(manifest, ["spk1"])
    with pytest.raises(DataError, match=r'no speakers given.*\["\*"\]'):
        select_utterances(manifest, [])
    with pytest.raises(ManifestError, match="not found: generate it"):
        Programme.from_manifest(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="no manifest given"):
        Programme.from_manifest("")
    with pytest.raises(DataError, match="no utterances"):
        Programme([])
    (tmp_path / "a.wav").write_bytes(b"not audio")
    with pytest.raises(AudioError, match="cannot read audio file .*a.wav of utterance 'a'"):
        Programme.from_manifest(path, speakers=["spk0"])


def test_label_set_is_the_four_classes_or_the_manifests_own():
    def manifest(labels, label_set_=None):
        return Manifest([Utterance(id=str(i), path="x.wav", speaker="s", corpus="c", duration_s=1.0,
                                   sample_rate=16000, label=label) for i, label in enumerate(labels)], label_set_)

    assert label_set(manifest(["sad", "angry", None])) == EMOTIONS
    assert label_set(manifest(["sad", "fear", "calm"])) == ("calm", "fear", "sad")
    assert label_set(manifest(["sad"], ("sad", "joy"))) == ("sad", "joy")


def test_ground_truth_message_is_a_certain_final_emotion(tmp_path):
    from ser_robot.ros.conversions import time_to_seconds
    from ser_robot.ros.corpus_player_node import ground_truth_message

    path, _ = make_manifest(tmp_path, THREE)
    programme = Programme.from_manifest(path)
    msg = ground_truth_message(programme.cues[0], programme.labels, 100.25, 100.5, "head")
    assert (msg.header.frame_id, msg.source_id, msg.final, msg.speech, msg.label) == ("head", "head", True, True, "angry")
    assert time_to_seconds(msg.window_start) == pytest.approx(100.25)
    assert time_to_seconds(msg.window_end) == time_to_seconds(msg.header.stamp) == pytest.approx(100.5)
    assert list(msg.labels) == list(EMOTIONS) and list(msg.probabilities) == [1.0, 0.0, 0.0, 0.0]
    assert (msg.confidence, msg.speech_probability, msg.model_id) == (1.0, 1.0, "ground_truth:u1")
    assert msg.arousal == 0.0 and msg.valence == -0.5
    second = ground_truth_message(programme.cues[1], programme.labels, 0.0, 1.0, "head")
    assert math.isnan(second.valence) and second.arousal == pytest.approx(0.1)


def test_ground_truth_arousal_and_valence_are_mapped_from_the_corpus_scale_to_unit_range(tmp_path):
    from ser_robot.audio.corpus_player import Cue
    from ser_robot.ros.corpus_player_node import ground_truth_message

    def rated(corpus, arousal, valence):
        utterance = Utterance(id="x", path="x.wav", speaker="s", corpus=corpus, duration_s=1.0, sample_rate=16000,
                              label="sad", arousal=arousal, valence=valence)
        return ground_truth_message(Cue(utterance, 0, 16000, 16000), EMOTIONS, 0.0, 1.0, "head")

    iemocap = rated("iemocap", 5.0, 2.0)  # IEMOCAP rates 1-5 (config/corpora.yaml: dimension_scale)
    assert (iemocap.arousal, iemocap.valence) == (1.0, -0.5)
    assert rated("msp_improv", 3.0, 1.0).valence == -1.0
    synthetic = rated("synthetic", 0.25, -0.75)  # already on [-1, 1]
    assert (synthetic.arousal, synthetic.valence) == (0.25, -0.75)


class FakeOutputStream:
    """A sounddevice output stream with what the player uses; the test calls its callback."""

    latency = 0.02

    def __init__(self, **kwargs):
        self.kwargs, self.active, self.closed = kwargs, False, False

    def start(self):
        self.active = True

    def abort(self):
        self.active = False

    def close(self):
        self.closed = True


class FakeSoundDevice:
    """Stands in for the sounddevice module: four devices, output streams whose callbacks the test drives."""

    default = types.SimpleNamespace(device=[3, 0])

    def __init__(self):
        self.streams = []

    @staticmethod
    def query_hostapis():
        return [{"name": "ALSA"}]

    @staticmethod
    def query_devices():
        return [{"name": name, "hostapi": 0, "max_output_channels": outs, "default_samplerate": 48000.0}
                for name, outs in (("pulse", 32), ("HDA Intel: ALC (hw:0,0)", 2), ("HDA Intel: HDMI (hw:0,3)", 8),
                                   ("USB mic", 0))]

    def OutputStream(self, **kwargs):  # the sounddevice name
        stream = FakeOutputStream(**kwargs)
        self.streams.append(stream)
        return stream


@pytest.fixture
def fake_sounddevice(monkeypatch):
    from ser_robot.audio import corpus_player, devices

    fake = FakeSoundDevice()
    monkeypatch.setattr(corpus_player, "_sounddevice", lambda: fake)
    monkeypatch.setattr(devices, "_sounddevice", lambda: fake)
    return fake


def test_output_devices_by_index_name_or_default(fake_sounddevice):
    assert resolve_output_device("").name == "pulse"
    assert resolve_output_device("2").name == "HDA Intel: HDMI (hw:0,3)"
    assert resolve_output_device("alc").index == 1
    with pytest.raises(AudioDeviceError, match=r"'hda intel' is ambiguous: it matches \[1\] .*\[2\]"):
        resolve_output_device("hda intel")
    with pytest.raises(AudioDeviceError, match=r"no output device matches 'usb mic'\. Available output devices: "
                                               r"\[0\] pulse \(ALSA, 32 out, 48000 Hz\); \[1\]"):
        resolve_output_device("usb mic")
    with pytest.raises(AudioDeviceError, match=r"has 2 output channel\(s\); the programme has 4"):
        DevicePlayer("alc", 16000, 4).resolve()


def test_device_player_plays_after_the_lead_in_and_maps_frames_to_dac_times(fake_sounddevice, monkeypatch):
    rate = 1000
    signal_ = np.arange(1, 96, dtype=np.float32)
    chunks = (AudioChunk(np.repeat(signal_[i:i + 10, None], 2, 1), rate, 0.0) for i in range(0, len(signal_), 10))
    player = DevicePlayer("pulse", rate, 2, chunk_ms=10.0, buffer_s=0.03)
    player.start(chunks, lead_in_s=0.015)
    stream = fake_sounddevice.streams[0]
    assert stream.kwargs["device"] == 0 and stream.kwargs["blocksize"] == 10 and player.running
    played, status = [], types.SimpleNamespace(output_underflow=False)
    for k in range(12):
        out = np.full((10, 2), np.nan, np.float32)
        stream.kwargs["callback"](out, 10, types.SimpleNamespace(outputBufferDacTime=50.1 + 0.01 * k,
                                                                 currentTime=50.0), status)
        played.append(out)
        player.feed(chunks)
    audio = np.concatenate(played)
    np.testing.assert_array_equal(audio[:15], 0.0)  # the lead-in
    np.testing.assert_array_equal(audio[15:110, 0], signal_)
    np.testing.assert_array_equal(audio[110:], 0.0)  # after the end: silence, not an underflow
    assert player.drained and player.played == 95 and player.underflows == 0
    assert player.dac_time(95) is None
    now = time.time()
    # the 2nd callback's block reaches the DAC 0.11 s after it ran; frame 0 is 5 frames into it
    assert player.dac_time(0) == pytest.approx(now + 0.11 + 0.005, abs=0.5)
    assert player.dac_time(94) - player.dac_time(0) == pytest.approx(0.094, abs=1e-6)  # locked to the frame count
    assert player.running
    monkeypatch.setattr(DevicePlayer, "STALL_S", 0.0)  # no callback for longer than this: the stream is lost
    assert not player.running
    player.close()
    assert fake_sounddevice.streams[0].active is False


def test_device_player_counts_underflows(fake_sounddevice):
    player = DevicePlayer("pulse", 1000, 1, chunk_ms=10.0, buffer_s=0.005)
    player.start(iter([AudioChunk(np.ones((5, 1), np.float32), 1000, 0.0)] * 2), lead_in_s=0.0)  # queues one
    out = np.zeros((10, 1), np.float32)
    callback = fake_sounddevice.streams[0].kwargs["callback"]
    times = types.SimpleNamespace(outputBufferDacTime=0.0, currentTime=0.0)
    callback(out, 10, times, types.SimpleNamespace(output_underflow=True))
    assert player.underflows == 2 and player.played == 5  # PortAudio's flag, and a half-empty block


# -- node over DDS ------------------------------------------------------------------------

class Listener:
    """A test-process node collecting ``audio``, ``ground_truth`` and ``diagnostics``."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray

        from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS, SENSOR_DATA_QOS
        from ser_robot_msgs.msg import AudioFrame, Emotion

        self.rclpy = rclpy
        self.node = rclpy.create_node("corpus_player_listener")
        self.frames, self.truths, self.diagnostics = [], [], []
        self.node.create_subscription(AudioFrame, "audio", self.frames.append, SENSOR_DATA_QOS)
        self.node.create_subscription(Emotion, "ground_truth", self.truths.append, RELIABLE_QOS)
        self.node.create_subscription(DiagnosticArray, "diagnostics", self.diagnostics.append, DIAGNOSTICS_QOS)

    def spin_until(self, done, timeout):
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.rclpy.spin_once(self.node, timeout_sec=0.05)

    def player_status(self):
        """Key-values of the corpus player's last diagnostics."""
        statuses = [s for array in self.diagnostics for s in array.status if s.name.endswith("corpus_player")]
        return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}


def start_run(*sets):
    args = [a for pair in sets for a in ("--set", pair)]
    return subprocess.Popen([sys.executable, "-m", "ser_robot", "run", "--duration", "60", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_run(process):
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    return process.communicate(timeout=30)[0]


@pytest.mark.ros
def test_node_publishes_the_programme_and_its_ground_truth(rclpy_context, tmp_path):
    from ser_robot.config import validate_node_params
    from ser_robot.ros.conversions import audio_frame_samples, time_to_seconds
    from ser_robot.ros.corpus_player_node import CorpusPlayerNode
    from ser_robot.ros.diagnostics import OK
    from ser_robot.ros.runner import NodeSet, parameter_overrides

    specs = THREE[:2] + [("u3", "spk_a", "happy", 0.3, 8000, 880.0)]  # one resampled
    path, _ = make_manifest(tmp_path, specs)
    programme = Programme.from_manifest(path, pause_s=0.2, chunk_ms=20.0)
    params = validate_node_params("corpus_player", {
        "manifest": str(path), "shuffle": False, "pause_s": 0.2, "rate": 2.0, "chunk_ms": 20.0,
        "encoding": "f32le", "frame_id": "test_head"})
    listener = Listener()  # in this process, so it is matched before the first frame
    player = CorpusPlayerNode("corpus_player", parameter_overrides=parameter_overrides(params))
    nodes = NodeSet([player], ["corpus_player"])
    try:
        nodes.start()
        listener.spin_until(player.finished.is_set, timeout=20)
        listener.spin_until(lambda: False, timeout=0.3)  # the last messages
        level, message, _, health = player.health()
    finally:
        nodes.stop()
        listener.node.destroy_node()
    assert player.finished.is_set()
    assert (level, message) == (OK, "finished")
    assert health["utterances_played"] == health["utterances_total"] == 3 and health["output"] == "topic"
    frames, truths = listener.frames, listener.truths
    assert [f.seq for f in frames] == list(range(len(frames))), "AudioFrames lost or reordered"
    assert {(f.sample_rate, f.channels, f.encoding, f.header.frame_id) for f in frames} == {(16000, 2, "f32le", "test_head")}
    audio = np.concatenate([audio_frame_samples(f) for f in frames])
    expected = np.concatenate([c.samples for c in programme.chunks()])
    np.testing.assert_array_equal(audio, expected)  # pauses included, bit-exact in f32le

    # each sample's stamp: its frame's stamp + offset / rate
    stamps = np.concatenate([time_to_seconds(f.header.stamp) + np.arange(len(f.data) // 8) / 16000 for f in frames])
    assert np.max(np.abs(np.diff(stamps) - 1 / 16000)) < 2e-6  # the media clock, no jumps
    assert [t.model_id for t in truths] == ["ground_truth:u1", "ground_truth:u2", "ground_truth:u3"]
    for truth, cue in zip(truths, programme.cues):
        start, end = time_to_seconds(truth.window_start), time_to_seconds(truth.window_end)
        assert start == pytest.approx(stamps[cue.start], abs=1 / 16000)
        assert end == pytest.approx(stamps[cue.end - 1], abs=1 / 16000 + 1e-6)
        assert time_to_seconds(truth.header.stamp) == end
        assert (truth.header.frame_id, truth.source_id, truth.final, truth.speech) == ("test_head", "test_head", True, True)
        assert truth.label == cue.utterance.label and list(truth.labels) == list(EMOTIONS)
        assert list(truth.probabilities) == [float(label == cue.utterance.label) for label in EMOTIONS]
        assert truth.confidence == 1.0 and truth.speech_probability == 1.0
    assert truths[0].valence == -0.5 and math.isnan(truths[1].valence)


@pytest.mark.ros
def test_node_configures_only_with_a_manifest_and_an_output_device(rclpy_context, fake_sounddevice, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn

    from ser_robot.config import validate_node_params
    from ser_robot.ros.corpus_player_node import CorpusPlayerNode
    from ser_robot.ros.runner import parameter_overrides

    path, _ = make_manifest(tmp_path, THREE)

    def node(**params):
        values = validate_node_params("corpus_player", {"manifest": str(path), "output": "device", **params})
        return CorpusPlayerNode("corpus_player_config_test", parameter_overrides=parameter_overrides(values))

    for bad in ({"device": "no such speaker"}, {"manifest": str(tmp_path / "missing.jsonl")}, {"speakers": ["nobody"]}):
        player = node(**bad)
        try:
            assert player.trigger_configure() == TransitionCallbackReturn.FAILURE, bad
        finally:
            player.destroy_node()
    player = node(device="pulse")
    try:
        assert player.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert player._publisher is None  # device output publishes no AudioFrame
        assert player.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert fake_sounddevice.streams[-1].active and player.health()[1] == "playing"
        assert player.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert not fake_sounddevice.streams[-1].active and player.health()[1] == "inactive"
    finally:
        player.trigger_shutdown()
        player.destroy_node()


@pytest.mark.ros
@pytest.mark.audio
def test_device_output_is_captured_by_the_microphone_where_the_ground_truth_says(rclpy_context, virtual_ears,
                                                                                  tmp_path):
    from ser_robot.ros.conversions import audio_frame_samples, time_to_seconds

    rate = 48000
    specs = [("d1", "s", "neutral", 0.4, rate, 440.0), ("d2", "s", "sad", 0.3, rate, 700.0),
             ("d3", "s", "angry", 0.5, 24000, 550.0)]
    path, _ = make_manifest(tmp_path, specs)
    listener = Listener()
    # Two processes: the microphone's reconnect re-initialises PortAudio, which would end the
    # player's stream if they shared one.
    microphone = start_run("runner.nodes=[microphone]", "microphone.device=pulse", f"microphone.sample_rate={rate}")
    player = None
    try:
        listener.spin_until(lambda: len(listener.frames) > 50 or microphone.poll() is not None, timeout=20)
        player = start_run("runner.nodes=[corpus_player]", f"corpus_player.manifest={path}",
                           "corpus_player.output=device", "corpus_player.device=pulse", "corpus_player.shuffle=false",
                           "corpus_player.pause_s=0.4", "corpus_player.start_delay_s=3.0")  # > DDS discovery
        listener.spin_until(lambda: player.poll() is not None, timeout=25)
        listener.spin_until(lambda: False, timeout=0.5)  # the microphone's last frames
    finally:
        output = stop_run(player) if player is not None else "player not started"
        output += stop_run(microphone)
        listener.node.destroy_node()
    assert player.returncode == 0 and "end of the programme: 3 utterance(s) played" in output, output
    assert [t.model_id for t in listener.truths] == ["ground_truth:d1", "ground_truth:d2", "ground_truth:d3"], output
    frames = listener.frames  # the microphone's only: the player publishes no audio
    assert {(f.sample_rate, f.header.frame_id) for f in frames} == {(rate, "head_mics")}, output
    assert np.all(np.diff([f.seq for f in frames]) == 1), "the microphone's frames were lost"
    audio = np.concatenate([audio_frame_samples(f) for f in frames])[:, 0]
    times = np.concatenate([time_to_seconds(f.header.stamp) + np.arange(len(f.data) // 4) / rate for f in frames])
    envelope = np.convolve(np.abs(audio), np.ones(240) / 240, mode="same")  # 5 ms mean of |x|; a burst's is 0.32
    loud = times[envelope > 0.15]
    for truth, (_, _, _, seconds, _, _) in zip(listener.truths, specs):
        start, end = time_to_seconds(truth.window_start), time_to_seconds(truth.window_end)
        assert end - start == pytest.approx(seconds, abs=1e-3)
        heard = loud[(loud > start - 0.3) & (loud < end + 0.3)]
        assert len(heard), f"{truth.model_id}: nothing captured near {start:.3f}..{end:.3f}"
        assert abs(heard[0] - start) < 0.15 and abs(heard[-1] - end) < 0.15, (
            f"{truth.model_id}: captured {heard[0]:.3f}..{heard[-1]:.3f}, ground truth {start:.3f}..{end:.3f}")
    status = listener.player_status()
    assert status.get("output") == "device" and status.get("underflows") == "0", status
