"""Live-pipeline benchmark, part 1: latency and CPU at real time over DDS.

A temporary parameters file runs ``file_source -> features -> inference`` (``ser-robot run
--config TMP.yaml`` as a subprocess, in its own ROS domain and namespace) on a WAV of
synthetic-corpus utterances separated by pauses (48 kHz stereo by default, as a robot's
microphone delivers), paced in real time, 10 ms chunks (``--chunk-ms``). This process subscribes
(RELIABLE) to ``emotion``; latency = receive wall time - ``header.stamp`` of each final result
(``stamp`` = window end: the capture time of the last audio sample the window depends on), so it
includes the delivery to this subscriber. p50/p90/p99/max over the results whose window ends
between ``--warmup`` s after the stream's first sample and 1 s before the audio ends. CPU = the
subprocess's user+system time (``/proc/<pid>/stat``) over wall time in that same span, in % of
one core. Window mode (the goals apply) and utterance mode (latency from the segment end: it
includes the VAD hangover, ``hangover_s``). GPU: when CUDA is available, the same runs again with
the model on ``cuda`` (features stay on CPU).

Writes ``pipeline_realtime.md`` and ``pipeline_realtime.csv`` under ``--out`` (and the WAV it
plays) and prints the table. Figures are measured, never assumed; measurements on a machine busy
with other work are inflated (the table records the other load during each run). One
``--seconds`` real-time run per mode and device (two 60 s runs without a GPU).

    python bench/pipeline_realtime_bench.py --out out/bench                          (make bench)
    python bench/pipeline_realtime_bench.py --out out/bench/low_cpu --chunk-ms 20 --vad-block-windows 3
    python bench/pipeline_realtime_bench.py --model path/to/model.pt --seconds 60 --out out/bench
"""

from __future__ import annotations

import math
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Any

from pipeline_measure import (
    CPU_SETTING, GOAL_P99_MS, TAIL_S, Figure, PipelineSettings, RosProbe, SpeechWav, bench_parser, fmt,
    latency_setting, percentiles, prepare, proc_cpu_s, proc_rss_mb, ser_robot_run, system_busy_s, thread_cpu_s,
    write_report)

GOAL_CPU_PCT = 25.0  # whole pipeline at real time, % of one core


def pipeline_config(wav: SpeechWav, model: pathlib.Path, params: PipelineSettings, mode: str,
                    device: str) -> dict[str, Any]:
    """The parameters file of one run: file_source (``params.chunk_ms`` chunks) -> features -> inference."""
    channel_ids = ["left_ear", "right_ear"] if wav.channels == 2 else [f"ch{i}" for i in range(wav.channels)]
    return {
        "runner": {"ros__parameters": {"nodes": ["file_source", "features", "inference"]}},
        "file_source": {"ros__parameters": {"paths": [str(wav.path.resolve())], "rate": 1.0, "loop": False,
                                            "start_delay_s": 1.0, "channel_ids": channel_ids,
                                            "chunk_ms": params.chunk_ms, "encoding": "s16le"}},
        "features": {"ros__parameters": {"feature_set": params.feature_set, "block_frames": params.block_frames,
                                         "vad": True, "vad_block_windows": params.vad_block_windows}},
        "inference": {"ros__parameters": {"model": str(model.resolve()), "device": device, "mode": mode,
                                          "window_s": 3.0, "hop_s": 1.0, "stdout": False}},
    }


def _drop_reasons() -> tuple[str, ...]:
    from ser_robot.ros.feature_node import DROP_REASONS

    return DROP_REASONS


