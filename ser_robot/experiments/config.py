"""Experiment configuration: ``training/experiments/<name>.yaml`` read and validated.

An experiment names a corpus (and its robot twin), the noise and RIR banks that *training*
augmentation draws from, a speaker-independent protocol, a base training configuration and its
arms. Layout (every key is checked; unknown keys and wrong types raise
:class:`~ser_robot.errors.ConfigError` naming the file and the key)::

    name: lakomkin_table1_cpu       # results go to out/experiments/<name> unless --out is given
    seed: 0                         # base training seed; repetition r trains with seed + r
    cache: out/corpora              # generated corpora, robot twins and banks (reused when present)
    corpus:
      synth: {speakers: 10, sentences: 100, seed: 0}   # or  manifest: path/to/manifest.jsonl
      robot: null                   # robot-twin manifest (only with manifest:); null: simulate it
      sim_config: null              # simulator YAML (null: config/sim/icub_lab.yaml)
      sim_seed: 0
      noise_bank: {seed: 0, seconds_per_clip: 10.0, clips_per_category: 4}
      rir_bank: {seed: 0, count: 64}
    protocol:
      scheme: speaker               # speaker: leave one speaker out | session: leave one session out
      validation: partner           # Lakomkin et al.: the test speaker's session partner validates
                                    # (session scheme: next = the next session validates, or none)
      folds: all                    # all | a count (the first N folds) | a list of test speakers
                                    # (session scheme: test sessions)
      repetitions: 3
    train:
      config: config/train/lakomkin.yaml
      overrides: {workers: 0}       # applied to every arm
    tables: [table1]                # table1 (Lakomkin Table I) and/or table2 (Table II, ablation)
    arms:
      - name: rnn_categorical_clean
        model: lakomkin_rnn
        head: categorical
        training: clean             # clean | augmented: the row of Table I
        removed: null               # tempo | gain | noise | ir: the row of Table II (null: full)
        overrides: {augmentation: {kind: none}}

Relative input paths (manifests, YAMLs) are taken from the working directory when they exist
there, else from the experiment file's folder, else from the repository root; output folders
(``cache``) from the working directory. Nothing here imports torch, except the check of an SSAD arm's
purifier configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ser_robot.config_io import check_keys, check_value, deep_merge, from_mapping, read_yaml_mapping, setting
from ser_robot.data.synth.voices import VOICE_SETS
from ser_robot.errors import ConfigError
from ser_robot.train.config import SEGMENT_MODELS

__all__ = [
    "ABLATIONS",
    "TABLES",
    "TEST_SETS",
    "TRAINING_CONDITIONS",
    "ArmConfig",
    "BankConfig",
    "CorpusConfig",
    "EffectSpec",
    "ExperimentConfig",
    "NoisyConfig",
    "ProtocolConfig",
    "TrainSection",
    "arm_train_overrides",
    "corpus_config",
    "deep_merge",
    "experiment_test_sets",
    "ATTACK_METHODS",
    "AttackSpec",
    "DEFENCES",
    "PurifierSpec",
    "arm_test_sets",
    "load_experiment",
]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TEST_SETS: tuple[str, str] = ("clean", "robot")
"""The two test conditions of every fold: the corpus itself, and its robot re-recording."""
TRAINING_CONDITIONS: tuple[str, str] = ("clean", "augmented")
"""Table I's training conditions ("IEMOCAP" and "IEMOCAP + augmentation and noise")."""
ABLATIONS: dict[str, str] = {"tempo": "p_tempo", "gain": "p_gain", "noise": "p_noise", "ir": "p_ir"}
"""Table II's removable augmentations and the probability that removes each (set to 0)."""
ABLATION_NAMES: dict[str, str] = {"tempo": "-tempo", "gain": "-loudness", "noise": "-background noise",
                                  "ir": "-filter impulse response"}
