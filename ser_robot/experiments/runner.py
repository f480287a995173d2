"""Run an experiment: every fold x arm x repetition trained once, tested clean and on the robot twin.

:func:`run_experiment` reads the experiment YAML (:func:`~ser_robot.experiments.config.load_experiment`),
prepares the data (:func:`~ser_robot.experiments.prepare.prepare_data`), runs the jobs and
writes the results folder (default ``out/experiments/<name>``)::

    experiment.yaml                 the experiment file as given
    experiment.resolved.json        as validated (absolute paths, defaults filled in)
    run_info.json                   command, dates, machine, job counts
    jobs/<arm>/rep<r>/<speaker>/    one job: train/ (checkpoints, history, train_config.yaml),
                                    predictions_clean.csv, predictions_robot.csv, job.json (last: done)
    runs.csv, tables.md, figures/, README.md   (ser_robot.experiments.tables.rebuild_tables)

A job trains on the fold's training speakers (augmentation from the cache's noise and RIR banks,
training clips and rooms only), selects on its validation speaker, then predicts the test
speaker's utterances twice with the same model: clean (the corpus) and robot (the same ids in
the twin). Jobs whose ``job.json`` exists are skipped (resumable; a job trained with another
configuration is refused, not silently mixed in); an interrupted job continues from its
``train/last.pt``.

Parallelism: ``workers`` processes (spawned), each job with ``cpu_count // workers`` torch
threads (at least 1); ``workers=1`` runs the jobs in this process.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import os
import pathlib
import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from ser_robot.experiments.config import (
    ExperimentConfig,
    arm_test_sets,
    arm_train_overrides,
    deep_merge,
    load_experiment,
)
from ser_robot.errors import ExperimentError
from ser_robot.experiments.launchers import launch
from ser_robot.experiments.prepare import PreparedData, prepare_data
from ser_robot.experiments.report import machine_info
from ser_robot.experiments.tables import (
    metrics_from_predictions,
    read_predictions,
    rebuild_tables,
    write_predictions,
)

__all__ = ["ExperimentResult", "JobSpec", "experiment_folds", "plan_jobs", "prepare_banks", "run_experiment", "run_job",
           "test_clean_and_robot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """One training job, in plain values (it crosses to a worker process).

    ``test_speaker``: the fold's test speakers joined by ``+``; ``fold_index``: its place in the
    ``scheme``'s folds. ``train_config``: the effective :class:`~ser_robot.train.config.TrainConfig` as a dict;
    ``fingerprint``: hash of what determines the job's result (configuration, fold, corpus files).
    """

    arm: str
    label: str
    model: str
    head: str
    training: str
    removed: str | None
    repetition: int
    seed: int
    fold_index: int
    fold: str
    test_speaker: str
    scheme: str
    validation: str
    manifest: str
    robot: str
    train_config: dict[str, Any]
    job_dir: str
    threads: int
    fingerprint: str
    noisy: dict[str, str] = field(default_factory=dict)
    target: str = ""
    selection_share: float = 0.0
    attacks: list[dict[str, Any]] = field(default_factory=list)
    purifier: dict[str, Any] = field(default_factory=dict)  # an SSAD arm's PurifierSpec (empty: no defence)
    test_sets: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """True when the job's ``job.json`` exists."""
        return (pathlib.Path(self.job_dir) / "job.json").is_file()


@dataclass
class ExperimentResult:
    """Outcome of :func:`run_experiment`: the results folder, the ``runs`` rows of ``runs.csv``, the
    ``markdown`` of ``tables.md``, the files written, job counts and the wall-clock ``seconds``."""

    out_dir: pathlib.Path
    experiment: ExperimentConfig
    runs: list[dict[str, Any]]
    markdown: str
    files: list[pathlib.Path] = field(default_factory=list)
    jobs_run: int = 0
    jobs_skipped: int = 0
    seconds: float = 0.0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def experiment_folds(manifest: Any, scheme: str, validation: str) -> list[Any]:
    """Every fold of a protocol ``scheme`` (``speaker`` or ``session``) with its ``validation`` rule, in order."""
    from ser_robot.data.splits import leave_one_session_out, leave_one_speaker_out

    if scheme == "session":
        return leave_one_session_out(manifest, validation=validation)
    return leave_one_speaker_out(manifest, validation=validation)


