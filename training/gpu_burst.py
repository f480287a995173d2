"""A GPU burst: as much of a `paper`-size experiment as fits in a wall-clock budget, safe to stop anytime.

A lent GPU machine (one H100 or H200, 16 cores) gives a session about 15 minutes of device time
in all. This script spends at most ``--seconds`` (default 540, 9 minutes) of them on one
experiment and leaves everything it finished behind:

1. it runs ``ser-robot experiment EXPERIMENT --workers N --out OUT/results`` in a child process
   (several jobs train at once on the one GPU: ``device: auto`` picks CUDA in every worker);
2. at the deadline it stops the child (SIGINT, then SIGKILL). Finished jobs keep their
   ``job.json`` and predictions, an interrupted job its ``last.pt`` of the last whole epoch, so
   running the script again (or ``ser-robot experiment`` with the same ``--out``) resumes;
3. it rebuilds the tables from whatever finished and writes ``OUT/burst.json``: the command,
   budget, wall time, jobs finished, the device (``nvidia-smi``) and the per-job training
   throughput.

    python training/gpu_burst.py --out $OUT/burst                       # Table I, paper size
    python training/gpu_burst.py --experiment training/experiments/lakomkin_table1_tiny.yaml \\
        --out out/burst --seconds 60 --workers 2                        # the CPU check (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


def _device() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip() or "no GPU"
    except (OSError, subprocess.TimeoutExpired):
        return "no GPU (nvidia-smi not found)"


def burst(experiment: pathlib.Path, out: pathlib.Path, seconds: float, workers: int,
          cache: pathlib.Path | None = None) -> dict:
    """Run ``experiment`` into ``out/results`` for at most ``seconds``; returns (and writes) ``out/burst.json``."""
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results"
    command = [sys.executable, "-m", "ser_robot", "experiment", str(experiment), "--out", str(results),
               "--workers", str(workers), "--no-progress"]
    if cache is not None:
        command += ["--cache", str(cache)]
    started = time.monotonic()
    with (out / "experiment.log").open("a") as log:
        child = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = child.wait(timeout=seconds)
            stopped = False
        except subprocess.TimeoutExpired:
            stopped = True
            os.killpg(child.pid, signal.SIGINT)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            returncode = child.returncode
    wall = time.monotonic() - started
    jobs = [json.loads(p.read_text()) for p in results.glob("jobs/*/rep*/*/job.json")]
    tables = None
    if jobs:
        from ser_robot.experiments.tables import rebuild_tables

        tables = str(rebuild_tables(results, figures=True).files[0].parent)
    report = {"command": " ".join(command), "budget_s": seconds, "wall_s": round(wall, 1),
              "stopped_at_deadline": stopped, "returncode": returncode, "device": _device(),
              "jobs_finished": len(jobs), "tables": tables,
              "jobs": [{"arm": j["arm"], "repetition": j["repetition"], "test": j["test_speaker"],
                        "train_seconds": j["train_seconds"], "epochs_run": j["epochs_run"],
                        "utterances_per_s": j["throughput_utterances_per_s"]} for j in jobs]}
    (out / "burst.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", type=pathlib.Path,
                        default=REPO / "training" / "experiments" / "lakomkin_table1_paper.yaml")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/burst"))
    parser.add_argument("--seconds", type=float, default=540.0, help="wall-clock budget (default 9 minutes)")
    parser.add_argument("--workers", type=int, default=6, help="jobs training at once on the GPU")
    parser.add_argument("--cache", type=pathlib.Path, default=None)
    args = parser.parse_args()
    report = burst(args.experiment, args.out, args.seconds, args.workers, args.cache)
    print(f"{report['jobs_finished']} jobs finished in {report['wall_s']} s on {report['device']}"
          f"{' (stopped at the deadline; run again to resume)' if report['stopped_at_deadline'] else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