"""The row names of the paper's Table II."""
TABLES: tuple[str, ...] = ("table1", "table2", "labelled_fraction")
"""``table1``/``table2``: Lakomkin et al.'s tables; ``labelled_fraction``: MTL-AUG's Fig. 3 (figures/labelled_fraction.png)."""
VALIDATIONS: tuple[str, ...] = ("partner", "next", "none")
SCHEMES: tuple[str, ...] = ("speaker", "session", "cross_corpus")
HEADS: tuple[str, ...] = ("categorical", "dimensional")
DEFENCES: tuple[str, ...] = ("none", "ssad")
MODEL_LABELS: dict[str, str] = {"lakomkin_rnn": "RNN", "lakomkin_cnn": "CNN", "mtl_aug": "MTL-AUG",
                                "latif_cnn": "CNN (Latif 2020)", "latif_cnn_lstm": "CNN-LSTM", "densenet": "DenseNet",
                                "densenet_lstm": "DenseNet-LSTM", "densenet_lstm_highway": "DenseNet-LSTM-Highway"}



def _folds(key: str, value: Any) -> str | int | tuple[str, ...]:
    """``protocol.folds``: ``all``, a count >= 1, or a list of test speakers (sessions), repeats dropped."""
    if isinstance(value, (list, tuple)):
        return tuple(dict.fromkeys(check_value(key, value, tuple[str, ...], nonempty=True, min_items=1)))
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ConfigError(f"key {key!r} must be 'all', a count >= 1 or a list of test speakers, got {value!r}")


@dataclass(frozen=True)
class BankConfig:
    """Arguments of :func:`~ser_robot.acoustics.build_noise_bank` or :func:`~ser_robot.acoustics.build_rir_bank`."""

    seed: int = setting(0, min=0)
    seconds_per_clip: float = setting(10.0, above=0)  # noise bank only
    clips_per_category: int = setting(4, min=2)  # noise bank only
    count: int = setting(64, min=2)  # RIR bank only


@dataclass(frozen=True)
class NoisyConfig:
    """``corpus.noisy``: noisy copies of the corpus as extra test sets (Latif et al.'s noisy tests), one per
    SNR in ``snr_db``, named ``snr<dB>``; the category of each utterance's noise drawn from ``noises``
    (categories that need no speech; :mod:`ser_robot.eval.noisy_twin`), seeded by ``seed``."""

    snr_db: tuple[float, ...] = setting((0.0, 10.0, 20.0), min_items=1, unique=True, min=-20, max=60)
    noises: tuple[str, ...] = setting(("kitchen_standin", "park_standin", "traffic_standin"), min_items=1,
                                      unique=True, nonempty=True)
    seed: int = setting(0, min=0)

    @property
    def test_sets(self) -> tuple[str, ...]:
        return tuple(f"snr{snr:g}" for snr in self.snr_db)


@dataclass(frozen=True)
class CorpusConfig:
    """The corpus: a manifest, or ``synth`` settings (``speakers``, ``sentences``, ``seed``) to generate.

    ``robot``: the robot-twin manifest (``None``: simulated with ``sim_config`` and ``sim_seed``).
    ``noise_bank``, ``rir_bank``: the banks built into the cache for training augmentation (the
    simulator draws its held-out test clips from the same noise bank). ``noisy``: noisy test copies
    (:class:`NoisyConfig`; ``None``: none).
    """

    manifest: str | None = setting(None, nonempty=True)
    synth: dict[str, int] | None = None
    robot: str | None = setting(None, nonempty=True)
    sim_config: str | None = setting(None, nonempty=True)
    sim_seed: int = setting(0, min=0)
    noise_bank: BankConfig = setting(default_factory=BankConfig,
                                     keys=("seed", "seconds_per_clip", "clips_per_category"))
    rir_bank: BankConfig = setting(default_factory=BankConfig, keys=("seed", "count"))
    noisy: NoisyConfig | None = None