def run_realtime(probe: RosProbe, config: dict[str, Any], wav: SpeechWav, mode: str, device: str, warmup_s: float,
                 folder: pathlib.Path) -> tuple[list[Figure], str]:
    """One ``ser-robot run`` of ``config`` (files in ``folder``), latency counted after ``warmup_s`` s; the
    figures and the command line."""
    from ser_robot.ros.conversions import time_to_seconds
    from ser_robot.ros.qos import RELIABLE_QOS
    from ser_robot_msgs.msg import Emotion, FeatureFrames

    tag = f"{device}, {mode}"
    cmd = ser_robot_run(config, folder / f"ser_{mode}_{device}.yaml", wav.duration_s + 60)
    finals: list[tuple[float, float, float, bool]] = []  # receive time, window end, window start, speech
    first_vad: list[float] = []
    diagnostics: dict[str, dict[str, str]] = {}

    def on_emotion(msg: Emotion) -> None:
        now = time.time()
        if msg.final:
            finals.append((now, time_to_seconds(msg.header.stamp), time_to_seconds(msg.window_start), msg.speech))

    def on_vad(msg: FeatureFrames) -> None:
        if not first_vad:
            first_vad.append(time_to_seconds(msg.header.stamp))

    node = probe.node
    subscriptions = [node.create_subscription(Emotion, "emotion", on_emotion, RELIABLE_QOS),
                     probe.subscribe_diagnostics(diagnostics)]
    vad_subscription = node.create_subscription(FeatureFrames, "vad", on_vad, RELIABLE_QOS)
    log_path = folder / f"run_{mode}_{device}.log"
    samples: list[tuple] = []  # wall, process CPU, system busy, own CPU, RSS, per-thread CPU
    print(f"[{tag}] {shlex.join(cmd)}  ({wav.duration_s:.0f} s of audio)", flush=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + wav.duration_s + 120
        next_sample = 0.0
        while proc.poll() is None and time.time() < deadline:
            probe.executor.spin_once(timeout_sec=0.02)
            now = time.time()
            if now >= next_sample:
                samples.append((now, proc_cpu_s(proc.pid), system_busy_s(), time.process_time(),
                                proc_rss_mb(proc.pid), thread_cpu_s(proc.pid)))
                next_sample = now + 0.25
            if first_vad and vad_subscription is not None:
                node.destroy_subscription(vad_subscription)  # the stream's origin is known; stop listening
                vad_subscription = None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for subscription in subscriptions + ([vad_subscription] if vad_subscription is not None else []):
        node.destroy_subscription(subscription)
    if proc.returncode != 0 or not first_vad:
        tail = "\n".join(log_path.read_text().splitlines()[-30:])
        raise SystemExit(f"[{tag}] ser-robot run failed (exit {proc.returncode}, stream started: "
                         f"{bool(first_vad)}); its log {log_path}:\n{tail}")

    origin = first_vad[0]  # stamp of the first VAD block = the stream's first sample
    start, end = origin + warmup_s, origin + wav.duration_s - TAIL_S
    counted = [(r, s, speech) for r, s, _, speech in finals if start <= s <= end]
    latencies = [(r - s) * 1e3 for r, s, _ in counted]
    speech_latencies = [(r - s) * 1e3 for r, s, speech in counted if speech]
    stats = percentiles(latencies)
    inside = [x for x in samples if start <= x[0] <= end and math.isfinite(x[1])]
    threads: list[float] = []
    if len(inside) >= 2:
        (w0, c0, b0, o0, _, t0), (w1, c1, b1, o1, _, t1) = inside[0], inside[-1]
        cpu_pct = 100 * (c1 - c0) / (w1 - w0)
        other_cores = ((b1 - b0) - (c1 - c0) - (o1 - o0)) / (w1 - w0)
        span = w1 - w0
        threads = sorted((100 * (t1[tid] - t0.get(tid, 0.0)) / span for tid in t1), reverse=True)
    else:
        cpu_pct = other_cores = span = float("nan")
    rss = max((x[4] for x in samples if math.isfinite(x[4])), default=float("nan"))
    window = mode == "window"
    note = "" if window else " (from segment end: includes hangover)"
    figures = [
        Figure("realtime", tag, f"latency p50{note}", stats["p50"], "ms"),
        Figure("realtime", tag, "latency p90", stats["p90"], "ms"),
        Figure("realtime", tag, "latency p99", stats["p99"], "ms", f"< {GOAL_P99_MS:g} ms" if window else "",
               stats["p99"] < GOAL_P99_MS if window else None),
        Figure("realtime", tag, "latency max", stats["max"], "ms"),
        Figure("realtime", tag, "latency p50 / p99, speech results only",
               f"{fmt(percentiles(speech_latencies)['p50'])} / {fmt(percentiles(speech_latencies)['p99'])}", "ms"),
        Figure("realtime", tag, "final results counted (all received)", f"{len(counted)} ({len(finals)})"),
        Figure("realtime", tag, "CPU of the pipeline process", cpu_pct, "% of one core",
               f"< {GOAL_CPU_PCT:g} %", cpu_pct < GOAL_CPU_PCT),
        Figure("realtime", tag, f"busiest threads of the process (of {len(threads)})",
               " / ".join(f"{x:.1f}" for x in threads[:3]) or "n/a", "% of one core", ""),
        Figure("realtime", tag, "steady-state span measured", span, "s"),
        Figure("realtime", tag, "peak resident memory", rss, "MiB"),
        Figure("realtime", tag, "other load on the machine meanwhile", other_cores, "cores busy"),
    ]
    features = diagnostics.get("features", {})
    inference = diagnostics.get("inference", {})
    lost = sum(int(features.get(k, 0)) for k in ("dropped", "seq_gaps"))
    reasons = ", ".join(f"{k} {v}" for k, v in features.items() if k in _drop_reasons() and v not in ("0", ""))
    figures += [
        Figure("realtime", tag, "features node: callback time / audio time",
               100 * float(features.get("real_time_factor", "nan")), "%"),
        Figure("realtime", tag, "inference node: callback time / audio time",
               100 * float(inference.get("real_time_factor", "nan")), "%"),
        Figure("realtime", tag, "inference node's own latency p50 / p99 (at publish, incl. warm-up)",
               f"{inference.get('latency_p50_ms', 'n/a')} / {inference.get('latency_p99_ms', 'n/a')}", "ms"),
        Figure("realtime", tag, "audio frames received / dropped by the node / sequence gaps (lost in transport)",
               f"{features.get('received', 'n/a')} / {features.get('dropped', 'n/a')} / "
               f"{features.get('seq_gaps', 'n/a')}", "",
               (f"dropped: {reasons}; " if reasons else "") + "check: 0 lost",
               lost == 0),
    ]
    return figures, shlex.join(cmd)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--modes", default="window,utterance", help="inference modes of the real-time runs")
    args = parser.parse_args(argv)
    setup = prepare(args)
    import yaml

    figures: list[Figure] = []
    commands: list[str] = []
    yaml_text = ""
    with RosProbe() as probe, tempfile.TemporaryDirectory(prefix="pipeline_realtime_") as tmp:
        for device in setup.devices:
            for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
                config = pipeline_config(setup.wav, setup.model_path, setup.params, mode, device)
                if device == "cpu" and mode == "window":
                    yaml_text = yaml.safe_dump(config, sort_keys=False)
                rows, command = run_realtime(probe, config, setup.wav, mode, device, setup.warmup_s,
                                             pathlib.Path(tmp))
                figures += rows
                commands.append(command.replace(tmp, "$TMP"))
    settings = setup.settings() + [latency_setting(setup.warmup_s), CPU_SETTING]
    write_report(setup, "pipeline_realtime", "Live-pipeline benchmark: real time over DDS "
                 "(`bench/pipeline_realtime_bench.py`)", settings, commands, figures, yaml_text, setup.gpu_skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
