"""Augmentation throughput: ser_robot.augment (batched torch) vs audiomentations (per example, NumPy).

Same operations, same batch: 32 examples x 3 s at 16 kHz, mono:
gain, time stretch (tempo 0.85-1.2, pitch kept), speed / resample (0.9 or 1.1),
additive noise at an SNR in [0, 20] dB (from an in-memory noise bank; audiomentations reads
the same noise from a WAV file), room IR convolution (0.4 s synthetic IRs; audiomentations
reads them from WAV files), and our whole Lakomkin chain with every step applied.
Throughput is seconds of audio processed per second of wall clock (median of ``--repeat``
runs after one warm-up). Ours runs on CPU and, when available, on CUDA (batched);
audiomentations is optional: without it its column says why.

    python bench/augment_bench.py [--repeat 3] [--out out/bench]

Prints a Markdown table and writes ``<out>/augment_bench.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import pathlib
import platform
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, Optional

import torch

import ser_robot.augment as A

RATE, BATCH, SECONDS = 16000, 32, 3.0


def speech_like(batch: int, seconds: float, gen: torch.Generator) -> torch.Tensor:
    """``(batch, 1, samples)`` harmonic tones with random F0 and syllable-rate envelopes, plus a little noise."""
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    f0 = 100 + 150 * torch.rand(batch, 1, generator=gen, dtype=torch.float64)
    env = (0.5 + 0.5 * torch.sin(2 * math.pi * 4 * t + 6 * torch.rand(batch, 1, generator=gen, dtype=torch.float64))) ** 2
    x = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 8)) * env
    x = 0.2 * x + 0.003 * torch.randn(batch, t.numel(), generator=gen, dtype=torch.float64)
    return x.float()[:, None, :]


def synthetic_irs(count: int, seconds: float, gen: torch.Generator) -> list[torch.Tensor]:
    """Exponentially decaying noise IRs (RT60 0.3-0.6 s) with a unit direct path after 2 ms."""
    n = int(seconds * RATE)
    t = torch.arange(n) / RATE
    irs = []
    for _ in range(count):
        rt60 = 0.3 + 0.3 * float(torch.rand(1, generator=gen))
        h = 0.3 * torch.randn(n, generator=gen) * torch.exp(-6.9 * t / rt60)
        h[: int(0.002 * RATE)] = 0
        h[int(0.002 * RATE)] = 1.0
        irs.append(h)
    return irs


def timed(fn: Callable[[], object], repeat: int, sync: Callable[[], None] = lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours(device: torch.device, x: torch.Tensor, noises, irs, repeat: int) -> Dict[str, float]:
    x = x.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    ops = {
        "gain": A.RandomGain(-6, 3),
        "time stretch (tempo)": A.RandomTempo(0.85, 1.2, RATE),
        "speed / resample": A.RandomSpeed((0.9, 1.1), RATE),
        "add noise at SNR": A.AddNoise(noises, snr_db=(0, 20)),
        "IR convolution": A.ConvolveIR(irs),
    }
    result = {name: timed(lambda op=op: op(x, generator=gen), repeat, sync) for name, op in ops.items()}
    chain = A.lakomkin_chain(noises, irs, RATE, 1.0, 1.0, 1.0, 1.0, seed=0)
    result["Lakomkin chain (all 4 steps)"] = timed(lambda: chain(x), repeat, sync)
    return result


def audiomentations_times(x: torch.Tensor, noises, irs, repeat: int) -> tuple[Optional[Dict[str, float]], str]:
    try:
        import audiomentations as am
        import soundfile
    except ImportError as exc:  # optional bench-only dependency
        return None, f"audiomentations not installed ({exc}); pip install audiomentations to compare"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="augbench-"))
    (tmp / "noise").mkdir()
    (tmp / "ir").mkdir()
    for i, w in enumerate(noises):
        soundfile.write(str(tmp / "noise" / f"n{i}.wav"), w.numpy(), RATE)
    for i, h in enumerate(irs):
        soundfile.write(str(tmp / "ir" / f"ir{i}.wav"), h.numpy(), RATE, subtype="FLOAT")
    ops = {
        "gain": am.Gain(min_gain_db=-6, max_gain_db=3, p=1.0),
        "time stretch (tempo)": am.TimeStretch(min_rate=0.85, max_rate=1.2, leave_length_unchanged=False, p=1.0),
        "speed / resample": am.Resample(min_sample_rate=int(RATE / 1.1), max_sample_rate=int(RATE / 0.9), p=1.0),
        "add noise at SNR": am.AddBackgroundNoise(sounds_path=str(tmp / "noise"), min_snr_db=0, max_snr_db=20, p=1.0),
        "IR convolution": am.ApplyImpulseResponse(ir_path=str(tmp / "ir"), p=1.0),
    }
    samples = [e[0].numpy() for e in x]
    out: Dict[str, float] = {}
    notes = []
    for name, op in ops.items():
        try:
            out[name] = timed(lambda op=op: [op(samples=s, sample_rate=RATE) for s in samples], repeat)
        except Exception as exc:  # an op whose back end is missing: report, keep going
            notes.append(f"{name}: {type(exc).__name__}: {exc}")
    chain = am.Compose([ops["time stretch (tempo)"], ops["gain"], ops["add noise at SNR"], ops["IR convolution"]])
    try:
        out["Lakomkin chain (all 4 steps)"] = timed(lambda: [chain(samples=s, sample_rate=RATE) for s in samples], repeat)
    except Exception as exc:
        notes.append(f"chain: {type(exc).__name__}: {exc}")
    return out, f"audiomentations {am.__version__}" + (f"; failed: {'; '.join(notes)}" if notes else "")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per operation (median reported)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"), help="folder for the JSON")
    args = parser.parse_args(argv)

    gen = torch.Generator().manual_seed(0)
    x = speech_like(BATCH, SECONDS, gen)
    noises = [0.1 * torch.randn(int(5 * RATE), generator=gen) for _ in range(4)]
    irs = synthetic_irs(4, 0.4, gen)
    audio_s = BATCH * SECONDS

    cpu = ours(torch.device("cpu"), x, noises, irs, args.repeat)
    cuda = ours(torch.device("cuda"), x, noises, irs, args.repeat) if torch.cuda.is_available() else None
    am_times, am_note = audiomentations_times(x, noises, irs, args.repeat)

    def rate(t: Optional[float]) -> Optional[float]:
        return None if t is None else audio_s / t

    rows = []
    for name in cpu:
        rows.append({
            "operation": name,
            "ours_cpu_audio_s_per_s": rate(cpu[name]),
            "audiomentations_cpu_audio_s_per_s": rate(am_times.get(name)) if am_times else None,
            "ours_cuda_audio_s_per_s": rate(cuda[name]) if cuda else None,
        })

    def fmt(v: Optional[float]) -> str:
        return "n/a" if v is None else f"{v:,.0f}"

    print(f"Throughput, seconds of audio per second ({BATCH} x {SECONDS:g} s at {RATE} Hz, "
          f"median of {args.repeat}; torch threads {torch.get_num_threads()})\n")
    print("| operation | ours CPU (batched) | audiomentations CPU (per example) | ours CUDA (batched) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['operation']} | {fmt(r['ours_cpu_audio_s_per_s'])} | "
              f"{fmt(r['audiomentations_cpu_audio_s_per_s'])} | {fmt(r['ours_cuda_audio_s_per_s'])} |")
    print(f"\n{am_note}" if am_times is not None else f"\n{am_note}")
    if cuda is None:
        print("CUDA: not available, column skipped")

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "batch": BATCH, "seconds": SECONDS, "sample_rate": RATE, "repeat": args.repeat,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "audiomentations": am_note,
        "unit": "seconds of audio per second",
        "rows": rows,
    }
    path = args.out / "augment_bench.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