@dataclass(frozen=True)
class _Synth:
    """``corpus.synth``: the synthetic corpus to generate (``voices``, ``first_voice`` and ``first_sentence``
    kept in the dict only when not at their defaults; see :func:`~ser_robot.data.synth.corpus.generate_corpus`)."""

    speakers: int = setting(min=2)
    sentences: int = setting(min=1)
    seed: int = setting(0, min=0)
    voices: str = setting("core", choices=tuple(VOICE_SETS))
    first_voice: int = setting(0, min=0)
    first_sentence: int = setting(0, min=0)


@dataclass(frozen=True)
class ProtocolConfig:
    """``scheme`` (``speaker``: leave one speaker out; ``session``: leave one session out, both of its
    speakers tested), ``validation`` (``partner``/``next``/``none``; the session scheme takes
    ``next``/``none``), ``folds`` (``"all"``, a count, or test speakers/sessions), ``repetitions``.
    ``unlabelled_sessions``: sessions kept out of every fold; their utterances, labels removed, are the
    unlabelled speech of the arms with ``unlabelled: true`` (MTL-AUG's additional data).
    ``cross_corpus``: train on the whole corpus, select on ``selection_share`` of the experiment's
    ``target_corpus`` speakers and test on the rest, a new split per repetition
    (:func:`~ser_robot.data.splits.cross_corpus`, seeded by the repetition; ``validation`` and ``folds``
    do not apply)."""

    scheme: str = setting("speaker", choices=SCHEMES)
    validation: str = setting("partner", choices=VALIDATIONS)
    folds: str | int | tuple[str, ...] = setting("all", check=_folds)
    repetitions: int = setting(1, min=1)
    unlabelled_sessions: tuple[str, ...] = setting((), nonempty=True, unique=True)
    selection_share: float = setting(0.3, above=0, below=1)


@dataclass(frozen=True)
class ArmConfig:
    """One trained configuration: ``model`` and ``head``, Table I's ``training`` condition, Table II's
    ``removed`` augmentation (``None``: none removed), and training-config ``overrides``; ``label``
    names the model in tables (default ``RNN``/``CNN``); ``unlabelled``: the arm also trains on the
    protocol's ``unlabelled_sessions`` without their labels (a multitask model); ``defence``: ``ssad`` puts
    a purifier, trained against the arm's own model by the experiment's ``purifier`` section, in front of it
    (the test sets then score the defended system; :func:`arm_test_sets` names the extra ones)."""

    name: str = setting(nonempty=True)
    model: str = setting(nonempty=True)
    head: str = setting(choices=HEADS)
    training: str = setting("augmented", choices=TRAINING_CONDITIONS)
    removed: str | None = setting(None, choices=tuple(ABLATIONS))
    label: str = ""
    overrides: dict[str, Any] = setting(default_factory=dict)
    unlabelled: bool = False
    defence: str = setting("none", choices=DEFENCES)


@dataclass(frozen=True)
class EffectSpec:
    """``effects``: one claim of a paper, measured as the paired difference ``b - a`` of two arms' ``metric``
    on ``test_set`` over (repetition, fold) units, with its interval and a verdict against the paper's
    ``expected`` direction (``higher``, ``lower`` or ``not lower``); ``paper``: the paper's figure, as text."""

    name: str = setting(nonempty=True)
    a: str = setting(nonempty=True)
    b: str = setting(nonempty=True)
    description: str = ""
    metric: str = setting("uar", choices=("uar", "accuracy", "macro_f1"))
    test_set: str = setting("clean", nonempty=True)  # clean, robot or a noisy test set (snr0 ...)
    test_set_b: str = ""  # arm b's test set when it differs (e.g. an SSAD arm's <attack>_adaptive)
    expected: str = setting("higher", choices=("higher", "lower", "not lower"))
    paper: str = ""


ATTACK_METHODS: tuple[str, ...] = ("fgsm", "bim", "pgd", "spsa")