def job_fold(spec: JobSpec) -> Any:
    """The fold a job trains and tests (its scheme's fold ``fold_index``; cross-corpus: split ``fold_index``)."""
    if spec.scheme == "cross_corpus":
        from ser_robot.data.splits import cross_corpus

        return cross_corpus(_manifest(spec.manifest), _manifest(spec.target), spec.selection_share, seed=spec.fold_index)
    return experiment_folds(_manifest(spec.manifest), spec.scheme, spec.validation)[spec.fold_index]


def _fold_key(fold: Any, scheme: str) -> str:
    """What ``protocol.folds`` lists name a fold by: its test speaker, or its test session."""
    if scheme == "session":
        return str(fold.test[0].session)
    return "+".join(fold.test.speakers)


def _select_folds(experiment: ExperimentConfig, manifest: Any) -> list[tuple[int, Any]]:
    """``(index in the scheme's order, fold)`` of the experiment's ``protocol.folds``."""
    from ser_robot.errors import SplitError

    protocol = experiment.protocol
    try:
        folds = experiment_folds(manifest, protocol.scheme, protocol.validation)
    except SplitError as error:
        raise ExperimentError(f"experiment {experiment.name!r}: {error}") from None
    indexed = list(enumerate(folds))
    if protocol.folds == "all":
        return indexed
    if isinstance(protocol.folds, int):
        if protocol.folds > len(folds):
            raise ExperimentError(f"experiment {experiment.name!r}: protocol.folds is {protocol.folds} but the corpus "
                                  f"has {len(folds)} folds ({protocol.scheme} scheme)")
        return indexed[: protocol.folds]
    by_key = {_fold_key(fold, protocol.scheme): (i, fold) for i, fold in indexed}
    unknown = [s for s in protocol.folds if s not in by_key]
    if unknown:
        raise ExperimentError(f"experiment {experiment.name!r}: protocol.folds names {unknown}, not test "
                              f"{protocol.scheme}s of the corpus; they are {list(by_key)}")
    return [by_key[s] for s in protocol.folds]


def plan_jobs(experiment: ExperimentConfig, prepared: PreparedData, out_dir: pathlib.Path,
              workers: int = 1) -> list[JobSpec]:
    """Every job of ``experiment`` (repetition-major, then fold, then arm), configurations validated."""
    from ser_robot.data.manifest import read_manifest
    from ser_robot.train.config import load_train_config

    manifest = read_manifest(prepared.manifest, check_files=False)
    manifest_path, unlabelled_path = str(prepared.manifest), None
    if experiment.protocol.unlabelled_sessions:
        manifest, manifest_path, unlabelled_path = _split_unlabelled(experiment, manifest, prepared.manifest)
    tested = prepared.target or prepared  # where the test utterances come from
    cross = experiment.protocol.scheme == "cross_corpus"
    repetitions = range(experiment.protocol.repetitions)
    if cross:  # repetition r: split r
        from ser_robot.data.splits import cross_corpus

        target = read_manifest(tested.manifest, check_files=False)
        share = experiment.protocol.selection_share
        plan = [(r, r, cross_corpus(manifest, target, share, seed=r)) for r in repetitions]
    else:
        plan = [(r, index, fold) for r in repetitions for index, fold in _select_folds(experiment, manifest)]
    robot_ids = {u.id for u in read_manifest(tested.robot, check_files=False)}
    missing = sorted({u.id for _, _, fold in plan for u in fold.test} - robot_ids)
    if missing:
        raise ExperimentError(f"the robot twin {tested.robot} lacks {len(missing)} test utterance(s) of the corpus, "
                              f"e.g. {missing[:3]}; simulate it again from {tested.manifest}")
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    corpus_key = {"manifest": manifest_path, "robot": str(tested.robot)}
    noisy = {name: str(path) for name, path in tested.noisy.items()}
    if noisy:
        corpus_key["noisy"] = noisy  # type: ignore[assignment]
    if cross:
        corpus_key["target"] = str(tested.manifest)
    attacks = [dataclasses.asdict(a) for a in experiment.attacks]
    if attacks:
        corpus_key["attacks"] = attacks  # type: ignore[assignment]
    jobs = []
    for repetition, index, fold in plan:
        speaker = f"split{index}" if cross else "+".join(fold.test.speakers)
        for arm in experiment.arms:
            overrides = arm_train_overrides(experiment, arm, repetition, str(prepared.noise_bank),
                                            str(prepared.rir_bank))
            if arm.unlabelled:
                overrides = deep_merge(overrides, {"multitask": {"unlabelled_manifest": unlabelled_path}})
            config = _with_bank_paths(load_train_config(experiment.train_config, overrides), prepared)
            config_dict = config.to_dict()
            purifier = (dataclasses.asdict(experiment.purifier)
                        if arm.defence == "ssad" and experiment.purifier is not None else {})
            key = json.dumps({"config": config_dict, "fold": fold.name, **corpus_key,
                              **({"purifier": purifier} if purifier else {})}, sort_keys=True)
            jobs.append(JobSpec(
                arm=arm.name, label=arm.label, model=arm.model, head=arm.head, training=arm.training,
                removed=arm.removed, repetition=repetition, seed=int(config.seed), fold_index=index,
                fold=fold.name, test_speaker=speaker, scheme=experiment.protocol.scheme,
                validation=experiment.protocol.validation, manifest=manifest_path,
                robot=str(tested.robot), train_config=config_dict,
                job_dir=str(out_dir / "jobs" / arm.name / f"rep{repetition}" / _slug(speaker)), threads=threads,
                fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16], noisy=noisy,
                target=str(tested.manifest) if cross else "",
                selection_share=experiment.protocol.selection_share if cross else 0.0, attacks=attacks,
                purifier=purifier, test_sets=list(arm_test_sets(experiment, arm))))
    return jobs


