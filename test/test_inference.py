"""The inference library without ROS: VAD segmentation, per-stream inference, checkpoint checks."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
import soundfile
import torch

from conftest import ROOT, ser_robot
from ser_robot.errors import CheckpointError, ConfigError, FeatureMismatchError
from ser_robot.inference import EmotionModel, InferenceSettings, StreamInference, VadSegmenter
from ser_robot.inference.engine import VAD_WINDOW_S
from ser_robot.inference.model import check_model_for_features, resolve_device
from ser_robot.inference.onnx_backend import OnnxExportError, OnnxForward

W = VAD_WINDOW_S


# --- segmenter ----------------------------------------------------------------------------------------


def _probabilities(pattern: str) -> np.ndarray:
    """'1' = speech window, '0' = silence."""
    return np.array([0.9 if c == "1" else 0.1 for c in pattern], np.float32)


def test_segmenter_ends_a_segment_after_the_hangover_at_the_last_speech_window():
    segmenter = VadSegmenter(W, threshold=0.5, hangover_s=3 * W, min_speech_s=0.0)
    segments = segmenter.push(_probabilities("0011111001111100000"))
    # the 2-window gap is shorter than the hangover: one segment from window 2 to the end of window 13
    assert [(s.start, s.end, s.final) for s in segments] == [(2, 14, True)]


def test_segmenter_drops_short_segments_cuts_long_ones_and_reports_interims():
    short = VadSegmenter(W, hangover_s=W, min_speech_s=4 * W)
    assert [(s.start, s.end) for s in short.push(_probabilities("01110001111100"))] == [(7, 12)]
    long = VadSegmenter(W, hangover_s=W, min_speech_s=0.0, max_utterance_s=4 * W)
    assert [(s.start, s.end) for s in long.push(_probabilities("1111111111"))] == [(0, 4), (4, 8)]
    assert [(s.start, s.end) for s in long.finish()] == [(8, 10)]
    interim = VadSegmenter(W, hangover_s=W, min_speech_s=0.0, interim_s=2 * W)
    got = [(s.start, s.end, s.final) for s in interim.push(_probabilities("0111110"))]
    assert got == [(1, 3, False), (1, 5, False), (1, 6, True)]


def test_segmenter_does_not_depend_on_how_probabilities_are_chunked():
    rng = np.random.default_rng(0)
    probabilities = (rng.random(2000) > 0.4).astype(np.float32)
    whole = VadSegmenter(W, hangover_s=0.2, min_speech_s=0.1, max_utterance_s=3.0, interim_s=0.5)
    expected = whole.push(probabilities) + whole.finish()
    chunked = VadSegmenter(W, hangover_s=0.2, min_speech_s=0.1, max_utterance_s=3.0, interim_s=0.5)
    got, start = [], 0
    for size in rng.integers(1, 40, 200):
        got += chunked.push(probabilities[start:start + size])
        start += size
    got += chunked.push(probabilities[start:]) + chunked.finish()
    assert got == expected


def test_nan_probability_is_not_speech():
    segmenter = VadSegmenter(W, hangover_s=W, min_speech_s=0.0)
    assert segmenter.push(np.array([np.nan, np.nan], np.float32)) == [] and segmenter.start is None


# --- engine -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stream_audio(tiny_corpus) -> np.ndarray:
    """(samples, 1) float32 at 16 kHz: six utterances with 1 s pauses around them."""
    from ser_robot.data.manifest import read_manifest

    parts = [np.zeros(16000, np.float32)]
    for utterance in list(read_manifest(tiny_corpus))[:6]:
        samples, rate = soundfile.read(utterance.path, dtype="float32")
        assert rate == 16000
        parts += [samples, np.zeros(16000, np.float32)]
    return np.concatenate(parts)[:, None]


def _blocks(audio: np.ndarray, chunk: int, origin: float = 100.0):
    """Feature and VAD blocks of ``audio`` fed in ``chunk``-sample chunks, as the feature node makes them."""
    from ser_robot.features.pipeline import FeaturePipeline
    from ser_robot.features.sets import create_extractor

    pipeline = FeaturePipeline(create_extractor("egemaps"), block_frames=10, vad=True, vad_block_windows=3)
    features, vad = [], []
    for seq, begin in enumerate(range(0, len(audio), chunk)):
        f, v = pipeline.push(audio[begin:begin + chunk], 16000, seq, origin + begin / 16000)
        features += f
        vad += v
    f, v = pipeline.finish()
    return features + f, vad + v


def _assert_same(got, expected) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert (a.final, a.speech, a.frames) == (b.final, b.speech, b.frames)
        assert a.window_start == pytest.approx(b.window_start, abs=1e-6)
        assert a.window_end == pytest.approx(b.window_end, abs=1e-6)
        assert (a.prediction is None) == (b.prediction is None)
        if a.prediction is not None:
            np.testing.assert_allclose(a.prediction.probabilities, b.prediction.probabilities, atol=1e-5)


def _run(engine: StreamInference, features, vad, interleave: bool):
    """Results of ``engine`` fed the blocks in time order (``interleave``) or all features first."""
    items = [(b.start_time, 0, b) for b in features] + [(b.start_time, 1, b) for b in vad]
    if interleave:
        items.sort(key=lambda item: (item[0], item[1]))
    results = []
    for _, kind, block in items:
        results += engine.push_features(block.start_time, block.frames) if kind == 0 else \
            engine.push_vad(block.start_time, block.frames[:, 0])
    return results + engine.finish()


@pytest.mark.parametrize("mode", ["utterance", "window"])
def test_streaming_equals_the_whole_signal_at_once(mode, stream_audio, tiny_checkpoint):
    model = EmotionModel(tiny_checkpoint(), "cpu")
    settings = InferenceSettings(mode=mode, interim_s=0.5 if mode == "utterance" else 0.0)
    offline = _run(StreamInference(model, settings), *_blocks(stream_audio, len(stream_audio)), interleave=False)
    streamed = _run(StreamInference(model, settings), *_blocks(stream_audio, 160), interleave=True)
    assert len(offline) > 6
    _assert_same(streamed, offline)
    finals = [r for r in offline if r.final]
    if mode == "utterance":  # one final result per utterance, each inside the stream's speech
        assert len(finals) == 6 and all(r.speech for r in finals)
        assert all(abs(sum(r.prediction.probabilities) - 1) < 1e-5 for r in finals)
    else:  # silence at the start: no guess; 1 s hop on a fixed grid; windows end where their audio ends
        assert not finals[0].speech and finals[0].prediction is None
        ends = np.diff([r.window_end for r in finals])
        np.testing.assert_allclose(ends, 1.0, atol=1e-6)
        assert finals[0].window_end == pytest.approx(100.0 + 1.0 - 0.01 + model.frame_span_s)


def test_late_blocks_are_dropped_and_a_time_jump_restarts_the_stream(stream_audio, tiny_checkpoint):
    model = EmotionModel(tiny_checkpoint(), "cpu")
    features, vad = _blocks(stream_audio[:16000 * 6], 160)
    clean = _run(StreamInference(model, InferenceSettings(mode="window")), features, vad, interleave=False)
    engine = StreamInference(model, InferenceSettings(mode="window"))
    hostile = list(features)
    hostile.insert(40, features[20])  # out of order
    hostile.insert(60, features[58])  # a duplicate
    _assert_same(_run(engine, hostile, vad, interleave=False), clean)
    assert engine.counters.out_of_order == 2 and engine.counters.restarts == 0
    jumped = StreamInference(model, InferenceSettings(mode="window"))
    _run(jumped, features[:30] + features[35:], vad, interleave=False)
    assert jumped.counters.restarts == 1


@pytest.mark.parametrize("mode", ["utterance", "window"])
def test_results_waiting_for_an_input_that_never_comes_are_given_up_and_counted(mode, stream_audio, tiny_checkpoint):
    """One input only (the feature node's VAD off, or features lost): pending results stay bounded
    by the other input's buffer, each one given up is counted, and none is published."""
    model = EmotionModel(tiny_checkpoint(), "cpu")
    features, vad = _blocks(np.tile(stream_audio, (3, 1)), 160)  # about a minute: longer than the buffers
    settings = InferenceSettings(mode=mode)
    expected = [r for r in _run(StreamInference(model, settings), features, vad, interleave=True) if r.final]
    engine = StreamInference(model, settings)
    most_pending = 0
    for block in features if mode == "window" else vad:
        results = engine.push_features(block.start_time, block.frames) if mode == "window" else \
            engine.push_vad(block.start_time, block.frames[:, 0])
        assert results == []
        most_pending = max(most_pending, engine.pending)
    assert engine.finish() == [] and engine.pending == 0
    counters = engine.counters
    assert counters.abandoned > 0 and counters.abandoned + counters.dropped_segments == len(expected) > 6
    keep_s = max(settings.window_s, settings.max_utterance_s + settings.hangover_s) + 1.0
    assert most_pending <= 2 * keep_s / settings.hop_s + 1


def test_smoothing_blends_successive_final_results(stream_audio, tiny_checkpoint):
    model = EmotionModel(tiny_checkpoint(), "cpu")
    blocks = _blocks(stream_audio, len(stream_audio))
    plain = [r for r in _run(StreamInference(model, InferenceSettings()), *blocks, False) if r.final]
    smooth = [r for r in _run(StreamInference(model, InferenceSettings(smoothing=0.5)), *blocks, False) if r.final]
    expected = plain[0].prediction.probabilities
    for p, s in zip(plain, smooth):
        if p is not plain[0]:
            expected = 0.5 * expected + 0.5 * p.prediction.probabilities
        np.testing.assert_allclose(s.prediction.probabilities, expected, atol=1e-6)


# --- model and checkpoint checks ------------------------------------------------------------------


def test_model_refuses_a_stream_of_another_feature_set(tiny_checkpoint):
    model = EmotionModel(tiny_checkpoint("lakomkin_cnn", "logmel_mtl_aug"), "cpu")
    from ser_robot.features.sets import create_extractor

    egemaps = create_extractor("egemaps")
    with pytest.raises(FeatureMismatchError, match="trained on feature set 'logmel_mtl_aug'.*carries 'egemaps'"):
        model.check_stream("egemaps", list(egemaps.names), 100.0)
    with pytest.raises(FeatureMismatchError, match="frames/s"):
        model.check_stream(model.feature_set, list(model.feature_names), 50.0)
    with pytest.raises(FeatureMismatchError, match="another order"):
        model.check_stream(model.feature_set, list(reversed(model.feature_names)), model.frame_rate)


def test_corrupt_and_missing_checkpoints_are_refused_with_their_path(tmp_path, tiny_checkpoint):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(pathlib.Path(tiny_checkpoint()).read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        EmotionModel(corrupt, "cpu")
    with pytest.raises(CheckpointError, match="not found"):
        EmotionModel(tmp_path / "none.pt", "cpu")
    with pytest.raises(FeatureMismatchError, match="set features.feature_set to 'logmel_mtl_aug'"):
        check_model_for_features(str(tiny_checkpoint("lakomkin_cnn", "logmel_mtl_aug")), "egemaps")
    check_model_for_features(str(tiny_checkpoint()), "egemaps")


def test_dimensional_model_outputs_are_mapped_from_the_training_rating_scale(tiny_corpus, tmp_path):
    """A model trained on IEMOCAP-style 1-5 ratings publishes arousal/valence on Emotion's [-1, 1]."""
    import dataclasses

    from ser_robot.data.corpora.labels import dimension_scale
    from ser_robot.data.manifest import Manifest, read_manifest
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.train.checkpoint import load_checkpoint
    from ser_robot.train.config import load_train_config
    from ser_robot.train.trainer import train

    rated = Manifest([dataclasses.replace(u, corpus="iemocap", arousal=3 + 2 * u.arousal, valence=3 + 2 * u.valence)
                      for u in read_manifest(tiny_corpus)])
    config = load_train_config(ROOT / "config/train/lakomkin.yaml", {
        "head": "dimensional", "epochs": 1, "workers": 0, "batch_size": 8, "augmentation": {"kind": "none"}})
    path = train(config, leave_one_speaker_out(rated)[0], out_dir=tmp_path, progress=False).best_checkpoint
    assert load_checkpoint(path)["dimension_scale"] == [1.0, 5.0]
    model = EmotionModel(path, "cpu", backend="torch")
    frames = np.random.default_rng(0).normal(size=(200, len(model.feature_names))).astype(np.float32)
    with torch.inference_mode():
        raw = model.model.forward_one(model.normalizer(torch.from_numpy(frames))[None])[0]
    expected = ((raw - 1) / 2 - 1).clamp(-1, 1).tolist()  # 1..5 -> -1..1
    prediction = model.predict(frames)
    assert [prediction.arousal, prediction.valence] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ConfigError, match="different scales"):
        dimension_scale({"iemocap", "synthetic"})


def test_device_auto_is_cpu_without_cuda_and_cuda_is_refused_then():
    import torch

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_run_refuses_a_model_for_another_feature_set_before_starting(tmp_path, tiny_checkpoint):
    config = tmp_path / "ser.yaml"
    config.write_text(
        "runner:\n  ros__parameters:\n    nodes: [file_source, features, inference]\n"
        f"file_source:\n  ros__parameters:\n    paths: [{ROOT / 'config'}]\n"
        f"inference:\n  ros__parameters:\n    model: {tiny_checkpoint('lakomkin_cnn', 'logmel_mtl_aug')}\n")
    done = ser_robot("run", "--config", str(config), "--duration", "5")
    assert done.returncode == 2, done.stderr
    assert "trained on feature set 'logmel_mtl_aug', but the feature node computes 'egemaps'" in done.stderr


def test_run_refuses_an_inference_node_without_the_feature_nodes_vad(tmp_path):
    done = ser_robot("run", "--set", "runner.nodes=[file_source,features,inference]", "--set", "features.vad=false",
                     "--duration", "5")
    assert done.returncode == 2, done.stderr
    assert "features.vad is false: set features.vad: true" in done.stderr


# --- backends ------------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture,feature_set", [("lakomkin_rnn", "egemaps"), ("lakomkin_cnn", "logmel_mtl_aug")])
def test_onnxruntime_backend_predicts_what_pytorch_predicts(architecture, feature_set, tiny_checkpoint):
    path = tiny_checkpoint(architecture, feature_set)
    fast, reference = EmotionModel(path, "cpu"), EmotionModel(path, "cpu", backend="torch")
    assert (fast.backend, reference.backend) == ("onnxruntime", "torch")
    rng = np.random.default_rng(0)
    mean, scale = fast.normalizer.mean.numpy(), fast.normalizer.scale.numpy()
    for frames in (1, 23, 300, 1500):  # lengths other than the export's and the probes' too
        x = (mean + scale * rng.standard_normal((frames, len(fast.feature_names)))).astype(np.float32)
        np.testing.assert_allclose(fast.predict(x).probabilities, reference.predict(x).probabilities, atol=1e-5)


def test_the_shipped_model_runs_on_onnxruntime_on_cpu():
    model = EmotionModel(None, "cpu")
    assert model.backend == "onnxruntime", model.backend_note


class _ShapeDependent(torch.nn.Module):
    """A model whose output depends on the window length through Python control flow: tracing bakes
    in the branch of the export's example length, so the export differs on other lengths."""

    def forward_one(self, features):
        return features.mean(dim=1) * (2.0 if features.shape[1] > 100 else -1.0)


def test_an_export_that_differs_from_pytorch_is_refused_and_auto_falls_back(tiny_checkpoint, monkeypatch):
    from ser_robot.features.normalization import FeatureNormalizer

    normalizer = FeatureNormalizer(["a", "b"])
    normalizer.update(torch.randn(50, 2))
    with pytest.raises(OnnxExportError, match="differs from PyTorch on a 1-frame window"):
        OnnxForward(_ShapeDependent(), normalizer, 2)
    broken = OnnxExportError("export broken for this test")

    def refuse(*args, **kwargs):
        raise broken

    monkeypatch.setattr("ser_robot.inference.model.OnnxForward", refuse)
    model = EmotionModel(tiny_checkpoint(), "cpu")
    assert model.backend == "torch" and "export broken" in model.backend_note
    with pytest.raises(ConfigError, match="backend onnxruntime .*export broken.*use backend auto or torch"):
        EmotionModel(tiny_checkpoint(), "cpu", backend="onnxruntime")
    with pytest.raises(ConfigError, match="backend 'tensorrt' is unknown"):
        EmotionModel(tiny_checkpoint(), "cpu", backend="tensorrt")


def test_a_checkpoint_with_non_finite_weights_is_refused_with_its_path(tmp_path, tiny_checkpoint):
    """Field defect: NaN weights loaded (onnxruntime's check fell back to PyTorch) and published NaN confidences."""
    from ser_robot.train.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(tiny_checkpoint())
    name = next(k for k in checkpoint["model"]["state"] if k.endswith("weight"))
    checkpoint["model"]["state"][name] = torch.full_like(checkpoint["model"]["state"][name], float("nan"))
    path = tmp_path / "nan.pt"
    save_checkpoint(path, checkpoint)
    with pytest.raises(CheckpointError, match=rf"{path} holds non-finite values .*model\.{re.escape(name)}"):
        EmotionModel(path, "cpu")


def test_non_finite_outputs_are_withheld_and_counted(stream_audio, tiny_checkpoint):
    model = EmotionModel(tiny_checkpoint(), "cpu", backend="torch")
    blocks = _blocks(stream_audio, len(stream_audio))
    expected = [r for r in _run(StreamInference(model, InferenceSettings(mode="window")), *blocks, False) if r.speech]
    with torch.no_grad():
        model.model.output.bias.fill_(float("nan"))  # a model that goes bad at run time
    engine = StreamInference(model, InferenceSettings(mode="window"))
    results = _run(engine, *blocks, False)
    assert expected and not any(r.speech for r in results)  # nothing with a NaN prediction comes out
    assert engine.counters.non_finite_outputs == len(expected)


def _message(block, seq: int, feature_set: str, names, rate: float):
    """A FeatureFrames-shaped object (no ROS) holding ``block``, as the feature node would publish it."""
    from types import SimpleNamespace

    sec = int(block.start_time)
    stamp = SimpleNamespace(sec=sec, nanosec=int(round((block.start_time - sec) * 1e9)))
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp), seq=seq, feature_set=feature_set,
                           feature_names=list(names), frame_rate=rate, num_frames=block.frames.shape[0],
                           num_features=block.frames.shape[1], data=block.frames.reshape(-1).tolist())


