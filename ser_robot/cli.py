"""The ``ser-robot`` command: run nodes, record / play / inspect bags, list devices, demo."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Callable, Sequence

from ser_robot.config import (PLAY_RATE, PLAY_WAIT_S, RUN_DURATION, ParamSpec, namespace_problem, param_spec,
                              topic_name_problem)
from ser_robot.command_line import OneLineErrorParser
from ser_robot.errors import ConfigError, SerRobotError

__all__ = ["main"]


def _number(spec: ParamSpec) -> Callable[[str], float]:
    """argparse type of a float option limited by ``spec``: finite, from ``spec.min`` to ``spec.max``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; {spec.limits}") from None
        problem = spec.number_problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{text} is {problem}; {spec.limits}")
        return value

    return parse


def _namespace(text: str) -> str:
    """argparse type of ``--namespace``: a valid ROS namespace."""
    problem = namespace_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid ROS namespace ({problem}); use letters, digits, "
                                         "'_' and '/', e.g. robot1")
    return text


def _remaps(pairs: Sequence[str]) -> dict[str, str]:
    """``OLD:=NEW`` pairs -> ``{old: new}``; NEW must be a valid ROS topic name."""
    result = {}
    for pair in pairs:
        old, sep, new = pair.partition(":=")
        if not sep or not old or not new:
            raise SerRobotError(f"--remap expects old:=new, got {pair!r}")
        problem = topic_name_problem(new)
        if problem:
            raise ConfigError(f"--remap {pair}: {new!r} is not a valid ROS topic name ({problem}); use letters, "
                              "digits, '_' and '/', e.g. audio:=/robot1/audio")
        result[old] = new
    return result


def cmd_run(args: argparse.Namespace) -> int:
    from ser_robot.config import load_config, parse_overrides
    from ser_robot.ros.runner import run

    config = load_config(args.config, overrides=parse_overrides(args.set))
    return run(config, namespace=args.namespace, duration_s=args.duration)


def cmd_record(args: argparse.Namespace) -> int:
    from ser_robot.config import RunConfig, validate_node_params
    from ser_robot.ros.recorder_node import default_bag_path
    from ser_robot.ros.runner import run

    recorder = validate_node_params(
        "recorder",
        {
            "output": args.output or default_bag_path(),
            "topics": args.topics,
            "storage": args.storage,
            "max_duration_s": args.duration,
        },
    )
    config = RunConfig(path=None, nodes=["recorder"], params={"recorder": recorder})
    code = run(config, namespace=args.namespace)
    print(f"bag: {recorder['output']}")
    return code


def cmd_play(args: argparse.Namespace) -> int:
    import rclpy

    from ser_robot.ros import middleware
    from ser_robot.ros.player import BagPlayer
    from ser_robot.ros.runner import StopOnSignal

    # rclpy's own handlers would swallow SIGTERM; ours stop playback at once, even mid-gap.
    middleware.init()
    try:
        with StopOnSignal() as stop:
            player = BagPlayer(
                args.bag, rate=args.rate, loop=args.loop, remap=_remaps(args.remap),
                topics=args.topics or None, namespace=args.namespace, stop=stop,
            )
            if args.wait_for_subscribers > 0 and not player.wait_for_subscribers(args.wait_for_subscribers):
                print(f"ser-robot play: no subscriber after {args.wait_for_subscribers} s; playing anyway",
                      file=sys.stderr)
            count = player.play()
            print(f"played {count} messages from {args.bag}")
            player.destroy_node()
        return 0
    finally:
        if rclpy.ok():
            rclpy.shutdown()


def cmd_bag_info(args: argparse.Namespace) -> int:
    from ser_robot.bag.reader import bag_info

    print(bag_info(args.bag).format())
    return 0


def cmd_bag_reindex(args: argparse.Namespace) -> int:
    from ser_robot.bag.reindex import reindex_bag

    print(reindex_bag(args.bag).format())
    return 0


def cmd_evaluate_bag(args: argparse.Namespace) -> int:
    import shlex

    from ser_robot.eval.bag_eval import evaluate_bag
    from ser_robot.eval.bag_report import summary_lines, write_bag_report

    bag = pathlib.Path(args.bag)
    out = pathlib.Path(args.out) if args.out else bag.parent / f"{bag.name}_report"
    evaluation = evaluate_bag(bag, emotion_topic=args.emotion_topic, ground_truth_topic=args.ground_truth_topic,
                              mode=args.mode)
    command = shlex.join(["ser-robot", "evaluate-bag", str(bag), "--out", str(out), "--emotion-topic",
                          args.emotion_topic, "--ground-truth-topic", args.ground_truth_topic, "--mode", args.mode])
    report = write_bag_report(evaluation, out, command=command)
    print("\n".join(summary_lines(evaluation)))
    print(f"report: {report}")
    return 0


