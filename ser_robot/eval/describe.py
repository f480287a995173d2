"""Utterance-level prosodic descriptors and per-class corpus statistics.

Descriptors of one utterance (the cues a listener and a simple classifier can use): duration,
F0 (YIN) mean in Hz and semitones re 27.5 Hz, F0 standard deviation and 5-95 % range in
semitones, F0 slope over the utterance, active RMS level and its spread in dBFS, voiced
fraction, and the high-to-low band energy ratio (above / below 1 kHz) in dB.
"""

from __future__ import annotations

import math
import statistics
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable, Sequence

import numpy as np

from ser_robot.data.manifest import Manifest, Utterance

__all__ = ["DESCRIPTORS", "describe_samples", "describe_manifest", "class_statistics", "statistics_markdown"]

DESCRIPTORS = ("duration_s", "f0_mean_hz", "f0_mean_st", "f0_sd_st", "f0_range_st", "f0_slope_st_per_s",
               "level_dbfs", "level_sd_db", "voiced_fraction", "hf_ratio_db")
ANALYSIS_RATE = 16000
FRAME_S, HOP_S = 0.025, 0.010


def describe_samples(samples: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Descriptors of mono ``samples`` ``(samples,)`` at ``sample_rate`` Hz (resampled to 16 kHz)."""
    import torch

    from ser_robot.audio.resample import resample
    from ser_robot.features.pitch import yin

    mono = np.asarray(samples, dtype=np.float32)
    if sample_rate != ANALYSIS_RATE:
        mono = resample(mono, sample_rate, ANALYSIS_RATE)
    x = torch.as_tensor(np.ascontiguousarray(mono, dtype=np.float32))
    f0, voiced = yin(x, ANALYSIS_RATE, frame_s=FRAME_S, hop_s=HOP_S)
    semitones = 12 * torch.log2(f0[voiced] / 27.5)

    frame, hop = int(FRAME_S * ANALYSIS_RATE), int(HOP_S * ANALYSIS_RATE)
    frames = x.unfold(0, frame, hop) if len(x) >= frame else x.unsqueeze(0)
    frame_db = 10 * torch.log10(frames.pow(2).mean(dim=1) + 1e-12)
    active = frame_db > frame_db.max() - 30
    level = 10 * math.log10(float(frames[active].pow(2).mean()) + 1e-12)

    spectrum = torch.fft.rfft(x * torch.hann_window(len(x))).abs().pow(2)
    split = int(1000 / (ANALYSIS_RATE / 2) * (len(spectrum) - 1))
    hf_ratio = 10 * math.log10(float(spectrum[split:].sum()) / (float(spectrum[:split].sum()) + 1e-20) + 1e-20)

    if semitones.numel() >= 3:
        times = torch.nonzero(voiced).squeeze(1).double() * HOP_S
        slope = float(np.polyfit(times.numpy(), semitones.double().numpy(), 1)[0])
        f0_stats = (float(f0[voiced].mean()), float(semitones.mean()), float(semitones.std()),
                    float(semitones.quantile(0.95) - semitones.quantile(0.05)), slope)
    else:
        f0_stats = (math.nan,) * 5
    return dict(zip(DESCRIPTORS, (
        len(x) / ANALYSIS_RATE, *f0_stats, level, float(frame_db[active].std()),
        float(voiced.float().mean()), hf_ratio)))


def _describe_file(utterance: Utterance) -> dict[str, float]:
    import soundfile

    samples, rate = soundfile.read(utterance.path, dtype="float32", always_2d=True)
    return describe_samples(samples.mean(axis=1), rate)


def describe_manifest(manifest: Manifest, workers: int = 1, progress: bool = True) -> list[dict[str, float]]:
    """Descriptors of every utterance, in manifest order (``workers`` processes)."""
    from tqdm import tqdm

    if workers <= 1:
        return [_describe_file(u) for u in tqdm(manifest, desc="describe", unit="utt", disable=not progress)]
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as pool:
        return list(tqdm(pool.map(_describe_file, manifest, chunksize=16), total=len(manifest), desc="describe",
                         unit="utt", disable=not progress))


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def class_statistics(manifest: Manifest, rows: Sequence[dict[str, float]],
                     descriptors: Iterable[str] = DESCRIPTORS) -> dict[str, dict[str, tuple[float, float]]]:
    """Per label: descriptor -> (mean, standard deviation) over its utterances (NaNs skipped)."""
    result: dict[str, dict[str, tuple[float, float]]] = {}
    labels = sorted({u.label for u in manifest if u.label is not None})
    for label in labels:
        chosen = [row for u, row in zip(manifest, rows) if u.label == label]
        result[label] = {}
        for name in descriptors:
            values = [row[name] for row in chosen if not math.isnan(row[name])]
            mean = statistics.fmean(values) if values else math.nan
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            result[label][name] = (mean, sd)
    return result


def statistics_markdown(manifest: Manifest, stats: dict[str, dict[str, tuple[float, float]]],
                        descriptors: Sequence[str] = ("duration_s", "f0_mean_hz", "f0_range_st", "level_dbfs",
                                                      "f0_slope_st_per_s", "hf_ratio_db")) -> str:
    """A Markdown table: one row per class, ``mean ± sd`` per descriptor, and the utterance count."""
    counts = manifest.label_counts()
    lines = ["| class | utterances | " + " | ".join(descriptors) + " |",
             "|---|---:|" + "---:|" * len(descriptors)]
    for label, values in stats.items():
        cells = [f"{values[name][0]:.2f} ± {values[name][1]:.2f}" for name in descriptors]
        lines.append(f"| {label} | {counts.get(label, 0)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
