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

from ser_robot.config import read_yaml_mapping
from ser_robot.errors import ConfigError
from ser_robot.experiments.config import (
    CorpusConfig,
    _check_keys,
    _corpus,
    _int,
    _mapping,
    _str,
    deep_merge,
    resolve_input,
)

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
    seed: int = 0
    cache: str = "out/corpora"
    description: str = ""


def load_model_build(path: str | pathlib.Path) -> ModelBuildConfig:
    """Read and validate a model-build YAML; raises :class:`ConfigError` naming the file and key."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"model build configuration {path} not found; see training/default_model.yaml")
    where = str(path)
    data = read_yaml_mapping(path, "model build configuration")
    known = ("name", "description", "seed", "cache", "corpus", "held_out_session", "validation_session", "train")
    _check_keys(where, data, known, ("corpus", "held_out_session", "train"))
    base = path.resolve().parent
    train = _mapping(where, "train", data["train"])
    _check_keys(f"{where}: train", train, ("config", "overrides"), ("config",))
    train_config = resolve_input(_str(f"{where}: train", "config", train["config"]), base)
    if not train_config.is_file():
        raise ConfigError(f"{where}: train: config {train['config']!r} not found")
    held_out = _str(where, "held_out_session", data["held_out_session"])
    validation = _str(where, "validation_session", data.get("validation_session"), optional=True)
    if validation == held_out:
        raise ConfigError(f"{where}: validation_session must differ from held_out_session ({held_out!r})")
    build = ModelBuildConfig(
        name=_str(where, "name", data.get("name") or path.stem), source=str(path.resolve()),
        corpus=_corpus(where, data["corpus"], base), held_out_session=held_out, validation_session=validation,
        train_config=str(train_config),
        train_overrides=_mapping(f"{where}: train", "overrides", train.get("overrides")),
        seed=_int(where, "seed", data.get("seed", 0), 0), cache=_str(where, "cache", data.get("cache", "out/corpora")),
        description=str(data.get("description") or "").strip())
    from ser_robot.train.config import load_train_config

    load_train_config(build.train_config, build.train_overrides)  # a wrong override key fails now
    return build


def _fold(manifest: Any, build: ModelBuildConfig) -> Any:
    from ser_robot.data.splits import Fold

    sessions = manifest.sessions
    for key in ("held_out_session", "validation_session"):
        session = getattr(build, key)
        if session is not None and session not in sessions:
            raise ConfigError(f"{build.source}: {key} {session!r} is not a session of the corpus; its sessions are "
                              f"{sessions}")
    held = {build.held_out_session, build.validation_session}
    name = f"test={build.held_out_session}" + (f",val={build.validation_session}" if build.validation_session else "")
    return Fold(name, manifest.filter(lambda u: u.session not in held),
                manifest.filter(lambda u: u.session == build.validation_session),
                manifest.filter(lambda u: u.session == build.held_out_session))


def build_default_model(path: str | pathlib.Path, out: str | pathlib.Path, work: str | pathlib.Path | None = None,
                        workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Train and score the model of the build YAML ``path``; write the model folder ``out``; return metrics.json's content."""
    import torch

    from ser_robot.data.manifest import read_manifest
    from ser_robot.experiments.prepare import prepare_corpus
    from ser_robot.experiments.report import machine_info
    from ser_robot.experiments.runner import test_clean_and_robot
    from ser_robot.train.config import load_train_config
    from ser_robot.train.trainer import train

    build = load_model_build(path)
    out = pathlib.Path(out)
    work = pathlib.Path(work) if work is not None else pathlib.Path("out/model_build") / build.name
    started = datetime.datetime.now().astimezone()
    prepared = prepare_corpus(build.corpus, build.cache, workers=workers, progress=progress)
    manifest = read_manifest(prepared.manifest)
    fold = _fold(manifest, build)
    overrides = deep_merge(build.train_overrides, {"seed": build.seed, "augmentation": {
        "noise_bank": str(prepared.noise_bank), "rir_bank": str(prepared.rir_bank),
        "sim_config": build.corpus.sim_config}})
    config = load_train_config(build.train_config, overrides)
    train_dir = work / "train"
    last = train_dir / "last.pt"
    result = train(config, fold, out_dir=train_dir, resume=last if last.is_file() else None, progress=progress)

    out.mkdir(parents=True, exist_ok=True)
    metrics, nonfinite = test_clean_and_robot(result, config, fold.test, read_manifest(prepared.robot), out,
                                              where=build.name)
    model_path = out / "model.pt"
    shutil.copyfile(result.best_checkpoint, model_path)
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    report = {
        "name": build.name, "model": config.model, "head": config.head, "feature_set": config.feature_set,
        "labels": list(result.labels), "parameters": sum(p.numel() for p in result.model.parameters()),
        "file_bytes": model_path.stat().st_size, "sha256": digest,
        "fold": {"train": fold.train.speakers, "validation": fold.validation.speakers, "test": fold.test.speakers},
        "train_utterances": len(fold.train), "test_utterances": len(fold.test),
        "epochs_run": len(result.history), "best_epoch": result.best_epoch,
        "train_seconds": round(sum(float(e.get("seconds", 0.0)) for e in result.history), 1),
        "throughput_utterances_per_s": round(result.throughput, 2),
        "recipe": {"batch_size": config.batch_size, "lr": config.lr, "clip": config.clip},
        "metrics": metrics, "nonfinite_test_features": nonfinite,
        "command": " ".join(shlex.quote(a) for a in ["ser-robot", *sys.argv[1:]]) if sys.argv else "",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(), "torch": torch.__version__,
        "build": {"corpus": build.corpus.__dict__ | {"noise_bank": build.corpus.noise_bank.__dict__,
                                                     "rir_bank": build.corpus.rir_bank.__dict__},
                  "held_out_session": build.held_out_session, "validation_session": build.validation_session,
                  "train_config": pathlib.Path(build.train_config).name, "train_overrides": build.train_overrides},
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "MODEL_CARD.md").write_text(model_card(report, build), encoding="utf-8")
    return report


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _confusion(matrix: list[list[int]], labels: list[str]) -> list[str]:
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(str(int(v)) for v in row) + " |" for label, row in zip(labels, matrix)]
    return lines