def _session_utterances(manifest_path: str, sessions: Sequence[str]) -> list:
    """The utterances of a manifest, only those of ``sessions`` when given; :class:`ConfigError` if none."""
    from ser_robot.data.manifest import read_manifest

    manifest = read_manifest(manifest_path)
    utterances = [u for u in manifest if not sessions or u.session in sessions]
    if not utterances:
        raise ConfigError(f"no utterance of sessions {list(sessions)} in {manifest_path}; its sessions are "
                          f"{manifest.sessions}")
    return utterances


def cmd_gain_sweep(args: argparse.Namespace) -> int:
    import datetime
    import platform
    import shlex

    from ser_robot.eval.gain_sweep import gain_sweep, write_sweep_report
    from ser_robot.inference.model import EmotionModel

    model = EmotionModel(args.model or None, device="cpu")
    utterances = _session_utterances(args.manifest, args.sessions)
    sweeps = {level: gain_sweep(model, utterances, level=level) for level in args.levels}
    command = shlex.join(["ser-robot", "gain-sweep", args.manifest, "--out", args.out, "--sessions", *args.sessions,
                          "--levels", *args.levels, *(["--model", args.model] if args.model else [])])
    report = write_sweep_report(sweeps, args.out, [
        "# Gain sweep", "", f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()}",
        f"- Model: {model.model_id}; {len(utterances)} utterances of {sorted({u.speaker for u in utterances})}, "
        "each voice's utterances joined into one stream with 1 s pauses, scaled by each gain (float: no clipping).",
    ])
    for level, sweep in sweeps.items():
        print(f"level_normalization {level}:\n{sweep.markdown()}\n")
    print(f"report: {report}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import shlex

    from ser_robot.eval.offline_eval import condition_utterances, evaluate_manifest, parse_condition, write_evaluation
    from ser_robot.inference.model import EmotionModel

    condition = parse_condition(args.condition)  # a bad condition fails before the model loads
    utterances = _session_utterances(args.manifest, args.sessions)
    model = EmotionModel(args.model or None, device="cpu")
    utterances = condition_utterances(utterances, condition, args.out, progress=sys.stderr.isatty())
    result = evaluate_manifest(model, utterances, args.condition, progress=sys.stderr.isatty())
    command = shlex.join(["ser-robot", "evaluate", args.manifest, "--condition", args.condition, "--out", args.out,
                          *(["--sessions", *args.sessions] if args.sessions else []),
                          *(["--model", args.model] if args.model else [])])
    report = write_evaluation(result, args.out, command)
    print(f"{result['condition']}: {result['utterances']} utterances, UAR {100 * result['uar']:.1f} %, "
          f"accuracy {100 * result['accuracy']:.1f} %, macro-F1 {100 * result['macro_f1']:.1f} %")
    print(f"report: {report}")
    return 0


def _machine_text() -> str:
    """This machine in words, for a report: CPU, cores, GPU, torch."""
    from ser_robot.experiments.report import machine_info

    info = machine_info()
    return (f"{info['cpu']}, {info['cpu_count']} cores, {info['cuda'] or 'no GPU'}, torch {info['torch']}, "
            f"Python {info['python']}")


def cmd_attack_over_the_air(args: argparse.Namespace) -> int:
    import shlex

    from ser_robot.acoustics.rooms import RirBank
    from ser_robot.eval.over_the_air import OverTheAirSettings, markdown_table, over_the_air_attack, write_report
    from ser_robot.inference.model import EmotionModel

    import torch

    torch.set_num_threads(args.threads)  # more threads than free cores makes every gradient step crawl
    settings = OverTheAirSettings(epsilons=tuple(args.epsilons), steps=args.steps, draws=args.draws,
                                  per_class=args.per_class, seed=args.seed)
    utterances = _session_utterances(args.manifest, args.sessions)
    model = EmotionModel(args.model or None, device="cpu", backend="torch")
    report = over_the_air_attack(model, utterances, args.out, RirBank.load(args.rir_bank), args.noise_bank, settings,
                                 sim_config=args.sim_config or None, progress=sys.stderr.isatty())
    command = shlex.join(["ser-robot", "attack-over-the-air", args.manifest, "--rir-bank", args.rir_bank,
                          "--noise-bank", args.noise_bank, "--out", args.out,
                          "--epsilons", *map(str, args.epsilons), "--steps", str(args.steps), "--draws",
                          str(args.draws), "--per-class", str(args.per_class), "--seed", str(args.seed),
                          *(["--sessions", *args.sessions] if args.sessions else []),
                          *(["--model", args.model] if args.model else []),
                          *(["--sim-config", args.sim_config] if args.sim_config else [])])
    print(markdown_table(report["rows"]))
    print(f"report: {write_report(report, args.out, command, _machine_text())}")
    return 0


def cmd_evaluate_detector(args: argparse.Namespace) -> int:
    import datetime
    import json
    import pathlib
    import shlex

    from ser_robot.data.manifest import read_manifest
    from ser_robot.eval.detector_eval import evaluate_detector, markdown_table
    from ser_robot.eval.over_the_air import select_utterances
    from ser_robot.inference.model import EmotionModel

    import torch

    torch.set_num_threads(args.threads)
    model = EmotionModel(args.model or None, device="cpu", backend="torch")
    card = model.path.parent / "metrics.json"
    if not card.is_file():
        raise ConfigError(f"{card} not found: the detector is fitted on the model's training speakers, which the "
                          "model folder's metrics.json (ser-robot build-model) lists")
    speakers = set(json.loads(card.read_text())["fold"]["train"])
    by_speaker: dict[str, list] = {}
    for utterance in read_manifest(args.fit):
        if utterance.speaker in speakers:
            by_speaker.setdefault(utterance.speaker, []).append(utterance)
    fit = [u for speaker in sorted(by_speaker) for u in select_utterances(by_speaker[speaker], args.fit_per_class,
                                                                          args.seed)]
    clean = _session_utterances(args.clean, args.sessions)
    robot_by_id = {u.id: u for u in read_manifest(args.robot)}
    missing = [u.id for u in clean if u.id not in robot_by_id]
    if missing:
        raise ConfigError(f"{len(missing)} held-out utterances (e.g. {missing[0]}) have no recording in {args.robot}")
    report = evaluate_detector(model, fit, clean, [robot_by_id[u.id] for u in clean], args.attacks, args.out,
                               args.adaptive_epsilon, args.adaptive_steps, args.seed)
    command = shlex.join(["ser-robot", "evaluate-detector", args.attacks, "--fit", args.fit, "--clean", args.clean,
                          "--robot", args.robot, "--out", args.out, "--fit-per-class", str(args.fit_per_class),
                          "--adaptive-epsilon", str(args.adaptive_epsilon), "--adaptive-steps",
                          str(args.adaptive_steps), "--seed", str(args.seed),
                          *(["--sessions", *args.sessions] if args.sessions else []),
                          *(["--model", args.model] if args.model else [])])
    adaptive = report["adaptive"]
    lines = ["# Mahalanobis detector on the shipped model", "", f"- Command: `{command}`",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {_machine_text()}",
             f"- Model: {report['model_id']}; fitted on {report['fit_utterances']} clean utterances of its training "
             f"speakers; clean references: {report['negatives']['clean']} utterances of held-out voices and their "
             f"{report['negatives']['robot']} robot-twin recordings.",
             f"- Adaptive attacker (knows the detector): PGD {adaptive['steps']} steps, epsilon "
             f"{adaptive['epsilon']:g} of full scale, raising the cross-entropy minus the score: model accuracy on "
             f"its files {100 * adaptive['accuracy']:.1f} % ({adaptive['utterances']} utterances).",
             "", markdown_table(report["rows"]), "",
             "Module: `ser_robot.eval.detector_eval`; all figures: `results.json`.", ""]
    (pathlib.Path(args.out) / "README.md").write_text("\n".join(lines), encoding="utf-8")
    print(markdown_table(report["rows"]))
    return 0


def cmd_calibration(args: argparse.Namespace) -> int:
    import datetime
    import shlex

    from ser_robot.eval.calibration import (abstention_curve, expected_calibration_error, read_predictions,
                                            reliability_diagram, softmax)

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves, lines = {}, []
    for path in args.predictions:
        try:
            predictions = read_predictions(path)
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"cannot read predictions {path}: {error}") from None
        name = pathlib.Path(path).stem.removeprefix("predictions_")
        probabilities = softmax(predictions.logits)
        curves[name] = (probabilities, predictions.targets)
        ece = expected_calibration_error(probabilities, predictions.targets)
        lines += [f"## {name} ({len(predictions.targets)} utterances, `{path}`)", "",
                  f"Expected calibration error (10 bins): {100 * ece:.1f} %", "",
                  "| min_confidence | results kept | accuracy of those kept |", "|---:|---:|---:|"]
        lines += [f"| {r['threshold']:.1f} | {100 * r['kept']:.1f} % | {100 * r['accuracy']:.1f} % |"
                  for r in abstention_curve(probabilities, predictions.targets)]
        lines.append("")
        print(f"{name}: ECE {100 * ece:.1f} % over {len(predictions.targets)} utterances")
    reliability_diagram(curves, out / "reliability.png")
    command = shlex.join(["ser-robot", "calibration", *args.predictions, "--out", args.out])
    header = ["# Calibration", "", f"- Command: `{command}`",
              f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
              "![reliability diagram](reliability.png)", ""]
    (out / "README.md").write_text("\n".join(header + lines), encoding="utf-8")
    print(f"report: {out / 'README.md'}")
    return 0


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


