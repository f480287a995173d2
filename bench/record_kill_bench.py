"""What a SIGKILL of ``ser-robot record`` costs: seconds of recording lost, over kills at random moments.

Each run starts ``test/audio_publisher.py`` (100 Hz reliable AudioFrames, numbered) and
``ser-robot record audio``, SIGKILLs the recorder 2 to 4 s (uniform, seeded) after its first
flushed chunk reached the disk, runs ``reindex_bag`` and measures the time from the last
recovered message's receive stamp to the kill. Also checks that no message before it is missing.

    python bench/record_kill_bench.py [--kills 20] [--seed 1] [--out out/bench]

Prints one line per kill and the summary; writes ``<out>/record_kill_bench.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RATE_HZ = 100


def kill_once(folder: pathlib.Path, delay_s: float) -> tuple[int, float]:
    """Record, SIGKILL ``delay_s`` after the first flush, reindex: (frames recovered, seconds lost)."""
    from ser_robot.bag import read_messages, reindex_bag

    bag = folder / "bag"
    publisher = subprocess.Popen([sys.executable, str(ROOT / "test" / "audio_publisher.py"), "audio", str(RATE_HZ)],
                                 cwd=ROOT, stdout=subprocess.DEVNULL)
    recorder = subprocess.Popen([sys.executable, "-m", "ser_robot", "record", "audio", "-o", str(bag)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        storage, deadline = bag / "bag.mcap", time.monotonic() + 60
        while not (storage.exists() and storage.stat().st_size > 1000):
            if recorder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the recorder did not write its first chunk")
            time.sleep(0.02)
        time.sleep(delay_s)
        killed_ns = time.time_ns()
        recorder.send_signal(signal.SIGKILL)
        recorder.wait()
    finally:
        for process in (recorder, publisher):
            if process.poll() is None:
                process.kill()
                process.wait()
    reindex_bag(bag)
    messages = list(read_messages(bag, ["/audio"]))
    seqs = [int(m.deserialize().seq) for m in messages]
    if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        raise RuntimeError("a message before the last flush is missing")
    return len(messages), (killed_ns - messages[-1].timestamp_ns) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    rng = random.Random(args.seed)
    losses = []
    for kill in range(args.kills):
        with tempfile.TemporaryDirectory() as folder:
            frames, lost_s = kill_once(pathlib.Path(folder), 2.0 + 2.0 * rng.random())
        losses.append(lost_s)
        print(f"kill {kill}: {frames} frames recovered, last {lost_s:.3f} s lost", flush=True)
    result = {
        "date": datetime.date.today().isoformat(), "machine": platform.node(), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "kills": args.kills, "seed": args.seed,
        "lost_s": {"max": max(losses), "mean": statistics.mean(losses), "all": losses},
    }
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "record_kill_bench.json").write_text(json.dumps(result, indent=2))
    print(f"lost at most {max(losses):.3f} s, mean {statistics.mean(losses):.3f} s over {args.kills} kills; "
          f"{out / 'record_kill_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