@dataclass(frozen=True)
class AttackSpec:
    """``attacks``: an adversarial test set, the clean test utterances attacked white-box against each job's
    trained model on its normalised inputs (:mod:`ser_robot.adversarial`; threat domain ``features``:
    ``epsilon`` in standard deviations of the training population). ``name`` is the test set's name (an
    effect's ``test_set``); ``steps`` are BIM's, PGD's and SPSA's (FGSM takes one step), ``restarts`` PGD's,
    ``samples`` SPSA's loss-value pairs per step (the gradient-free attack that exposes gradient masking),
    ``step_size`` BIM's and PGD's step (0: their default)."""

    name: str = setting(nonempty=True)
    method: str = setting(choices=ATTACK_METHODS)
    epsilon: float = setting(min=0.0, max=10.0)
    steps: int = setting(10, min=1, max=1000)
    restarts: int = setting(1, min=1, max=100)
    samples: int = setting(32, min=1, max=10_000)
    step_size: float = setting(0.0, min=0.0, max=10.0)  # BIM's and PGD's; 0: min(epsilon, 2.5 epsilon / steps)


@dataclass(frozen=True)
class PurifierSpec:
    """``purifier``: how the arms with ``defence: ssad`` train SSAD's purifier (Su and Lee, seeds/003) after
    their model, against that model as the frozen feature extractor
    (:func:`~ser_robot.train.purifier.train_purifier`): the SSAD configuration ``config`` (empty:
    ``config/models/ssad.yaml``) with ``changes``, ``epochs``, ``batch_size``, ``lr`` and ``patience`` (paper:
    Adam at 1e-3, early stopping after 5), the ``frames`` of each training utterance. ``reference``: the
    undefended arm whose attacked predictions are R_no-protect in the protection efficacy (eq. 12) of the arms
    without a purifier of their own (an SSAD arm uses its own model, unpurified)."""

    reference: str = setting(nonempty=True)
    config: str = ""
    changes: dict[str, Any] = setting(default_factory=dict)
    epochs: int = setting(50, min=1, max=10_000)
    batch_size: int = setting(16, min=1, max=4096)
    lr: float = setting(1e-3, above=0.0)
    patience: int = setting(5, min=1, max=1000)
    frames: int = setting(373, min=1, max=100_000)


