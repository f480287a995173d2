"""End-to-end pipeline benchmark: latency and CPU at real time over DDS, and streams per CPU core.

1. Real time over DDS: a temporary parameters file runs ``file_source -> features -> inference``
   (``ser-robot run --config TMP.yaml`` as a subprocess, in its own ROS domain and namespace)
   on a WAV of synthetic-corpus utterances separated by pauses (48 kHz stereo by default, as
   a robot's microphone delivers), paced in real time, 10 ms chunks. This process subscribes
   (RELIABLE) to ``emotion``; latency = receive wall time - ``header.stamp`` of each final
   result (``stamp`` = window end: the capture time of the last audio sample the window
   depends on), so it includes the delivery to this subscriber. p50/p90/p99/max over the
   results whose window ends between ``--warmup`` s after the stream's first sample and 1 s
   before the audio ends. CPU = the subprocess's user+system time (``/proc/<pid>/stat``) over
   wall time in that same span, in % of one core. Window mode (the goals apply) and utterance
   mode (latency from the segment end: it includes the VAD hangover, ``hangover_s``).
2. Streams per core, in-process (no ROS messages), ``torch.set_num_threads(1)``:
   ``FeaturePipeline`` (features + Silero VAD) and ``StreamInference`` (window mode) over 10 ms
   chunks of the same audio, as fast as possible. RTF = CPU time / audio time of one stream;
   streams one core sustains = floor(1 / RTF), verified by running that many streams round-robin
   (CPU time of the K streams / audio time of one stream must stay < 1; if not, one stream fewer,
   until it does: the verified figure is the one to quote). Also: CPU per stage
   (where the time goes), the algorithmic latency of both modes (audio time from a window end
   to the chunk that completes it; with this bench's blocking and with config/ser.yaml's), and
   the feature extractor's cost with pushes of a whole block (what the pipeline does) against
   10 ms pushes (what it did before it deferred extraction to block boundaries).
3. Streams per core over DDS: ``bench/stream_publisher.py`` (pinned to the last core) publishes K
   real-time streams of the same WAV (own frame_ids, staggered) to one ``ser-robot run`` of
   features + inference (window mode) pinned to the first core, for K = 1, 2, 3, ... until the
   core falls behind (an audio frame lost, a stream without results, window latency p99 over
   ``KEEP_UP_P99_MS`` or the process over ``SATURATED_PCT`` of its core); the last K that kept up
   is the figure. CPU and latency per K.
4. GPU: when CUDA is available, 1 and 2 again with the model on ``cuda`` (features stay on CPU).

Writes ``pipeline.md`` and ``pipeline.csv`` under ``--out`` (and the WAV it plays) and prints
the table. Figures are measured, never assumed; measurements on a machine busy with other work
are inflated (the table records the other load during each real-time run). About 3 minutes
without a GPU (two 60 s real-time runs), about 5 with one, plus about 30 s per K of part 3.

    python bench/pipeline_bench.py --out out/bench                       (make bench)
    python bench/pipeline_bench.py --model path/to/model.pt --seconds 60 --out out/bench
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import json
import math
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

GOAL_P99_MS = 50.0  # window mode, end-to-end latency p99, ms
GOAL_CPU_PCT = 25.0  # whole pipeline at real time, % of one core
KEEP_UP_P99_MS = 1000.0  # streams over DDS: a core keeps up while window latency p99 stays under this, ms
SATURATED_PCT = 95.0  # ... and while the pipeline process uses less of its core than this (else queues grow), %
CHUNK_MS = 10.0  # audio chunk, ms: the microphone node's default chunk_ms (main() sets it from --chunk-ms)
TAIL_S = 1.0  # results whose window ends in the last TAIL_S s of audio are not counted (teardown flushes)
NAMESPACE = "pipeline_bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- figures -------------------------------------------------------------------------------------
@dataclass
class Figure:
    """One measured figure: ``section`` / ``config`` (device, mode) / ``name``, value in ``unit``, goal, met."""

    section: str
    config: str
    name: str
    value: float | int | str
    unit: str = ""
    goal: str = ""
    met: bool | None = None


def fmt(value: float | str, digits: int = 1) -> str:
    """A value for the Markdown table (NaN as n/a)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


# --- machine -------------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    """CPU model, cores, load, torch version and GPU of this machine."""
    import torch

    cpu = "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {"cpu": cpu, "cores": str(os.cpu_count()), "load_average_1_5_15min_at_start": load,
            "torch": torch.__version__, "gpu": gpu, "python": platform.python_version(),
            "rmw": os.environ.get("RMW_IMPLEMENTATION", "default")}


def proc_cpu_s(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), s; NaN once it is gone."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5): utime, stime


