"""The published emotion must not depend on the microphone's gain (issue 15): a gain sweep of held-out voices
through the shipped default model, offline and through the feature node."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import Recorder
from ser_robot.eval.gain_sweep import GAINS_DB, gain_sweep

MAX_UAR_CHANGE = 0.03  # UAR at every gain within 3 points of its 0 dB value
MIN_AGREEMENT = 0.90  # and at least 90 % of the predictions equal to the 0 dB ones


@pytest.fixture(scope="module")
def held_out_voices(tmp_path_factory):
    """The default model's held-out voice pair (two voices it never heard), 6 sentences x 4 emotions each
    (48 utterances: one changed prediction moves UAR by about 2 points)."""
    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.synth.corpus import generate_corpus
    from ser_robot.data.synth.voices import diverse_voices
    from ser_robot.inference.model import default_model_path
    from ser_robot.train.checkpoint import load_checkpoint

    pair = list(load_checkpoint(default_model_path())["fold"]["test"])[:2]
    out = tmp_path_factory.mktemp("gain_corpus")
    generate_corpus(out, speakers=len(diverse_voices()), sentences=6, seed=0, workers=1, progress=False,
                    only_speakers=pair, voices="diverse")
    held = list(read_manifest(out / "manifest.jsonl"))
    assert len(held) == 48
    return held


@pytest.fixture(scope="module")
def default_model():
    from ser_robot.inference.model import EmotionModel

    return EmotionModel(device="cpu")


def check_invariant(sweep) -> None:
    summary = sweep.markdown()
    for gain in GAINS_DB:
        assert abs(sweep.uar(gain) - sweep.uar(0.0)) <= MAX_UAR_CHANGE + 1e-9, summary
        assert sweep.agreement(gain) >= MIN_AGREEMENT, summary


def test_offline_gain_sweep_with_the_level_normaliser(held_out_voices, default_model):
    check_invariant(gain_sweep(default_model, held_out_voices, level="agc"))


def test_without_level_and_stream_normalisation_the_model_follows_the_gain(held_out_voices):
    """The failure the normalisers fix (so this test can fail): without the level normaliser and with the training
    population's statistics instead of each stream's, louder input reads as another emotion."""
    from ser_robot.inference.model import EmotionModel

    model = EmotionModel(device="cpu")
    model.stream_normalization = None  # new_stream() -> None: the population's statistics
    sweep = gain_sweep(model, held_out_voices, gains_db=(0.0, 10.0), level="off")
    assert sweep.agreement(10.0) < MIN_AGREEMENT, sweep.markdown()


@pytest.mark.ros
def test_gain_sweep_through_the_feature_node(rclpy_context, held_out_voices, default_model):
    """The same sweep with the features the feature node publishes (default parameters: level_normalization agc),
    fed 10 ms float frames of each voice's stream."""
    from ser_robot.audio.chunk import AudioChunk
    from ser_robot.config import validate_node_params
    from ser_robot.ros.conversions import chunk_to_audio_frame, time_to_seconds
    from ser_robot.ros.feature_node import FeatureNode
    from ser_robot.ros.runner import parameter_overrides
    from rclpy.lifecycle import TransitionCallbackReturn


    params = validate_node_params("features", {"feature_set": default_model.feature_set, "vad": False,
                                               "max_stream_speed": 0.0})
    assert params["level_normalization"] == "agc"  # the default
    node = FeatureNode("gain_sweep_features", parameter_overrides=parameter_overrides(params))
    success = TransitionCallbackReturn.SUCCESS
    assert node.trigger_configure() == success and node.trigger_activate() == success
    streams = [0]

    def node_frames(stream: np.ndarray, spans):
        """Each utterance's frames as the node published them (frames that start inside it)."""
        node._features_publisher = Recorder()
        frame_id = f"voice{streams[0]}"  # a new stream (and a new level normaliser) per voice and gain
        streams[0] += 1
        step = 160
        for seq, begin in enumerate(range(0, len(stream), step)):
            chunk = AudioChunk(stream[begin:begin + step, None], 16000, 100.0 + begin / 16000)
            node._on_audio(chunk_to_audio_frame(chunk, seq, "f32le", [], frame_id))
        assert node.expire_streams(now=time.monotonic() + 1e6) == [frame_id]  # flushes its last block
        rows, starts = [], []
        for msg in node._features_publisher.messages:
            block = np.asarray(msg.data, np.float32).reshape(msg.num_frames, msg.num_features)
            rows.append(block)
            starts.append(time_to_seconds(msg.header.stamp) + np.arange(msg.num_frames) / msg.frame_rate - 100.0)
        frames, times = np.concatenate(rows), np.concatenate(starts)
        return [frames[(times >= start / 16000) & (times < end / 16000)] for start, end, _ in spans]

    try:
        check_invariant(gain_sweep(default_model, held_out_voices, frames_of=node_frames))
    finally:
        node.destroy_node()


def test_gain_sweep_command_writes_its_report(held_out_voices, tmp_path):
    from conftest import ser_robot

    manifest = tmp_path / "held.jsonl"
    from ser_robot.data.manifest import write_manifest

    write_manifest(manifest, held_out_voices)
    done = ser_robot("gain-sweep", str(manifest), "--out", str(tmp_path / "sweep"), "--levels", "agc")
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "sweep" / "README.md").read_text()
    assert "level_normalization: agc" in report and "| +10 |" in report and "UAR spread" in report
    rows = (tmp_path / "sweep" / "sweep.csv").read_text().splitlines()
    assert rows[0] == "level,gain_db,uar,agreement,peak_dbfs,most_predicted" and len(rows) == 6
    missing = ser_robot("gain-sweep", str(manifest), "--out", str(tmp_path / "none"), "--sessions", "s99")
    assert missing.returncode != 0 and "no utterance of sessions ['s99']" in missing.stderr