def _split_unlabelled(experiment: ExperimentConfig, manifest: Any, path: pathlib.Path) -> tuple[Any, str, str]:
    """``(labelled manifest, its path, unlabelled manifest path)``: the protocol's ``unlabelled_sessions``
    taken out of the corpus, their labels removed; both written next to the corpus' manifest."""
    from ser_robot.data.manifest import Manifest, write_manifest

    sessions = set(experiment.protocol.unlabelled_sessions)
    unknown = sorted(sessions - set(manifest.sessions))
    if unknown:
        raise ExperimentError(f"experiment {experiment.name!r}: protocol.unlabelled_sessions names {unknown}, not "
                              f"sessions of the corpus; they are {manifest.sessions}")
    tag = "-".join(sorted(sessions))
    labelled = manifest.filter(lambda u: u.session not in sessions)
    unlabelled = [dataclasses.replace(u, label=None, arousal=None, valence=None, dominance=None)
                  for u in manifest if u.session in sessions]
    labelled_path = write_manifest(path.with_name(f"{path.stem}.without_{tag}.jsonl"), labelled)
    unlabelled_path = write_manifest(path.with_name(f"{path.stem}.unlabelled_{tag}.jsonl"),
                                     Manifest(unlabelled, labels=manifest.labels))
    return labelled, str(labelled_path), str(unlabelled_path)


def _with_bank_paths(config: Any, prepared: PreparedData) -> Any:
    """In bank mode, a bank over the whole corpus in the cache's ``banks/`` (shared by every fold and arm
    with the same chain), unless the configuration names its own."""
    aug = config.augmentation
    if aug.mode != "bank":
        return config
    changes = {"bank_manifest": aug.bank_manifest or str(prepared.manifest)}
    if aug.bank_dir == type(aug)().bank_dir:
        changes["bank_dir"] = str(prepared.cache / "banks")
    return config.replace(augmentation=dataclasses.replace(aug, **changes))


def prepare_banks(jobs: list[JobSpec], workers: int = 1, progress: bool = True) -> list[Any]:
    """Build (or find) the augmentation bank of every bank-mode job, once per distinct bank, and check each
    job's fold against it (no test or validation speaker in its training view, nor in its babble).

    Runs before the jobs, in this process, so parallel jobs never build the same bank at once.
    Returns the banks; raises :class:`~ser_robot.errors.BankError` naming a leaking speaker.
    """
    from ser_robot.train.bank import BankSpec, babble_speakers, check_no_leak, corpus_hash, ensure_bank
    from ser_robot.train.config import TrainConfig

    banks: dict[tuple[str, str], Any] = {}
    hashes: dict[str, str] = {}
    for job in jobs:
        config = TrainConfig.from_dict(job.train_config, where=f"job {job.job_dir}")
        aug = config.augmentation
        if aug.mode != "bank":
            continue
        manifest = _manifest(aug.bank_manifest)
        fold = job_fold(job)
        forbidden = [*fold.validation.speakers, *fold.test.speakers]
        check_no_leak(fold.train, forbidden, babble_speakers(aug), f"of job {job.job_dir}")
        identity = (json.dumps(dataclasses.asdict(aug), sort_keys=True), config.feature_set, config.level_normalization)
        if identity not in banks:
            if aug.bank_manifest not in hashes:
                hashes[aug.bank_manifest] = corpus_hash(manifest)
            spec = BankSpec.from_config(manifest, aug, config.feature_set, config.sample_rate,
                                        config.level_normalization)
            banks[identity] = ensure_bank(spec, aug.bank_dir, workers=workers, progress=progress,
                                          corpus=hashes[aug.bank_manifest])
        banks[identity].training_view(fold.train, forbidden)
    return list(banks.values())