def proc_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid``, MiB (NaN once it is gone)."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU time of each thread of process ``pid``, s (empty once it is gone)."""
    out: dict[int, float] = {}
    try:
        tasks = list(pathlib.Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def system_busy_s() -> float:
    """CPU time spent busy (not idle, not waiting for I/O) by all cores since boot, s."""
    values = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


# --- audio ---------------------------------------------------------------------------------------
def find_manifest(given: pathlib.Path | None, out: pathlib.Path) -> pathlib.Path:
    """``given``; else ``out/synth``'s or an ``out/corpora/*/corpus`` manifest; else a small corpus generated
    under ``out``."""
    if given is not None:
        if not given.is_file():
            raise SystemExit(f"manifest {given} not found")
        return given
    candidates = [pathlib.Path("out/synth/manifest.jsonl"),
                  *sorted(pathlib.Path("out/corpora").glob("*/corpus/manifest.jsonl"))]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    from ser_robot.data.synth.corpus import generate_corpus

    target = out / "pipeline_corpus"
    print(f"no synthetic corpus found: generating a small one under {target}", flush=True)
    generate_corpus(target, speakers=2, sentences=4, workers=2, progress=False)
    return target / "manifest.jsonl"


def _pick(entries: list[dict]) -> list[dict]:
    """Entries round-robin over (speaker, label), so the WAV mixes voices and emotions."""
    groups: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for entry in entries:
        groups[(entry.get("speaker", ""), entry.get("label", ""))].append(entry)
    keys = sorted(groups)
    depth = max(len(v) for v in groups.values())
    return [groups[k][d] for d in range(depth) for k in keys if d < len(groups[k])]


@dataclass
class SpeechWav:
    """The WAV played: ``duration_s``, speech onsets (s from its start), utterances."""

    path: pathlib.Path
    duration_s: float
    onsets_s: list[float]
    sample_rate: int
    channels: int


def build_wav(manifest: pathlib.Path, seconds: float, rate: int, channels: int, path: pathlib.Path,
              seed: int = 0) -> SpeechWav:
    """``seconds`` of utterances with 0.6-1.5 s pauses (1 s lead, >= 1.5 s tail), -60 dBFS noise floor, ``rate`` Hz."""
    import soundfile as sf

    from ser_robot.audio.resample import resample

    rng = np.random.default_rng(seed)
    entries = _pick([json.loads(line) for line in manifest.read_text().splitlines() if line.strip()])
    pieces: list[np.ndarray] = [np.zeros(rate, np.float32)]
    t, onsets = 1.0, []
    for entry in entries:
        audio, source_rate = sf.read(manifest.parent / entry["path"], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if source_rate != rate:
            audio = resample(audio, source_rate, rate).astype(np.float32)
        pause = float(rng.uniform(0.6, 1.5))
        if t + len(audio) / rate + 1.5 > seconds:
            break
        onsets.append(t)
        pieces += [audio, np.zeros(int(pause * rate), np.float32)]
        t += len(audio) / rate + int(pause * rate) / rate
    if not onsets:
        raise SystemExit(f"--seconds {seconds} is too short for one utterance of {manifest}")
    mono = np.concatenate(pieces)
    mono = np.concatenate([mono, np.zeros(round(seconds * rate) - len(mono), np.float32)])
    mono += rng.standard_normal(len(mono)).astype(np.float32) * 1e-3
    mono /= max(1.0, float(np.abs(mono).max()) / 0.9)
    data = mono[:, None] if channels == 1 else np.stack([mono] + [0.9 * mono] * (channels - 1), axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype="PCM_16")
    return SpeechWav(path, len(mono) / rate, onsets, rate, channels)


def read_wav(wav: SpeechWav) -> np.ndarray:
    """The WAV as float32 ``(frames, channels)`` (the 16-bit samples the file source publishes)."""
    import soundfile as sf

    return sf.read(str(wav.path), dtype="float32", always_2d=True)[0]


# --- 1. real time over DDS -----------------------------------------------------------------------
def pipeline_config(wav: SpeechWav, model: pathlib.Path, feature_set: str, mode: str, device: str,
                    block_frames: int, vad_block_windows: int) -> dict[str, Any]:
    """The parameters file of one run: file_source -> features -> inference."""
    channel_ids = ["left_ear", "right_ear"] if wav.channels == 2 else [f"ch{i}" for i in range(wav.channels)]
    return {
        "runner": {"ros__parameters": {"nodes": ["file_source", "features", "inference"]}},
        "file_source": {"ros__parameters": {"paths": [str(wav.path.resolve())], "rate": 1.0, "loop": False,
                                            "start_delay_s": 1.0, "channel_ids": channel_ids,
                                            "chunk_ms": CHUNK_MS, "encoding": "s16le"}},
        "features": {"ros__parameters": {"feature_set": feature_set, "block_frames": block_frames, "vad": True,
                                         "vad_block_windows": vad_block_windows}},
        "inference": {"ros__parameters": {"model": str(model.resolve()), "device": device, "mode": mode,
                                          "window_s": 3.0, "hop_s": 1.0, "stdout": False}},
    }


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99, max of ``values`` (NaN when empty)."""
    if not values:
        return {k: float("nan") for k in ("p50", "p90", "p99", "max")}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


class RealTimeBench:
    """This process's ROS side: a node in ``NAMESPACE`` subscribing to emotion, vad (first message) and diagnostics."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        rclpy.init()
        self.node = rclpy.create_node("pipeline_bench_probe", namespace=NAMESPACE)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown()

    def run(self, config: dict[str, Any], wav: SpeechWav, mode: str, device: str, warmup_s: float,
            folder: pathlib.Path) -> tuple[list[Figure], str]:
        """One ``ser-robot run`` of ``config``; the figures and the command line."""
        import yaml
        from diagnostic_msgs.msg import DiagnosticArray

        from ser_robot.ros.conversions import time_to_seconds
        from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS
        from ser_robot_msgs.msg import Emotion, FeatureFrames

        tag = f"{device}, {mode}"
        yaml_path = folder / f"ser_{mode}_{device}.yaml"
        yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [sys.executable, "-m", "ser_robot", "run", "--config", str(yaml_path), "--namespace", NAMESPACE,
               "--duration", f"{wav.duration_s + 60:g}"]
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

        def on_diagnostics(msg: DiagnosticArray) -> None:
            for status in msg.status:
                diagnostics[status.name.rsplit("/", 1)[-1]] = {kv.key: kv.value for kv in status.values}

        node = self.node
        subscriptions = [node.create_subscription(Emotion, "emotion", on_emotion, RELIABLE_QOS),
                         node.create_subscription(DiagnosticArray, "diagnostics", on_diagnostics, DIAGNOSTICS_QOS)]
        vad_subscription = node.create_subscription(FeatureFrames, "vad", on_vad, RELIABLE_QOS)
        log_path = folder / f"run_{mode}_{device}.log"
        samples: list[tuple] = []  # wall, process CPU, system busy, own CPU, RSS, per-thread CPU
        print(f"[{tag}] {shlex.join(cmd)}  ({wav.duration_s:.0f} s of audio)", flush=True)
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.time() + wav.duration_s + 120
            next_sample = 0.0
            while proc.poll() is None and time.time() < deadline:
                self.executor.spin_once(timeout_sec=0.02)
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
                   " / ".join(f"{x:.1f}" for x in threads[:3]) or "n/a", "% of one core",
                   ""),
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


    def run_dds_streams(self, count: int, config: dict[str, Any], wav: SpeechWav, seconds: float, warmup_s: float,
                        folder: pathlib.Path) -> tuple[list[Figure], bool, str]:
        """``count`` real-time streams (``bench/stream_publisher.py``, pinned to core 1) into one
        ``ser-robot run`` of features + inference pinned to core 0. Returns the figures, whether the
        core kept up (no frame lost, window latency p99 < ``KEEP_UP_P99_MS``, results from every
        stream) and the pipeline's command line."""
        import yaml
        from diagnostic_msgs.msg import DiagnosticArray

        from ser_robot.ros.conversions import time_to_seconds
        from ser_robot.ros.qos import DIAGNOSTICS_QOS, RELIABLE_QOS
        from ser_robot_msgs.msg import Emotion

        tag = f"cpu, window, {count} stream(s)"
        yaml_path = folder / f"ser_dds_{count}.yaml"
        yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [sys.executable, "-m", "ser_robot", "run", "--config", str(yaml_path), "--namespace", NAMESPACE,
               "--duration", f"{seconds + 60:g}"]
        publish = [sys.executable, str(pathlib.Path(__file__).with_name("stream_publisher.py")), "--wav",
                   str(wav.path), "--streams", str(count), "--seconds", f"{seconds:g}", "--chunk-ms", f"{CHUNK_MS:g}",
                   "--namespace", NAMESPACE]
        finals: list[tuple[float, float, str]] = []  # receive time, window end, stream
        origins: list[float] = []  # window starts: the first window of a stream starts at its first sample
        diagnostics: dict[str, str] = {}

        def on_emotion(msg: Emotion) -> None:
            if msg.final:
                finals.append((time.time(), time_to_seconds(msg.header.stamp), msg.source_id))
                origins.append(time_to_seconds(msg.window_start))

        def on_diagnostics(msg: DiagnosticArray) -> None:
            for status in msg.status:
                if status.name.rsplit("/", 1)[-1] == "features":
                    diagnostics.update({kv.key: kv.value for kv in status.values})

        subscriptions = [self.node.create_subscription(Emotion, "emotion", on_emotion, RELIABLE_QOS),
                         self.node.create_subscription(DiagnosticArray, "diagnostics", on_diagnostics, DIAGNOSTICS_QOS)]
        cores = sorted(os.sched_getaffinity(0))
        pin = (lambda core: (lambda: os.sched_setaffinity(0, {core})))
        samples: list[tuple[float, float]] = []  # wall, pipeline process CPU s
        print(f"[{tag}] {shlex.join(cmd)}", flush=True)
        with open(folder / f"run_dds_{count}.log", "w") as log:
            pipeline = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin(cores[0]))
            publisher = subprocess.Popen(publish, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin(cores[-1]))
            deadline = time.time() + seconds + 120
            while publisher.poll() is None and time.time() < deadline:
                self.executor.spin_once(timeout_sec=0.02)
                samples.append((time.time(), proc_cpu_s(pipeline.pid)))
            settle = time.time() + 2.0  # the last results and a diagnostics message
            while time.time() < settle:
                self.executor.spin_once(timeout_sec=0.02)
            for proc in (publisher, pipeline):
                if proc.poll() is None:
                    proc.terminate()
                proc.wait(15)
        for subscription in subscriptions:
            self.node.destroy_subscription(subscription)
        started = min(origins, default=math.inf)
        start, end = started + warmup_s, started + seconds - TAIL_S
        latencies = [(r - stamp) * 1e3 for r, stamp, _ in finals if start <= stamp <= end]
        streams = {source for _, stamp, source in finals if start <= stamp <= end}
        inside = [x for x in samples if start <= x[0] <= end and math.isfinite(x[1])]
        cpu_pct = 100 * (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) if len(inside) >= 2 \
            else float("nan")
        expected = count * int(seconds * 1000 / CHUNK_MS)
        received = int(diagnostics.get("received", 0))
        lost = expected - received + int(diagnostics.get("dropped", 0))
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


