"""Live-pipeline benchmark, part 3: real-time streams one CPU core sustains over DDS.

``bench/stream_publisher.py`` (pinned to the last core) publishes K real-time streams of a WAV of
synthetic-corpus utterances separated by pauses (48 kHz stereo by default, 10 ms frames by
default: ``--chunk-ms``; own frame_ids, staggered) to one ``ser-robot run`` of features +
inference (window mode) pinned to the first core, for K = 1, 2, 3, ... until the core falls
behind (an audio frame lost, a stream without results, window latency p99 over
``KEEP_UP_P99_MS`` or the process over ``SATURATED_PCT`` of its core); the last K that kept up is
the figure. CPU and latency per K (latency = receive wall time in this process - ``header.stamp``
of each final result, the window end).

Writes ``pipeline_dds.md`` and ``pipeline_dds.csv`` under ``--out`` (and the WAV it plays) and
prints the table. Figures are measured, never assumed; measurements on a machine busy with other
work are inflated. About 30 s per K.

    python bench/pipeline_dds_bench.py --out out/bench                               (make bench)
    python bench/pipeline_dds_bench.py --out out/bench/dds --dds-seconds 20
"""

from __future__ import annotations

import math
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Any

from pipeline_measure import (
    CPU_SETTING, GOAL_P99_MS, NAMESPACE, TAIL_S, Figure, PipelineSettings, RosProbe, SpeechWav, bench_parser, fmt,
    latency_setting, percentiles, prepare, proc_cpu_s, ser_robot_run, write_report)

KEEP_UP_P99_MS = 1000.0  # a core keeps up while window latency p99 stays under this, ms
SATURATED_PCT = 95.0  # ... and while the pipeline process uses less of its core than this (else queues grow), %
MAX_STREAMS = 64  # the largest K tried


def dds_config(model: pathlib.Path, params: PipelineSettings, count: int) -> dict[str, Any]:
    """The parameters file of the pipeline process for ``count`` streams: features -> inference."""
    streams = max(8, count)
    return {
        "runner": {"ros__parameters": {"nodes": ["features", "inference"]}},
        "features": {"ros__parameters": {"feature_set": params.feature_set, "block_frames": params.block_frames,
                                         "vad": True, "vad_block_windows": params.vad_block_windows,
                                         "max_streams": streams}},
        "inference": {"ros__parameters": {"model": str(model.resolve()), "device": "cpu", "mode": "window",
                                          "window_s": 3.0, "hop_s": 1.0, "stdout": False, "max_streams": streams}},
    }