def _audio_files(paths: list[str]) -> list[pathlib.Path]:
    """Files of ``paths``: audio files, folders (searched recursively) and manifests (``.jsonl``)."""
    from ser_robot.data.manifest import read_manifest

    files: list[pathlib.Path] = []
    for given in paths:
        path = pathlib.Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not found:
                raise ConfigError(f"no audio file ({', '.join(AUDIO_SUFFIXES)}) under folder {path}")
            files += found
        elif path.suffix == ".jsonl":
            files += [pathlib.Path(u.path) for u in read_manifest(path, check_files=False)]
        elif path.exists():
            files.append(path)
        else:
            raise ConfigError(f"{path} does not exist; give audio files, folders or manifests (.jsonl)")
    return files


def cmd_predict(args: argparse.Namespace) -> int:
    import csv
    import io
    import json

    import numpy as np
    from tqdm import tqdm

    from ser_robot.inference.model import EmotionModel
    from ser_robot.inference.offline import predict_segments, predict_whole, read_audio

    files = _audio_files(args.paths)
    model = EmotionModel(args.model or None, device="cpu")
    rows, failures = [], 0
    for path in tqdm(files, desc="predict", unit="file", disable=not sys.stderr.isatty() or len(files) < 2):
        try:
            samples, rate = read_audio(path)
            if args.segment == "whole":
                spans = [(0.0, len(samples) / rate, predict_whole(model, samples, rate))]
            else:
                spans = [(r.window_start, r.window_end, r.prediction) for r in predict_segments(model, samples, rate)]
        except SerRobotError as error:
            failures += 1
            print(f"ser-robot predict: skipped {path}: {error}", file=sys.stderr, flush=True)
            continue
        for start, end, prediction in spans:
            row = {"file": str(path), "start_s": round(start, 3), "end_s": round(end, 3)}
            if len(prediction.probabilities):
                best = int(np.argmax(prediction.probabilities))
                row.update(label=model.labels[best], confidence=round(float(prediction.probabilities[best]), 4),
                           **{f"p_{c}": round(float(v), 4) for c, v in zip(model.labels, prediction.probabilities)})
            else:
                row.update(arousal=round(float(prediction.arousal), 4), valence=round(float(prediction.valence), 4))
            rows.append({**row, "model_id": model.model_id})
    if failures == len(files):
        raise ConfigError(f"none of the {len(files)} file(s) could be read (each named above)")
    if args.format == "json":
        text = json.dumps(rows, indent=1) + "\n"
    elif args.format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["file"])
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        keys = [k for k in (rows[0] if rows else {}) if k != "model_id"]
        text = "\n".join(["  ".join(keys), *("  ".join(str(r[k]) for k in keys) for r in rows)]) + "\n"
        text += f"model {model.model_id}; {len(rows)} result(s) from {len(files) - failures} file(s)\n"
    if args.out:
        pathlib.Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 1 if failures else 0


