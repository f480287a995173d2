"""Shared measurement helpers of the live-pipeline benchmarks (not a benchmark itself).

Used by ``bench/pipeline_realtime_bench.py`` (real time over DDS), ``bench/pipeline_streams_bench.py``
(streams per core, in-process) and ``bench/pipeline_dds_bench.py`` (streams per core over DDS):
figures and their Markdown/CSV report, this machine, ``/proc`` CPU and memory readers, the WAV of
synthetic-corpus utterances they all play, the arguments and setup they share, and the ROS probe
node of the two DDS parts.
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
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GOAL_P99_MS = 50.0  # window mode, end-to-end latency p99, ms
TAIL_S = 1.0  # results whose window ends in the last TAIL_S s of audio are not counted (teardown flushes)
NAMESPACE = "pipeline_bench"  # ROS namespace of the benchmarked pipeline and of this process's probe
CLK_TCK = os.sysconf("SC_CLK_TCK")
SECTION_TITLES = {  # report section -> its title, in report order
    "realtime": "Real time over DDS (file_source -> features -> inference, one process)",
    "streams": "Streams per CPU core (in-process, one torch thread, no ROS messages)",
    "dds": "Streams per CPU core over DDS (publisher process -> features + inference process on one core)",
    "what-if": "Feature extraction cost by push size (extractor alone)",
}
CPU_SETTING = "CPU: user+system time of the `ser-robot run` process over wall time in that span (/proc/<pid>/stat)"


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


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99, max of ``values`` (NaN when empty)."""
    if not values:
        return {k: float("nan") for k in ("p50", "p90", "p99", "max")}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


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
    """The WAV played: ``duration_s``, speech onsets (s from its start), ``sample_rate`` (Hz), ``channels``."""

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


# --- arguments and setup -------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineSettings:
    """How the pipeline cuts the audio: ``feature_set``, ``chunk_ms`` (audio chunk, ms), ``block_frames``
    (feature frames of 10 ms per published block) and ``vad_block_windows`` (VAD windows per block)."""

    feature_set: str
    chunk_ms: float
    block_frames: int
    vad_block_windows: int


@dataclass
class BenchSetup:
    """What every part starts from: the arguments' settings, the model (loaded on the CPU), the WAV, the
    devices to run on (``cpu``, and ``cuda`` when available) and the report's machine lines (``meta``)."""

    out: pathlib.Path
    model_path: pathlib.Path
    cpu_model: Any  # ser_robot.inference.model.EmotionModel on "cpu"
    params: PipelineSettings
    warmup_s: float
    manifest: pathlib.Path
    wav: SpeechWav
    devices: list[str]
    meta: dict[str, str]
    started: float = field(default_factory=time.monotonic)  # time.monotonic() at the start, s

    @property
    def gpu_skipped(self) -> list[str]:
        """The report's note when there is no GPU to repeat a part on (empty when there is one)."""
        return [] if "cuda" in self.devices else [
            "GPU part skipped: torch.cuda.is_available() is False on this machine."]

    def settings(self) -> list[str]:
        """The report's settings lines common to all parts: audio, features, inference."""
        wav, params = self.wav, self.params
        return [
            (f"audio: {wav.path} ({wav.duration_s:.0f} s, {wav.sample_rate} Hz, {wav.channels} ch, "
             f"{len(wav.onsets_s)} utterances from {self.manifest} with 0.6-1.5 s pauses), "
             f"{params.chunk_ms:g} ms chunks"),
            (f"features: {params.feature_set}, block_frames {params.block_frames}, VAD on, vad_block_windows "
             f"{params.vad_block_windows}; feature node always on CPU"),
            "inference: window 3 s, hop 1 s (window mode); utterance mode with the default hangover 0.3 s",
        ]


def latency_setting(warmup_s: float) -> str:
    """The report's settings line on how latency is measured over DDS (``warmup_s``: s not counted)."""
    return (f"latency: receive time in this process - Emotion.header.stamp (window end), final results whose window "
            f"ends from {warmup_s:g} s after the first sample to {TAIL_S:g} s before the audio ends")


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with ``doc`` as its description and the arguments every part takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"))
    parser.add_argument("--model", type=pathlib.Path, default=None,
                        help="checkpoint (default: the shipped models/default/model.pt)")
    parser.add_argument("--manifest", type=pathlib.Path, default=None,
                        help="corpus manifest for the WAV (default: out/synth, else out/corpora/*/corpus, else a "
                             "small generated one)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the WAV built: audio played in "
                        "each real-time run, s")
    parser.add_argument("--warmup", type=float, default=5.0, help="first seconds of each run not counted, s")
    parser.add_argument("--sample-rate", type=int, default=48000, help="rate of the WAV played (a robot "
                        "microphone's), Hz")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--block-frames", type=int, default=10, help="features.block_frames (divides 100)")
    parser.add_argument("--vad-block-windows", type=int, default=None,
                        help="features.vad_block_windows (default: the feature node's default)")
    parser.add_argument("--chunk-ms", type=float, default=None,
                        help="audio chunk, ms (default: the microphone node's chunk_ms default)")
    return parser


