"""The front end's level normaliser: causal, chunk-invariant, gain-invariant after warm-up, keeps relative levels."""

import numpy as np
import pytest

from ser_robot.audio.level_normalizer import LevelNormalizer, normalize_level

RATE = 16000


def talk(seconds: float, level_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Noise bursts (0.4 s on, 0.2 s off) at ``level_dbfs`` RMS while on."""
    t = np.arange(int(seconds * RATE)) / RATE
    on = (t % 0.6) < 0.4
    return (rng.standard_normal(len(t)) * 10 ** (level_dbfs / 20) * on).astype(np.float32)


def test_streaming_equals_whole_signal():
    signal = talk(5.0, -30.0, np.random.default_rng(0))
    whole = normalize_level(signal, RATE)
    normalizer, rng, parts, i = LevelNormalizer(RATE), np.random.default_rng(1), [], 0
    while i < len(signal):
        size = int(rng.integers(1, 700))
        parts.append(normalizer(signal[i:i + size]))
        assert sum(map(len, parts)) == i + size - (i + size) % normalizer.block  # whole blocks leave
        i += size
    parts.append(normalizer.flush())
    assert np.array_equal(np.concatenate(parts), whole) and len(whole) == len(signal)


def test_output_does_not_depend_on_the_input_gain_and_keeps_relative_levels():
    rng = np.random.default_rng(2)
    calm, loud = talk(40.0, -32.0, rng), talk(1.0, -22.0, rng)  # a louder utterance after a calm stretch
    stream = np.concatenate([calm, loud])
    outputs = {gain: normalize_level(stream * np.float32(10 ** (gain / 20)), RATE) for gain in (-30, -10, 0, 10)}
    for gain, out in outputs.items():  # from the first block on (at -30 dB the floor drops a few burst edges)
        assert np.allclose(out, outputs[0], rtol=1e-3, atol=1e-7), gain
    level = lambda x: 10 * np.log10(np.mean(np.square(x[np.abs(x) > 0])))  # noqa: E731
    # once warm (20 s of speech), a louder utterance stays louder by nearly as much
    assert level(outputs[0][len(calm):]) - level(outputs[0][30 * RATE:len(calm)]) == pytest.approx(10.0, abs=1.0)


def test_target_level_silence_and_limits():
    out = normalize_level(talk(4.0, -50.0, np.random.default_rng(3)), RATE, target_dbfs=-26.0)
    active = out[2 * RATE:][np.abs(out[2 * RATE:]) > 0]
    assert 10 * np.log10(np.mean(np.square(active))) == pytest.approx(-26.0, abs=0.5)
    assert np.array_equal(normalize_level(np.zeros(RATE, np.float32), RATE), np.zeros(RATE, np.float32))
    quiet = normalize_level(talk(2.0, -65.0, np.random.default_rng(4)), RATE, max_gain_db=20.0)
    assert np.max(np.abs(quiet)) < 10 ** ((-65 + 20 + 15) / 20)  # at most +20 dB
    with pytest.raises(ValueError):
        LevelNormalizer(RATE, time_constant_s=0)


@pytest.mark.parametrize("chunk", [160, 333, 1600])
def test_feature_pipeline_with_agc_equals_the_offline_features(chunk):
    """The live pipeline (level_normalization agc) gives the offline extractor's frames of the normalised signal."""
    import torch

    from ser_robot.features.pipeline import FeaturePipeline
    from ser_robot.features.sets import create_extractor

    signal = talk(3.0, -20.0, np.random.default_rng(5))
    extractor = create_extractor("egemaps")
    pipeline = FeaturePipeline(extractor, block_frames=10, level_normalization="agc")
    blocks = []
    for seq, begin in enumerate(range(0, len(signal), chunk)):
        blocks += pipeline.push(signal[begin:begin + chunk, None], RATE, seq, begin / RATE)[0]
    blocks += pipeline.finish()[0]
    with torch.inference_mode():
        expected = extractor(torch.from_numpy(normalize_level(signal, RATE))[None])[0].numpy()
    streamed = np.concatenate([b.frames for b in blocks])
    assert streamed.shape == expected.shape
    assert np.max(np.abs(streamed - expected) / (1 + np.abs(expected))) < 1e-4
