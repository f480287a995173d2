"""The live feature path: channel reduction, streaming resampling, the pipeline, and the node over DDS."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from conftest import ser_robot
from ser_robot.audio.channels import ChannelReducer
from ser_robot.audio.level_normalizer import normalize_level
from ser_robot.audio.resample import StreamingResampler, resample
from ser_robot.features.pipeline import FeaturePipeline
from ser_robot.features.sets import create_extractor

FEATURE_SET = "logmel_latif2020"


def speech(seconds: float = 2.0, rate: int = 48000) -> np.ndarray:
    """A voiced, speech-like stereo test signal ``(frames, 2)``: harmonic tone with a moving F0, ears differ."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    mono = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.3 + 0.2 * np.sin(2 * np.pi * 2 * t) ** 2) * 0.2
    return np.stack([mono, 0.7 * mono], axis=1).astype(np.float32)


@pytest.mark.parametrize("source, target", [(48000, 16000), (44100, 16000), (22050, 16000), (8000, 16000)])
def test_streaming_resampler_equals_whole_signal_and_keeps_a_tone(source, target):
    t = np.arange(source) / source
    tone = np.sin(2 * np.pi * 440 * t)
    whole = resample(tone, source, target)
    resampler, rng, parts, i = StreamingResampler(source, target), np.random.default_rng(1), [], 0
    while i < len(tone):
        size = int(rng.integers(1, 3000))
        parts.append(resampler.push(tone[i:i + size]))
        i += size
    parts.append(resampler.flush())
    assert np.array_equal(np.concatenate(parts), whole)
    assert len(whole) == target
    expected = np.sin(2 * np.pi * 440 * np.arange(target) / target)
    assert np.max(np.abs(whole[100:-100] - expected[100:-100])) < 1e-4  # no delay, no ripple


def test_channel_reductions():
    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((1000, 2)).astype(np.float32)
    assert np.allclose(ChannelReducer("mean", 16000)(stereo), stereo.mean(axis=1))
    assert np.array_equal(ChannelReducer("left", 16000)(stereo, ["right_ear", "left_ear"]), stereo[:, 1])
    assert np.array_equal(ChannelReducer("right", 16000)(stereo), stereo[:, 1])
    # steered to the front: equal to mean; steered left: the left ear is delayed by d sin(az) / c
    assert np.allclose(ChannelReducer("delay_and_sum", 16000)(stereo), stereo.mean(axis=1))
    beam = ChannelReducer("delay_and_sum", 48000, azimuth_deg=90, spacing_m=0.18)
    assert beam.delay == round(0.18 / 343 * 48000) and beam.delayed_ear == "left"
    chunked = np.concatenate([beam(stereo[i:i + 37]) for i in range(0, 1000, 37)])
    beam.reset()
    assert np.allclose(chunked, beam(stereo))
    # a source at 90° (left ear leads) adds coherently; its mirror image does not
    delay = beam.delay
    source = rng.standard_normal(1000 + delay).astype(np.float32)
    from_left = np.stack([source[delay:], source[:-delay]], axis=1)
    from_right = np.stack([source[:-delay], source[delay:]], axis=1)
    beam.reset()
    gain_left = np.var(beam(from_left)[delay:])
    beam.reset()
    gain_right = np.var(beam(from_right)[delay:])
    assert gain_left > 1.5 * gain_right
    with pytest.raises(ValueError, match="unknown channel reduction 'sum'"):
        ChannelReducer("sum", 16000)


