"""Noisy copies of speech: additive noise at a signal-to-noise ratio (the noisy tests of Latif et al.).

- :func:`mix_at_snr`: one signal plus a noise clip of its own at ``snr_db`` below its active speech level
  (ITU-T P.56-like level of :func:`~ser_robot.data.synth.render.active_level_db`); the clip is generated
  for the signal from a seed derived from ``key`` (an utterance id), so the same utterance always gets
  the same noise.
- :func:`noisy_twin`: a corpus copied with every utterance mixed at one SNR, the noise category drawn per
  utterance from ``noises`` (seeded by ``seed`` and the id); a manifest with the same ids, speakers and
  labels, and ``noisy.json`` naming the source and settings (reused when they match).

Only categories that need no speech are accepted (babble-based stand-ins mix other talkers, who could
be test speakers): e.g. ``kitchen_standin``, ``park_standin``, ``traffic_standin``, ``pink``. The scene
stand-ins are not DEMAND recordings (see :mod:`ser_robot.acoustics.noise`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import zlib
from collections.abc import Sequence

import numpy as np

from ser_robot.errors import ConfigError

__all__ = ["mix_at_snr", "noisy_twin", "speech_free_categories"]


def speech_free_categories() -> list[str]:
    """Noise categories that :func:`mix_at_snr` can generate (those that need no speech)."""
    from ser_robot.acoustics.noise import CATEGORIES

    return [name for name, category in CATEGORIES.items() if not category.needs_speech]


def _check_noises(noises: Sequence[str]) -> None:
    usable = speech_free_categories()
    for noise in noises:
        if noise not in usable:
            raise ConfigError(f"noise {noise!r} cannot be mixed here; use one that needs no speech: {', '.join(usable)}")


def mix_at_snr(samples: np.ndarray, rate: int, noise: str, snr_db: float, key: str) -> np.ndarray:
    """``samples`` ``(frames, channels)`` float32 plus a clip of category ``noise`` at ``snr_db`` dB below the
    active level of their channel mean; the clip's seed is ``crc32(key)``."""
    from ser_robot.acoustics.noise import category_rng, generate_noise
    from ser_robot.audio.resample import resample
    from ser_robot.data.synth.render import active_level_db

    _check_noises([noise])
    seconds = len(samples) / rate
    clip = generate_noise(noise, category_rng(zlib.crc32(key.encode()), noise, 0), seconds + 0.1).samples
    clip = clip.astype(np.float32)
    if rate != 16000:
        clip = resample(clip, 16000, rate)
    clip = np.resize(clip, len(samples))
    speech_db = active_level_db(samples.mean(axis=1).astype(np.float64))
    noise_db = 10 * np.log10(float(np.mean(clip.astype(np.float64) ** 2)) + 1e-20)
    scale = 10 ** ((speech_db - snr_db - noise_db) / 20)
    return samples + (clip * np.float32(scale))[:, None]


def noisy_twin(manifest: str | pathlib.Path, out_dir: str | pathlib.Path, snr_db: float, noises: Sequence[str],
               seed: int = 0, progress: bool = False) -> pathlib.Path:
    """Write ``out_dir/manifest.jsonl``: ``manifest``'s utterances with noise at ``snr_db`` (see the module
    docstring); returns its path. An ``out_dir`` made from the same source and settings is reused."""
    import soundfile
    from tqdm import tqdm

    from ser_robot.data.manifest import read_manifest, write_manifest
    from ser_robot.inference.offline import read_audio

    noises = list(noises)
    _check_noises(noises)  # before anything is written
    out = pathlib.Path(out_dir)
    source = pathlib.Path(manifest).resolve()
    settings = {"source_manifest": str(source), "snr_db": float(snr_db), "noises": noises, "seed": int(seed)}
    summary = out / "noisy.json"
    if summary.is_file() and (out / "manifest.jsonl").is_file():
        if json.loads(summary.read_text(encoding="utf-8")) == settings:
            return out / "manifest.jsonl"
    (out / "wav").mkdir(parents=True, exist_ok=True)
    utterances = []
    for utterance in tqdm(read_manifest(source), desc=f"noisy twin {snr_db:g} dB", unit="utt", disable=not progress):
        key = f"{seed}:{utterance.id}"
        noise = noises[zlib.crc32(key.encode()) % len(noises)]
        samples, rate = read_audio(utterance.path)
        path = out / "wav" / f"{utterance.id}.wav"
        soundfile.write(str(path), mix_at_snr(samples, rate, noise, snr_db, key), rate, subtype="FLOAT")
        utterances.append(dataclasses.replace(utterance, path=str(path.resolve()),
                                              extra={**utterance.extra, "noise": noise, "snr_db": float(snr_db)}))
    written = write_manifest(out / "manifest.jsonl", utterances)
    summary.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return written