@functools.lru_cache(maxsize=16)
def _manifest(path: str) -> Any:
    from ser_robot.data.manifest import read_manifest

    return read_manifest(path)


def run_job(spec: JobSpec) -> dict[str, Any]:
    """Train and test one job (in this process); writes its folder and returns the ``job.json`` content."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        return _run_job(spec)
    finally:
        torch.set_num_threads(previous)


def _run_job(spec: JobSpec) -> dict[str, Any]:
    from ser_robot.errors import CheckpointError
    from ser_robot.train.config import TrainConfig
    from ser_robot.train.trainer import train

    job_dir = pathlib.Path(spec.job_dir)
    train_dir = job_dir / "train"
    fold = job_fold(spec)
    if fold.name != spec.fold:
        raise ExperimentError(f"job {spec.job_dir}: fold {spec.fold_index} of the corpus is now {fold.name!r}, the "
                              f"job was planned for {spec.fold!r}; the corpus changed, run the experiment again")
    config = TrainConfig.from_dict(spec.train_config, where=f"job {spec.job_dir}")
    started = time.perf_counter()
    last = train_dir / "last.pt"
    try:
        result = train(config, fold, out_dir=train_dir, resume=last if last.is_file() else None, progress=False)
    except CheckpointError as error:  # an unusable last.pt of an interrupted job: start it again
        log.warning("job %s: cannot resume (%s); training from scratch", spec.job_dir, error)
        shutil.rmtree(train_dir, ignore_errors=True)
        result = train(config, fold, out_dir=train_dir, progress=False)
    seconds = time.perf_counter() - started

    purifier = _job_purifier(spec, config, fold, result) if spec.purifier else None
    scored = result if purifier is None else dataclasses.replace(result, model=_purified(purifier, result.model))
    metrics, nonfinite = test_clean_and_robot(scored, config, fold.test, _manifest(spec.robot), job_dir,
                                              where=f"job {spec.job_dir}",
                                              noisy={name: _manifest(path) for name, path in spec.noisy.items()})
    if purifier is not None:
        unprotected, _ = test_clean_and_robot(result, config, fold.test, None, job_dir, where=f"job {spec.job_dir}",
                                              suffix="_unprotected")
        metrics.update(unprotected)
    if spec.attacks:
        metrics.update(test_attacked(result, config, fold.test, job_dir, spec.attacks, purifier=purifier))
    job = {**{k: v for k, v in dataclasses.asdict(spec).items() if k not in ("train_config", "job_dir", "threads")},
           "labels": list(result.labels), "best_epoch": result.best_epoch, "epochs_run": len(result.history),
           "stopped_early": result.stopped_early, "train_seconds": round(seconds, 2),
           "throughput_utterances_per_s": round(result.throughput, 2), "threads": spec.threads,
           "train_utterances": len(fold.train), "nonfinite_test_features": nonfinite, "metrics": metrics}
    tmp = job_dir / "job.json.tmp"
    tmp.write_text(json.dumps(job, indent=2) + "\n", encoding="utf-8")
    tmp.replace(job_dir / "job.json")
    return job


def _job_purifier(spec: JobSpec, config: Any, fold: Any, result: Any) -> Any:
    """The SSAD purifier of a defended job (:class:`~ser_robot.experiments.config.PurifierSpec` in
    ``spec.purifier``), trained against the job's own best model, or loaded from the job's ``purifier/purifier.pt``
    when an interrupted run already trained it; eval mode, on the model's device."""
    from ser_robot.models.ssad import load_ssad_config
    from ser_robot.train.purifier import load_purifier, train_purifier

    if config.normalization != "global":
        raise ExperimentError(f"job {spec.job_dir}: the SSAD purifier works on population-normalised frames; this "
                              f"arm trains with normalization: {config.normalization}; set it to global")
    if result.best_checkpoint is None:
        raise ExperimentError(f"job {spec.job_dir}: training wrote no best.pt for the purifier to train against")
    settings = spec.purifier
    out_dir = pathlib.Path(spec.job_dir) / "purifier"
    path = out_dir / "purifier.pt"
    if path.is_file():
        purifier, _ = load_purifier(path)
    else:
        ssad = load_ssad_config(settings["config"] or None, **settings["changes"])
        purifier = train_purifier(fold, result.best_checkpoint, ssad, epochs=settings["epochs"],
                                  batch_size=settings["batch_size"], lr=settings["lr"], patience=settings["patience"],
                                  frames=settings["frames"], seed=spec.seed, out_dir=out_dir).purifier
    return purifier.to(next(result.model.parameters()).device).eval()


