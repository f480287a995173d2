"""Held-out conditions: what the robot test condition uses, and what training may use.

The simulated robot recording is a *test* condition (Lakomkin et al. trained "neither using any
training data samples from the robot (e.g. recording robot's ego-noise) nor the real lab impulse
responses"). So, from one noise bank and one RIR bank:

- **robot test** (``SimulatorConfig.condition == "test"``): the last ``noise_test_fraction`` of the
  clips of every noise category (:meth:`NoiseBank.split_clips`, test part) restricted to the
  simulator's categories, and the **lab room**: simulated from the YAML, never drawn from, and
  never part of, the RIR bank (:func:`lab_room_in_bank` checks that no bank room has its size and
  RT60).
- **training** (:func:`training_conditions`): the other clips (train part of the same split) and
  the RIR bank's training rooms. By default it also leaves out every ego-noise category (the
  paper's protocol: no robot noise in training); ``include_ego=True`` keeps their training clips,
  which are still clip-disjoint from the robot test.
- ``SimulatorConfig.condition == "train"`` (simulating robot-like data *for training*) uses the
  training clips and RIR-bank training rooms: :func:`condition_noise`.

Always pass the **full** bank (not a subset): the split is by clip index over the whole bank.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ser_robot.acoustics.noise import CATEGORIES
from ser_robot.acoustics.noise_bank import NoiseBank
from ser_robot.acoustics.rooms import RirBank, RirRecord
from ser_robot.errors import AcousticsError, ConfigError
from ser_robot.sim.config import SimulatorConfig

__all__ = [
    "TrainingConditions",
    "check_disjoint",
    "condition_noise",
    "lab_room_in_bank",
    "sim_categories",
    "training_conditions",
]


def sim_categories(config: SimulatorConfig) -> list[str]:
    """The noise categories the simulator's enabled stages use, in first-use order."""
    names: list[str] = []
    for stage in (config.background, config.ego_noise, config.events):
        if stage.enabled:
            names += [c for c in stage.categories if c not in names]
    return names


def condition_noise(noise_bank: NoiseBank, config: SimulatorConfig, condition: str | None = None) -> NoiseBank:
    """The clips of the simulator's categories for ``condition`` (default ``config.condition``).

    ``"test"``: the test part of :meth:`NoiseBank.split_clips` (``config.noise_test_fraction``);
    ``"train"``: its train part. Raises :class:`AcousticsError` if the bank lacks a category or has
    fewer than 2 clips per category.
    """
    condition = config.condition if condition is None else condition
    if condition not in ("train", "test"):
        raise ConfigError(f"condition must be 'train' or 'test', got {condition!r}")
    names = sim_categories(config)
    missing = [c for c in names if c not in noise_bank.categories]
    if missing:
        raise AcousticsError(f"noise bank {noise_bank.root} lacks the simulator's categories {missing}; build it with "
                             "build_noise_bank(...) including them (the default builds every non-babble category)")
    train, test = noise_bank.split_clips(config.noise_test_fraction)
    part = test if condition == "test" else train
    return part.subset(categories=names) if names else part


def lab_room_in_bank(config: SimulatorConfig, rir_bank: RirBank, tolerance_m: float = 0.05,
                     tolerance_s: float = 0.02) -> list[RirRecord]:
    """The RIRs of ``rir_bank`` simulated in a room like the lab (every side within ``tolerance_m`` m
    and RT60 within ``tolerance_s`` s); empty when the lab is held out, as it must be."""
    dims, rt60 = config.room.dims_m, config.room.rt60_s
    return [r for r in rir_bank.records
            if all(abs(a - b) <= tolerance_m for a, b in zip(r.room_dim, dims)) and abs(r.rt60_target_s - rt60) <= tolerance_s]


@dataclass(frozen=True)
class TrainingConditions:
    """What training augmentation may use. ``noise``: training clips (never a robot-test clip);
    ``rirs``: the RIR bank's training rooms (``None`` without a RIR bank); ``excluded_categories``:
    categories left out entirely (ego-noise by default)."""

    noise: NoiseBank
    rirs: RirBank | None
    excluded_categories: tuple[str, ...]


def training_conditions(noise_bank: NoiseBank, rir_bank: RirBank | None = None, config: SimulatorConfig | None = None,
                        include_ego: bool = False) -> TrainingConditions:
    """The noise clips and RIRs that training augmentation may use, never the robot test condition's.

    ``noise_bank``/``rir_bank``: the full banks; ``config``: the simulator configuration whose test
    condition must stay held out (default: ``config/sim/icub_lab.yaml``). Noise: the train part of
    :meth:`NoiseBank.split_clips` with ``config.noise_test_fraction``, every category of the bank
    except the ego-noise family unless ``include_ego``. RIRs: ``rir_bank.subset("train")``; raises
    :class:`AcousticsError` if a training room is the lab room.
    """
    if config is None:
        from ser_robot.sim.config import load_sim_config

        config = load_sim_config()
    train, _ = noise_bank.split_clips(config.noise_test_fraction)
    excluded = () if include_ego else tuple(c for c in train.categories if CATEGORIES[c].family == "ego")
    kept = [c for c in train.categories if c not in excluded]
    if not kept:
        raise AcousticsError(f"noise bank {noise_bank.root} has no category left for training after excluding "
                             f"{list(excluded)}")
    noise = train.subset(categories=kept)
    rirs = None
    if rir_bank is not None:
        rirs = rir_bank.subset("train")
        clash = lab_room_in_bank(config, rirs)
        if clash:
            raise AcousticsError(f"RIR bank {rir_bank.root}: training room {clash[0].room} ({clash[0].room_dim} m, "
                                 f"RT60 {clash[0].rt60_target_s} s) is the robot lab room; rebuild the bank with "
                                 "another seed or change room.dims_m")
    return TrainingConditions(noise, rirs, excluded)


def check_disjoint(train: NoiseBank | Iterable[str], test: NoiseBank | Iterable[str]) -> None:
    """Raise :class:`AcousticsError` if two banks (or lists of clip files) share a clip file."""
    files = [{r.file for r in b.records} if isinstance(b, NoiseBank) else set(b) for b in (train, test)]
    shared = sorted(files[0] & files[1])
    if shared:
        raise AcousticsError(f"training and test conditions share {len(shared)} noise clip(s), e.g. {shared[0]}")
