"""Log-Mel benchmark: ser_robot's LogMel (torch.stft) against librosa on the same 60 s of audio.

One CPU thread for both (torch.set_num_threads(1); OMP/MKL/OpenBLAS/NUMBA threads set to 1
before numpy loads). For each preset: best-of-``--repeats`` wall time of
``LogMel(preset)(x)`` and of ``librosa.feature.melspectrogram`` + ``librosa.power_to_db`` with
the same settings, the ratio librosa / ours (> 1: ours faster), the real-time factor, and the
max abs difference of the two outputs in dB.

Conventions aligned for the comparison: both get the same float32 signal; librosa runs with
``center=False`` on the signal zero-padded by ``(n_fft - win_length) / 2`` on each side (it
centres a short window inside an ``n_fft`` frame, our frames start at ``i * hop``), the same
window, ``htk``/``norm`` as the preset, ``power_to_db(ref=1.0, amin=log_floor, top_db=None)``
(our ``10 * log10(max(mel, log_floor))``). Also timed: streaming the signal in 10 ms chunks
through :class:`StreamingExtractor`.

    python bench/logmel_bench.py --out out/bench        (librosa is an optional, bench-only extra)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import datetime
import json
import pathlib
import platform
import sys
import time

import numpy as np
import torch

from ser_robot.features.logmel import PRESETS, LogMel
from ser_robot.features.streaming import StreamingExtractor

RATE = 16000


def make_signal(seconds: float, rate: int = RATE) -> np.ndarray:
    """Speech-like test audio: a gliding harmonic tone, syllable envelope, some noise; float32."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    return (0.1 * voiced * envelope + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def best_time(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up (plans, caches, numba)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_preset(name: str, x: np.ndarray, repeats: int, librosa) -> dict:
    extractor = LogMel(name)
    c = extractor.config
    xt = torch.from_numpy(x)

    with torch.inference_mode():
        ours_s, ours = best_time(lambda: extractor(xt), repeats)
    side = (c.n_fft - c.win_length) // 2
    padded = np.pad(x, (side, c.n_fft - c.win_length - side))

    def reference() -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=padded, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
            window=c.window, center=False, power=c.power, n_mels=c.n_mels, fmin=c.f_min,
            fmax=extractor.f_max, htk=c.mel_scale == "htk", norm=c.mel_norm,
        )
        return librosa.power_to_db(mel, ref=1.0, amin=c.log_floor, top_db=None)

    ref_s, ref = best_time(reference, repeats)
    ref = np.asarray(ref).T
    ours_np = ours.numpy()
    if ref.shape != ours_np.shape:
        raise SystemExit(f"{name}: shapes differ, ours {ours_np.shape}, librosa {ref.shape}")
    diff = np.abs(ref.astype(np.float64) - ours_np.astype(np.float64))

    def streamed() -> int:
        streamer = StreamingExtractor(extractor)
        chunk = c.sample_rate // 100
        count = 0
        for start in range(0, xt.numel(), chunk):
            count += streamer.push(xt[start : start + chunk]).shape[0]
        return count + streamer.flush().shape[0]

    with torch.inference_mode():
        stream_s, stream_frames = best_time(streamed, max(1, repeats // 2))
    assert stream_frames == ours_np.shape[0]
    seconds = x.size / c.sample_rate
    return {
        "preset": name,
        "frames": int(ours_np.shape[0]),
        "n_mels": c.n_mels,
        "ours_s": ours_s,
        "librosa_s": ref_s,
        "ratio_librosa_over_ours": ref_s / ours_s,
        "ours_realtime_factor": seconds / ours_s,
        "max_abs_diff_db": float(diff.max()),
        "mean_abs_diff_db": float(diff.mean()),
        "streaming_10ms_chunks_s": stream_s,
        "streaming_realtime_factor": seconds / stream_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the test audio")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per implementation (best kept)")
    parser.add_argument("--presets", nargs="+", default=["latif2020", "mtl_aug", "ren2020"], choices=sorted(PRESETS))
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"))
    args = parser.parse_args(argv)
    try:
        import librosa
    except ImportError:
        print(
            "librosa is not installed; it is an optional, bench-only extra. Install it with\n"
            "    .venv/bin/pip install librosa==0.11.0\nand run this again. Nothing measured."
        )
        return 0
    torch.set_num_threads(1)
    x = make_signal(args.seconds)
    results = [bench_preset(name, x, args.repeats, librosa) for name in args.presets]
    print(f"log-Mel of {args.seconds:g} s at {RATE} Hz, 1 thread, best of {args.repeats}")
    print(f"{'preset':10} {'frames':>6} {'ours s':>8} {'librosa s':>9} {'ratio':>6} {'x RT':>7} "
          f"{'stream s':>8} {'max|d| dB':>9}")
    for r in results:
        print(f"{r['preset']:10} {r['frames']:6d} {r['ours_s']:8.4f} {r['librosa_s']:9.4f} "
              f"{r['ratio_librosa_over_ours']:6.2f} {r['ours_realtime_factor']:7.0f} "
              f"{r['streaming_10ms_chunks_s']:8.4f} {r['max_abs_diff_db']:9.2e}")
    report = {
        "bench": "logmel",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "seconds": args.seconds,
        "sample_rate": RATE,
        "threads": 1,
        "repeats": args.repeats,
        "conventions": "float32 input; librosa center=False on the signal padded by (n_fft-win)/2 "
        "each side; same window/htk/norm; power_to_db(ref=1, amin=log_floor, top_db=None)",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "librosa": librosa.__version__,
            "numpy": np.__version__,
        },
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "logmel_bench.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
