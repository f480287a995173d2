"""Parity and speed of ser_robot's EGeMAPS against openSMILE eGeMAPSv02 LLDs.

(a) parity: per-LLD Pearson r between our descriptors and openSMILE's on the same utterances
(clean, and with white or babble-like noise at 10 dB SNR), frame ``i`` against frame ``i``; the
voicing-dependent descriptors (``*_sma3nz``) are compared on frames both call voiced.
(b) speed: LLDs of the same 60 s of speech on one CPU thread, ours vs openSMILE.

openSMILE is an optional extra: ``pip install opensmile`` (without it this script says so and
exits 0). Writes ``egemaps_parity.md`` and ``egemaps_parity.json`` under ``--out``.

    python bench/egemaps_bench.py --manifest out/synth/manifest.jsonl --utterances 40 --out out/bench
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ser_robot.features.egemaps import EGeMAPS

GOALS: dict[str, float] = {
    "Loudness": 0.95,
    "mfcc1": 0.9, "mfcc2": 0.9, "mfcc3": 0.9, "mfcc4": 0.9,
    "F0semitoneFrom27.5Hz": 0.9,
    "alphaRatio": 0.85, "hammarbergIndex": 0.85, "slope0-500": 0.85, "slope500-1500": 0.85, "spectralFlux": 0.85,
    **{f"F{k}frequency": 0.7 for k in (1, 2, 3)},
    "jitterLocal": 0.5, "shimmerLocaldB": 0.5, "HNRdBACF": 0.5, "logRelF0-H1-H2": 0.5, "logRelF0-H1-A3": 0.5,
}
"""Pearson-r goals per descriptor (base name, without the ``_sma3`` / ``_sma3nz`` suffix)."""

SNR_DB = 10.0


def _pick(manifest: Path, count: int) -> list[dict]:
    """``count`` utterances spread over speakers and classes (round-robin over (speaker, label))."""
    entries = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    groups: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        groups.setdefault((entry["speaker"], entry["label"]), []).append(entry)
    keys = sorted(groups)
    picked: list[dict] = []
    depth = 0
    while len(picked) < count and depth < max(len(v) for v in groups.values()):
        for key in keys:
            if depth < len(groups[key]) and len(picked) < count:
                picked.append(groups[key][depth])
        depth += 1
    return picked


def _load(root: Path, entry: dict) -> np.ndarray:
    audio, rate = sf.read(root / entry["path"], dtype="float32", always_2d=False)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != 16000:
        raise SystemExit(f"{entry['path']}: expected 16000 Hz, got {rate}")
    return audio


def _add_noise(clean: np.ndarray, noise: np.ndarray) -> np.ndarray:
    noise = np.resize(noise, clean.shape)
    gain = np.sqrt(np.mean(clean**2) / (np.mean(noise**2) * 10 ** (SNR_DB / 10) + 1e-20))
    mixed = clean + gain * noise
    return (mixed / max(1.0, float(np.abs(mixed).max()))).astype(np.float32)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


F0_AGREE_ST = 1.0
"""Semitones: the diagnostic rows compare frames whose (smoothed) F0 estimates agree this closely."""

F0_DEPENDENT = ("jitterLocal_sma3nz", "shimmerLocaldB_sma3nz")
"""Descriptors measured on periods of the frame's F0: an F0 error (openSMILE's SHS octave jumps) changes them."""


def _collect(
    ours: list[np.ndarray], theirs: list[np.ndarray], names: list[str], columns: list[str], f0_agree: float | None = None
) -> dict:
    """r per openSMILE column: concatenated frames (voiced-in-both for ``nz`` descriptors; with
    ``f0_agree``, only frames whose F0 values differ by less than that many semitones)."""
    f0_ours, f0_theirs = names.index("F0semitoneFrom27.5Hz_sma3nz"), columns.index("F0semitoneFrom27.5Hz_sma3nz")
    result = {}
    for column in columns:
        if column not in names:
            continue
        i, j = names.index(column), columns.index(column)
        a_all, b_all = [], []
        for o, t in zip(ours, theirs):
            rows = min(len(o), len(t))
            a, b = o[:rows, i], t[:rows, j]
            if column.endswith("nz"):
                keep = (o[:rows, f0_ours] > 0) & (t[:rows, f0_theirs] > 0) & (a != 0) & (b != 0)
                if f0_agree is not None:
                    keep &= np.abs(o[:rows, f0_ours] - t[:rows, f0_theirs]) < f0_agree
                a, b = a[keep], b[keep]
            a_all.append(a)
            b_all.append(b)
        result[column] = _pearson(np.concatenate(a_all), np.concatenate(b_all))
    return result


def _voicing_agreement(ours: list[np.ndarray], theirs: list[np.ndarray], i: int, j: int) -> float:
    agree = total = 0
    for o, t in zip(ours, theirs):
        rows = min(len(o), len(t))
        agree += int(((o[:rows, i] > 0) == (t[:rows, j] > 0)).sum())
        total += rows
    return agree / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path("out/synth/manifest.jsonl"))
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--speed-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        import opensmile
    except ImportError:
        print("openSMILE is not installed: `pip install opensmile` (optional benchmark extra) to run this bench.")
        return 0
    if not args.manifest.exists():
        print(f"manifest {args.manifest} not found: build the synthetic corpus first (or pass --manifest)")
        return 0

    torch.set_num_threads(1)
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.LowLevelDescriptors
    )
    ours_model = EGeMAPS()
    names = list(ours_model.names)
    root = args.manifest.parent
    entries = _pick(args.manifest, args.utterances)
    clean = [_load(root, e) for e in entries]
    rng = np.random.default_rng(0)
    noisy = []
    for k, audio in enumerate(clean):
        if k % 2 == 0:
            noise = rng.standard_normal(len(audio)).astype(np.float32)
        else:  # babble-like: four other utterances summed
            others = [clean[(k + s) % len(clean)] for s in (3, 7, 11, 13)]
            noise = sum(np.resize(o, audio.shape) for o in others)
        noisy.append(_add_noise(audio, noise))

    results: dict[str, dict[str, float]] = {}
    columns: list[str] = []
    for condition, signals in (("clean", clean), ("noisy", noisy)):
        ours, theirs = [], []
        for audio in signals:
            with torch.no_grad():
                ours.append(ours_model(torch.from_numpy(audio)[None])[0].numpy())
            frame = smile.process_signal(audio, 16000)
            columns = list(frame.columns)
            theirs.append(frame.to_numpy())
        results[condition] = _collect(ours, theirs, names, columns)
        agreeing = _collect(ours, theirs, names, columns, F0_AGREE_ST)
        for column in F0_DEPENDENT:
            results[condition][f"{column} (F0 agrees)"] = agreeing[column]
        results[condition]["voicing agreement"] = _voicing_agreement(
            ours, theirs, names.index("F0semitoneFrom27.5Hz_sma3nz"), columns.index("F0semitoneFrom27.5Hz_sma3nz")
        )

    # speed: the same 60 s of speech, one thread
    speech = np.concatenate(clean)
    speech = np.resize(speech, int(args.speed_seconds * 16000)).astype(np.float32)
    tensor = torch.from_numpy(speech)[None]
    ours_s = theirs_s = float("inf")
    with torch.no_grad():
        ours_model(tensor)  # warm-up
        for _ in range(3):  # best of three for both
            start = time.perf_counter()
            ours_model(tensor)
            ours_s = min(ours_s, time.perf_counter() - start)
    for _ in range(3):
        start = time.perf_counter()
        smile.process_signal(speech, 16000)
        theirs_s = min(theirs_s, time.perf_counter() - start)

    lines = [
        f"# EGeMAPS parity with openSMILE eGeMAPSv02 LLDs ({len(entries)} utterances, noisy = white/babble at "
        f"{SNR_DB:g} dB SNR)",
        "",
        "| descriptor | r clean | r noisy | goal | met? |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for column in columns:
        if column not in results["clean"]:
            continue
        base = column.rsplit("_sma3", 1)[0]
        goal = GOALS.get(base)
        r_clean, r_noisy = results["clean"][column], results["noisy"][column]
        met = None if goal is None else bool(r_clean >= goal and r_noisy >= goal)
        rows.append({"descriptor": column, "r_clean": r_clean, "r_noisy": r_noisy, "goal": goal, "met": met})
        goal_text = "-" if goal is None else f"{goal:.2f}"
        met_text = "-" if met is None else ("yes" if met else "no")
        lines.append(f"| {column} | {r_clean:.3f} | {r_noisy:.3f} | {goal_text} | {met_text} |")
    lines.append(
        f"| voicing agreement (frames) | {results['clean']['voicing agreement']:.3f} | "
        f"{results['noisy']['voicing agreement']:.3f} | - | - |"
    )
    lines += [
        "",
        f"Diagnostic (no goal): jitter and shimmer on the voiced-in-both frames whose F0 values agree within "
        f"{F0_AGREE_ST:g} semitone; on the others openSMILE's F0 (SHS + utterance-level Viterbi, which the "
        "bounded-dependency contract rules out) has octave errors and its period search returns outliers (up to 1.0).",
        "",
        "| descriptor | r clean | r noisy |",
        "|---|---|---|",
    ]
    for column in F0_DEPENDENT:
        key = f"{column} (F0 agrees)"
        lines.append(f"| {key} | {results['clean'][key]:.3f} | {results['noisy'][key]:.3f} |")
        rows.append({"descriptor": key, "r_clean": results["clean"][key], "r_noisy": results["noisy"][key],
                     "goal": None, "met": None})
    ratio = theirs_s / ours_s
    lines += [
        "",
        f"Speed, {args.speed_seconds:g} s of speech, 1 CPU thread: ours {ours_s:.3f} s, openSMILE {theirs_s:.3f} s, "
        f"ratio {ratio:.1f}x (goal >= 3x: {'met' if ratio >= 3 else 'missed'}).",
    ]
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "egemaps_parity.md").write_text(table + "\n")
    summary = {
        "utterances": [e["id"] for e in entries],
        "snr_db": SNR_DB,
        "rows": rows,
        "voicing_agreement": {c: results[c]["voicing agreement"] for c in results},
        "speed": {"seconds_of_audio": args.speed_seconds, "ours_s": ours_s, "opensmile_s": theirs_s, "ratio": ratio},
    }
    (args.out / "egemaps_parity.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