@pytest.mark.parametrize("feature_set", [FEATURE_SET, "egemaps"])
def test_pipeline_equals_offline_features_and_resets_on_gaps(feature_set):
    stereo, rate = speech(), 48000
    extractor = create_extractor(feature_set)
    offline = extractor(torch.from_numpy(resample(stereo.mean(axis=1), rate, 16000))[None])[0].numpy()
    pipeline = FeaturePipeline(create_extractor(feature_set), block_frames=25, vad=True)
    blocks, vad = [], []
    chunk = 480
    for seq, start in enumerate(range(0, len(stereo), chunk)):
        got, got_vad = pipeline.push(stereo[start:start + chunk], rate, seq, 100.0 + start / rate)
        blocks += got
        vad += got_vad
    got, got_vad = pipeline.finish()
    blocks += got
    vad += got_vad
    streamed = np.concatenate([b.frames for b in blocks])
    assert streamed.shape == offline.shape
    assert np.max(np.abs(streamed - offline) / (1 + np.abs(offline))) < 1e-3
    assert all(len(b.frames) == 25 for b in blocks[:-1])
    hop_s = extractor.hop_length / extractor.sample_rate
    assert [b.start_time for b in blocks] == pytest.approx([100.0 + b.first_index * hop_s for b in blocks])
    probabilities = np.concatenate([b.frames[:, 0] for b in vad])
    assert len(probabilities) == 2 * 16000 // 512 and ((0 <= probabilities) & (probabilities <= 1)).all()

    # a gap of 3 chunks ends the stream and restarts it at the next chunk's stamp
    pipeline = FeaturePipeline(create_extractor(feature_set), block_frames=25)
    for seq in (0, 1, 2, 6, 7):
        pipeline.push(stereo[seq * chunk:(seq + 1) * chunk], rate, seq, seq * 0.01)
    assert (pipeline.counters.seq_gaps, pipeline.counters.samples_lost, pipeline.counters.restarts) == (1, 3 * chunk, 2)


