"""Microphone node benchmark: 48 kHz stereo, 10 ms chunks, through the PulseAudio virtual ears.

Measures, while a stereo signal plays into the virtual device for ``--seconds``:
- CPU time of the process as a share of one core, for the microphone node (capture, stamping,
  encoding, publishing on ``audio``) and, in the same run, for a reference: a bare sounddevice
  stream with a copy-only callback and the same settings (the floor any capture pays);
- callback-to-publish latency p50 / p99 (from the PortAudio callback to ``publish`` returning);
- frames dropped (input overflows + queue drops) and sequence continuity.

    python bench/microphone_bench.py --seconds 60 --out out/bench     (make bench)
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import queue
import resource
import sys
import time

import numpy as np

from ser_robot.audio.virtual_ears import VirtualEars

RATE, CHANNELS, CHUNK_MS = 48000, 2, 10.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_signal(path: pathlib.Path, seconds: float) -> None:
    import soundfile

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    right = 0.2 * np.sin(2 * np.pi * 1000 * t)
    soundfile.write(str(path), np.stack([left, right], 1).astype(np.float32), RATE, subtype="PCM_16")


def measure_reference(ears: VirtualEars, wav: pathlib.Path, seconds: float) -> dict:
    """A bare sounddevice stream whose callback only copies into a queue (no ROS)."""
    import sounddevice as sd

    blocks: queue.Queue = queue.Queue()
    overflows = [0]

    def callback(indata, frames, time_info, status):
        if status.input_overflow:
            overflows[0] += 1
        blocks.put_nowait(indata.copy())

    stream = sd.InputStream(device="pulse", samplerate=RATE, channels=CHANNELS, dtype="int16",
                            blocksize=int(RATE * CHUNK_MS / 1000), callback=callback)
    player = ears.play(wav)
    stream.start()
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    received = 0
    while time.monotonic() - wall0 < seconds:
        try:
            blocks.get(timeout=0.1)
            received += 1
        except queue.Empty:
            pass
    cpu = (cpu_seconds() - cpu0) / (time.monotonic() - wall0)
    stream.stop()
    stream.close()
    player.wait(seconds + 10)
    return {"cpu_share": cpu, "frames": received, "overflows": overflows[0]}


def measure_node(ears: VirtualEars, wav: pathlib.Path, seconds: float) -> dict:
    import rclpy

    from ser_robot.config import RunConfig, validate_node_params
    from ser_robot.metrics import LatencyStats
    from ser_robot.ros.runner import create_nodes

    params = {"microphone": validate_node_params(
        "microphone", {"device": "pulse", "sample_rate": RATE, "chunk_ms": CHUNK_MS})}
    rclpy.init()
    nodes = create_nodes(RunConfig(path=None, nodes=["microphone"], params=params))
    node = nodes.nodes[0]
    node.latency = LatencyStats(window=10**7)
    player = ears.play(wav)
    nodes.start()
    time.sleep(1.0)  # let the stream settle; measure a steady state
    cpu0, wall0, published0 = cpu_seconds(), time.monotonic(), node.published
    time.sleep(seconds)
    cpu = (cpu_seconds() - cpu0) / (time.monotonic() - wall0)
    published = node.published - published0
    stats = node.capture.stats
    result = {
        "cpu_share": cpu,
        "frames": published,
        "latency_p50_ms": node.latency.percentile(50) * 1e3,
        "latency_p99_ms": node.latency.percentile(99) * 1e3,
        "overflows": stats.overflows,
        "queue_drops": stats.queue_drops,
        "clock_resyncs": stats.clock_resyncs,
    }
    nodes.stop()
    rclpy.shutdown()
    player.wait(seconds + 10)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wav = out / "bench_signal.wav"
    make_signal(wav, args.seconds + 3)
    with VirtualEars() as ears:
        node = measure_node(ears, wav, args.seconds)
        reference = measure_reference(ears, wav, args.seconds)
    result = {
        "date": datetime.date.today().isoformat(),
        "seconds": args.seconds,
        "rate_hz": RATE, "channels": CHANNELS, "chunk_ms": CHUNK_MS,
        "node": node,
        "reference_copy_only_stream": reference,
        "cpu_ratio_node_vs_reference": node["cpu_share"] / reference["cpu_share"],
        "expected_frames": int(args.seconds * 1000 / CHUNK_MS),
    }
    (out / "microphone_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(
        f"\n| figure | microphone node | reference (copy-only stream) | goal |\n|---|---|---|---|\n"
        f"| CPU, share of one core | {node['cpu_share'] * 100:.1f} % | {reference['cpu_share'] * 100:.1f} % "
        f"(node/reference {result['cpu_ratio_node_vs_reference']:.2f}x) | < 5 % |\n"
        f"| callback-to-publish latency p50 / p99 | {node['latency_p50_ms']:.2f} / {node['latency_p99_ms']:.2f} ms | - | p99 < 5 ms |\n"
        f"| frames dropped (overflows + queue drops) | {node['overflows'] + node['queue_drops']} | {reference['overflows']} | 0 |\n"
        f"| frames published in {args.seconds:g} s | {node['frames']} | {reference['frames']} | {result['expected_frames']} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