def cmd_devices(args: argparse.Namespace) -> int:
    from ser_robot.audio.devices import list_input_devices

    for device in list_input_devices():
        print(device.describe())
    return 0


def cmd_evaluate_live(args: argparse.Namespace) -> int:
    import pathlib
    import shlex

    from ser_robot.eval.bag_report import summary_lines
    from ser_robot.ros.replay import evaluate_recorded, play_manifest

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "bag").exists():
        raise ConfigError(f"{out / 'bag'} exists; give a new --out folder (a bag is never overwritten)")
    code = play_manifest(args.manifest, out / "bag", gain_db=args.gain_db, model=args.model,
                         virtual_ears=not args.no_virtual_ears, log_prefix="evaluate-live")
    if code != 0:
        return code
    evaluation, report = evaluate_recorded(out / "bag", out / "report")
    command = shlex.join(["ser-robot", "evaluate-live", args.manifest, "--out", args.out,
                          *(["--gain-db", str(args.gain_db)] if args.gain_db else []),
                          *(["--model", args.model] if args.model else []),
                          *(["--no-virtual-ears"] if args.no_virtual_ears else [])])
    (out / "command.txt").write_text(command + "\n", encoding="utf-8")
    print("\n".join(summary_lines(evaluation)))
    print(f"report: {report}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ser_robot.ros.demo import run_demo

    return run_demo(args.out, sentences=args.sentences)


def cmd_synth_corpus(args: argparse.Namespace) -> int:
    import time

    from ser_robot.data.synth.corpus import generate_corpus

    start = time.monotonic()
    manifest = generate_corpus(args.out, speakers=args.speakers, sentences=args.sentences, seed=args.seed,
                               workers=args.workers, voices=args.voices, first_voice=args.first_voice,
                               first_sentence=args.first_sentence)
    hours = manifest.total_duration_s() / 3600
    print(f"{len(manifest)} utterances, {len(manifest.speakers)} speakers, {hours:.2f} h of speech "
          f"in {time.monotonic() - start:.0f} s; manifest: {args.out}/manifest.jsonl")
    return 0


def cmd_corpus_manifest(args: argparse.Namespace) -> int:
    import warnings

    from ser_robot.data.corpora import load_corpus
    from ser_robot.data.manifest import write_manifest

    from ser_robot.config_io import parse_yaml

    options = {}
    for pair in args.option:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SerRobotError(f"--option expects key=value, got {pair!r}")
        options[key] = parse_yaml(value, f"--option {pair}")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        manifest = load_corpus(args.corpus, args.root, **options)
    write_manifest(args.out, manifest)
    counts = ", ".join(f"{label}: {count}" for label, count in sorted(manifest.label_counts().items(), key=str))
    print(f"{args.corpus}: {len(manifest)} utterances, {len(manifest.speakers)} speakers ({counts}) -> {args.out}")
    return 0


def cmd_describe_corpus(args: argparse.Namespace) -> int:
    import csv

    from ser_robot.eval.describe import DESCRIPTORS, class_statistics, describe_manifest, statistics_markdown
    from ser_robot.data.manifest import read_manifest

    manifest = read_manifest(args.manifest)
    rows = describe_manifest(manifest, workers=args.workers)
    report = "## Per-class statistics (mean ± sd over utterances)\n\n"
    report += statistics_markdown(manifest, class_statistics(manifest, rows))
    if args.baseline:
        from ser_robot.eval.prosodic_baseline import prosodic_baseline

        result = prosodic_baseline(manifest, rows)
        summary = result["summary"]
        report += (f"\n## Prosodic baseline: logistic regression on {', '.join(result['features'])}, "
                   f"leave-one-speaker-out ({len(result['folds'])} folds)\n\n"
                   "| metric | mean ± sd over folds |\n|---|---:|\n")
        report += "".join(f"| {name} | {summary[name].format(digits=1, scale=100)} % |\n"
                          for name in ("uar", "accuracy", "macro_f1"))
    print(report)
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with (out / "descriptors.csv").open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["id", "speaker", "label", *DESCRIPTORS])
            for utterance, row in zip(manifest, rows):
                writer.writerow([utterance.id, utterance.speaker, utterance.label, *(f"{row[k]:.4f}" for k in DESCRIPTORS)])
        (out / "report.md").write_text(report)
        print(f"written: {out}/report.md, {out}/descriptors.csv")
    return 0


