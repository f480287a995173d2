"""The inference node over real DDS: corpus player -> feature node -> inference node -> recorder."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ser_robot
from ser_robot.bag import read_messages


def _seconds(t) -> float:
    return t.sec + t.nanosec * 1e-9


def _offline_results(bag, checkpoint: str, settings, purifier=None):
    """``ser-robot predict``'s library over the recorded audio as one recording: features, VAD, segments, model
    (behind ``purifier`` when given)."""
    from ser_robot.inference import EmotionModel
    from ser_robot.inference.offline import predict_segments
    from ser_robot.ros.conversions import audio_frame_samples

    frames = [m.deserialize() for m in read_messages(bag, ["/audio"])]
    assert [f.seq for f in frames] == list(range(len(frames))), "audio frames were lost on the way to the recorder"
    samples = np.concatenate([audio_frame_samples(f) for f in frames])
    return predict_segments(EmotionModel(checkpoint, "cpu", purifier=purifier), samples, frames[0].sample_rate,
                            settings, start=_seconds(frames[0].header.stamp))


@pytest.mark.ros
@pytest.mark.parametrize(("mode", "model", "feature_set"), [("utterance", "lakomkin_rnn", "egemaps"),
                                                            ("window", "lakomkin_rnn", "egemaps"),
                                                            ("window", "mtl_aug", "logmel_mtl_aug"),
                                                            ("utterance", "densenet_lstm_highway", "logmel_latif2020"),
                                                            ("window", "densenet_lstm_highway", "logmel_latif2020")])
def test_pipeline_over_dds_equals_the_offline_predictions(mode, model, feature_set, tmp_path, tiny_corpus,
                                                          tiny_checkpoint):
    from ser_robot.inference import InferenceSettings

    checkpoint = str(tiny_checkpoint(model, feature_set))
    bag = _run_pipeline(tmp_path, tiny_corpus, checkpoint, feature_set, mode)
    live = [m.deserialize() for m in read_messages(bag, ["/emotion"])]
    truth = [m.deserialize() for m in read_messages(bag, ["/ground_truth"])]
    assert len(truth) == 8  # 2 sentences x 4 emotions of one speaker
    _assert_live_equals_offline(live, _offline_results(bag, checkpoint, InferenceSettings(mode=mode)))
    if mode == "utterance":  # every played utterance found as one segment
        finals = [m for m in live if m.final]
        for gt in truth:
            overlapping = [m for m in finals if _seconds(m.window_start) < _seconds(gt.window_end)
                           and _seconds(m.window_end) > _seconds(gt.window_start)]
            assert len(overlapping) >= 1, f"no result for {gt.model_id}"

    done = ser_robot("evaluate-bag", str(bag), "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report" / "report.md").is_file() and (tmp_path / "report" / "timeline.png").is_file()


@pytest.mark.ros
def test_the_purifier_runs_live_as_offline_and_its_latency_is_published(tmp_path, tiny_corpus, tiny_checkpoint):
    """SSAD's purifier in front of a 64-band log-Mel model in the live node: the emotions equal the offline
    path's with the same purifier, and diagnostics publish the purifier's and the model's time per window."""
    import torch

    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.inference import InferenceSettings
    from ser_robot.models.ssad import load_ssad_config
    from ser_robot.train.purifier import train_purifier

    checkpoint = str(tiny_checkpoint("lakomkin_cnn", "logmel_ren2020"))
    fold = leave_one_speaker_out(read_manifest(tiny_corpus))[0]
    trained = train_purifier(fold, checkpoint, load_ssad_config(layers=1, feedforward=32, disc_dense=[32],
                                                                 disc_channels=4), epochs=1, frames=80,
                             out_dir=tmp_path / "ssad").checkpoint
    saved = torch.load(trained, weights_only=True)  # a purifier that surely changes its input: a skipped one shows
    torch.nn.init.normal_(saved["state"]["correction.weight"], std=0.05, generator=torch.Generator().manual_seed(0))
    purifier = tmp_path / "purifier.pt"
    torch.save(saved, purifier)
    bag = _run_pipeline(tmp_path, tiny_corpus, checkpoint, "logmel_ren2020", "window",
                        "--set", f"inference.purifier={purifier}")
    live = [m.deserialize() for m in read_messages(bag, ["/emotion"])]
    offline = _offline_results(bag, checkpoint, InferenceSettings(mode="window"), purifier)
    _assert_live_equals_offline(live, offline)
    unpurified = _offline_results(bag, checkpoint, InferenceSettings(mode="window"))
    assert any(not np.allclose(a.prediction.probabilities, b.prediction.probabilities, atol=1e-4)
               for a, b in zip(offline, unpurified) if a.prediction is not None)
    values = {}
    for message in read_messages(bag, ["/diagnostics"]):
        for status in message.deserialize().status:
            if "inference" in status.name:
                values.update({v.key: v.value for v in status.values})
    assert float(values["purifier_p99_ms"]) > 0 and float(values["forward_p99_ms"]) > 0
    assert "+ssad@" in values["model_id"]


