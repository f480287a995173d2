"""StreamingExtractor: chunked output equals the offline output (max abs diff < 1e-4, float32).

Checked with the LogMel presets (context (0, 0)) and with a test-only extractor with context
(1, 1) whose edge frames follow their own rule, for chunk sizes 1, 7, 160, 4000 samples and
random chunkings, with flush at the end and reset after a gap.
"""

from __future__ import annotations

import pytest
import torch

from ser_robot.features.base import FrameExtractor
from ser_robot.features.logmel import LogMel
from ser_robot.features.streaming import StreamingExtractor

TOLERANCE = 1e-4  # max abs difference, dB for LogMel (float32)


class SmoothedEnergy(FrameExtractor):
    """Mean square of each frame's samples, averaged over frames i-1..i+1 that exist.

    context (1, 1); the edge rule (first and last frame average over the 2 frames that exist)
    makes the edge frames differ from the inner ones, so a wrong neighbourhood shows.
    A second dimension, the frame's first sample, catches misaligned frames.
    """

    def __init__(self, window_length: int = 50, hop_length: int = 20) -> None:
        super().__init__()
        self.sample_rate = 1000
        self.window_length = window_length
        self.hop_length = hop_length
        self.context = (1, 1)
        self.names = ("smoothed_energy", "first_sample")

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        count = self.frame_count(samples.shape[-1])
        if count == 0:
            return samples.new_zeros((samples.shape[0], 0, 2))
        frames = samples[:, : (count - 1) * self.hop_length + self.window_length]
        frames = frames.unfold(-1, self.window_length, self.hop_length)  # (batch, count, window)
        energy = (frames**2).mean(-1)
        padded = torch.nn.functional.pad(energy, (1, 1))
        ones = torch.nn.functional.pad(torch.ones_like(energy), (1, 1))
        total = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]
        n = ones[:, :-2] + ones[:, 1:-1] + ones[:, 2:]
        return torch.stack([total / n, frames[..., 0]], dim=-1)


def stream(extractor: FrameExtractor, signal: torch.Tensor, sizes) -> tuple[torch.Tensor, int]:
    """Concatenated output of pushing ``signal`` in chunks of ``sizes`` (cycled), and the most samples kept."""
    streamer = StreamingExtractor(extractor)
    outputs, most, pos, i = [], 0, 0, 0
    while pos < signal.shape[-1]:
        size = sizes[i % len(sizes)]
        outputs.append(streamer.push(signal[..., pos : pos + size]))
        most = max(most, streamer.buffered_samples)
        assert streamer.frames_emitted == sum(o.shape[-2] for o in outputs)
        pos, i = pos + size, i + 1
    outputs.append(streamer.flush())
    assert most <= streamer.max_buffered_samples
    return torch.cat(outputs, dim=-2), most


def random_sizes(seed: int, n: int = 200, high: int = 700) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, high, (n,), generator=g).tolist()


@pytest.fixture(scope="module")
def signal() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000 * 2 + 123) / 16000
    return (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(t.shape, generator=g)).float()


@pytest.mark.parametrize("sizes", [[1], [7], [160], [4000], "random"])
def test_context_extractor_matches_offline(sizes) -> None:
    extractor = SmoothedEnergy()
    g = torch.Generator().manual_seed(1)
    signal = torch.randn(1500, generator=g)
    offline = extractor(signal.unsqueeze(0))[0]
    sizes = random_sizes(2, high=120) if sizes == "random" else sizes
    online, most = stream(extractor, signal, sizes)
    assert online.shape == offline.shape
    assert (online - offline).abs().max() < 1e-6
    assert most <= 50 + 2 * 20 - 1


@pytest.mark.parametrize("preset", ["latif2020", "mtl_aug", "ren2020"])
@pytest.mark.parametrize("sizes", [[1], [7], [160], [4000], "random"])
def test_logmel_matches_offline(signal, preset, sizes) -> None:
    extractor = LogMel(preset)
    if sizes in ([1], [7]):
        signal = signal[: 1000 + 37 * sizes[0]]  # keep the many tiny pushes fast
    offline = extractor(signal.unsqueeze(0))[0]
    sizes = random_sizes(3) if sizes == "random" else sizes
    online, most = stream(extractor, signal, sizes)
    assert online.shape == offline.shape == (extractor.frame_count(signal.numel()), extractor.config.n_mels)
    assert (online - offline).abs().max() < TOLERANCE
    assert most < extractor.window_length


def test_batched_chunks() -> None:
    extractor = SmoothedEnergy()
    signal = torch.randn(2, 1000, generator=torch.Generator().manual_seed(4))
    online, _ = stream(extractor, signal, [33])
    assert online.shape == extractor(signal).shape
    assert torch.allclose(online, extractor(signal), atol=1e-6)


def test_reset_after_gap_starts_a_new_signal() -> None:
    extractor = SmoothedEnergy()
    g = torch.Generator().manual_seed(5)
    first, second = torch.randn(500, generator=g), torch.randn(800, generator=g)
    streamer = StreamingExtractor(extractor)
    streamer.push(first[:300])
    streamer.reset()
    assert streamer.frames_emitted == 0 and streamer.buffered_samples == 0
    out = torch.cat([streamer.push(second[:450]), streamer.push(second[450:]), streamer.flush()])
    assert torch.allclose(out, extractor(second.unsqueeze(0))[0], atol=1e-6)


def test_short_stream_and_layout_errors() -> None:
    extractor = SmoothedEnergy()
    streamer = StreamingExtractor(extractor)
    assert streamer.push(torch.zeros(10)).shape == (0, 2)
    assert streamer.flush().shape == (0, 2)  # shorter than one window: no frame, as offline
    assert streamer.flush().shape == (0, 2)
    streamer.push(torch.zeros(10))
    with pytest.raises(ValueError, match="does not match"):
        streamer.push(torch.zeros(2, 10))