def _purified(purifier: Any, model: Any) -> Any:
    from ser_robot.adversarial.ssad import PurifiedModel

    return PurifiedModel(purifier, model).eval()


def test_clean_and_robot(result: Any, config: Any, test: Any, robot: Any, out_dir: pathlib.Path,
                         where: str = "", noisy: dict[str, Any] | None = None,
                         suffix: str = "") -> tuple[dict[str, Any], dict[str, int]]:
    """Score a trained ``result`` on the ``test`` manifest (clean), on the same ids in the ``robot`` twin (none:
    not scored) and in each ``noisy`` copy (test-set name -> manifest).

    Writes ``predictions_<test set><suffix>.csv`` into ``out_dir``; returns ``(metrics per test set, non-finite
    feature values zeroed per test set)``, keyed by ``<test set><suffix>``.
    """
    from ser_robot.data.manifest import Manifest
    from ser_robot.train.data import UtteranceDataset
    from ser_robot.train.trainer import predict

    parts = {"clean": test}
    twins = {"robot": robot} if robot is not None else {}
    for name, twin in {**twins, **(noisy or {})}.items():
        by_id = {u.id: u for u in twin}
        missing = [u.id for u in test if u.id not in by_id]
        if missing:
            raise ExperimentError(f"{where}: the {name} copy lacks {len(missing)} test utterances (e.g. {missing[0]}); "
                                  "make it from the same corpus")
        parts[name] = Manifest([by_id[u.id] for u in test], labels=test.labels)
    featurizer, context = _test_featurizer(result, config)
    labels = list(result.labels)
    metrics, nonfinite = {}, {}
    for name, part in parts.items():
        dataset = UtteranceDataset(part, labels, config.sample_rate, cache=False)
        featurizer.nonfinite = 0
        outputs = predict(result.model, featurizer, dataset, config, context)
        nonfinite[name] = featurizer.nonfinite
        if featurizer.nonfinite:
            log.warning("%s: %d non-finite feature values in the %s test set, set to 0 (the training mean)",
                        where, featurizer.nonfinite, name)
        path = write_predictions(out_dir / f"predictions_{name}{suffix}.csv", config.head, [u.id for u in part],
                                 [u.speaker for u in part], dataset.targets(config.head).numpy(), outputs.numpy(),
                                 labels)
        metrics[f"{name}{suffix}"] = metrics_from_predictions(read_predictions(path), labels)
    return metrics, nonfinite