def model_card(report: dict[str, Any], build: ModelBuildConfig) -> str:
    """The Markdown model card of a :func:`build_default_model` report."""
    metrics, labels = report["metrics"], report["labels"]
    synth = build.corpus.synth or {}
    rows = [f"| {name} | {_percent(m['uar'])} | {_percent(m['accuracy'])} | {_percent(m['macro_f1'])} |"
            for name, m in metrics.items()]
    lines = [
        f"# Model card: `{build.name}`", "",
        build.description, "",
        "**Trained and tested on a synthetic corpus** (text-to-speech voices with rule-based emotional prosody, "
        "`ser-robot synth-corpus`). The figures below say how the model does on held-out synthetic voices; "
        "they say nothing about human emotional speech. For a robot that talks with people, train on a real "
        "corpus (`ser-robot train`, `config/train/lakomkin.yaml`) and use that checkpoint.", "",
        "## Model", "",
        f"- Architecture: `{report['model']}` (Lakomkin et al., IROS 2018: 2 bidirectional GRU layers, mean over "
        f"time, softmax), {report['parameters']:,} parameters, head `{report['head']}`, classes {labels}.",
        f"- Input: `{report['feature_set']}` frames (eGEMAPS-like LLDs, 16 kHz, 100 frames/s) z-normalised with "
        "the training split's statistics (stored in the checkpoint).",
        f"- File: `model.pt`, {report['file_bytes'] / 1e6:.2f} MB, sha256 `{report['sha256'][:16]}…`; "
        "a `ser_robot.checkpoint` loaded with `torch.load(weights_only=True)`.", "",
        "## Training", "",
        f"- Command: `make model` (= `{report['command']}`), {report['started'][:10]}, "
        f"{report['train_seconds'] / 60:.0f} min of training (sum of the epochs) on {report['machine']['cpu']} "
        f"({report['machine']['cpu_count']} cores){', ' + report['machine']['cuda'] if report['machine'].get('cuda') else ''}.",
        f"- Data: synthetic corpus of {synth.get('speakers')} voices x {synth.get('sentences')} sentences x 4 emotions "
        f"(seed {synth.get('seed')}); trained on {report['train_utterances']} utterances of "
        f"{len(report['fold']['train'])} voices ({', '.join(report['fold']['train'])}).",
        f"- Validation: {', '.join(report['fold']['validation']) or 'none (fixed epochs; the learning rate halves when the training loss stops improving)'}.",
        f"- Recipe: `config/train/{report['build']['train_config']}` with overrides "
        f"`{json.dumps(report['build']['train_overrides'])}`: Adam {report['recipe']['lr']:g}, batch "
        f"{report['recipe']['batch_size']}, gradient values clipped to [-{report['recipe']['clip']:g}, "
        f"{report['recipe']['clip']:g}], SortaGrad, on-the-fly augmentation (tempo 0.85-1.2, gain -6..3 dB, background noise from the "
        "noise bank's training clips, two-ear room impulse responses), never the robot test condition.",
        f"- Epochs run: {report['epochs_run']}, selected epoch {report['best_epoch']}; "
        f"{report['throughput_utterances_per_s']} training utterances/s.", "",
        "## Held-out test: " + ", ".join(report["fold"]["test"]), "",
        f"{report['test_utterances']} utterances of the held-out session `{build.held_out_session}` (never trained "
        "on), clean and re-recorded by the simulated robot (`config/sim/icub_lab.yaml`: loudspeaker at 1.6 m in "
        "a lab room, RT60 0.45 s, fan and ego-noise, held-out noise clips).", "",
        "| test set | UAR | accuracy | macro-F1 |", "|---|---|---|---|", *rows, "",
    ]
    for name, m in metrics.items():
        lines += [f"Confusion ({name}):", "", *_confusion(m["confusion"], labels), ""]
    lines += ["Chance UAR is 25 %. Per-utterance outputs: `predictions_clean.csv`, `predictions_robot.csv`; "
              "everything above: `metrics.json`.", ""]
    return "\n".join(lines)
