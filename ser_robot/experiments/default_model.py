"""Build the shipped default model and its model card (``make model``).

``ser-robot build-model training/default_model.yaml --out models/default`` prepares the corpus,
banks and robot twin (:func:`~ser_robot.experiments.prepare.prepare_corpus`, cached), trains on
every session but ``held_out_session`` (and ``validation_session``, when given), scores the
held-out pair clean and on its robot twin, and writes into ``--out``::

    model.pt           the selected weights (a ``best`` checkpoint: loads with weights_only=True)
    MODEL_CARD.md      what it is, how it was made, its metrics (synthetic corpus, labelled so)
    metrics.json       the same metrics, machine-readable, with provenance
    predictions_clean.csv, predictions_robot.csv   per-utterance outputs on the held-out pair

Training runs in ``out/model_build/<name>/train`` (resumable: a second call continues from its
``last.pt``), so only the small files above go into the repository.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ser_robot.config_io import from_mapping, read_yaml_mapping, setting
from ser_robot.errors import ConfigError
from ser_robot.experiments.config import CorpusConfig, TrainSection, corpus_config, deep_merge, resolve_input

__all__ = ["ModelBuildConfig", "build_default_model", "load_model_build"]


@dataclass(frozen=True)
class ModelBuildConfig:
    """A validated ``training/default_model.yaml``."""

    name: str
    source: str
    corpus: CorpusConfig
    held_out_session: str
    validation_session: str | None
    train_config: str
    train_overrides: dict[str, Any] = field(default_factory=dict)
    held_out_engines: tuple[str, ...] = ()
    held_out_languages: tuple[str, ...] = ()
    seed: int = 0
    cache: str = "out/corpora"
    description: str = ""


@dataclass(frozen=True)
class _BuildFile:
    """The keys of a model-build YAML, as written (paths not yet resolved)."""

    corpus: dict[str, Any]
    held_out_session: str = setting(nonempty=True)
    train: TrainSection = setting()
    name: str | None = setting(None, nonempty=True)
    description: str | None = None
    seed: int = setting(0, min=0)
    cache: str = setting("out/corpora", nonempty=True)
    validation_session: str | None = setting(None, nonempty=True)
    held_out_engines: tuple[str, ...] = setting((), nonempty=True)
    held_out_languages: tuple[str, ...] = setting((), nonempty=True)


def load_model_build(path: str | pathlib.Path) -> ModelBuildConfig:
    """Read and validate a model-build YAML; raises :class:`ConfigError` naming the file and key."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"model build configuration {path} not found; see training/default_model.yaml")
    where = str(path)
    data = from_mapping(_BuildFile, read_yaml_mapping(path, "model build configuration"), where)
    if data.validation_session == data.held_out_session:
        raise ConfigError(f"{where}: validation_session must differ from held_out_session ({data.held_out_session!r})")
    base = path.resolve().parent
    train_config = resolve_input(data.train.config, base)
    if not train_config.is_file():
        raise ConfigError(f"{where}: train: config {data.train.config!r} not found")
    if data.corpus.get("noisy") is not None:
        raise ConfigError(f"{where}: corpus: noisy test sets are an experiment's (training/experiments/); a model "
                          "build tests on its held-out sets clean and on the robot twin; remove 'noisy'")
    build = ModelBuildConfig(
        name=data.name or path.stem, source=str(path.resolve()), corpus=corpus_config(where, data.corpus, base),
        held_out_session=data.held_out_session, validation_session=data.validation_session,
        train_config=str(train_config), train_overrides=dict(data.train.overrides), seed=data.seed, cache=data.cache,
        description=(data.description or "").strip(), held_out_engines=data.held_out_engines,
        held_out_languages=data.held_out_languages)
    from ser_robot.train.config import load_train_config

    load_train_config(build.train_config, build.train_overrides)  # a wrong override key fails now
    return build


def held_out_sets(manifest: Any, build: ModelBuildConfig) -> dict[str, Any]:
    """The held-out test sets, never trained on: ``voices`` (the held-out session), then one per
    held-out engine (``engine <name>``) and language (``language <code>``), from the manifest's
    ``extra.engine`` / ``extra.language``. An utterance in several (a held-out voice of a held-out
    engine) belongs to the first."""
    sessions = manifest.sessions
    for key in ("held_out_session", "validation_session"):
        session = getattr(build, key)
        if session is not None and session not in sessions:
            raise ConfigError(f"{build.source}: {key} {session!r} is not a session of the corpus; its sessions are "
                              f"{sessions}")
    rules = [("voices", lambda u: u.session == build.held_out_session)]
    rules += [(f"engine {engine}", lambda u, e=engine: u.extra.get("engine") == e) for engine in build.held_out_engines]
    rules += [(f"language {code}", lambda u, c=code: u.extra.get("language", "en") == c)
              for code in build.held_out_languages]
    taken: set[str] = set()
    sets = {}
    for name, rule in rules:
        part = manifest.filter(lambda u, r=rule: r(u) and u.id not in taken)
        if not len(part):
            raise ConfigError(f"{build.source}: held-out set {name!r} has no utterance in the corpus")
        taken |= {u.id for u in part}
        sets[name] = part
    return sets


