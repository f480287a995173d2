"""Soak: hours of mixed legitimate and hostile traffic through features + inference; memory over time.

One ``ser-robot run`` of ``features -> inference`` (the default model, in its own ROS domain)
receives, for ``--minutes``:

- a legitimate 10 ms stereo stream on ``head`` at real time (utterances of ``--manifest``
  separated by 1 s pauses, looped), in rounds of 10 s: each round starts
  with ``--hostile-per-s`` x 10 hostile frames of every kind of ``test/hostile.py`` (malformed,
  late, restarting, new streams) among its first good frames, then clean speech;
- every ``--flood-every-s`` seconds one of the external probe's floods (``test/flood.py``:
  20,000 frames on one stream, 2,000 format changes, 5,000 new streams), in turn.

The process' resident memory (``VmRSS``) is sampled every ``--sample-s`` seconds. Written to
``--out``: ``rss.csv`` (elapsed s, RSS MB, emotions received so far), ``rss.png`` and
``README.md`` (the command, date, machine, RSS after warm-up and at the end, the slope after
warm-up in MB per hour). Memory is flat if the slope after ``--warmup-min`` is small against
the level (the verdict line says so, with the numbers).

    python bench/soak.py --minutes 60 --manifest out/synth/manifest.jsonl --out docs/results/soak
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))

from flood import frames as flood_frames  # noqa: E402 - the hostile builders live with the tests
from hostile import AUDIO_KINDS, hostile_audio_stream  # noqa: E402

RATE = 16000
FLOODS = (("frames", 20000), ("formats", 2000), ("streams", 5000))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def corpus_speech(manifest: Path, utterances: int = 20) -> np.ndarray:
    """The first ``utterances`` of a corpus at 16 kHz, each followed by 1 s of silence, as two ears ``(frames, 2)``."""
    from ser_robot.audio.resample import resample
    from ser_robot.data.manifest import read_manifest
    from ser_robot.inference.offline import read_audio

    parts = []
    for utterance in list(read_manifest(manifest))[:utterances]:
        audio, rate = read_audio(utterance.path)
        parts += [resample(audio.mean(axis=1), rate, RATE).astype(np.float32), np.zeros(RATE, np.float32)]
    mono = np.concatenate(parts)
    return np.stack([mono, 0.7 * mono], axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--warmup-min", type=float, default=5.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--flood-every-s", type=float, default=60.0)
    parser.add_argument("--hostile-per-s", type=float, default=5.0)
    parser.add_argument("--exclude-kinds", nargs="*", default=[],
                        help="hostile kinds of test/hostile.py to leave out (e.g. huge_frame, to tell the middleware's "
                             "payload pool from a leak)")
    parser.add_argument("--manifest", type=Path, default=ROOT / "out/synth/manifest.jsonl",
                        help="corpus whose utterances make the legitimate stream (make bench writes the default)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROS_DOMAIN_ID", "91")
    import rclpy
    from ser_robot.ros.qos import RELIABLE_QOS, SENSOR_DATA_QOS
    from ser_robot_msgs.msg import AudioFrame, Emotion

    duration_s = args.minutes * 60
    node_process = subprocess.Popen(
        [sys.executable, "-m", "ser_robot", "run", "--duration", str(int(duration_s + 120)),
         "--set", "runner.nodes=[features, inference]"],
        cwd=ROOT, stdout=open(args.out / "node.log", "w"), stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("soak")
    emotions = [0]
    node.create_subscription(Emotion, "emotion", lambda m: emotions.__setitem__(0, emotions[0] + 1), RELIABLE_QOS)
    publisher = node.create_publisher(AudioFrame, "audio", SENSOR_DATA_QOS)
    stop = threading.Event()
    threading.Thread(target=lambda: [rclpy.spin_once(node, timeout_sec=0.1) for _ in iter(stop.is_set, True)],
                     daemon=True).start()
    deadline = time.monotonic() + 60
    while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.1)

    rng = np.random.default_rng(0)
    unknown = sorted(set(args.exclude_kinds) - set(AUDIO_KINDS))
    if unknown:
        parser.error(f"unknown hostile kinds {unknown}; they are {sorted(AUDIO_KINDS)}")
    kinds = [kind for kind in AUDIO_KINDS if kind not in args.exclude_kinds]
    signal_ = corpus_speech(args.manifest)
    samples: list[tuple[float, float, int]] = []
    start = time.monotonic()
    next_sample, next_flood = start, start + args.flood_every_s
    floods, round_, seq = 0, 0, 100
    try:
        while time.monotonic() - start < duration_s and node_process.poll() is None:
            # One round: 10 s of good frames, hostile ones after the first of them.
            n_hostile = int(args.hostile_per_s * 10)
            items = hostile_audio_stream(signal_, RATE, n_hostile, rng, kinds=kinds, chunk_s=0.01, max_burst=1,
                                         tail_chunks=1000 - n_hostile, start_seq=seq, start_time=time.time(),
                                         free_stream_slots=4)
            paced = time.monotonic()
            for item in items:
                if item.kind == "good":
                    paced += 0.01
                    time.sleep(max(0.0, paced - time.monotonic()))
                    seq = item.msg.seq + 1
                publisher.publish(item.msg)
                now = time.monotonic()
                if now >= next_sample:
                    samples.append((now - start, rss_mb(node_process.pid), emotions[0]))
                    print(f"{samples[-1][0]:7.0f} s  RSS {samples[-1][1]:7.1f} MB  emotions {emotions[0]}", flush=True)
                    next_sample += args.sample_s
                if now >= next_flood:
                    kind, count = FLOODS[floods % len(FLOODS)]
                    for msg in flood_frames(kind, count):
                        publisher.publish(msg)
                    floods, next_flood = floods + 1, next_flood + args.flood_every_s
                if now - start >= duration_s:
                    break
            round_ += 1
    finally:
        stop.set()
        node_process.send_signal(signal.SIGINT)
        node_process.wait(60)
        rclpy.shutdown()
    write_report(args, samples, floods, round_)
    return 0


def write_report(args: argparse.Namespace, samples: list[tuple[float, float, int]], floods: int, rounds: int) -> None:
    data = np.array(samples)
    (args.out / "rss.csv").write_text("elapsed_s,rss_mb,emotions\n" + "".join(
        f"{t:.1f},{r:.1f},{int(e)}\n" for t, r, e in samples))
    after = data[data[:, 0] >= args.warmup_min * 60]
    slope = float(np.polyfit(after[:, 0] / 3600, after[:, 1], 1)[0]) if len(after) >= 3 else float("nan")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(data[:, 0] / 60, data[:, 1])
    ax.axvline(args.warmup_min, color="grey", linestyle=":")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS of features + inference, MB")
    ax.set_title("Soak: legitimate stream + hostile frames + floods")
    fig.tight_layout()
    fig.savefig(args.out / "rss.png", dpi=100)
    level = float(after[:, 1].mean()) if len(after) else float("nan")
    flat = abs(slope) * (args.minutes / 60) < 0.02 * level  # < 2 % of the level over the whole run
    command = shlex.join(["python", "bench/soak.py", *sys.argv[1:]])
    lines = [
        "# Soak: memory under mixed legitimate and hostile traffic",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}, "
        f"{os.cpu_count()} cores (other work may have run beside it).",
        f"- Ran {data[-1, 0] / 60:.1f} min: {rounds} rounds of a real-time stream with ~{args.hostile_per_s:g} hostile "
        f"frames/s" + (f" (without {', '.join(args.exclude_kinds)})" if args.exclude_kinds else "")
        + f", {floods} floods; {int(data[-1, 2])} emotion results received.",
        f"- RSS: {data[0, 1]:.0f} MB at start, {after[0, 1] if len(after) else float('nan'):.0f} MB after "
        f"{args.warmup_min:g} min of warm-up, {data[-1, 1]:.0f} MB at the end; max {data[:, 1].max():.0f} MB.",
        f"- Slope after warm-up (least squares): {slope:+.1f} MB/h. "
        + ("Flat: under 2 % of the level over the run." if flat else "NOT flat: look for a leak."),
        "",
        "![RSS over time](rss.png)",
        "",
    ]
    (args.out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