def dds_config(model: pathlib.Path, feature_set: str, count: int, block_frames: int,
               vad_block_windows: int) -> dict[str, Any]:
    """The parameters file of the pipeline process of the streams-over-DDS part: features -> inference."""
    streams = max(8, count)
    return {
        "runner": {"ros__parameters": {"nodes": ["features", "inference"]}},
        "features": {"ros__parameters": {"feature_set": feature_set, "block_frames": block_frames, "vad": True,
                                         "vad_block_windows": vad_block_windows, "max_streams": streams}},
        "inference": {"ros__parameters": {"model": str(model.resolve()), "device": "cpu", "mode": "window",
                                          "window_s": 3.0, "hop_s": 1.0, "stdout": False, "max_streams": streams}},
    }


def _drop_reasons() -> tuple[str, ...]:
    from ser_robot.ros.feature_node import DROP_REASONS

    return DROP_REASONS


# --- 2. streams per core ---------------------------------------------------------------------------
class StageTimer:
    """CPU time (``time.process_time``, s) spent in wrapped methods, per stage; wall time per call too."""

    def __init__(self) -> None:
        self.cpu: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self.wall_ms: dict[str, list[float]] = collections.defaultdict(list)

    def wrap(self, obj: object, name: str, stage: str) -> None:
        """Replace ``obj.name`` (on this instance only) by a timed call."""
        function: Callable = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu[stage] += time.process_time() - cpu
                self.calls[stage] += 1
                self.wall_ms[stage].append((time.perf_counter() - wall) * 1e3)

        setattr(obj, name, timed)