def run_dds_streams(probe: RosProbe, count: int, config: dict[str, Any], wav: SpeechWav, seconds: float,
                    warmup_s: float, chunk_ms: float, folder: pathlib.Path) -> tuple[list[Figure], bool, str]:
    """``count`` real-time streams of ``seconds`` s in ``chunk_ms`` ms frames (``bench/stream_publisher.py``,
    pinned to the last core) into one ``ser-robot run`` of ``config`` pinned to the first core, counted after
    ``warmup_s`` s. Returns the figures, whether the core kept up (no frame lost, window latency p99 <
    ``KEEP_UP_P99_MS``, results from every stream, CPU < ``SATURATED_PCT``) and the pipeline's command line."""
    from ser_robot.ros.conversions import time_to_seconds
    from ser_robot.ros.qos import RELIABLE_QOS
    from ser_robot_msgs.msg import Emotion

    tag = f"cpu, window, {count} stream(s)"
    cmd = ser_robot_run(config, folder / f"ser_dds_{count}.yaml", seconds + 60)
    publish = [sys.executable, str(pathlib.Path(__file__).with_name("stream_publisher.py")), "--wav",
               str(wav.path), "--streams", str(count), "--seconds", f"{seconds:g}", "--chunk-ms", f"{chunk_ms:g}",
               "--namespace", NAMESPACE]
    finals: list[tuple[float, float, str]] = []  # receive time, window end, stream
    origins: list[float] = []  # window starts: the first window of a stream starts at its first sample
    diagnostics: dict[str, dict[str, str]] = {}

    def on_emotion(msg: Emotion) -> None:
        if msg.final:
            finals.append((time.time(), time_to_seconds(msg.header.stamp), msg.source_id))
            origins.append(time_to_seconds(msg.window_start))

    subscriptions = [probe.node.create_subscription(Emotion, "emotion", on_emotion, RELIABLE_QOS),
                     probe.subscribe_diagnostics(diagnostics)]
    cores = sorted(os.sched_getaffinity(0))
    pin = (lambda core: (lambda: os.sched_setaffinity(0, {core})))
    samples: list[tuple[float, float]] = []  # wall, pipeline process CPU s
    print(f"[{tag}] {shlex.join(cmd)}", flush=True)
    with open(folder / f"run_dds_{count}.log", "w") as log:
        pipeline = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin(cores[0]))
        publisher = subprocess.Popen(publish, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin(cores[-1]))
        deadline = time.time() + seconds + 120
        while publisher.poll() is None and time.time() < deadline:
            probe.executor.spin_once(timeout_sec=0.02)
            samples.append((time.time(), proc_cpu_s(pipeline.pid)))
        settle = time.time() + 2.0  # the last results and a diagnostics message
        while time.time() < settle:
            probe.executor.spin_once(timeout_sec=0.02)
        for proc in (publisher, pipeline):
            if proc.poll() is None:
                proc.terminate()
            proc.wait(15)
    for subscription in subscriptions:
        probe.node.destroy_subscription(subscription)
    started = min(origins, default=math.inf)
    start, end = started + warmup_s, started + seconds - TAIL_S
    latencies = [(r - stamp) * 1e3 for r, stamp, _ in finals if start <= stamp <= end]
    streams = {source for _, stamp, source in finals if start <= stamp <= end}
    inside = [x for x in samples if start <= x[0] <= end and math.isfinite(x[1])]
    cpu_pct = 100 * (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) if len(inside) >= 2 \
        else float("nan")
    features = diagnostics.get("features", {})
    expected = count * int(seconds * 1000 / chunk_ms)
    received = int(features.get("received", 0))
    lost = expected - received + int(features.get("dropped", 0))
    stats = percentiles(latencies)
    kept_up = lost == 0 and len(streams) == count and stats["p99"] < KEEP_UP_P99_MS and cpu_pct < SATURATED_PCT
    figures = [
        Figure("dds", tag, "CPU of the pipeline process (pinned to one core)", cpu_pct, "% of one core"),
        Figure("dds", tag, "window latency p50 / p99",
               f"{fmt(stats['p50'])} / {fmt(stats['p99'])}", "ms", f"< {GOAL_P99_MS:g} ms", stats["p99"] < GOAL_P99_MS),
        Figure("dds", tag, "audio frames lost (expected - received + dropped) / streams with results",
               f"{lost} of {expected} / {len(streams)} of {count}", "",
               f"kept up: no loss, every stream, p99 < {KEEP_UP_P99_MS:g} ms, CPU < {SATURATED_PCT:g} %", kept_up),
    ]
    return figures, kept_up, shlex.join(cmd)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--dds-seconds", type=float, default=20.0, help="audio per stream in each run, s")
    args = parser.parse_args(argv)
    setup = prepare(args)
    figures: list[Figure] = []
    commands: list[str] = []
    sustained = within_goal = 0
    with RosProbe() as probe, tempfile.TemporaryDirectory(prefix="pipeline_dds_") as tmp:
        for count in range(1, MAX_STREAMS + 1):  # one more stream at a time until the core falls behind
            config = dds_config(setup.model_path, setup.params, count)
            rows, kept_up, command = run_dds_streams(probe, count, config, setup.wav, args.dds_seconds,
                                                     setup.warmup_s, setup.params.chunk_ms, pathlib.Path(tmp))
            figures += rows
            within_goal = count if rows[1].met and within_goal == count - 1 else within_goal
            if count == 1:
                commands.append(command.replace(tmp, "$TMP") + "   (and bench/stream_publisher.py)")
            if not kept_up:
                break
            sustained = count
    figures += [Figure("dds", "cpu, window", "real-time streams one core sustains over DDS", sustained),
                Figure("dds", "cpu, window", f"streams within the latency goal (p99 < {GOAL_P99_MS:g} ms)",
                       within_goal)]
    settings = setup.settings() + [
        latency_setting(setup.warmup_s), CPU_SETTING,
        (f"streams over DDS: {args.dds_seconds:g} s of audio per stream, K = 1, 2, ... until the core falls "
         f"behind (a frame lost, a stream without results, p99 >= {KEEP_UP_P99_MS:g} ms or CPU >= "
         f"{SATURATED_PCT:g} %)"),
    ]
    write_report(setup, "pipeline_dds", "Live-pipeline benchmark: streams per CPU core over DDS "
                 "(`bench/pipeline_dds_bench.py`)", settings, commands, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