@dataclass(frozen=True)
class TrainSection:
    """``train``: the base training configuration and the overrides applied to every arm."""

    config: str = setting(nonempty=True)
    overrides: dict[str, Any] = setting(default_factory=dict)


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment (see the module docstring); ``source``: the YAML file it came from."""

    name: str
    source: str
    corpus: CorpusConfig
    protocol: ProtocolConfig
    train_config: str
    train_overrides: dict[str, Any]
    arms: tuple[ArmConfig, ...]
    tables: tuple[str, ...] = ("table1",)
    effects: tuple[EffectSpec, ...] = ()
    target: CorpusConfig | None = None
    seed: int = 0
    cache: str = "out/corpora"
    description: str = ""
    attacks: tuple[AttackSpec, ...] = ()
    purifier: PurifierSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML-safe), the form copied into the results folder."""
        data = dataclasses.asdict(self)
        data["protocol"]["folds"] = (list(self.protocol.folds) if isinstance(self.protocol.folds, tuple)
                                     else self.protocol.folds)
        data["arms"] = [dataclasses.asdict(a) for a in self.arms]
        data["tables"] = list(self.tables)
        data["effects"] = [dataclasses.asdict(e) for e in self.effects]
        data["protocol"]["unlabelled_sessions"] = list(self.protocol.unlabelled_sessions)
        data["attacks"] = [dataclasses.asdict(a) for a in self.attacks]
        return data

    def arm(self, name: str) -> ArmConfig:
        """The arm called ``name``; raises :class:`ConfigError` listing the arms."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise ConfigError(f"experiment {self.name!r} has no arm {name!r}; its arms are {[a.name for a in self.arms]}")

    def fingerprint(self) -> str:
        """A short hash of everything that determines the results (not the name or description)."""
        data = self.to_dict()
        for key in ("name", "source", "description", "tables", "effects"):
            data.pop(key, None)
        if data["corpus"]["noisy"] is None:  # keys added later: absent at their defaults
            del data["corpus"]["noisy"]
        if data["target"] is None:
            del data["target"]
        elif data["target"]["noisy"] is None:
            del data["target"]["noisy"]
        if self.protocol.scheme != "cross_corpus":
            del data["protocol"]["selection_share"]
        if not data["protocol"]["unlabelled_sessions"]:
            del data["protocol"]["unlabelled_sessions"]
        if not data["attacks"]:
            del data["attacks"]
        if data["purifier"] is None:
            del data["purifier"]
        for arm in data["arms"]:
            if not arm["unlabelled"]:
                del arm["unlabelled"]
            if arm["defence"] == "none":
                del arm["defence"]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


# --- helpers ----------------------------------------------------------------------------------------


def resolve_input(value: str | pathlib.Path, base: pathlib.Path) -> pathlib.Path:
    """An input path: absolute as is; else from the working directory, ``base`` or the repository root,
    the first where it exists (the working directory's when none does)."""
    path = pathlib.Path(value).expanduser()
    if path.is_absolute():
        return path
    for root in (pathlib.Path.cwd(), base, REPO_ROOT):
        if (root / path).exists():
            return (root / path).resolve()
    return path.resolve()


def corpus_config(where: str, data: Any, base: pathlib.Path) -> CorpusConfig:
    """The ``corpus`` section of an experiment or model-build YAML (``where``), paths resolved against ``base``."""
    name = f"{where}: corpus"
    corpus = from_mapping(CorpusConfig, data, name)
    if (corpus.manifest is None) == (corpus.synth is None):
        raise ConfigError(f"{name}: give exactly one of 'manifest' (a corpus manifest path) or 'synth' "
                          "({speakers, sentences, seed}: generate the synthetic corpus)")
    synth = None
    if corpus.synth is not None:  # keys at their defaults left out: resolved configurations stay as they were
        spec = dataclasses.asdict(from_mapping(_Synth, corpus.synth, f"{name}: synth"))
        defaults = {"voices": "core", "first_voice": 0, "first_sentence": 0}
        synth = {key: value for key, value in spec.items() if key not in defaults or value != defaults[key]}
    if corpus.robot is not None and corpus.manifest is None:
        raise ConfigError(f"{name}: 'robot' (a twin manifest) goes with 'manifest'; a synth corpus's twin is "
                          "simulated into the cache")

    if corpus.noisy is not None:
        from ser_robot.eval.noisy_twin import speech_free_categories

        usable = speech_free_categories()
        unusable = [noise for noise in corpus.noisy.noises if noise not in usable]
        if unusable:
            raise ConfigError(f"{name}: noisy.noises {unusable} need speech or do not exist; use categories that "
                              f"need no speech: {', '.join(usable)}")

    def resolve(value: str | None) -> str | None:
        return None if value is None else str(resolve_input(value, base))

    return dataclasses.replace(corpus, manifest=resolve(corpus.manifest), synth=synth, robot=resolve(corpus.robot),
                               sim_config=resolve(corpus.sim_config))


def _protocol(where: str, data: Any) -> ProtocolConfig:
    name = f"{where}: protocol"
    if isinstance(data, Mapping) and "validation" not in data and data.get("scheme") == "session":
        data = {**data, "validation": "next"}
    protocol = from_mapping(ProtocolConfig, data, name)
    if protocol.scheme == "session" and protocol.validation == "partner":
        raise ConfigError(f"{name}: the session scheme tests both speakers of a session, so no partner is left to "
                          "validate; use validation: next (the next session validates) or none")
    return protocol


def _arm(where: str, index: int, data: Any) -> ArmConfig:
    name = f"{where}: arms[{index}]"
    if isinstance(data, Mapping) and data.get("label") is None:
        data = {key: value for key, value in data.items() if key != "label"}
    arm = from_mapping(ArmConfig, data, name)
    if not all(c.isalnum() or c in "-_." for c in arm.name):
        raise ConfigError(f"{name}: key 'name' is a folder name: letters, digits, '-', '_' or '.', got {arm.name!r}")
    return arm if arm.label else dataclasses.replace(arm, label=MODEL_LABELS.get(arm.model, arm.model))


def arm_train_overrides(experiment: ExperimentConfig, arm: ArmConfig, repetition: int = 0,
                        noise_bank: str | None = None, rir_bank: str | None = None) -> dict[str, Any]:
    """The training-config overrides of one job: the experiment's, then model/head/seed, then the arm's.

    The built ``noise_bank``/``rir_bank`` (and the experiment's ``sim_config``, whose robot test
    condition training must not see) fill the augmentation keys the configuration leaves null.
    """
    overrides = deep_merge(experiment.train_overrides, {"model": arm.model, "head": arm.head})
    overrides = deep_merge(overrides, arm.overrides)
    overrides["seed"] = int(overrides.get("seed", experiment.seed)) + repetition
    augmentation = dict(overrides.get("augmentation") or {})
    for key, value in (("noise_bank", noise_bank), ("rir_bank", rir_bank),
                       ("sim_config", experiment.corpus.sim_config)):
        if value is not None and augmentation.get(key) is None:
            augmentation[key] = value
    if augmentation:
        overrides["augmentation"] = augmentation
    return overrides


def _purifier(where: str, data: Any, base: pathlib.Path) -> PurifierSpec | None:
    """The ``purifier`` section, its SSAD ``config`` path resolved (:func:`resolve_input`)."""
    if data is None:
        return None
    spec = from_mapping(PurifierSpec, data, f"{where}: purifier")
    return dataclasses.replace(spec, config=str(resolve_input(spec.config, base))) if spec.config else spec


def _check_defences(experiment: ExperimentConfig, where: str) -> None:
    """SSAD arms need the ``purifier`` section and attacks, and its ``reference`` must be an undefended arm."""
    defended = [a.name for a in experiment.arms if a.defence != "none"]
    spec = experiment.purifier
    if defended and spec is None:
        raise ConfigError(f"{where}: arms {defended} say defence: ssad; add a 'purifier' section (its reference arm, "
                          "epochs, ...) that says how to train the purifier")
    if spec is None:
        return
    if not defended:
        raise ConfigError(f"{where}: the 'purifier' section is set but no arm says defence: ssad")
    if not experiment.attacks:
        raise ConfigError(f"{where}: a defence is measured under attack; add 'attacks'")
    if spec.reference not in [a.name for a in experiment.arms] or experiment.arm(spec.reference).defence != "none":
        raise ConfigError(f"{where}: purifier: reference {spec.reference!r} must name an arm without a defence; the "
                          f"arms are {[a.name for a in experiment.arms]}")
    try:
        from ser_robot.models.ssad import load_ssad_config

        load_ssad_config(spec.config or None, **spec.changes)
    except ConfigError as error:
        raise ConfigError(f"{where}: purifier: {error}") from None


def _check_arm_config(experiment: ExperimentConfig, arm: ArmConfig, where: str) -> None:
    """Load the arm's training configuration now, so a bad override fails before any corpus is built."""
    from ser_robot.train.config import load_train_config

    overrides = arm_train_overrides(experiment, arm)
    try:
        config = load_train_config(experiment.train_config, overrides)
    except ConfigError as error:
        raise ConfigError(f"{where}: arm {arm.name!r}: {error}") from None
    aug = config.augmentation
    if config.model in SEGMENT_MODELS:  # augmentation drawn by the segment trainer
        augmented = bool(config.multitask.augmentations)
        if (arm.training == "augmented") != augmented:
            raise ConfigError(f"{where}: arm {arm.name!r} says training: {arm.training} but its "
                              f"multitask.augmentations is {list(config.multitask.augmentations)}")
        return
    if arm.training == "clean" and aug.enabled:
        raise ConfigError(f"{where}: arm {arm.name!r} says training: clean but its augmentation.kind is "
                          f"{aug.kind!r}; add overrides: {{augmentation: {{kind: none}}}}")
    if arm.training == "augmented" and not aug.enabled:
        raise ConfigError(f"{where}: arm {arm.name!r} says training: augmented but its augmentation.kind is 'none'")
    if arm.removed is not None:
        key = ABLATIONS[arm.removed]
        if getattr(aug, key) != 0.0:
            raise ConfigError(f"{where}: arm {arm.name!r} says removed: {arm.removed} but augmentation.{key} is "
                              f"{getattr(aug, key)}; add overrides: {{augmentation: {{{key}: 0}}}}")


def experiment_test_sets(experiment: ExperimentConfig) -> tuple[str, ...]:
    """The test sets every job of ``experiment`` is scored on: clean, robot, then the noisy ones."""
    noisy = (experiment.target or experiment.corpus).noisy
    return (TEST_SETS + (noisy.test_sets if noisy is not None else ())
            + tuple(attack.name for attack in experiment.attacks))


def arm_test_sets(experiment: ExperimentConfig, arm: ArmConfig) -> tuple[str, ...]:
    """The test sets of ``arm``'s jobs: :func:`experiment_test_sets`, and for an SSAD arm the model without its
    purifier on clean input (``clean_unprotected``) and per attack: the attack on the model scored without the
    purifier (``<attack>_unprotected``) and the adaptive attack on purifier and model together
    (``<attack>_adaptive``); the plain ``<attack>`` set of an SSAD arm is the non-adaptive attack, crafted
    against the model alone and scored through the purifier."""
    extra: tuple[str, ...] = ()
    if arm.defence == "ssad":
        extra = ("clean_unprotected", *(f"{a.name}_{kind}" for a in experiment.attacks
                                        for kind in ("unprotected", "adaptive")))
    return experiment_test_sets(experiment) + extra


def load_experiment(path: str | pathlib.Path) -> ExperimentConfig:
    """Read and validate an experiment YAML; raises :class:`ConfigError` naming the file and key.

    Each arm's training configuration is loaded too (base config plus overrides), so a wrong
    override key fails here, before any corpus is generated or model trained.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment {path} not found; see training/experiments/ for examples")
    where = str(path)
    data = read_yaml_mapping(path, "experiment")
    known = ("name", "description", "seed", "cache", "corpus", "target_corpus", "protocol", "train", "tables",
             "effects", "arms", "attacks", "purifier")
    data = check_keys(data, known, ("corpus", "train", "arms"), where=where)
    base = path.resolve().parent
    train = from_mapping(TrainSection, data["train"], f"{where}: train")
    train_config = resolve_input(train.config, base)
    if not train_config.is_file():
        raise ConfigError(f"{where}: train: config {train.config!r} not found (looked in the working directory, "
                          f"{base} and {REPO_ROOT})")
    arms_data = data["arms"]
    if not isinstance(arms_data, list) or not arms_data:
        raise ConfigError(f"{where}: key 'arms' must be a non-empty list of arms, got {arms_data!r}")
    arms = tuple(_arm(where, i, a) for i, a in enumerate(arms_data))
    names = [a.name for a in arms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: arm names must be unique, {duplicates} repeat")
    effects_data = data.get("effects") or []
    if not isinstance(effects_data, list):
        raise ConfigError(f"{where}: key 'effects' must be a list of effects, got {effects_data!r}")
    effects = tuple(from_mapping(EffectSpec, e, f"{where}: effects[{i}]") for i, e in enumerate(effects_data))
    for effect in effects:
        for arm_name in (effect.a, effect.b):
            if arm_name not in names:
                raise ConfigError(f"{where}: effect {effect.name!r} compares arm {arm_name!r}, which is not an arm; "
                                  f"the arms are {names}")
    attacks_data = data.get("attacks") or []
    if not isinstance(attacks_data, list):
        raise ConfigError(f"{where}: key 'attacks' must be a list of attacks, got {attacks_data!r}")
    attacks = tuple(from_mapping(AttackSpec, a, f"{where}: attacks[{i}]") for i, a in enumerate(attacks_data))
    tables = data.get("tables", ["table1"])
    if isinstance(tables, str):
        tables = [tables]
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: key 'tables' must be a list of {list(TABLES)}, got {tables!r}")
    for table in tables:
        check_value("tables", table, str, where=where, choices=TABLES)
    experiment = ExperimentConfig(
        name=check_value("name", data.get("name") or path.stem, str, where=where, nonempty=True),
        source=str(path.resolve()), corpus=corpus_config(where, data["corpus"], base),
        protocol=_protocol(where, data.get("protocol")), train_config=str(train_config),
        train_overrides=train.overrides, arms=arms, tables=tuple(dict.fromkeys(tables)), effects=effects,
        target=corpus_config(f"{where}: target_corpus", data["target_corpus"], base)
        if data.get("target_corpus") is not None else None,
        seed=check_value("seed", data.get("seed", 0), int, where=where, min=0),
        cache=check_value("cache", data.get("cache", "out/corpora"), str, where=where, nonempty=True),
        description=str(data.get("description") or "").strip(), attacks=attacks,
        purifier=_purifier(where, data.get("purifier"), base))
    clashing = sorted({a.name for a in attacks} & set(experiment_test_sets(dataclasses.replace(experiment, attacks=()))))
    if clashing or len({a.name for a in attacks}) < len(attacks):
        raise ConfigError(f"{where}: attack names must be unique and differ from the other test sets; "
                          f"{clashing or [a.name for a in attacks]} clash")
    if attacks and any(a.head != "categorical" for a in arms):
        raise ConfigError(f"{where}: attacks are scored on the categorical head; every arm must be categorical")
    if "table2" in experiment.tables:
        full = [a for a in arms if a.removed is None and a.training == "augmented" and a.head == "categorical"]
        if not full or not any(a.removed for a in arms):
            raise ConfigError(f"{where}: table2 (the ablation) needs a categorical arm with full augmentation "
                              "(removed: null) and at least one arm with 'removed' set")
    if (experiment.protocol.scheme == "cross_corpus") != (experiment.target is not None):
        raise ConfigError(f"{where}: protocol.scheme cross_corpus and target_corpus go together (the corpus to select "
                          "and test on, distinct from the training corpus); give both or neither")
    if experiment.target is not None and experiment.protocol.unlabelled_sessions:
        raise ConfigError(f"{where}: unlabelled_sessions apply to the session and speaker schemes, not cross_corpus")
    _check_defences(experiment, where)
    for effect in effects:
        for arm_name, test_set in ((effect.a, effect.test_set), (effect.b, effect.test_set_b or effect.test_set)):
            sets = arm_test_sets(experiment, experiment.arm(arm_name))
            if test_set not in sets:
                raise ConfigError(f"{where}: effect {effect.name!r} reads test set {test_set!r} of arm {arm_name!r}; "
                                  f"its test sets are {list(sets)}")
    for arm in arms:
        if arm.unlabelled and not experiment.protocol.unlabelled_sessions:
            raise ConfigError(f"{where}: arm {arm.name!r} says unlabelled: true but protocol.unlabelled_sessions "
                              "is empty; name the sessions whose speech it trains on without labels")
        _check_arm_config(experiment, arm, where)
    return experiment