def run_streams(count: int, audio: np.ndarray, rate: int, model: Any, feature_set: str, block_frames: int,
                vad_block_windows: int, timer: StageTimer | None = None,
                record: list | None = None) -> tuple[float, float, int]:
    """``count`` streams of ``audio`` ``(frames, channels)`` round-robin, 10 ms chunks, as fast as possible.

    Streams are staggered (each starts at another point of the audio). Returns (CPU s, wall s,
    final results). With ``timer``, stages are timed; ``record`` receives stream 0's
    ``(chunk end time s, "features" | "vad" | "result", block or result)`` in order.
    """
    from ser_robot.features.pipeline import FeaturePipeline
    from ser_robot.features.sets import create_extractor
    from ser_robot.inference import InferenceSettings, StreamInference

    settings = InferenceSettings(mode="window", window_s=3.0, hop_s=1.0)
    pipelines = [FeaturePipeline(create_extractor(feature_set), block_frames=block_frames, vad=True,
                                 vad_block_windows=vad_block_windows) for _ in range(count)]
    engines = [StreamInference(model, settings) for _ in range(count)]
    if timer is not None:
        for pipeline, engine in zip(pipelines, engines):
            timer.wrap(pipeline, "push", "pipeline")
            timer.wrap(pipeline.streaming, "push", "features")
            timer.wrap(pipeline.vad, "push", "vad")
            timer.wrap(engine, "push_features", "engine")
            timer.wrap(engine, "push_vad", "engine")
        timer.wrap(model, "predict", "model")
    signals = [np.ascontiguousarray(np.roll(audio, -k * len(audio) // max(count, 1), axis=0)) for k in range(count)]
    step = round(rate * CHUNK_MS / 1000)
    chunks = len(audio) // step
    results = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for index in range(chunks):
        stamp = 1000.0 + index * step / rate
        for stream, (pipeline, engine, signal) in enumerate(zip(pipelines, engines, signals)):
            features, vad = pipeline.push(signal[index * step:(index + 1) * step], rate, index, stamp)
            out = []
            for block in features:
                out += engine.push_features(block.start_time, block.frames)
            for block in vad:
                out += engine.push_vad(block.start_time, block.frames[:, 0])
            results += len(out)
            if record is not None and stream == 0:
                end = stamp + step / rate
                record += [(end, "features", b) for b in features] + [(end, "vad", b) for b in vad]
                record += [(end, "result", r) for r in out]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if timer is not None:
        del model.predict  # drop the instance wrapper
    return cpu, wall, results


def replay(model: Any, record: list, mode: str) -> list[tuple[float, Any]]:
    """Stream 0's recorded feature and VAD blocks through a ``mode`` engine: (chunk end time s, result)."""
    from ser_robot.inference import InferenceSettings, StreamInference

    engine = StreamInference(model, InferenceSettings(mode=mode, window_s=3.0, hop_s=1.0))
    out: list[tuple[float, Any]] = []
    for end, kind, item in record:
        if kind == "features":
            out += [(end, r) for r in engine.push_features(item.start_time, item.frames)]
        elif kind == "vad":
            out += [(end, r) for r in engine.push_vad(item.start_time, item.frames[:, 0])]
    return out


def regroup(record: list, block_frames: int, vad_block_windows: int) -> list:
    """``record`` with its blocks merged as a feature node with these block sizes would publish them (a block
    leaves with the chunk that completes it, VAD also with every feature block; the unfinished last blocks are
    left out)."""
    from ser_robot.features.pipeline import FeatureBlock

    out: list = []
    groups: dict[str, list] = {"features": [], "vad": []}
    size = {"features": block_frames, "vad": vad_block_windows}
    flush_vad_at = None  # chunk end of the last feature block: VAD of that chunk leaves with it

    def emit(end: float, kind: str) -> None:
        group = groups[kind]
        if group:
            out.append((end, kind, FeatureBlock(group[0].start_time, np.concatenate([b.frames for b in group]),
                                                group[0].first_index)))
            group.clear()

    for end, kind, item in record:
        if kind not in groups:
            continue
        groups[kind].append(item)
        if sum(len(b.frames) for b in groups[kind]) >= size[kind] or (kind == "vad" and end == flush_vad_at):
            emit(end, kind)
            if kind == "features":
                emit(end, "vad")
                flush_vad_at = end
    return out


def shipped_blocking() -> tuple[int, int, str]:
    """``features.block_frames`` and ``vad_block_windows`` of config/ser.yaml (node defaults if unreadable), and
    where they come from."""
    from ser_robot.config import default_config_path, load_config, validate_node_params

    try:
        params = load_config(default_config_path()).node_params("features")
        where = "config/ser.yaml"
    except Exception:  # noqa: BLE001 - being edited: the node's defaults
        params, where = validate_node_params("features", {}), "node defaults"
    return int(params["block_frames"]), int(params["vad_block_windows"]), where


def block_push_cost(audio: np.ndarray, rate: int, feature_set: str, samples: int) -> float:
    """CPU s per audio s of the streaming extractor alone, fed 16 kHz mono in pushes of ``samples``."""
    import torch

    from ser_robot.audio.resample import resample
    from ser_robot.features.sets import create_extractor
    from ser_robot.features.streaming import StreamingExtractor

    extractor = create_extractor(feature_set).eval()
    mono = audio.mean(axis=1)
    if rate != extractor.sample_rate:
        mono = resample(mono, rate, int(extractor.sample_rate))
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    streaming = StreamingExtractor(extractor)
    start = time.process_time()
    with torch.inference_mode():
        for i in range(0, len(mono), samples):
            streaming.push(torch.from_numpy(mono[i:i + samples]))
    return (time.process_time() - start) / (len(mono) / extractor.sample_rate)


def streams_per_core(audio: np.ndarray, rate: int, model: Any, feature_set: str, block_frames: int,
                     vad_block_windows: int, seconds: float, verify_seconds: float) -> list[Figure]:
    """Single-stream RTF with a per-stage breakdown, floor(1 / RTF), and the K-stream check."""
    tag = f"{model.device}, window"
    one = audio[:int(seconds * rate)]
    run_streams(1, audio[:int(4 * rate)], rate, model, feature_set, block_frames, vad_block_windows)  # warm-up (JIT, allocators)
    timer = StageTimer()
    record: list = []
    cpu, wall, results = run_streams(1, one, rate, model, feature_set, block_frames, vad_block_windows, timer, record)
    audio_s = len(one) / rate
    rtf = cpu / audio_s
    k = math.floor(1 / rtf) if rtf > 0 else 0
    stages = {
        "audio in: channel reduction, resampling, blocking":
            timer.cpu["pipeline"] - timer.cpu["features"] - timer.cpu["vad"],
        f"features ({feature_set}, streaming, once per block)": timer.cpu["features"],
        "VAD (Silero, 32 ms windows)": timer.cpu["vad"],
        "inference engine bookkeeping (buffers, windows)": timer.cpu["engine"] - timer.cpu["model"],
        f"model forward ({model.device})": timer.cpu["model"],
    }
    section = "streams"
    figures = [Figure(section, tag, f"stage: {name}", 100 * value / audio_s, "% of one core",
                      f"{100 * value / max(cpu, 1e-12):.0f} % of the total") for name, value in stages.items()]
    model_ms = timer.wall_ms["model"]
    figures += [
        Figure(section, tag, "model forward per result, wall p50 / max",
               f"{fmt(float(np.median(model_ms)), 2)} / {fmt(max(model_ms), 2)}" if model_ms else "n/a", "ms"),
        Figure(section, tag, "one stream: CPU time / audio time (RTF)", rtf, "", f"{audio_s:.0f} s of audio, "
               f"{results} results; wall-clock RTF {wall / audio_s:.3f}"),
        Figure(section, tag, "streams one core sustains, floor(1 / RTF)", k),
    ]
    if model.device.type == "cpu":
        figures = algorithmic_latency(model, record, block_frames, vad_block_windows) + figures
    shown = min(k, 256)
    verify = audio[:int(verify_seconds * rate)]
    while shown >= 1:  # the estimate, then one stream fewer until the check holds
        print(f"[{tag}] verifying {shown} stream(s) round-robin over {len(verify) / rate:.0f} s of audio each",
              flush=True)
        cpu_k, wall_k, _ = run_streams(shown, verify, rate, model, feature_set, block_frames, vad_block_windows)
        rtf_k = cpu_k / (len(verify) / rate)
        figures.append(Figure(section, tag, f"{shown} stream(s) round-robin: CPU time / audio time", rtf_k, "",
                              "< 1", rtf_k < 1))
        figures.append(Figure(section, tag, f"{shown} stream(s) round-robin: wall time / audio time", wall_k /
                              (len(verify) / rate), "", "wall clock: other load on the machine inflates it"))
        if rtf_k < 1:
            break
        shown -= 1
    figures.append(Figure(section, tag, "streams one core sustains, verified round-robin", shown))
    return figures


def algorithmic_latency(model: Any, record: list, block_frames: int, vad_block_windows: int) -> list[Figure]:
    """Audio time from each final result's window end to the end of the chunk that completes it, p50 / max, for
    both modes, with this bench's blocking and with the shipped one (recorded blocks replayed, no CPU timing)."""
    shipped_frames, shipped_vad, where = shipped_blocking()
    blockings = [(f"block_frames {block_frames}, vad_block_windows {vad_block_windows}", record)]
    if shipped_frames % block_frames == 0 and shipped_vad % vad_block_windows == 0 and \
            (shipped_frames, shipped_vad) != (block_frames, vad_block_windows):
        blockings.append((f"{where}: block_frames {shipped_frames}, vad_block_windows {shipped_vad}",
                          regroup(record, shipped_frames, shipped_vad)))
    figures = []
    for blocking, blocks in blockings:
        for mode in ("window", "utterance"):
            values = [(end - r.window_end) * 1e3 for end, r in replay(model, blocks, mode) if r.final]
            q = percentiles(values)
            figures.append(Figure("streams", f"any device, {mode}", f"algorithmic latency p50 / max ({blocking})",
                                  f"{fmt(q['p50'])} / {fmt(q['max'])}", "ms", f"{len(values)} results" +
                                  ("; includes the VAD hangover" if mode == "utterance" else "")))
    return figures


def feature_push_figures(audio: np.ndarray, rate: int, feature_set: str, block_frames: int,
                         seconds: float) -> list[Figure]:
    """The extractor's cost with pushes of a whole block (the pipeline's) against 10 ms pushes."""
    from ser_robot.features.sets import create_extractor

    extractor = create_extractor(feature_set)
    part = audio[:int(seconds * rate)]
    small = block_push_cost(part, rate, feature_set, round(extractor.sample_rate * 10 / 1000))
    block = block_push_cost(part, rate, feature_set, block_frames * int(extractor.hop_length))
    tag = "cpu, extractor alone"
    return [
        Figure("what-if", tag, f"{feature_set} streaming, 10 ms pushes (the pipeline before it extracted per block)", 100 * small,
               "% of one core"),
        Figure("what-if", tag, f"{feature_set} streaming, pushes of one block ({block_frames} frames, as the pipeline does)", 100 * block,
               "% of one core", f"{small / block:.1f}x less" if block > 0 else ""),
    ]


# --- output --------------------------------------------------------------------------------------
def markdown(meta: dict[str, str], settings: list[str], commands: list[str], figures: list[Figure],
             yaml_text: str, skipped: list[str]) -> str:
    """The report: machine, settings, commands and one table per section."""
    lines = ["# End-to-end pipeline benchmark (`bench/pipeline_bench.py`)", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += ["", "Settings:", ""] + [f"- {s}" for s in settings]
    lines += ["", "Commands:", ""] + [f"    {c}" for c in commands]
    titles = {"realtime": "Real time over DDS (file_source -> features -> inference, one process)",
              "streams": "Streams per CPU core (in-process, one torch thread, no ROS messages)",
              "dds": "Streams per CPU core over DDS (publisher process -> features + inference process on one core)",
              "what-if": "Feature extraction cost by push size (extractor alone)"}
    for section, title in titles.items():
        rows = [f for f in figures if f.section == section]
        if not rows:
            continue
        lines += ["", f"## {title}", "", "| configuration | figure | value | unit | goal / note | met? |",
                  "|---|---|---|---|---|---|"]
        for f in rows:
            met = "" if f.met is None else ("yes" if f.met else "NO")
            lines.append(f"| {f.config} | {f.name} | {fmt(f.value, 3 if f.unit == '' else 1)} | {f.unit} | "
                         f"{f.goal} | {met} |")
    if skipped:
        lines += [""] + [f"- {s}" for s in skipped]
    if yaml_text:
        lines += ["", "Parameters file of the window-mode run (the utterance run differs in `mode`):", "", "```yaml",
                  yaml_text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write_csv(path: pathlib.Path, meta: dict[str, str], settings: list[str], figures: list[Figure]) -> None:
    """One row per figure (machine and settings rows first)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["section", "configuration", "figure", "value", "unit", "goal", "met"])
        for key, value in meta.items():
            writer.writerow(["meta", "", key, value, "", "", ""])
        for number, setting in enumerate(settings, 1):
            writer.writerow(["settings", "", f"setting {number}", setting, "", "", ""])
        for f in figures:
            value = f"{f.value:.6g}" if isinstance(f.value, float) else f.value
            writer.writerow([f.section, f.config, f.name, value, f.unit, f.goal,
                             "" if f.met is None else ("yes" if f.met else "no")])


# --- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"))
    parser.add_argument("--model", type=pathlib.Path, default=None,
                        help="checkpoint (default: the shipped models/default/model.pt)")
    parser.add_argument("--manifest", type=pathlib.Path, default=None,
                        help="corpus manifest for the WAV (default: out/synth, else out/corpora/*/corpus, else a "
                             "small generated one)")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio played in each real-time run, s")
    parser.add_argument("--warmup", type=float, default=5.0, help="first seconds of each run not counted, s")
    parser.add_argument("--sample-rate", type=int, default=48000, help="rate of the WAV played (a robot "
                        "microphone's), Hz")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--block-frames", type=int, default=10, help="features.block_frames (divides 100)")
    parser.add_argument("--vad-block-windows", type=int, default=None,
                        help="features.vad_block_windows (default: the feature node's default)")
    parser.add_argument("--chunk-ms", type=float, default=None,
                        help="audio chunk, ms (default: the microphone node's chunk_ms default)")
    parser.add_argument("--stream-seconds", type=float, default=30.0, help="audio of the single-stream run, s")
    parser.add_argument("--verify-seconds", type=float, default=20.0, help="audio per stream of the K-stream run, s")
    parser.add_argument("--dds-seconds", type=float, default=20.0, help="audio per stream in each run of the "
                        "streams-over-DDS part, s")
    parser.add_argument("--parts", default="realtime,streams,dds", help="comma-separated: realtime, streams, dds")
    parser.add_argument("--modes", default="window,utterance", help="inference modes of the real-time runs")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if 100 % args.block_frames:
        raise SystemExit(f"--block-frames {args.block_frames} does not divide 100 (1 s hop of 10 ms frames)")
    global CHUNK_MS
    from ser_robot.config import validate_node_params

    CHUNK_MS = args.chunk_ms or float(validate_node_params("microphone", {})["chunk_ms"])
    args.vad_block_windows = args.vad_block_windows or int(validate_node_params("features", {})["vad_block_windows"])

    os.environ["ROS_DOMAIN_ID"] = str(200 + os.getpid() % 30)  # away from other runs and tests (domains 0, 100-199)
    import torch

    from ser_robot.inference.model import EmotionModel, default_model_path

    model_path = args.model or default_model_path()
    if not model_path.is_file():
        print(f"model {model_path} not found: build the default model (`make model`) or pass --model PATH",
              file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), **machine()}
    manifest = find_manifest(args.manifest, args.out)
    wav = build_wav(manifest, args.seconds, args.sample_rate, args.channels, args.out / "pipeline_speech.wav")
    cpu_model = EmotionModel(model_path, "cpu")
    meta["model"] = f"{model_path} ({cpu_model.model_id}, {cpu_model.feature_set}, {cpu_model.head})"
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    skipped = [] if "cuda" in devices else ["GPU part skipped: torch.cuda.is_available() is False on this machine."]
    settings = [
        (f"audio: {wav.path} ({wav.duration_s:.0f} s, {wav.sample_rate} Hz, {wav.channels} ch, "
         f"{len(wav.onsets_s)} utterances from {manifest} with 0.6-1.5 s pauses), {CHUNK_MS:g} ms chunks"),
        (f"features: {cpu_model.feature_set}, block_frames {args.block_frames}, VAD on, vad_block_windows "
         f"{args.vad_block_windows}; "
         "feature node always on CPU"),
        "inference: window 3 s, hop 1 s (window mode); utterance mode with the default hangover 0.3 s",
        (f"latency: receive time in this process - Emotion.header.stamp (window end), final results whose window "
         f"ends from {args.warmup:g} s after the first sample to {TAIL_S:g} s before the audio ends"),
        "CPU: user+system time of the `ser-robot run` process over wall time in that span (/proc/<pid>/stat)",
        (f"streams per core: torch.set_num_threads(1), {args.stream_seconds:g} s single stream, "
         f"{args.verify_seconds:g} s per stream for the K-stream check"),
        ("algorithmic latency: audio time from a final result's window end to the end of the 10 ms chunk whose "
         "processing completes it (blocking, look-ahead, resampler delay, VAD hangover; no processing time), "
         "from the single-stream run's blocks replayed through both modes"),
    ]
    print(f"machine: {meta['cpu']}, {meta['cores']} cores, load {meta['load_average_1_5_15min_at_start']}, torch "
          f"{meta['torch']}, GPU {meta['gpu']}", flush=True)
    figures: list[Figure] = []
    commands: list[str] = []
    yaml_text = ""
    if "realtime" in parts:
        import yaml

        bench = RealTimeBench()
        try:
            with tempfile.TemporaryDirectory(prefix="pipeline_bench_") as tmp:
                for device in devices:
                    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
                        config = pipeline_config(wav, model_path, cpu_model.feature_set, mode, device,
                                                 args.block_frames, args.vad_block_windows)
                        if device == "cpu" and mode == "window":
                            yaml_text = yaml.safe_dump(config, sort_keys=False)
                        rows, command = bench.run(config, wav, mode, device, args.warmup, pathlib.Path(tmp))
                        figures += rows
                        commands.append(command.replace(tmp, "$TMP"))
        finally:
            bench.close()
    if "streams" in parts:
        torch.set_num_threads(1)
        audio = read_wav(wav)
        for device in devices:
            model = cpu_model if device == "cpu" else EmotionModel(model_path, device)
            figures += streams_per_core(audio, wav.sample_rate, model, cpu_model.feature_set, args.block_frames,
                                        args.vad_block_windows, args.stream_seconds, args.verify_seconds)
        figures += feature_push_figures(audio, wav.sample_rate, cpu_model.feature_set, args.block_frames,
                                        min(10.0, args.stream_seconds))
    if "dds" in parts:
        bench = RealTimeBench()
        sustained = within_goal = 0
        try:
            with tempfile.TemporaryDirectory(prefix="pipeline_bench_") as tmp:
                for count in range(1, 65):  # one more stream at a time until the core falls behind
                    config = dds_config(model_path, cpu_model.feature_set, count, args.block_frames,
                                        args.vad_block_windows)
                    rows, kept_up, command = bench.run_dds_streams(count, config, wav, args.dds_seconds,
                                                                   args.warmup, pathlib.Path(tmp))
                    figures += rows
                    within_goal = count if rows[1].met and within_goal == count - 1 else within_goal
                    if count == 1:
                        commands.append(command.replace(tmp, "$TMP") + "   (and bench/stream_publisher.py)")
                    if not kept_up:
                        break
                    sustained = count
        finally:
            bench.close()
        figures += [Figure("dds", "cpu, window", "real-time streams one core sustains over DDS", sustained),
                    Figure("dds", "cpu, window", f"streams within the latency goal (p99 < {GOAL_P99_MS:g} ms)",
                           within_goal)]
    meta["bench_wall_time_s"] = f"{time.monotonic() - started:.0f}"
    meta["load_average_1_5_15min_at_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    commands.insert(0, shlex.join([sys.executable, *sys.argv]))
    report = markdown(meta, settings, commands, figures, yaml_text, skipped)
    (args.out / "pipeline.md").write_text(report)
    write_csv(args.out / "pipeline.csv", meta, settings, figures)
    print(report)
    for line in skipped:
        print(line)
    print(f"wrote {args.out / 'pipeline.md'} and {args.out / 'pipeline.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
