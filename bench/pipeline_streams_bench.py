"""Live-pipeline benchmark, part 2: real-time streams one CPU core sustains, in-process.

No ROS messages, ``torch.set_num_threads(1)``: ``FeaturePipeline`` (features + Silero VAD) and
``StreamInference`` (window mode) over 10 ms chunks (``--chunk-ms``) of a WAV of synthetic-corpus
utterances separated by pauses (48 kHz stereo by default), as fast as possible. RTF = CPU time /
audio time of one stream; streams one core sustains = floor(1 / RTF), verified by running that
many streams round-robin (CPU time of the K streams / audio time of one stream must stay < 1; if
not, one stream fewer, until it does: the verified figure is the one to quote). Also: CPU per
stage (where the time goes), the algorithmic latency of both modes (audio time from a window end
to the chunk that completes it; with this bench's blocking and with config/ser.yaml's), and the
feature extractor's cost with pushes of a whole block (what the pipeline does) against 10 ms
pushes (what it did before it deferred extraction to block boundaries). GPU: when CUDA is
available, the streams figures again with the model on ``cuda`` (features stay on CPU).

Writes ``pipeline_streams.md`` and ``pipeline_streams.csv`` under ``--out`` (and the WAV it
reads) and prints the table. Figures are measured, never assumed; other work on the machine
inflates the wall-clock figures (the CPU-time ones less so).

    python bench/pipeline_streams_bench.py --out out/bench                           (make bench)
    python bench/pipeline_streams_bench.py --out /tmp/pb --stream-seconds 5 --verify-seconds 3
"""

from __future__ import annotations

import collections
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline_measure import Figure, PipelineSettings, bench_parser, fmt, percentiles, prepare, read_wav, write_report


class StageTimer:
    """CPU time (``time.process_time``, s) spent in wrapped methods, per stage; wall time per call too (ms)."""

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


def run_streams(count: int, audio: np.ndarray, rate: int, model: Any, params: PipelineSettings,
                timer: StageTimer | None = None, record: list | None = None) -> tuple[float, float, int]:
    """``count`` streams of ``audio`` ``(frames, channels)`` at ``rate`` Hz round-robin, ``params.chunk_ms``
    chunks, as fast as possible.

    Streams are staggered (each starts at another point of the audio). Returns (CPU s, wall s,
    final results). With ``timer``, stages are timed; ``record`` receives stream 0's
    ``(chunk end time s, "features" | "vad" | "result", block or result)`` in order.
    """
    from ser_robot.features.pipeline import FeaturePipeline
    from ser_robot.features.sets import create_extractor
    from ser_robot.inference import InferenceSettings, StreamInference

    settings = InferenceSettings(mode="window", window_s=3.0, hop_s=1.0)
    pipelines = [FeaturePipeline(create_extractor(params.feature_set), block_frames=params.block_frames, vad=True,
                                 vad_block_windows=params.vad_block_windows) for _ in range(count)]
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
    step = round(rate * params.chunk_ms / 1000)
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


def streams_per_core(audio: np.ndarray, rate: int, model: Any, params: PipelineSettings, seconds: float,
                     verify_seconds: float) -> list[Figure]:
    """Single-stream RTF over ``seconds`` s with a per-stage breakdown, floor(1 / RTF), and the K-stream check
    over ``verify_seconds`` s per stream."""
    tag = f"{model.device}, window"
    one = audio[:int(seconds * rate)]
    run_streams(1, audio[:int(4 * rate)], rate, model, params)  # warm-up (JIT, allocators)
    timer = StageTimer()
    record: list = []
    cpu, wall, results = run_streams(1, one, rate, model, params, timer, record)
    audio_s = len(one) / rate
    rtf = cpu / audio_s
    k = math.floor(1 / rtf) if rtf > 0 else 0
    stages = {
        "audio in: channel reduction, resampling, blocking":
            timer.cpu["pipeline"] - timer.cpu["features"] - timer.cpu["vad"],
        f"features ({params.feature_set}, streaming, once per block)": timer.cpu["features"],
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
        figures = algorithmic_latency(model, record, params.block_frames, params.vad_block_windows) + figures
    shown = min(k, 256)
    verify = audio[:int(verify_seconds * rate)]
    while shown >= 1:  # the estimate, then one stream fewer until the check holds
        print(f"[{tag}] verifying {shown} stream(s) round-robin over {len(verify) / rate:.0f} s of audio each",
              flush=True)
        cpu_k, wall_k, _ = run_streams(shown, verify, rate, model, params)
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
    """Audio time from each final result's window end to the end of the chunk that completes it, p50 / max (ms),
    for both modes, with this bench's blocking and with the shipped one (recorded blocks replayed, no CPU timing)."""
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


def feature_push_figures(audio: np.ndarray, rate: int, params: PipelineSettings, seconds: float) -> list[Figure]:
    """The extractor's cost over ``seconds`` s with pushes of a whole block (the pipeline's) against 10 ms pushes."""
    from ser_robot.features.sets import create_extractor

    feature_set, block_frames = params.feature_set, params.block_frames
    extractor = create_extractor(feature_set)
    part = audio[:int(seconds * rate)]
    small = block_push_cost(part, rate, feature_set, round(extractor.sample_rate * 10 / 1000))
    block = block_push_cost(part, rate, feature_set, block_frames * int(extractor.hop_length))
    tag = "cpu, extractor alone"
    return [
        Figure("what-if", tag, f"{feature_set} streaming, 10 ms pushes (the pipeline before it extracted per block)",
               100 * small, "% of one core"),
        Figure("what-if", tag, f"{feature_set} streaming, pushes of one block ({block_frames} frames, as the "
               "pipeline does)", 100 * block, "% of one core", f"{small / block:.1f}x less" if block > 0 else ""),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--stream-seconds", type=float, default=30.0, help="audio of the single-stream run, s")
    parser.add_argument("--verify-seconds", type=float, default=20.0, help="audio per stream of the K-stream run, s")
    args = parser.parse_args(argv)
    setup = prepare(args)
    import torch

    from ser_robot.inference.model import EmotionModel

    torch.set_num_threads(1)
    audio, rate = read_wav(setup.wav), setup.wav.sample_rate
    figures: list[Figure] = []
    for device in setup.devices:
        model = setup.cpu_model if device == "cpu" else EmotionModel(setup.model_path, device)
        figures += streams_per_core(audio, rate, model, setup.params, args.stream_seconds, args.verify_seconds)
    figures += feature_push_figures(audio, rate, setup.params, min(10.0, args.stream_seconds))
    settings = setup.settings() + [
        (f"streams per core: torch.set_num_threads(1), {args.stream_seconds:g} s single stream, "
         f"{args.verify_seconds:g} s per stream for the K-stream check"),
        (f"algorithmic latency: audio time from a final result's window end to the end of the "
         f"{setup.params.chunk_ms:g} ms chunk whose processing completes it (blocking, look-ahead, resampler "
         "delay, VAD hangover; no processing time), from the single-stream run's blocks replayed through both modes"),
    ]
    write_report(setup, "pipeline_streams", "Live-pipeline benchmark: streams per CPU core "
                 "(`bench/pipeline_streams_bench.py`)", settings, [], figures, skipped=setup.gpu_skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
