"""Training configuration: :class:`TrainConfig`, read from YAML and validated.

The defaults live in one place, the field defaults of :class:`TrainConfig` and
:class:`AugmentationConfig`; they are the training details of Lakomkin et al. (IROS 2018,
section III.F) where the paper gives one:

- Adam, learning rate ``3e-4`` (``lr``); gradient *values* clipped to ``[-1, 1]`` (``clip``,
  ``torch.nn.utils.clip_grad_value_``); batch size 32 (``batch_size``);
- learning rate halved when the validation result stops improving (``lr_factor: 0.5``;
  ``ReduceLROnPlateau``; the paper gives no patience, ``lr_patience: 3`` is ours); or, with
  ``lr_decay_every: N`` (utterance trainer), multiplied by ``lr_decay`` every N iterations instead
  (Ren et al.: 0.9 every 100);
- SortaGrad: the first epoch in order of increasing duration (``sortagrad: true``);
- z-normalised features with training-set statistics (always done, see
  :mod:`ser_robot.train.features`);
- the validation speaker selects the model (``monitor``) and stops training
  (``early_stop_patience``: ours, the paper gives none; nor does it give a number of epochs).

Two settings for models that must work outside their corpus (issue 15), off by default so that
the papers' experiments are unchanged: ``level_normalization: agc`` runs the live feature node's
level normaliser (:func:`ser_robot.audio.level_normalizer.normalize_level`) on every training
rendition before its features, so training sees what the node computes; ``normalization:
speaker`` z-normalises each utterance's frames with its speaker's statistics instead of the
population's (:mod:`ser_robot.features.stream_normalization`: live, each stream's running ones).
With it, ``speaker_statistics`` says over what: ``clean`` (the speaker's clean renditions, for every
rendition) or ``rendition`` (the speaker's renditions of the same bank version, so that an augmented
rendition is normalised by statistics that carry the rooms and noises of its draw, as a live stream's
running statistics carry its own room's).
Both need ``augmentation.mode: bank``. Keys at these defaults are left out of :meth:`TrainConfig.to_dict`,
so the configurations (and experiment fingerprints) of runs made before they existed are unchanged.

A segment model (:data:`SEGMENT_MODELS`: MTL-AUG and the Latif 2020 models) trains with
:mod:`ser_robot.train.segments` and the ``multitask`` section (:class:`MultitaskConfig`, named after its
first user, MTL-AUG); ``model_hyper`` sets hyper-parameters over the model configuration's (the switches
of the Table 7 ablations). Both, and each key added to the section since, are left out of ``to_dict`` at
their defaults too.

The paper does not name its dimensional loss: ``dimensional_loss: mse`` is our default (it
reports MAE and Pearson's r, which MSE training serves; ``ccc`` = ``1 - mean CCC`` over arousal
and valence is available). ``monitor: auto`` is UAR for ``categorical`` and the mean MAE of
arousal and valence for ``dimensional`` (the paper's metrics).

A YAML file holds a mapping of these keys; unknown keys, wrong types and out-of-range values
raise :class:`~ser_robot.errors.ConfigError` naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ser_robot.config_io import (check_fields, check_value, deep_merge, from_mapping, parse_key_values,
                                 read_yaml_mapping, setting)
from ser_robot.errors import ConfigError
from ser_robot.features.sets import FEATURE_SETS

__all__ = [
    "HEADS",
    "MONITORS",
    "ADVERSARIAL_KINDS",
    "AdversarialConfig",
    "AugmentationConfig",
    "MULTITASK_AUGMENTATIONS",
    "SAMPLINGS",
    "SEGMENT_MODELS",
    "MultitaskConfig",
    "TrainConfig",
    "load_train_config",
    "parse_overrides",
]

HEADS: tuple[str, ...] = ("categorical", "dimensional")
MONITORS: dict[str, str] = {
    "uar": "max", "accuracy": "max", "macro_f1": "max",  # categorical
    "mae": "min", "ccc": "max", "pearson_r": "max",  # dimensional: mean over arousal and valence
    "loss": "min",  # either head
}
"""Validation metrics a run can monitor, and whether higher (``max``) or lower is better."""
_CATEGORICAL_MONITORS = ("uar", "accuracy", "macro_f1", "loss")
_DIMENSIONAL_MONITORS = ("mae", "ccc", "pearson_r", "loss")
AUGMENTATIONS: tuple[str, ...] = ("none", "lakomkin")
AUGMENTATION_MODES: tuple[str, ...] = ("online", "bank")
BANK_DTYPES: tuple[str, ...] = ("float16", "float32")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
AMP_DTYPES: tuple[str, ...] = ("bf16", "fp16")
LEVEL_NORMALIZATIONS: tuple[str, ...] = ("off", "agc")
NORMALIZATIONS: tuple[str, ...] = ("global", "speaker")
SPEAKER_STATISTICS: tuple[str, ...] = ("clean", "rendition")
_BANK_ONLY = {"level_normalization": "off", "normalization": "global"}
"""Keys whose non-default values need ``augmentation.mode: bank`` (features rendered once, as live)."""
MULTITASK_AUGMENTATIONS: tuple[str, ...] = ("speed", "specaugment", "mixup")
SEGMENT_MODELS: tuple[str, ...] = ("mtl_aug", "latif_cnn", "latif_cnn_lstm", "densenet", "densenet_lstm",
                                   "densenet_lstm_highway")
"""Models trained by :mod:`ser_robot.train.segments` (their class is a
:class:`~ser_robot.models.segments.SegmentModel`): they render their features once per utterance themselves,
so ``level_normalization`` needs no bank for them."""
SAMPLINGS: tuple[str, ...] = ("draw", "all")
DIMENSIONAL_LOSSES: tuple[str, ...] = ("mse", "ccc")


@dataclass(frozen=True)
class AugmentationConfig:
    """On-the-fly waveform augmentation of the training batches.

    ``kind``: ``none`` or ``lakomkin`` (:func:`ser_robot.augment.lakomkin_chain`: tempo, gain,
    background noise, room impulse response, in that order). ``p_*``: per-example probability of
    each step (the paper gives none; 0.5 is ours). ``noise_bank``: folder of a noise bank (only its
    training clips are used, :func:`ser_robot.sim.conditions.training_conditions`); ``None`` adds
    Gaussian noise instead. ``rir_bank``: folder of a RIR bank (its training rooms); ``None``
    leaves out the IR step. ``p_channel`` (beyond the paper; 0: off): a random loudspeaker / microphone
    response after the gain step (:class:`~ser_robot.augment.transforms.RandomChannel`). ``nsr_power``:
    read the paper's noise-to-signal ratio as a power ratio (default: amplitude). ``include_ego``: also train on ego-noise clips (the paper never
    did). ``sim_config``: simulator YAML whose robot test condition is held out (``None``: the
    default ``config/sim/icub_lab.yaml``).

    ``mode``: ``online`` renders the chain afresh for every batch; ``bank`` precomputes
    ``versions`` renditions of every training utterance once (version 0 clean, the others
    independent draws of the chain, seeded by ``bank_seed``), stores their features in
    ``bank_dir`` as ``bank_dtype`` and draws one rendition per utterance and epoch
    (:mod:`ser_robot.train.bank`). ``bank_manifest``: the manifest the bank covers (``None``:
    the fold's training part); a bank over a whole corpus serves every fold, and only the
    fold's training speakers are ever read from it.
    """

    kind: str = setting("none", choices=AUGMENTATIONS)
    p_tempo: float = setting(0.5, min=0.0, max=1.0, what="a probability")
    p_gain: float = setting(0.5, min=0.0, max=1.0, what="a probability")
    p_noise: float = setting(0.5, min=0.0, max=1.0, what="a probability")
    p_ir: float = setting(0.5, min=0.0, max=1.0, what="a probability")
    p_channel: float = setting(0.0, min=0.0, max=1.0, what="a probability")
    noise_bank: str | None = None
    rir_bank: str | None = None
    nsr_power: bool = False
    include_ego: bool = False
    sim_config: str | None = None
    mode: str = setting("online", choices=AUGMENTATION_MODES)
    versions: int = setting(8, min=2)  # version 0 is clean, the others augmented
    bank_seed: int = setting(0, min=0)
    bank_dtype: str = setting("float16", choices=BANK_DTYPES)
    bank_dir: str = "out/banks"
    bank_manifest: str | None = None

    @property
    def enabled(self) -> bool:
        return self.kind != "none"


@dataclass(frozen=True)
class MultitaskConfig:
    """Training of a segment model (:data:`SEGMENT_MODELS`; the section is named after MTL-AUG, seeds/002 4.2-4.3).

    ``sampling: draw`` (MTL-AUG):
    ``augmentations``: the augmentation types drawn for the training items besides ``none``
    (:data:`MULTITASK_AUGMENTATIONS`); each epoch every utterance is shown once, as one type drawn
    uniformly, and the augmentation-type classifier learns which. ``speed``: one of the copies rendered
    once at ``speeds`` (paper: 0.9 and 1.1, SoX ``speed``); ``specaugment``: ``freq_masks`` masks of
    up to ``freq_width`` bands and ``time_masks`` of up to ``time_width`` frames (ours); ``mixup``: a
    partner from the same batch, ``lam ~ Beta(mixup_alpha, mixup_alpha)`` (ours), the emotion
    targets mixed alike. ``unlabelled_manifest``: speech whose labels are ignored (paper: LibriSpeech
    100 h), which trains only the encoder, the decoder and the augmentation-type classifier; none of
    its speakers may be a validation or test speaker. ``labelled_fraction``: the share of the
    training utterances that keep their labels (Fig. 3, nested: a smaller fraction's labelled set is
    inside a larger one's); the rest count as unlabelled. ``min_lr``: training stops when the
    learning rate, halved after ``lr_patience`` epochs without improvement (the best weights
    restored each time unless ``restore_best`` is off), falls below it (paper: 1e-5); a positive
    ``early_stop_patience`` of the training configuration also stops it after that many epochs without
    improvement.

    ``sampling: all`` (Latif et al. 2020, seeds/000 4.2): each epoch shows every segment of
    ``segment_frames`` of every training utterance, each carrying its utterance's label, and with
    ``speed`` in ``augmentations`` every segment of each speed copy too (the copies are extra training
    data); with ``mixup`` every batch is mixed. ``specaugment`` and unlabelled speech are for ``draw``.
    """

    augmentations: tuple[str, ...] = setting(MULTITASK_AUGMENTATIONS, choices=MULTITASK_AUGMENTATIONS,
                                             unique=True)
    speeds: tuple[float, ...] = setting((0.9, 1.1), min_items=1, above=0.25, max=4.0)
    freq_masks: int = setting(2, min=0)
    freq_width: int = setting(27, min=0)
    time_masks: int = setting(2, min=0)
    time_width: int = setting(40, min=0)
    mixup_alpha: float = setting(0.2, above=0)
    unlabelled_manifest: str | None = None
    labelled_fraction: float = setting(1.0, above=0.0, max=1.0)
    min_lr: float = setting(1e-5, above=0)
    sampling: str = setting("draw", choices=SAMPLINGS)
    restore_best: bool = True


ADVERSARIAL_KINDS: tuple[str, ...] = ("none", "vanilla", "similarity")


@dataclass(frozen=True)
class AdversarialConfig:
    """Adversarial training (Ren et al. 2020, seeds/001, 3.2; :mod:`ser_robot.train.adversarial`).

    ``kind``: ``none``, ``vanilla`` (``alpha L(x) + (1 - alpha) L(x')``, alpha = 0.5) or ``similarity``
    (``beta L(x) + gamma L(x') + (1 - beta - gamma) ||v - v'||_2``, beta = gamma = 0.4); ``x'`` the FGSM
    twin of each batch at ``epsilon`` standard deviations of the normalised inputs, from optimiser step
    ``start_iteration`` on (paper: 1000). Categorical head only.
    """

    kind: str = setting("none", choices=ADVERSARIAL_KINDS)
    epsilon: float = setting(0.05, min=0.0, max=10.0)
    start_iteration: int = setting(1000, min=0)
    alpha: float = setting(0.5, min=0.0, max=1.0)
    beta: float = setting(0.4, min=0.0, max=1.0)
    gamma: float = setting(0.4, min=0.0, max=1.0)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.beta + self.gamma > 1.0:
            raise ConfigError(f"adversarial: beta + gamma must be at most 1 (the similarity term weighs "
                              f"1 - beta - gamma), got {self.beta} + {self.gamma}")


_LATER_AUGMENTATION_DEFAULTS: dict[str, Any] = {"p_channel": 0.0}
"""Keys of the ``augmentation`` section added after runs were made with it: left out of ``to_dict`` at their default."""

_LATER_MULTITASK_DEFAULTS: dict[str, Any] = {"sampling": "draw", "restore_best": True}
"""Keys of the ``multitask`` section added after runs were made with it: left out of ``to_dict`` at their default."""


_LATER_DEFAULTS: dict[str, Any] = {**_BANK_ONLY, "speaker_statistics": "clean", "model_hyper": {},
                                   "multitask": MultitaskConfig(), "adversarial": AdversarialConfig(),
                                   "lr_decay_every": 0, "lr_decay": 0.9}
"""Keys added after runs were made with this format: left out of ``to_dict`` at their default."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (see the module docstring for the defaults' sources).

    ``model``: name in the model registry (:mod:`ser_robot.models`); ``model_config``: YAML file of
    that model's hyper-parameters (``None``: its defaults). ``workers``: DataLoader processes
    (0: load in the main process). ``cache``: keep decoded waveforms in memory after the first
    read. ``amp``: mixed precision on CUDA (``torch.autocast`` with ``amp_dtype``; a GradScaler
    for fp16); ignored on the CPU. ``deterministic``: ``torch.use_deterministic_algorithms``
    during the run (see :mod:`ser_robot.train.trainer`). ``bucket_batches``: after the first
    epoch, utterances are shuffled, cut into buckets of this many batches, sorted by duration
    within a bucket and the batches shuffled (1 = plain random batches).
    """

    model: str = setting(nonempty=True, what="a model's registry name")
    model_config: str | None = None
    model_hyper: dict[str, Any] = setting(default_factory=dict)
    feature_set: str = setting("egemaps", choices=FEATURE_SETS)
    head: str = setting("categorical", choices=HEADS)
    epochs: int = setting(100, min=1)
    batch_size: int = setting(32, min=1)
    lr: float = setting(3e-4, above=0, what="a learning rate")
    clip: float = setting(1.0, min=0)  # 0 disables value clipping
    lr_factor: float = setting(0.5, above=0, below=1)
    lr_patience: int = setting(3, min=0)
    lr_decay_every: int = setting(0, min=0)  # > 0: lr x lr_decay every this many iterations, no plateau rule
    lr_decay: float = setting(0.9, above=0, below=1)
    early_stop_patience: int = setting(10, min=0)
    monitor: str = "auto"
    dimensional_loss: str = setting("mse", choices=DIMENSIONAL_LOSSES)
    sortagrad: bool = True
    bucket_batches: int = setting(50, min=1)
    augmentation: AugmentationConfig = setting(default_factory=AugmentationConfig)
    seed: int = setting(0, min=0)
    device: str = setting("auto", choices=DEVICES)
    amp: bool = True
    amp_dtype: str = setting("bf16", choices=AMP_DTYPES)
    deterministic: bool = True
    workers: int = setting(0, min=0)
    cache: bool = True
    sample_rate: int = setting(16000, min=1)
    level_normalization: str = setting("off", choices=LEVEL_NORMALIZATIONS)
    normalization: str = setting("global", choices=NORMALIZATIONS)
    speaker_statistics: str = setting("clean", choices=SPEAKER_STATISTICS)
    multitask: MultitaskConfig = setting(default_factory=MultitaskConfig)
    adversarial: AdversarialConfig = setting(default_factory=AdversarialConfig)

    def __post_init__(self) -> None:
        check_fields(self)  # types, ranges and choices (an integer is a valid float setting)
        allowed = _CATEGORICAL_MONITORS if self.head == "categorical" else _DIMENSIONAL_MONITORS
        check_value("monitor", self.monitor, str, choices=("auto",) + allowed)
        changed = [key for key, default in _BANK_ONLY.items() if getattr(self, key) != default]
        if changed and self.augmentation.mode != "bank" and self.model not in SEGMENT_MODELS:
            raise ConfigError(f"key(s) {changed} need augmentation.mode: bank (features rendered once, as the live "
                              "node computes them); set augmentation.mode: bank")
        if self.speaker_statistics != "clean" and self.normalization != "speaker":
            raise ConfigError(f"speaker_statistics: {self.speaker_statistics} applies to normalization: speaker, got "
                              f"normalization: {self.normalization}; set normalization: speaker or remove the key")
        if self.adversarial.kind != "none" and (self.head != "categorical" or self.model in SEGMENT_MODELS):
            raise ConfigError(f"adversarial training (kind {self.adversarial.kind!r}) is for the categorical head of "
                              f"utterance models, got head {self.head!r} and model {self.model!r}")

    @property
    def monitor_metric(self) -> str:
        """The validation metric that selects the model (``monitor`` with ``auto`` resolved)."""
        if self.monitor != "auto":
            return self.monitor
        return "uar" if self.head == "categorical" else "mae"

    @property
    def monitor_mode(self) -> str:
        """``"max"`` or ``"min"``: the direction in which :attr:`monitor_metric` improves."""
        return MONITORS[self.monitor_metric]

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON/``weights_only``-safe), the inverse of :meth:`from_dict`."""
        data = dataclasses.asdict(self)
        for key, default in _LATER_DEFAULTS.items():
            if getattr(self, key) == default:
                del data[key]
        for key, default in _LATER_AUGMENTATION_DEFAULTS.items():
            if data["augmentation"][key] == default:
                del data["augmentation"][key]
        if "multitask" in data:  # lists, as YAML and a checkpoint hold them
            data["multitask"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["multitask"].items()
                                 if k not in _LATER_MULTITASK_DEFAULTS or v != _LATER_MULTITASK_DEFAULTS[k]}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "training configuration") -> TrainConfig:
        """Build from a mapping; raises :class:`ConfigError` naming ``where`` and the key at fault."""
        values = dict(data) if isinstance(data, Mapping) else data
        if isinstance(values, dict) and isinstance(values.get("augmentation"), str):
            values["augmentation"] = {"kind": values["augmentation"]}  # shorthand: augmentation: lakomkin
        return from_mapping(cls, values, where, hint="set 'model' to a model's registry name")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (validated)."""
        return dataclasses.replace(self, **changes)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``ser-robot train --set``) -> mapping for :func:`load_train_config`
    (:func:`ser_robot.config_io.parse_key_values`: ``augmentation.p_ir=0.2`` reaches a nested key)."""
    return parse_key_values(pairs)


def load_train_config(path: str | pathlib.Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read, merge ``overrides`` into, and validate a training YAML file.

    Relative bank, simulator and model-config paths are taken from the working directory when
    they exist there, else from the YAML file's folder.
    Raises :class:`ConfigError` naming the file and key.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"training configuration {path} not found; see config/train/lakomkin.yaml for an example")
    data = read_yaml_mapping(path, "training configuration", empty_ok=True)
    data = deep_merge(data, overrides or {})
    root = path.resolve().parent
    if isinstance(data.get("model_config"), str):
        data["model_config"] = _resolve(root, data["model_config"])
    augmentation = data.get("augmentation")
    if isinstance(augmentation, Mapping):
        augmentation = dict(augmentation)
        for key in ("noise_bank", "rir_bank", "sim_config", "bank_manifest"):
            if isinstance(augmentation.get(key), str):
                augmentation[key] = _resolve(root, augmentation[key])
        data["augmentation"] = augmentation
    return TrainConfig.from_dict(data, where=str(path))


def _resolve(root: pathlib.Path, value: str) -> str:
    candidate = pathlib.Path(value).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    # paths are relative to the YAML's folder, or to the working directory if they exist there
    return str(candidate.resolve()) if candidate.exists() else str((root / candidate).resolve())