def cmd_build_noise_bank(args: argparse.Namespace) -> int:
    import time

    from ser_robot.acoustics import build_noise_bank

    start = time.monotonic()
    bank = build_noise_bank(args.out, seed=args.seed, seconds_per_clip=args.seconds,
                            clips_per_category=args.clips, speech_manifest=args.speech_manifest,
                            exclude_speakers=args.exclude_speakers, categories=args.categories, progress=True)
    print(f"noise bank {args.out}: {len(bank.categories)} categories x {args.clips} clips of {args.seconds:g} s "
          f"({', '.join(bank.categories)}) in {time.monotonic() - start:.1f} s")
    return 0


def cmd_build_rir_bank(args: argparse.Namespace) -> int:
    import time

    from ser_robot.acoustics import build_rir_bank

    start = time.monotonic()
    bank = build_rir_bank(args.out, count=args.count, seed=args.seed, rt60_range=tuple(args.rt60), progress=True)
    print(f"RIR bank {args.out}: {len(bank)} two-ear impulse responses in {time.monotonic() - start:.1f} s")
    return 0


def cmd_simulate_robot(args: argparse.Namespace) -> int:
    import time

    from ser_robot.data.manifest import read_manifest
    from ser_robot.sim import plot_rerecording, simulate_robot

    start = time.monotonic()
    manifest = simulate_robot(args.corpus, args.out, config_path=args.config, noise_bank=args.noise_bank,
                              seed=args.seed, workers=args.workers)
    elapsed = time.monotonic() - start
    print(f"robot twin of {args.corpus}: {len(manifest)} utterances in {elapsed:.0f} s "
          f"({len(manifest) / max(elapsed, 1e-9):.1f} utterances/s) -> {args.out}/manifest.jsonl")
    if args.plot:
        first = manifest[0]
        clean = next(u for u in read_manifest(args.corpus) if u.id == first.id)
        png = pathlib.Path(args.out) / f"{first.id}_clean_vs_robot.png"
        plot_rerecording(clean.path, first.path, png)
        print(f"spectrograms: {png}")
    return 0