def test_attacked(result: Any, config: Any, test: Any, out_dir: pathlib.Path, attacks: list[dict[str, Any]],
                  purifier: Any = None) -> dict[str, Any]:
    """Score a trained ``result`` on the clean ``test`` manifest attacked white-box by each of ``attacks``
    (:class:`~ser_robot.experiments.config.AttackSpec` dicts) on its normalised inputs, the true labels as the
    untargeted attack's; writes ``predictions_<attack name>.csv`` into ``out_dir``, returns the metrics.

    With an SSAD ``purifier`` in front of the model, per attack: ``<name>_unprotected`` (crafted against and
    scored by the model alone), ``<name>`` (the same adversaries scored through the purifier: the non-adaptive
    attacker) and ``<name>_adaptive`` (crafted against and scored by purifier and model together)."""
    import torch

    from ser_robot.train.data import UtteranceDataset
    from ser_robot.train.trainer import feature_batches, predict_features

    featurizer, context = _test_featurizer(result, config)
    labels = list(result.labels)
    dataset = UtteranceDataset(test, labels, config.sample_rate, cache=False)
    targets = dataset.targets("categorical")
    clean = feature_batches(featurizer, dataset, config, context)
    model = result.model.eval()
    defended = _purified(purifier, model) if purifier is not None else None
    metrics = {}

    def write(name: str, scorer: Any, batches: list[Any]) -> None:
        outputs = predict_features(scorer, batches, config, context)
        path = write_predictions(out_dir / f"predictions_{name}.csv", "categorical", [u.id for u in test],
                                 [u.speaker for u in test], targets.numpy(), outputs.numpy(), labels)
        metrics[name] = metrics_from_predictions(read_predictions(path), labels)

    for attack in attacks:
        generator = torch.Generator().manual_seed(int(config.seed))
        adversarial = _attacked_batches(model, clean, targets, attack, generator, context.device)
        if defended is None:
            write(attack["name"], model, adversarial)
            continue
        write(f"{attack['name']}_unprotected", model, adversarial)
        write(attack["name"], defended, adversarial)
        generator = torch.Generator().manual_seed(int(config.seed))
        write(f"{attack['name']}_adaptive", defended,
              _attacked_batches(defended, clean, targets, attack, generator, context.device))
    return metrics


def _attacked_batches(model: Any, clean: list[Any], targets: Any, attack: dict[str, Any], generator: Any,
                      device: Any) -> list[Any]:
    """``clean`` feature batches attacked white-box against ``model`` by one ``attack`` (an AttackSpec dict)."""
    from ser_robot.adversarial import ThreatModel, bim, feature_loss, fgsm, pgd, spsa

    threat = ThreatModel("features", float(attack["epsilon"]))
    step_size = float(attack.get("step_size") or 0.0) or None
    batches = []
    for indices, feats in clean:
        loss = feature_loss(model, targets[indices].to(device), feats.lengths)
        if attack["method"] == "fgsm":
            adversarial = fgsm(loss, feats.features, threat)
        elif attack["method"] == "bim":
            adversarial = bim(loss, feats.features, threat, steps=int(attack["steps"]), step_size=step_size)
        elif attack["method"] == "pgd":
            adversarial = pgd(loss, feats.features, threat, steps=int(attack["steps"]), step_size=step_size,
                              restarts=int(attack["restarts"]), generator=generator)
        else:
            adversarial = spsa(loss, feats.features, threat, steps=int(attack["steps"]),
                               samples=int(attack["samples"]), generator=generator)
        batches.append((indices, feats._replace(features=adversarial)))
    return batches


def _test_featurizer(result: Any, config: Any) -> tuple[Any, Any]:
    """``(featurizer, context)`` that score test sets for a trained ``result``: its normaliser, non-finite values
    zeroed and counted (:func:`_finite_featurizer`), on the model's device."""
    from ser_robot.features.sets import create_extractor
    from ser_robot.train.distributed import DistContext
    from ser_robot.train.features import BatchFeaturizer

    device = next(result.model.parameters()).device
    featurizer = _finite_featurizer(BatchFeaturizer)(create_extractor(config.feature_set), result.normalizer,
                                                     level=config.level_normalization).to(device)
    return featurizer, DistContext(device=device)


def _finite_featurizer(base: type) -> type:
    """A subclass of ``base`` (:class:`~ser_robot.train.features.BatchFeaturizer`) for testing: non-finite
    normalised feature values (a log of a zero harmonic amplitude on a noisy frame gives -inf) become 0,
    the training mean, and are counted in ``nonfinite``, instead of turning a prediction into nan."""
    import torch

    class FiniteFeaturizer(base):  # type: ignore[misc, valid-type]
        nonfinite = 0

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            feats = super().forward(*args, **kwargs)
            bad = ~torch.isfinite(feats.features)
            if bool(bad.any()):
                self.nonfinite += int(bad.sum())
                feats = feats._replace(features=feats.features.masked_fill(bad, 0.0))
            return feats

    return FiniteFeaturizer


def _check_finished(spec: JobSpec) -> None:
    data = json.loads((pathlib.Path(spec.job_dir) / "job.json").read_text(encoding="utf-8"))
    if data.get("fingerprint") != spec.fingerprint:
        raise ExperimentError(f"job {spec.job_dir} finished with another configuration, fold or corpus than this "
                              "experiment now asks for; delete that folder (or the whole results folder) or give "
                              "another --out")