def _run_pipeline(tmp_path, tiny_corpus, checkpoint: str, feature_set: str, mode: str, *extra: str):
    """Corpus player -> feature node -> inference node -> recorder over DDS, one speaker; the bag's path."""
    bag = tmp_path / "bag"
    done = ser_robot(
        "run", "--duration", "90",
        "--set", "runner.nodes=[corpus_player, features, inference, recorder]",
        "--set", f"corpus_player.manifest={tiny_corpus}",
        "--set", "corpus_player.speakers=[s01f_slt]",
        "--set", "corpus_player.pause_s=0.8",
        "--set", "corpus_player.encoding=f32le",
        "--set", "features.block_frames=10",
        "--set", "features.vad_block_windows=2",
        "--set", f"features.feature_set={feature_set}",
        "--set", f"inference.model={checkpoint}",
        "--set", f"inference.mode={mode}",
        "--set", f"recorder.output={bag}",
        "--set", "recorder.topics=[audio, emotion, ground_truth, diagnostics]",
        *extra,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return bag


def _assert_live_equals_offline(live, offline) -> None:
    assert len(live) == len(offline) > 0
    for msg, result in zip(live, offline):
        assert (msg.final, msg.speech) == (result.final, result.speech)
        assert _seconds(msg.window_start) == pytest.approx(result.window_start, abs=1e-6)
        assert _seconds(msg.window_end) == pytest.approx(result.window_end, abs=1e-6)
        if result.prediction is not None:
            np.testing.assert_allclose(msg.probabilities, result.prediction.probabilities, atol=1e-5)
            assert msg.label == msg.labels[int(np.argmax(msg.probabilities))]
        assert msg.header.stamp == msg.window_end


@pytest.mark.ros
def test_node_refuses_a_corrupt_checkpoint_at_configure(tmp_path, tiny_checkpoint):
    corrupt = tmp_path / "model.pt"
    corrupt.write_bytes(tiny_checkpoint().read_bytes()[:3000])
    done = ser_robot("run", "--duration", "5", "--set", "runner.nodes=[inference]",
                     "--set", f"inference.model={corrupt}")
    assert done.returncode != 0
    assert f"cannot load checkpoint {corrupt} safely" in done.stderr + done.stdout



@pytest.mark.ros
def test_cleanup_releases_the_publishers_and_the_model_and_configure_starts_afresh(rclpy_context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from ser_robot.ros.inference_node import InferenceNode

    node = InferenceNode("inference_cleanup")
    try:
        success = TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == success
        assert node.model is not None and node._emotion_publisher is not None
        topics = dict(node.get_publisher_names_and_types_by_node("inference_cleanup", ""))
        assert any(name.endswith("emotion") for name in topics)
        assert node.trigger_cleanup() == success
        assert node.model is None and node._emotion_publisher is None and node._diagnostics_publisher is None
        topics = dict(node.get_publisher_names_and_types_by_node("inference_cleanup", ""))
        assert not any(name.endswith("emotion") for name in topics)
        assert node.trigger_configure() == success and node.model is not None  # afresh
    finally:
        node.destroy_node()