def cmd_build_model(args: argparse.Namespace) -> int:
    import logging

    from ser_robot.experiments.default_model import build_default_model

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # on a shared machine, more threads than free cores slow every step
    report = build_default_model(args.config, args.out, work=args.work, workers=args.workers,
                                 progress=not args.no_progress)
    for name, metrics in report["metrics"].items():
        print(f"{name:6s} UAR {100 * metrics['uar']:5.1f} %  accuracy {100 * metrics['accuracy']:5.1f} %  "
              f"macro-F1 {100 * metrics['macro_f1']:5.1f} %")
    print(f"model: {pathlib.Path(args.out) / 'model.pt'} ({report['file_bytes'] / 1e6:.2f} MB); card: "
          f"{pathlib.Path(args.out) / 'MODEL_CARD.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="ser-robot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="start the nodes configured in a YAML file (one process)")
    p.add_argument("--config", default=None, help="parameters YAML (default: config/ser.yaml)")
    p.add_argument("--namespace", type=_namespace, default="", help="ROS namespace of every node (e.g. robot1)")
    p.add_argument("--duration", type=_number(RUN_DURATION), default=RUN_DURATION.default,
                   help=RUN_DURATION.description)
    p.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a parameter (value parsed as YAML); repeatable")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("record", help="record topics into a rosbag2 (MCAP) bag")
    p.add_argument("topics", nargs="*", default=["audio"], help="topics (default: audio)")
    p.add_argument("-o", "--output", default="", help="bag folder to create")
    duration = param_spec("recorder", "max_duration_s")
    p.add_argument("--duration", type=_number(duration), default=duration.default,
                   help="seconds to record (0 = until Ctrl-C)")
    p.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    p.add_argument("--namespace", type=_namespace, default="")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("play", help="republish a bag with its original timing")
    p.add_argument("bag")
    p.add_argument("--rate", type=_number(PLAY_RATE), default=PLAY_RATE.default,
                   help=f"{PLAY_RATE.description}; {PLAY_RATE.min} to {PLAY_RATE.max}")
    p.add_argument("--loop", action="store_true")
    p.add_argument("--topics", nargs="*", default=[], help="recorded topics to play (default: all)")
    p.add_argument("--remap", action="append", default=[], metavar="OLD:=NEW")
    p.add_argument("--wait-for-subscribers", type=_number(PLAY_WAIT_S), default=PLAY_WAIT_S.default, metavar="S",
                   help=PLAY_WAIT_S.description)
    p.add_argument("--namespace", type=_namespace, default="")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("bag-info", help="summarise a bag")
    p.add_argument("bag")
    p.set_defaults(func=cmd_bag_info)

    p = sub.add_parser("bag-reindex", help="recover a bag whose recorder was killed: rebuild its storage index "
                                           "and metadata.yaml from the messages that reached the disk")
    p.add_argument("bag", help="bag folder (or its .mcap / .db3 file); the original file is kept as "
                               "<name>.before-reindex")
    p.set_defaults(func=cmd_bag_reindex)

    p = sub.add_parser("evaluate-bag", help="score a bag's emotion results against its ground truth (report folder)")
    p.add_argument("bag")
    p.add_argument("--out", default="", help="report folder (default: <bag>_report next to the bag)")
    p.add_argument("--emotion-topic", default="emotion", help="results topic (default: emotion)")
    p.add_argument("--ground-truth-topic", default="ground_truth", help="ground-truth topic (default: ground_truth)")
    p.add_argument("--mode", default="auto", choices=("auto", "utterance", "window"),
                   help="how results are aligned (default: auto, from whether the results' windows overlap)")
    p.set_defaults(func=cmd_evaluate_bag)

    p = sub.add_parser("gain-sweep", help="does the model's answer follow the microphone gain? (-30..+10 dB, report folder)")
    p.add_argument("manifest", help="corpus manifest (JSON Lines) of the voices to test, e.g. ones the model never heard")
    p.add_argument("--out", required=True, help="report folder (README.md, sweep.csv)")
    p.add_argument("--sessions", nargs="*", default=[], help="only these sessions (default: all)")
    p.add_argument("--levels", nargs="+", default=["off", "agc"], choices=("off", "agc"),
                   help="level normalisations to compare (default: off agc)")
    p.add_argument("--model", default="", help="checkpoint (default: the shipped model)")
    p.set_defaults(func=cmd_gain_sweep)

    p = sub.add_parser("predict", help="what does the model hear in these recordings? (files, folders, manifests)")
    p.add_argument("paths", nargs="+", help="audio files (any rate and channel count), folders, manifests (.jsonl)")
    p.add_argument("--model", default="", help="checkpoint (default: the shipped model)")
    p.add_argument("--segment", default="vad", choices=("vad", "whole"),
                   help="vad: one result per speech segment, as the live node (default); whole: one per file")
    p.add_argument("--format", default="table", choices=("table", "csv", "json"))
    p.add_argument("--out", default="", help="write the results to this file (default: standard output)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate-live", help="play a manifest through the live pipeline over DDS, record a bag and "
                                             "score it (report folder)")
    p.add_argument("manifest", help="corpus manifest (JSON Lines) with labels; its files are played, shuffled, 1 s apart")
    p.add_argument("--out", required=True, help="new folder: bag/, report/ (README.md, metrics.json), command.txt")
    p.add_argument("--model", default="", help="checkpoint (default: the shipped model)")
    p.add_argument("--gain-db", type=float, default=0.0, help="playback gain, dB (default: 0)")
    p.add_argument("--no-virtual-ears", action="store_true",
                   help="the corpus player publishes the audio itself (default: through the PulseAudio virtual ears)")
    p.set_defaults(func=cmd_evaluate_live)

    p = sub.add_parser("evaluate", help="score a checkpoint on a manifest offline (report folder)")
    p.add_argument("manifest", help="corpus manifest (JSON Lines) with labels")
    p.add_argument("--model", default="", help="checkpoint (default: the shipped model)")
    p.add_argument("--condition", default="clean",
                   help="clean (default), gain=DB (every utterance scaled by DB), snr=DB:NOISE (noise of a noise-bank "
                        "category at DB SNR, e.g. snr=10:pink) or robot[=SIM.yaml] (re-recorded by the simulated robot)")
    p.add_argument("--sessions", nargs="*", default=[], help="only these sessions (default: all)")
    p.add_argument("--out", required=True, help="report folder (README.md, metrics.json, predictions.csv, confusion.png)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("attack-over-the-air", help="can a perturbation played into the room fool the model? "
                                                   "(white-box PGD / EOT, scored directly and through the robot twin)")
    p.add_argument("manifest", help="corpus manifest (JSON Lines, mono 16 kHz files) of the utterances to attack")
    p.add_argument("--rir-bank", required=True, help="RIR bank folder (build-rir-bank): EOT optimises over its "
                                                     "training rooms")
    p.add_argument("--noise-bank", required=True, help="noise bank folder (build-noise-bank) of the robot twin")
    p.add_argument("--out", required=True, help="report folder (README.md, results.csv/json, audio/, predictions/)")
    p.add_argument("--model", default="", help="checkpoint (default: the shipped model)")
    p.add_argument("--sessions", nargs="*", default=[], help="only these sessions (default: all)")
    p.add_argument("--epsilons", nargs="+", type=float, default=[0.002, 0.005],
                   help="L-infinity bounds, fractions of full scale (default: 0.002 0.005)")
    p.add_argument("--steps", type=int, default=10, help="PGD steps (default: 10)")
    p.add_argument("--draws", type=int, default=4, help="EOT rooms per step (default: 4)")
    p.add_argument("--per-class", type=int, default=12, help="utterances per class, 0: all (default: 12)")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice, starts, rooms and noise (default: 0)")
    p.add_argument("--sim-config", default="", help="robot twin YAML (default: config/sim/icub_lab.yaml)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.set_defaults(func=cmd_attack_over_the_air)

    p = sub.add_parser("evaluate-detector", help="does the Mahalanobis detector flag attacked and out-of-distribution "
                                                 "input? (ROC-AUC, adaptive attack; report folder)")
    p.add_argument("attacks", help="folder of an attack-over-the-air run (its audio/ and robot/ manifests)")
    p.add_argument("--fit", required=True, help="corpus manifest holding the model's training speakers")
    p.add_argument("--clean", required=True, help="manifest of held-out voices (clean reference)")
    p.add_argument("--robot", required=True, help="manifest of their robot-twin recordings (same ids)")
    p.add_argument("--sessions", nargs="*", default=[], help="only these sessions of --clean (default: all)")
    p.add_argument("--out", required=True, help="report folder (README.md, results.json, adaptive/)")
    p.add_argument("--model", default="", help="checkpoint in a build-model folder (default: the shipped model)")
    p.add_argument("--fit-per-class", type=int, default=3, help="utterances per class and training speaker (default: 3)")
    p.add_argument("--adaptive-epsilon", type=float, default=0.005, help="adaptive PGD bound, fraction of full scale")
    p.add_argument("--adaptive-steps", type=int, default=10, help="adaptive PGD steps (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice and the starts (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.set_defaults(func=cmd_evaluate_detector)

    p = sub.add_parser("calibration", help="is the model's confidence calibrated? ECE, reliability diagram, "
                                           "abstention (report folder)")
    p.add_argument("predictions", nargs="+", help="categorical predictions CSV(s) (logit_<class> columns)")
    p.add_argument("--out", required=True, help="report folder (README.md, reliability.png)")
    p.set_defaults(func=cmd_calibration)

    p = sub.add_parser("devices", help="list audio input devices")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("demo", help="speech through the virtual ears -> microphone node -> bag")
    p.add_argument("--out", default="out/demo")
    p.add_argument("--sentences", type=int, default=2, help="sentences per held-out speaker and emotion")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synth-corpus", help="generate the synthetic emotional speech corpus (TTS voices, 4 classes)")
    p.add_argument("--out", required=True, help="folder for wav/ and manifest.jsonl")
    p.add_argument("--speakers", type=int, default=10, help="number of voices (default 10, like IEMOCAP)")
    p.add_argument("--voices", choices=("core", "diverse"), default="core",
                   help="voice set: core (12 English voices, the experiments') or diverse (48 voices, espeak-ng "
                        "and flite, English, German, French, Spanish: the default model's)")
    p.add_argument("--sentences", type=int, default=100, help="sentences per speaker and class (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first-voice", type=int, default=0,
                   help="start at this voice of the set (a second corpus with other voices, e.g. cross-corpus tests)")
    p.add_argument("--first-sentence", type=int, default=0,
                   help="start at this sentence of each language's list (a second corpus with other sentences)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    p.set_defaults(func=cmd_synth_corpus)

    p = sub.add_parser("corpus-manifest", help="write the manifest of a real corpus from its local copy")
    p.add_argument("corpus", help="iemocap, msp_improv, emodb, ravdess, crema_d, demos or librispeech")
    p.add_argument("root", help="the corpus' folder, in its own layout")
    p.add_argument("--out", required=True, help="manifest file to write (JSON Lines)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="loader option, e.g. label_set=emodb7 or kind=improvised; repeatable")
    p.set_defaults(func=cmd_corpus_manifest)

    p = sub.add_parser("build-noise-bank", help="generate the noise bank (coloured, fans, ego-noise, babble, events)")
    p.add_argument("--out", required=True, help="bank folder (reused when the arguments are the same)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per clip")
    p.add_argument("--clips", type=int, default=4, help="clips per category")
    p.add_argument("--speech-manifest", default=None, help="speech for babble (e.g. the synthetic corpus)")
    p.add_argument("--exclude-speakers", nargs="*", default=[], help="speakers babble must not use (test fold)")
    p.add_argument("--categories", nargs="*", default=None, help="categories to build (default: all)")
    p.set_defaults(func=cmd_build_noise_bank)

    p = sub.add_parser("build-rir-bank", help="simulate two-ear room impulse responses (pyroomacoustics)")
    p.add_argument("--out", required=True, help="bank folder (reused when the arguments are the same)")
    p.add_argument("--count", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rt60", type=float, nargs=2, default=[0.2, 0.9], metavar=("MIN", "MAX"), help="seconds")
    p.set_defaults(func=cmd_build_rir_bank)

    p = sub.add_parser("simulate-robot", help="re-record a corpus in the simulated iCub lab (its robot twin)")
    p.add_argument("--corpus", required=True, help="manifest of the clean corpus")
    p.add_argument("--out", required=True, help="folder for the twin's wav/ and manifest.jsonl")
    p.add_argument("--config", default=None, help="simulator YAML (default: config/sim/icub_lab.yaml)")
    p.add_argument("--noise-bank", default=None, help="noise bank folder (default: built next to --out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    p.add_argument("--plot", action="store_true", help="also draw one utterance clean vs re-recorded (PNG)")
    p.set_defaults(func=cmd_simulate_robot)

    from ser_robot.train.command import add_arguments as add_train_arguments
    from ser_robot.train.command import run_from_args as run_training

    p = sub.add_parser("train", help="train a model on one fold of a corpus (config/train/*.yaml)")
    add_train_arguments(p)
    p.set_defaults(func=run_training)

    from ser_robot.experiments.command import add_arguments as add_experiment_arguments
    from ser_robot.experiments.command import add_prepare_arguments, run_prepare_from_args
    from ser_robot.experiments.command import run_from_args as run_experiment

    p = sub.add_parser("experiment", help="run an experiment (all folds, arms, repetitions) and write its tables")
    add_experiment_arguments(p)
    p.set_defaults(func=run_experiment)

    p = sub.add_parser("prepare-features", help="render an experiment's augmentation banks (K renditions per "
                                                "utterance, features cached) before its jobs")
    add_prepare_arguments(p)
    p.set_defaults(func=run_prepare_from_args)

    p = sub.add_parser("build-model", help="train the shipped default model and write its model card (make model)")
    p.add_argument("config", nargs="?", default="training/default_model.yaml", help="model build YAML")
    p.add_argument("--out", default="models/default", help="model folder (model.pt, MODEL_CARD.md, metrics.json)")
    p.add_argument("--work", default=None, help="training folder (default out/model_build/<name>; resumable)")
    p.add_argument("--workers", type=int, default=1, help="processes for corpus generation and simulation")
    p.add_argument("--threads", type=int, default=0, help="torch threads for training (default 0: torch's, "
                                                         "one per core)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_build_model)

    p = sub.add_parser("describe-corpus", help="per-class prosodic statistics of a manifest (and a baseline)")
    p.add_argument("manifest")
    p.add_argument("--baseline", action="store_true",
                   help="also run logistic regression on F0/energy statistics, leave-one-speaker-out")
    p.add_argument("--out", default="", help="folder for report.md and descriptors.csv")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_describe_corpus)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SerRobotError as exc:
        print(f"ser-robot {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