def _describe(job: dict[str, Any]) -> str:
    metrics = job["metrics"]
    if job["head"] == "categorical":
        text = f"macro-F1 clean {metrics['clean']['macro_f1']:.3f}, robot {metrics['robot']['macro_f1']:.3f}"
    else:
        text = (f"arousal MAE clean {metrics['clean']['arousal_mae']:.3f}, "
                f"robot {metrics['robot']['arousal_mae']:.3f}")
    return f"{job['arm']} rep{job['repetition']} test={job['test_speaker']}: {text} ({job['train_seconds']:.1f} s)"


def run_experiment(path: str | pathlib.Path, out: str | pathlib.Path | None = None, workers: int | None = None,
                   progress: bool = True, *, cache: str | pathlib.Path | None = None,
                   command: str | None = None, launcher: str = "local", ray_address: str | None = None,
                   gpus_per_job: float = 0.0) -> ExperimentResult:
    """Run (or resume) the experiment of YAML ``path``; returns the :class:`ExperimentResult`.

    ``out``: results folder (default ``out/experiments/<name>``). ``workers``: job processes
    (default 1: in this process); each job gets ``cpu_count // workers`` torch threads.
    ``cache``: folder of generated corpora and banks (default: the experiment's ``cache``).
    ``command``: the command line recorded in the README (default: the equivalent ``ser-robot
    experiment`` call). ``launcher``, ``ray_address``, ``gpus_per_job``: where the jobs run
    (:mod:`ser_robot.experiments.launchers`).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    start_date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    path = pathlib.Path(path)
    experiment = load_experiment(path)
    workers = 1 if workers is None else int(workers)
    if workers < 1:
        raise ExperimentError(f"workers must be at least 1, got {workers}")
    out_dir = pathlib.Path(out) if out is not None else pathlib.Path("out") / "experiments" / experiment.name
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if command is None:
        command = f"ser-robot experiment {shlex.quote(str(path))} --out {shlex.quote(str(out_dir))} --workers {workers}"
        if cache is not None:
            command += f" --cache {shlex.quote(str(cache))}"
        if launcher != "local":
            command += f" --launcher {launcher}"
    shutil.copyfile(path, out_dir / "experiment.yaml")
    # Written now, so that the README of an unfinished run (scripts/commit_results.sh) names its command,
    # start and machine; completed (finished, job counts) at the end.
    (out_dir / "run_info.json").write_text(json.dumps(
        {"command": command, "started": start_date, "finished": None, "workers": workers, "launcher": launcher,
         "machine": machine_info()}, indent=2) + "\n", encoding="utf-8")
    (out_dir / "experiment.resolved.json").write_text(json.dumps(experiment.to_dict(), indent=2) + "\n",
                                                      encoding="utf-8")

    prepared = prepare_data(experiment, cache, workers=workers, progress=progress)
    jobs = plan_jobs(experiment, prepared, out_dir, workers)
    prepare_banks(jobs, workers=workers, progress=progress)
    done = [job for job in jobs if job.done]
    for job in done:
        _check_finished(job)
    todo = [job for job in jobs if not job.done]
    log.info("experiment %s: %d jobs, %d finished before, %d to run with %d worker(s)", experiment.name, len(jobs),
             len(done), len(todo), workers)
    bar = tqdm(total=len(jobs), initial=len(done), desc=f"experiment {experiment.name}", unit="job",
               disable=not progress)

    def finished(record: dict[str, Any]) -> None:
        log.info("%s", _describe(record))
        bar.update()

    try:
        launch(todo, run_job, finished, launcher=launcher, workers=workers, ray_address=ray_address,
               gpus_per_job=gpus_per_job)
    finally:
        bar.close()

    seconds = time.perf_counter() - started
    info = {"command": command, "started": start_date,
            "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "seconds": round(seconds, 1), "workers": workers, "launcher": launcher, "jobs_total": len(jobs),
            "jobs_run": len(todo), "jobs_skipped": len(done), "machine": machine_info(),
            "fingerprint": experiment.fingerprint(),
            "data": {k: str(v) for k, v in dataclasses.asdict(prepared).items()}}
    (out_dir / "run_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    tables = rebuild_tables(out_dir)
    return ExperimentResult(out_dir=out_dir, experiment=experiment, runs=tables.runs, markdown=tables.markdown,
                            files=tables.files, jobs_run=len(todo), jobs_skipped=len(done), seconds=seconds)
