"""Shared fixtures: a ROS domain of our own, rclpy in the test process, the virtual ears."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# One DDS domain per test run, so parallel runs on a machine never hear each other.
os.environ["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


@pytest.fixture(scope="session")
def rclpy_context():
    """rclpy initialised once for the session (nodes in the test process)."""
    import rclpy

    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture(scope="session")
def virtual_ears():
    """The PulseAudio null sink ``ser_ears`` with its monitor as the default input."""
    from ser_robot.audio.virtual_ears import VirtualEars

    with VirtualEars(runtime_dir=f"/tmp/ser-robot-test-xdg-{os.getpid()}") as ears:
        yield ears


class Recorder:
    """Stands in for a node's publisher in tests that call its callbacks directly: keeps what is published."""

    def __init__(self) -> None:
        self.messages: list = []

    def publish(self, msg) -> None:
        self.messages.append(msg)


def ser_robot(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run the ser-robot command (this checkout) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ser_robot", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs,
    )


def write_stereo_tones(path: pathlib.Path, seconds: float = 2.0, rate: int = 48000,
                       freqs=(440.0, 1000.0), amps=(0.5, 0.1)) -> np.ndarray:
    """A stereo WAV with a different sine in each channel; returns the float samples."""
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    samples = np.stack([a * np.sin(2 * np.pi * f * t) for f, a in zip(freqs, amps)], axis=1)
    soundfile.write(str(path), samples.astype(np.float32), rate, subtype="PCM_16")
    return samples


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> pathlib.Path:
    """Manifest of a 4-voice x 2-sentence synthetic corpus (32 utterances, 2 sessions)."""
    from ser_robot.data.synth.corpus import generate_corpus

    out = tmp_path_factory.mktemp("tiny_corpus")
    generate_corpus(out, speakers=4, sentences=2, seed=0, workers=1, progress=False)
    return out / "manifest.jsonl"


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_corpus, tmp_path_factory):
    """``tiny_checkpoint(model, feature_set)``: a best.pt trained 1 epoch on the tiny corpus (cached per session)."""
    from ser_robot.data.manifest import read_manifest
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.train.config import load_train_config
    from ser_robot.train.trainer import train

    made: dict[tuple[str, str], pathlib.Path] = {}

    def make(model: str = "lakomkin_rnn", feature_set: str = "egemaps") -> pathlib.Path:
        if (model, feature_set) not in made:
            out = tmp_path_factory.mktemp(f"{model}_{feature_set}")
            if model == "mtl_aug":  # a narrow MTL-AUG with a 3 s segment: live windows are zero-padded to it
                config = load_train_config(ROOT / "config/train/mtl_aug.yaml", {
                    "epochs": 1, "batch_size": 8, "model_hyper": {"segment_frames": 300, "channels": [4, 8],
                                                                  "kernel_sizes": [5, 3]}})
            elif model == "densenet_lstm_highway":  # narrow, 1.28 s segments: a 3 s window averages three
                config = load_train_config(ROOT / "config/train/latif2020.yaml", {
                    "epochs": 1, "batch_size": 8, "multitask": {"augmentations": ["speed", "mixup"]},
                    "model_hyper": {"segment_frames": 128, "stem_channels": 8, "growth": 4, "blocks": [2, 2],
                                    "lstm_units": 16, "dense_units": 16}})
            else:
                config = load_train_config(ROOT / "config/train/lakomkin.yaml", {
                    "model": model, "feature_set": feature_set, "epochs": 1, "workers": 0, "batch_size": 8,
                    "augmentation": {"kind": "none"}})
            fold = leave_one_speaker_out(read_manifest(tiny_corpus))[0]
            made[(model, feature_set)] = train(config, fold, out_dir=out, progress=False).best_checkpoint
        return made[(model, feature_set)]

    return make


def assert_padding_invariant(model, x, lengths, junk_row: int, atol: float = 1e-6):
    """``model(x, lengths)`` equals each utterance scored alone, ignores frames past row ``junk_row``'s length,
    and ``forward_one`` of every row's valid frames equals its row of the batch; returns the batch output."""
    import torch

    batch = model(x, lengths)
    alone = torch.cat([model(x[i: i + 1, : int(n)], lengths[i: i + 1]) for i, n in enumerate(lengths)])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=atol)
    junk = x.clone()
    junk[junk_row, int(lengths[junk_row]):] = 1e6  # frames past an utterance's length are never read
    torch.testing.assert_close(model(junk, lengths), batch, rtol=1e-5, atol=atol)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(model.forward_one(x[i: i + 1, :n]), batch[i: i + 1], rtol=1e-5, atol=atol)
    return batch