def prepare(args: argparse.Namespace) -> BenchSetup:
    """The common setup from ``bench_parser``'s arguments: own ROS domain, model (a clear error when it is
    missing), the WAV under ``--out``, the machine lines. Prints the machine."""
    if 100 % args.block_frames:
        raise SystemExit(f"--block-frames {args.block_frames} does not divide 100 (1 s hop of 10 ms frames)")
    from ser_robot.config import validate_node_params

    chunk_ms = args.chunk_ms or float(validate_node_params("microphone", {})["chunk_ms"])
    vad_block_windows = args.vad_block_windows or int(validate_node_params("features", {})["vad_block_windows"])

    os.environ["ROS_DOMAIN_ID"] = str(200 + os.getpid() % 30)  # away from other runs and tests (domains 0, 100-199)
    import torch

    from ser_robot.inference.model import EmotionModel, default_model_path

    model_path = args.model or default_model_path()
    if not model_path.is_file():
        raise SystemExit(f"model {model_path} not found: build the default model (`make model`) or pass --model PATH")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), **machine()}
    manifest = find_manifest(args.manifest, args.out)
    wav = build_wav(manifest, args.seconds, args.sample_rate, args.channels, args.out / "pipeline_speech.wav")
    cpu_model = EmotionModel(model_path, "cpu")
    meta["model"] = f"{model_path} ({cpu_model.model_id}, {cpu_model.feature_set}, {cpu_model.head})"
    print(f"machine: {meta['cpu']}, {meta['cores']} cores, load {meta['load_average_1_5_15min_at_start']}, torch "
          f"{meta['torch']}, GPU {meta['gpu']}", flush=True)
    return BenchSetup(
        out=args.out, model_path=model_path, cpu_model=cpu_model,
        params=PipelineSettings(cpu_model.feature_set, chunk_ms, args.block_frames, vad_block_windows),
        warmup_s=args.warmup, manifest=manifest, wav=wav,
        devices=["cpu"] + (["cuda"] if torch.cuda.is_available() else []), meta=meta, started=started)


# --- ROS side of the DDS parts -------------------------------------------------------------------
class RosProbe:
    """This process's ROS side: a node in ``NAMESPACE`` and its executor (a context manager)."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        rclpy.init()
        self.node = rclpy.create_node("pipeline_bench_probe", namespace=NAMESPACE)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def __enter__(self) -> RosProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut the node and rclpy down."""
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown()

    def subscribe_diagnostics(self, into: dict[str, dict[str, str]]) -> Any:
        """Keep the latest diagnostics values of each node (by the last part of its status name) in ``into``;
        returns the subscription."""
        from diagnostic_msgs.msg import DiagnosticArray

        from ser_robot.ros.qos import DIAGNOSTICS_QOS

        def on_diagnostics(msg: DiagnosticArray) -> None:
            for status in msg.status:
                into[status.name.rsplit("/", 1)[-1]] = {kv.key: kv.value for kv in status.values}

        return self.node.create_subscription(DiagnosticArray, "diagnostics", on_diagnostics, DIAGNOSTICS_QOS)


def ser_robot_run(config: dict[str, Any], yaml_path: pathlib.Path, duration_s: float) -> list[str]:
    """Write ``config`` to ``yaml_path``; the command line of a ``ser-robot run`` of it in ``NAMESPACE`` that
    stops after ``duration_s`` s."""
    import yaml

    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return [sys.executable, "-m", "ser_robot", "run", "--config", str(yaml_path), "--namespace", NAMESPACE,
            "--duration", f"{duration_s:g}"]


# --- output --------------------------------------------------------------------------------------
def markdown(title: str, meta: dict[str, str], settings: list[str], commands: list[str], figures: list[Figure],
             yaml_text: str, skipped: list[str]) -> str:
    """The report: ``title``, machine, settings, commands and one table per section."""
    lines = [f"# {title}", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += ["", "Settings:", ""] + [f"- {s}" for s in settings]
    lines += ["", "Commands:", ""] + [f"    {c}" for c in commands]
    for section, heading in SECTION_TITLES.items():
        rows = [f for f in figures if f.section == section]
        if not rows:
            continue
        lines += ["", f"## {heading}", "", "| configuration | figure | value | unit | goal / note | met? |",
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


def write_report(setup: BenchSetup, name: str, title: str, settings: list[str], commands: list[str],
                 figures: list[Figure], yaml_text: str = "", skipped: list[str] | None = None) -> None:
    """Write ``<name>.md`` and ``<name>.csv`` under ``setup.out`` (this command line first, the bench's wall
    time and the load at the end added to the machine lines) and print the report."""
    skipped = skipped or []
    meta = {**setup.meta, "bench_wall_time_s": f"{time.monotonic() - setup.started:.0f}",
            "load_average_1_5_15min_at_end": ", ".join(f"{x:.2f}" for x in os.getloadavg())}
    commands = [shlex.join([sys.executable, *sys.argv]), *commands]
    report = markdown(title, meta, settings, commands, figures, yaml_text, skipped)
    md_path, csv_path = setup.out / f"{name}.md", setup.out / f"{name}.csv"
    md_path.write_text(report)
    write_csv(csv_path, meta, settings, figures)
    print(report)
    for line in skipped:
        print(line)
    print(f"wrote {md_path} and {csv_path}")