@pytest.mark.parametrize("rate", [48000, 16000])  # resampled, and not
def test_pipeline_returns_each_block_and_vad_window_with_the_chunk_that_completes_it(rate):
    stereo, chunk = speech(rate=rate), rate // 100  # 10 ms chunks
    pipeline = FeaturePipeline(create_extractor("egemaps"), block_frames=10, vad=True, vad_block_windows=8)
    x = pipeline.extractor
    clock = StreamingResampler(rate, 16000)  # counts the 16 kHz samples the stream holds after each chunk
    frames = windows = flushed = 0
    for seq, start in enumerate(range(0, len(stereo) - chunk + 1, chunk)):
        features, vad = pipeline.push(stereo[start:start + chunk], rate, seq, start / rate)
        frames += sum(len(b.frames) for b in features)
        windows += sum(len(b.frames) for b in vad)
        held = clock.produced_after(start + chunk)
        final = max(0, (held - x.window_length) // x.hop_length + 1 - x.context[1])  # frames no later sample changes
        assert frames == final - final % 10, f"chunk {seq}"
        complete = held // 512
        if features:  # every completed VAD window leaves with a block of frames
            flushed = complete
        assert windows == flushed + (complete - flushed) // 8 * 8, f"chunk {seq}"
    assert frames >= 100 and windows >= 30


@pytest.mark.ros
def test_feature_node_over_dds_matches_offline(tmp_path):
    from ser_robot.bag import read_messages

    stereo = speech(seconds=2.0)
    wav = tmp_path / "speech.wav"
    soundfile.write(str(wav), stereo, 48000, subtype="PCM_16")
    pcm, _ = soundfile.read(str(wav), dtype="float32")
    bag = tmp_path / "bag"
    result = ser_robot(
        "run", "--duration", "40",
        "--set", "runner.nodes=[file_source, features, recorder]",
        "--set", f"file_source.paths=[{wav}]",
        "--set", f"features.feature_set={FEATURE_SET}",
        "--set", "features.block_frames=20",
        "--set", f"recorder.output={bag}",
        "--set", "recorder.topics=[features, vad, diagnostics]",
    )
    assert result.returncode == 0, result.stderr
    messages = [m for m in read_messages(bag, ["/features"])]
    assert messages, "no FeatureFrames recorded"
    frames = [m.deserialize() for m in messages]
    assert [f.seq for f in frames] == list(range(len(frames)))
    data = np.concatenate([np.asarray(f.data, np.float32).reshape(f.num_frames, f.num_features) for f in frames])
    extractor = create_extractor(FEATURE_SET)
    mono = resample(pcm.mean(axis=1), 48000, 16000).astype(np.float32)
    offline = extractor(torch.from_numpy(normalize_level(mono, 16000))[None])[0].numpy()  # level_normalization: agc
    assert len(data) >= len(offline) - 20  # at most the last, partial block may be cut by shutdown
    assert np.max(np.abs(data - offline[: len(data)])) < 1e-3
    assert frames[0].feature_set == FEATURE_SET and list(frames[0].feature_names) == list(extractor.names)
    assert frames[0].frame_rate == pytest.approx(100.0)
    assert any(True for _ in read_messages(bag, ["/vad"]))


@pytest.mark.ros
def test_queues_grow_with_the_streams_a_node_takes(rclpy_context):
    """KEEP_LAST depth is shared by every stream of a topic: 4 streams lost audio with depth 50 (pipeline bench)."""
    from ser_robot.config import validate_node_params
    from ser_robot.ros.feature_node import FeatureNode
    from ser_robot.ros.qos import RELIABLE_QOS, SENSOR_DATA_QOS
    from ser_robot.ros.runner import parameter_overrides

    params = validate_node_params("features", {"feature_set": FEATURE_SET, "max_streams": 6})
    node = FeatureNode("features_queues", parameter_overrides=parameter_overrides(params))
    try:
        node.trigger_configure()
        node.trigger_activate()
        assert node._subscription.qos_profile.depth == 6 * SENSOR_DATA_QOS.depth
        assert node._vad_publisher.qos_profile.depth == 6 * RELIABLE_QOS.depth
        assert node._subscription.qos_profile.reliability == SENSOR_DATA_QOS.reliability
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_node_counts_malformed_frames_and_gaps_and_goes_on(rclpy_context):
    from ser_robot.config import validate_node_params
    from ser_robot.ros.conversions import chunk_to_audio_frame
    from ser_robot.ros.feature_node import FeatureNode
    from ser_robot.ros.runner import parameter_overrides
    from ser_robot.audio.chunk import AudioChunk

    params = validate_node_params("features", {"feature_set": FEATURE_SET, "vad": False, "block_frames": 5})
    node = FeatureNode("features_under_test", parameter_overrides=parameter_overrides(params))
    try:
        node.trigger_configure()
        stereo = speech(seconds=0.3, rate=16000)
        frames = [chunk_to_audio_frame(AudioChunk(stereo[i * 160:(i + 1) * 160], 16000, i * 0.01), i, "s16le",
                                       ["left_ear", "right_ear"], "head") for i in range(30)]
        bad = chunk_to_audio_frame(AudioChunk(stereo[:160], 16000, 0.0), 3, "s16le", [], "head")
        bad.data = bad.data[:-1]  # odd byte count: not s16le
        for msg in frames[:3] + [bad] + frames[10:]:  # frames 3..9 lost: 70 ms, less than conceal_gap_s
            node._on_audio(msg)
        pipeline = node.streams["head"].pipeline
        assert node.malformed == 1
        assert (pipeline.counters.seq_gaps, pipeline.counters.gaps_concealed, pipeline.counters.restarts) == (1, 1, 1)
        assert node.published > 0
        node._report()  # diagnostics with the counts, no exception
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_deactivation_finishes_and_forgets_every_stream(rclpy_context):
    """A deactivated node holds no stream: each was finished (its last blocks published) and forgotten, so the
    next activation starts each source afresh instead of feeding a finished pipeline."""
    from ser_robot.audio.chunk import AudioChunk
    from ser_robot.config import validate_node_params
    from ser_robot.ros.conversions import chunk_to_audio_frame
    from ser_robot.ros.feature_node import FeatureNode
    from ser_robot.ros.runner import parameter_overrides

    params = validate_node_params("features", {"feature_set": FEATURE_SET, "vad": False, "block_frames": 5})
    node = FeatureNode("features_deactivated", parameter_overrides=parameter_overrides(params))
    try:
        node.trigger_configure()
        node.trigger_activate()
        stereo = speech(seconds=0.3, rate=16000)
        for source in ("head", "chest"):
            for i in range(12):
                node._on_audio(chunk_to_audio_frame(AudioChunk(stereo[i * 160:(i + 1) * 160], 16000, i * 0.01), i,
                                                    "s16le", ["left_ear", "right_ear"], source))
        assert set(node.streams) == {"head", "chest"}
        node.trigger_deactivate()
        assert len(node.streams) == 0
        node.trigger_activate()
        node._on_audio(chunk_to_audio_frame(AudioChunk(stereo[:160], 16000, 5.0), 0, "s16le",
                                            ["left_ear", "right_ear"], "head"))
        assert set(node.streams) == {"head"} and node.counts["streams_started"] == 3
    finally:
        node.destroy_node()