def test_inference_streams_apply_the_seq_and_clock_rules_without_ros(stream_audio, tiny_checkpoint):
    """InferenceStreams (what the inference node wraps): checks, two streams, the cap, late blocks, a
    publisher restarted with an earlier clock, closing; the results equal one engine's."""
    from ser_robot.inference.blocks import VAD_RATE, BlockRejected
    from ser_robot.inference.streams import InferenceStreams

    model = EmotionModel(tiny_checkpoint(), "cpu")
    settings = InferenceSettings(mode="window")
    features, vad = _blocks(stream_audio[:16000 * 6], 160)
    expected = _run(StreamInference(model, settings), features, vad, interleave=False)
    streams = InferenceStreams(model, settings, max_streams=2, timeout_s=5.0, reorder_window=4, max_block_s=2.0)

    def push(name, topic, seq, block):
        msg = _message(block, seq, *(("silero-vad", ["p"], VAD_RATE) if topic == "vad" else
                                     (model.feature_set, model.feature_names, model.frame_rate)))
        return streams.push(name, topic, seq, block.start_time, streams.check(topic, msg))

    results = []
    for seq, block in enumerate(features):
        pushed = push("a", "features", seq, block)
        assert pushed.started == (seq == 0) and pushed.event == ("started" if seq == 0 else "continued")
        results += pushed.results
    for seq, block in enumerate(vad):
        results += push("a", "vad", seq, block).results
    with pytest.raises(BlockRejected) as refused:
        push("a", "features", len(features) - 2, features[-2])  # a repeated seq
    assert refused.value.reason == "out_of_order"
    push("b", "features", 0, features[0])
    with pytest.raises(BlockRejected) as refused:
        push("c", "features", 0, features[0])
    assert refused.value.reason == "too_many_streams"
    restarted = push("b", "features", 0, features[0])  # seq 0 again, same clock: the publisher restarted
    assert restarted.event == "seq_reset" and restarted.restarted
    bad = _message(features[0], 0, model.feature_set, model.feature_names, model.frame_rate)
    bad.num_frames += 1
    with pytest.raises(BlockRejected) as refused:
        streams.check("features", bad)
    assert refused.value.reason == "bad_shape"
    results += streams.close("a")
    _assert_same(results, expected)
    assert sorted(streams.table) == ["b"] and streams.counters().results >= len(expected)


def test_a_fitted_temperature_scales_the_probabilities_and_a_bad_one_is_refused(tiny_checkpoint, tmp_path):
    from ser_robot.train.checkpoint import load_checkpoint, save_checkpoint

    tiny_checkpoint = tiny_checkpoint()
    frames = np.random.default_rng(0).normal(size=(150, len(EmotionModel(tiny_checkpoint, "cpu").feature_names)))
    plain = EmotionModel(tiny_checkpoint, "cpu", backend="torch").predict(frames.astype(np.float32)).probabilities
    checkpoint = load_checkpoint(tiny_checkpoint)
    for temperature in (2.0, float("nan"), 0.0):
        checkpoint["temperature"] = temperature
        path = save_checkpoint(tmp_path / "model.pt", checkpoint)
        if temperature == 2.0:
            model = EmotionModel(path, "cpu", backend="torch")
            softer = model.predict(frames.astype(np.float32)).probabilities
            expected = np.exp(np.log(plain) / 2.0)
            np.testing.assert_allclose(softer, expected / expected.sum(), rtol=1e-5)
            assert model.temperature == 2.0 and softer.max() < plain.max()
        else:
            with pytest.raises(CheckpointError, match="temperature .* positive number"):
                EmotionModel(path, "cpu")