def _fold(manifest: Any, build: ModelBuildConfig, sets: dict[str, Any]) -> Any:
    from ser_robot.data.manifest import Manifest
    from ser_robot.data.splits import Fold

    held = {u.id for part in sets.values() for u in part}
    validation = manifest.filter(lambda u: u.session == build.validation_session and u.id not in held)
    held |= {u.id for u in validation}
    test = Manifest([u for part in sets.values() for u in part], labels=manifest.labels)
    name = "test=" + "+".join(sets) + (f",val={build.validation_session}" if build.validation_session else "")
    return Fold(name, manifest.filter(lambda u: u.id not in held), validation, test)


def build_default_model(path: str | pathlib.Path, out: str | pathlib.Path, work: str | pathlib.Path | None = None,
                        workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Train and score the model of the build YAML ``path``; write the model folder ``out``; return metrics.json's content.

    Every figure comes from the inference path a user has (:class:`~ser_robot.inference.model.EmotionModel`
    and :func:`~ser_robot.eval.offline_eval.evaluate_manifest`, as ``ser-robot evaluate``): each
    held-out set clean and re-recorded by the simulated robot, next to the functionals baseline
    (:class:`~ser_robot.eval.functionals_baseline.FunctionalsBaseline`) trained on the same utterances;
    the gain sweep on the held-out voices; the calibration error of every set.
    """
    import torch

    from ser_robot.data.manifest import Manifest, read_manifest
    from ser_robot.eval.calibration import expected_calibration_error, reliability_diagram, softmax
    from ser_robot.eval.gain_sweep import GAINS_DB, gain_sweep
    from ser_robot.eval.offline_eval import evaluate_manifest, write_rows
    from ser_robot.experiments.prepare import prepare_corpus
    from ser_robot.experiments.report import machine_info
    from ser_robot.inference.model import EmotionModel
    from ser_robot.train.config import load_train_config
    from ser_robot.train.trainer import train

    build = load_model_build(path)
    out = pathlib.Path(out)
    work = pathlib.Path(work) if work is not None else pathlib.Path("out/model_build") / build.name
    started = datetime.datetime.now().astimezone()
    prepared = prepare_corpus(build.corpus, build.cache, workers=workers, progress=progress)
    manifest = read_manifest(prepared.manifest)
    sets = held_out_sets(manifest, build)
    fold = _fold(manifest, build, sets)
    banks = {"augmentation": {"bank_dir": str(pathlib.Path(build.cache) / "banks")}}  # unless the recipe moves them
    overrides = deep_merge(banks, build.train_overrides)
    overrides = deep_merge(overrides, {"seed": build.seed, "augmentation": {
        "noise_bank": str(prepared.noise_bank), "rir_bank": str(prepared.rir_bank),
        "sim_config": build.corpus.sim_config}})
    config = load_train_config(build.train_config, overrides)
    train_dir = work / "train"
    last = train_dir / "last.pt"
    result = train(config, fold, out_dir=train_dir, resume=last if last.is_file() else None, progress=progress)

    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.pt"
    shutil.copyfile(result.best_checkpoint, model_path)
    robot_by_id = {u.id: u for u in read_manifest(prepared.robot)}
    calibration = _calibrate(model_path, fold.validation, robot_by_id, progress) if len(fold.validation) else None
    model = EmotionModel(model_path, device="cpu", backend="torch")
    conditions = {name: {"clean": part, "robot": Manifest([robot_by_id[u.id] for u in part], labels=part.labels)}
                  for name, part in sets.items()}
    metrics: dict[str, dict[str, Any]] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    predictions = out / "predictions"
    predictions.mkdir(exist_ok=True)
    for name, parts in conditions.items():
        for condition, part in parts.items():
            scored = evaluate_manifest(model, list(part), progress=progress)
            rows = scored.pop("predictions")
            probabilities = np.array([[row[f"p_{c}"] for c in model.labels] for row in rows])
            targets = np.array([model.labels.index(row["true"]) for row in rows])
            scored["ece"] = expected_calibration_error(probabilities, targets)
            raw = softmax(np.log(np.clip(probabilities, 1e-12, None)) * model.temperature)  # temperature 1
            scored["ece_temperature_1"] = expected_calibration_error(raw, targets)
            metrics[f"{name} / {condition}"] = scored
            curves[f"{name} / {condition}"] = (probabilities, targets)
            write_rows(predictions / f"{_slug(name)}_{condition}.csv", rows)
    engines = {name: curve for name, curve in curves.items() if name.startswith("engine")}
    reliability_diagram(engines or curves, out / "reliability.png")
    baseline = _baseline_scores(model, fold.train, conditions, config, progress)
    sweep = gain_sweep(model, list(sets["voices"]), GAINS_DB, level="agc")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    report = {
        "name": build.name, "model": config.model, "head": config.head, "feature_set": config.feature_set,
        "level_normalization": config.level_normalization, "normalization": config.normalization,
        "labels": list(result.labels), "parameters": sum(p.numel() for p in result.model.parameters()),
        "file_bytes": model_path.stat().st_size, "sha256": digest,
        "fold": {"train": fold.train.speakers, "validation": fold.validation.speakers, "test": fold.test.speakers},
        "held_out": {name: part.speakers for name, part in sets.items()},
        "train_utterances": len(fold.train), "test_utterances": len(fold.test),
        "epochs_run": len(result.history), "best_epoch": result.best_epoch,
        "train_seconds": round(sum(float(e.get("seconds", 0.0)) for e in result.history), 1),
        "throughput_utterances_per_s": round(result.throughput, 2),
        "recipe": {"batch_size": config.batch_size, "lr": config.lr, "clip": config.clip},
        "metrics": metrics, "baseline": baseline, "calibration": calibration,
        "gain_sweep": {"rows": sweep.rows(), "uar_spread": sweep.spread, "markdown": sweep.markdown()},
        "command": " ".join(shlex.quote(a) for a in ["ser-robot", *sys.argv[1:]]) if sys.argv else "",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(), "torch": torch.__version__,
        "build": {"corpus": build.corpus.__dict__ | {"noise_bank": build.corpus.noise_bank.__dict__,
                                                     "rir_bank": build.corpus.rir_bank.__dict__},
                  "held_out_session": build.held_out_session, "validation_session": build.validation_session,
                  "held_out_engines": list(build.held_out_engines),
                  "held_out_languages": list(build.held_out_languages),
                  "train_config": pathlib.Path(build.train_config).name, "train_overrides": build.train_overrides},
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "MODEL_CARD.md").write_text(model_card(report, build), encoding="utf-8")
    return report


def _calibrate(model_path: pathlib.Path, validation: Any, robot_by_id: dict[str, Any],
               progress: bool) -> dict[str, Any]:
    """Fit the temperature of the model at ``model_path`` on the validation speakers, clean and re-recorded by the
    robot (speakers never trained on nor tested; a robot hears far-field speech), and store it in the checkpoint.
    Returns the temperature, the validation utterances and their ECE before and after."""
    from ser_robot.eval.calibration import expected_calibration_error, fit_temperature, softmax
    from ser_robot.eval.offline_eval import evaluate_manifest
    from ser_robot.inference.model import EmotionModel
    from ser_robot.train.checkpoint import load_checkpoint, save_checkpoint

    model = EmotionModel(model_path, device="cpu", backend="torch")
    rows = [row for part in (list(validation), [robot_by_id[u.id] for u in validation if u.id in robot_by_id])
            for row in evaluate_manifest(model, part, progress=progress)["predictions"]]  # each condition its streams
    probabilities = np.array([[row[f"p_{c}"] for c in model.labels] for row in rows])
    logits = np.log(np.clip(probabilities, 1e-12, None)) * model.temperature
    targets = np.array([model.labels.index(row["true"]) for row in rows])
    temperature = fit_temperature(logits, targets)
    checkpoint = load_checkpoint(model_path)
    checkpoint["temperature"] = temperature
    save_checkpoint(model_path, checkpoint)
    return {"temperature": temperature, "fitted_on": validation.speakers, "utterances": len(rows),
            "ece_before": expected_calibration_error(softmax(logits), targets),
            "ece_after": expected_calibration_error(softmax(logits, temperature), targets)}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _baseline_scores(model: Any, train: Any, conditions: dict[str, dict[str, Any]], config: Any,
                     progress: bool) -> dict[str, float]:
    """UAR of the functionals baseline (eGEMAPS-like frames, the model's stream normalisation) on every
    held-out set and condition, trained on the model's training utterances (clean). A model on other
    features (log-Mel) is compared with the same eGEMAPS baseline: what a user would try first."""
    from ser_robot.eval.functionals_baseline import FunctionalsBaseline, utterance_frames
    from ser_robot.features.sets import create_extractor

    feature_set = "egemaps"
    voiced = next(i for i, n in enumerate(create_extractor(feature_set).names) if n.startswith("F0"))
    baseline = FunctionalsBaseline(voiced, "speaker" if config.normalization == "speaker" else "global")
    utterances = list(train)
    baseline.fit(utterance_frames(utterances, feature_set, progress=progress),
                 [u.label for u in utterances], [u.speaker for u in utterances])
    tests = {}
    for name, parts in conditions.items():
        for condition, part in parts.items():
            items = list(part)
            tests[f"{name} / {condition}"] = (utterance_frames(items, feature_set), [u.label for u in items],
                                             [u.speaker for u in items])
    return baseline.scores(tests)


ARCHITECTURES: dict[str, str] = {
    "lakomkin_rnn": "Lakomkin et al., IROS 2018: 2 bidirectional GRU layers, mean over time, softmax",
    "lakomkin_cnn": "Lakomkin et al., IROS 2018: three 1-D convolutions, max over time, softmax",
    "mtl_aug": "Latif et al., MTL-AUG: a convolutional encoder, BLSTM, attention and a dense layer for the emotions; "
               "its augmentation-type classifier and decoder train with it and are not used to predict",
}
"""The card's one-line description of each architecture a model build can train."""


def _input_text(feature_set: str) -> str:
    if feature_set == "egemaps":
        return "eGEMAPS-like LLDs, 16 kHz, 100 frames/s"
    return f"log-Mel, the {feature_set.removeprefix('logmel_')} preset of config/features.yaml"


def _recipe_text(report: dict[str, Any]) -> str:
    """How the model was trained, in one sentence of the card (the two trainers differ)."""
    recipe = report["recipe"]
    if report["model"] == "mtl_aug":
        return (f"Adam {recipe['lr']:g}, batch {recipe['batch_size']}, the learning rate halved and the best weights "
                "restored after 5 epochs without a better validation UAR; MTL-AUG's auxiliary tasks (augmentation-type "
                "classification, reconstruction) on speed copies (0.9, 1.1), SpecAugment and mixup; no noise or room "
                "augmentation, so the robot test condition is unseen.")
    return (f"Adam {recipe['lr']:g}, batch {recipe['batch_size']}, gradient values clipped to [-{recipe['clip']:g}, "
            f"{recipe['clip']:g}], SortaGrad, augmentation (tempo 0.85-1.2, gain -6..3 dB, background noise from the "
            "noise bank's training clips, two-ear room impulse responses), never the robot test condition.")


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _confusion(matrix: list[list[int]], labels: list[str]) -> list[str]:
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(str(int(v)) for v in row) + " |" for label, row in zip(labels, matrix)]
    return lines


def model_card(report: dict[str, Any], build: ModelBuildConfig) -> str:
    """The Markdown model card of a :func:`build_default_model` report: held-out engine and language
    first, then held-out voices, each clean and on the robot twin, next to the baseline."""
    metrics, labels, baseline = report["metrics"], report["labels"], report.get("baseline", {})
    synth = build.corpus.synth or {}
    order = sorted(metrics, key=lambda name: (name.startswith("voices"), name))
    rows = [f"| {name} | {_percent(m['uar'])} | {_percent(baseline[name]) if name in baseline else '-'} | "
            f"{_percent(m['accuracy'])} | {_percent(m['macro_f1'])} | {_percent(m['ece'])} | {m['utterances']} |"
            for name, m in ((n, metrics[n]) for n in order)]
    normalization = ("each stream's own running statistics (speaker normalisation: warm start from the training "
                     "population, updated with every scored utterance)" if report.get("normalization") == "speaker"
                     else "the training split's statistics")
    held = report.get("held_out", {})
    lines = [
        f"# Model card: `{build.name}`", "",
        build.description, "",
        "**Trained and tested on a synthetic corpus** (text-to-speech voices with rule-based emotional prosody, "
        "`ser-robot synth-corpus`). The figures below say how the model does on synthetic voices, engines and "
        "languages it never heard; they say nothing about human emotional speech. For a robot that talks with "
        "people, train on a real corpus (`ser-robot train`) and use that checkpoint.", "",
        "## Held-out results", "",
        "Measured by `make model` through the inference path (`ser-robot evaluate`: the feature node's front end, "
        "each speaker one stream). *robot*: the same utterances re-recorded by the simulated robot "
        "(`config/sim/icub_lab.yaml`: loudspeaker at 1.6 m, RT60 0.45 s, fan and ego-noise, held-out noise "
        "clips), a condition no training rendition contains. *baseline*: logistic regression on utterance "
        "functionals of the same features and normalisation, trained on the same utterances "
        "(`ser_robot.eval.functionals_baseline`). ECE: expected calibration error (10 bins).", "",
        "| test set / condition | UAR | baseline UAR | accuracy | macro-F1 | ECE | utterances |",
        "|---|---:|---:|---:|---:|---:|---:|", *rows, "",
        "Held-out sets: " + "; ".join(f"**{name}**: {', '.join(speakers)}" for name, speakers in held.items()) + ".",
        "",
    ]
    calibration = report.get("calibration")
    if calibration:
        lines += ["## Confidence", "",
                  f"Probabilities are `softmax(logits / T)` with T = {calibration['temperature']:.2f}, fitted after "
                  f"training on the validation voices ({', '.join(calibration['fitted_on'])}; "
                  f"{calibration['utterances']} utterances, clean and re-recorded by the robot; never trained on, "
                  f"never tested on): their ECE went from {_percent(calibration['ece_before'])} to "
                  f"{_percent(calibration['ece_after'])}. ECE of the held-out sets with T and without (T = 1):", "",
                  "| test set / condition | ECE | ECE at T = 1 |", "|---|---:|---:|",
                  *(f"| {name} | {_percent(metrics[name]['ece'])} | {_percent(metrics[name]['ece_temperature_1'])} |"
                    for name in order if "ece_temperature_1" in metrics[name]), "",
                  "![reliability diagram of the held-out engine](reliability.png)", "",
                  "The inference node's `min_confidence` turns a result below it into an uncertain one (label empty, "
                  "`speech` true); `ser-robot calibration predictions/*.csv` gives the accuracy kept at each "
                  "threshold.", ""]
    sweep = report.get("gain_sweep")
    if sweep:
        lines += ["## Microphone gain", "",
                  "The held-out voices, each speaker one stream with 1 s pauses, scaled by each gain and read "
                  "through the level normaliser (`features.level_normalization: agc`, the feature node's default):",
                  "", sweep["markdown"], ""]
    lines += [
        "## Model", "",
        f"- Architecture: `{report['model']}` ({ARCHITECTURES.get(report['model'], 'see config/models/')}), "
        f"{report['parameters']:,} parameters, head `{report['head']}`, classes {labels}.",
        f"- Input: `{report['feature_set']}` frames ({_input_text(report['feature_set'])}) after the level "
        f"normaliser ({report.get('level_normalization', 'off')}), z-normalised with {normalization}.",
        f"- File: `model.pt`, {report['file_bytes'] / 1e6:.2f} MB, sha256 `{report['sha256'][:16]}…`; "
        "a `ser_robot.checkpoint` loaded with `torch.load(weights_only=True)`.", "",
        "## Training", "",
        f"- Command: `{report['command']}`{' (`make model`)' if report['model'] == 'lakomkin_rnn' else ''}, "
        f"{report['started'][:10]}, "
        f"{report['train_seconds'] / 60:.0f} min of training (sum of the epochs) on {report['machine']['cpu']} "
        f"({report['machine']['cpu_count']} cores){', ' + report['machine']['cuda'] if report['machine'].get('cuda') else ''}.",
        f"- Data: synthetic corpus `{synth.get('voices', 'core')}` of {synth.get('speakers')} voices x "
        f"{synth.get('sentences')} sentences x 4 emotions (seed {synth.get('seed')}); trained on "
        f"{report['train_utterances']} utterances of {len(report['fold']['train'])} voices.",
        f"- Validation: {', '.join(report['fold']['validation']) or 'none (fixed epochs; the learning rate halves when the training loss stops improving)'}.",
        f"- Recipe: `config/train/{report['build']['train_config']}` with overrides "
        f"`{json.dumps(report['build']['train_overrides'])}`: {_recipe_text(report)}",
        f"- Epochs run: {report['epochs_run']}, selected epoch {report['best_epoch']}; "
        f"{report['throughput_utterances_per_s']} training utterances/s.", "",
        "## Confusion matrices", "",
    ]
    for name in order:
        lines += [f"{name}:", "", *_confusion(metrics[name]["confusion"], labels), ""]
    lines += ["Chance UAR is 25 %. Per-utterance outputs: `predictions/`; everything above: `metrics.json`.", ""]
    return "\n".join(lines)
