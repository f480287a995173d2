"""The simulator's configuration: ``config/sim/*.yaml`` read into frozen dataclasses, validated once.

The YAML is the single source of the values: every key must be present (a missing key, an
unknown key, a wrong type or an out-of-range value raises :class:`~ser_robot.errors.ConfigError`
naming the key as ``section.key``), and the code holds no second set of defaults. Overrides
(nested mappings, e.g. ``{"events": {"probability": 0.0}}``) are applied on top of the file
before validation, so they are checked the same way.

Units: Hz, dB, seconds, metres, degrees (azimuth: ROS REP 103, 0 = ahead, positive = left).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ser_robot.acoustics.noise import CATEGORIES, SAMPLE_RATE
from ser_robot.config_io import check_value, deep_merge, from_mapping, read_yaml_mapping, setting
from ser_robot.errors import ConfigError

__all__ = [
    "CONDITIONS",
    "LEVEL_REFERENCES",
    "BackgroundConfig",
    "EgoNoiseConfig",
    "EventsConfig",
    "HeadConfig",
    "LevelsConfig",
    "LoudspeakerConfig",
    "MicrophoneConfig",
    "RoomConfig",
    "SimulatorConfig",
    "default_sim_config_path",
    "load_sim_config",
]

CONDITIONS = ("test", "train")
"""``test``: the robot-lab condition (held-out noise clips, the dedicated lab room);
``train``: training noise clips and RIR-bank training rooms (see :mod:`ser_robot.sim.conditions`)."""

LEVEL_REFERENCES = ("fixed", "utterance")
"""How ``snr_db`` values are referenced: to ``levels.reference_dbfs`` (noise at a fixed level,
quiet utterances get a lower SNR, as on the real robot) or to each utterance's own speech level."""

_NOISE_CHOICES = tuple(name for name, category in CATEGORIES.items() if not category.needs_speech)
"""The noise categories a section may draw from (those that need no speech)."""
_CATEGORIES = {"choices": _NOISE_CHOICES, "min_items": 1, "unique": True}
_HIGHEST_HZ = 0.49 * SAMPLE_RATE


def _ripple(key: str, value: Any) -> tuple[tuple[float, float, float], ...]:
    """``loudspeaker.ripple``: a list of peaking-EQ bands ``[centre_hz, gain_db, q]``."""
    bands = []
    for i, band in enumerate(check_value(key, value, tuple[Any, ...])):
        if not isinstance(band, (list, tuple)) or len(band) != 3:
            raise ConfigError(f"key '{key}[{i}]' must be [centre_hz, gain_db, q], got {band!r}")
        bands.append((check_value(f"{key}[{i}] centre_hz", band[0], float, min=20.0, max=_HIGHEST_HZ),
                      check_value(f"{key}[{i}] gain_db", band[1], float, min=-12.0, max=12.0),
                      check_value(f"{key}[{i}] q", band[2], float, min=0.1, max=20.0)))
    return tuple(bands)


@dataclass(frozen=True)
class LevelsConfig:
    """``reference``: one of :data:`LEVEL_REFERENCES`; ``reference_dbfs``: active speech level (dBFS,
    at the ears) that the ``snr_db`` values refer to when ``reference == "fixed"``;
    ``active_range_db``: frames within this many dB of the loudest 10 ms frame count as active speech."""

    reference: str = setting(choices=LEVEL_REFERENCES)
    reference_dbfs: float = setting(min=-80.0, max=0.0)
    active_range_db: float = setting(min=10.0, max=80.0)


@dataclass(frozen=True)
class LoudspeakerConfig:
    """Band limits (Butterworth, Hz and order), peaking EQ ripple ``(centre Hz, gain dB, Q)`` and
    ``drive``: the tanh soft clip ``tanh(drive * x) / drive`` (small signals unchanged)."""

    enabled: bool
    highpass_hz: float = setting(min=10.0, max=1000.0)
    highpass_order: int = setting(min=1, max=8)
    lowpass_hz: float = setting(min=1000.0, max=_HIGHEST_HZ)
    lowpass_order: int = setting(min=1, max=8)
    ripple: tuple[tuple[float, float, float], ...] = setting(check=_ripple)
    drive: float = setting(min=0.01, max=20.0)


@dataclass(frozen=True)
class RoomConfig:
    """The lab: shoe box ``dims_m`` (x, y, z), target ``rt60_s``; head centre ``head_position_m``,
    facing ``head_yaw_deg`` (deg from +x); loudspeaker ``source_distance_m`` from the head centre at
    ``source_azimuth_deg`` (REP 103) and ``source_height_m``; image order capped at ``max_order_cap``."""

    dims_m: tuple[float, float, float] = setting(min=1.5, max=50.0)
    rt60_s: float = setting(min=0.1, max=3.0)
    max_order_cap: int = setting(min=1, max=200)
    head_position_m: tuple[float, float, float] = setting(min=0.0, max=50.0)
    head_yaw_deg: float = setting(min=-360.0, max=360.0)
    source_distance_m: float = setting(min=0.3, max=20.0)
    source_azimuth_deg: float = setting(min=-180.0, max=180.0)
    source_height_m: float = setting(min=0.0, max=50.0)


@dataclass(frozen=True)
class HeadConfig:
    """Two ears ``ear_spacing_m`` apart (head radius = half of it) pointing at +-``ear_angle_deg``;
    ``shadow``: apply the spherical-head shadow filter (Brown & Duda 1998) to the direct sound."""

    ear_spacing_m: float = setting(min=0.05, max=0.5)
    ear_angle_deg: float = setting(min=45.0, max=135.0)
    shadow: bool


@dataclass(frozen=True)
class BackgroundConfig:
    """Diffuse lab noise: a category drawn per utterance from ``categories``, at ``snr_db``;
    ``diffuse``: two-ear coherence of a spherically isotropic field (else independent ears)."""

    enabled: bool
    categories: tuple[str, ...] = setting(**_CATEGORIES)
    snr_db: float = setting(min=-20.0, max=80.0)
    diffuse: bool


@dataclass(frozen=True)
class EgoNoiseConfig:
    """Robot ego-noise at the microphones: a category from ``categories`` at ``snr_db``; near field:
    ``ear_coherence`` (0..1) of a shared component, the left ear ``level_difference_db`` louder."""

    enabled: bool
    categories: tuple[str, ...] = setting(**_CATEGORIES)
    snr_db: float = setting(min=-20.0, max=80.0)
    ear_coherence: float = setting(min=0.0, max=1.0)
    level_difference_db: float = setting(min=-20.0, max=20.0)


@dataclass(frozen=True)
class EventsConfig:
    """Household events with ``probability`` per utterance, at ``snr_db`` (event active level vs
    speech), played from one of ``positions_m`` in the lab (test condition)."""

    enabled: bool
    probability: float = setting(min=0.0, max=1.0)
    categories: tuple[str, ...] = setting(**_CATEGORIES)
    snr_db: float = setting(min=-20.0, max=80.0)
    positions_m: tuple[tuple[float, float, float], ...] = setting(min=0.0, max=50.0, min_items=1)


@dataclass(frozen=True)
class MicrophoneConfig:
    """Preamp ``gain_db`` (applied to everything acoustic), self-noise (white, ``self_noise_dbfs`` RMS
    per ear, independent), then ``bits``-bit quantisation (16: PCM_16 WAV)."""

    gain_db: float = setting(min=-40.0, max=40.0)
    self_noise: bool
    self_noise_dbfs: float = setting(min=-120.0, max=-20.0)
    bits: int = setting(min=16, max=16)


@dataclass(frozen=True)
class SimulatorConfig:
    """The whole simulator configuration (see ``config/sim/icub_lab.yaml`` for the meaning of each key).

    ``condition``: ``"test"`` or ``"train"`` (:data:`CONDITIONS`); ``noise_test_fraction``: the
    fraction of each noise category's clips reserved for the robot test condition
    (:meth:`~ser_robot.acoustics.NoiseBank.split_clips`). ``source``: the YAML path (or ``None``).
    """

    condition: str = setting(choices=CONDITIONS)
    noise_test_fraction: float = setting(min=0.01, max=0.9)
    levels: LevelsConfig
    loudspeaker: LoudspeakerConfig
    room: RoomConfig
    head: HeadConfig
    background: BackgroundConfig
    ego_noise: EgoNoiseConfig
    events: EventsConfig
    microphone: MicrophoneConfig
    source: str | None = dataclasses.field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain YAML/JSON types (tuples become lists), without ``source``."""
        data = dataclasses.asdict(self)
        data.pop("source")
        return json.loads(json.dumps(data))

    def key(self) -> str:
        """SHA-256 (hex) of :meth:`to_dict`: identifies the configuration in caches and manifests."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def replace(self, **sections: Mapping[str, Any] | Any) -> SimulatorConfig:
        """A validated copy with ``sections`` overridden (mappings merged into their section)."""
        return _build(deep_merge(self.to_dict(), sections), self.source)

    def ear_positions(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(left, right) ear positions in the lab room, metres."""
        from ser_robot.sim.head import ear_positions

        ears = ear_positions(self.room.head_position_m, self.room.head_yaw_deg, self.head.ear_spacing_m)
        return tuple(map(float, ears[:, 0])), tuple(map(float, ears[:, 1]))  # type: ignore[return-value]

    def source_position(self) -> tuple[float, float, float]:
        """The loudspeaker's position in the lab room, metres."""
        r = self.room
        angle = math.radians(r.head_yaw_deg + r.source_azimuth_deg)
        horizontal = math.sqrt(max(r.source_distance_m ** 2 - (r.source_height_m - r.head_position_m[2]) ** 2, 0.0))
        return (r.head_position_m[0] + horizontal * math.cos(angle), r.head_position_m[1] + horizontal * math.sin(angle),
                r.source_height_m)


# -- checks beyond each key's own type and range ------------------------------------------------------------

_KEYS = tuple(f.name for f in dataclasses.fields(SimulatorConfig) if f.name != "source")


def _build(raw: Mapping[str, Any], source: str | None) -> SimulatorConfig:
    config = from_mapping(SimulatorConfig, raw, keys=_KEYS, hint="every key must be set (see config/sim/icub_lab.yaml)")
    config = dataclasses.replace(config, source=source)
    _cross_check(config)
    return config


def _inside(name: str, point: tuple[float, ...], dims: tuple[float, ...], margin: float) -> None:
    for axis, (v, d) in enumerate(zip(point, dims)):
        if not margin <= v <= d - margin:
            raise ConfigError(f"{name} {list(point)} is not inside room.dims_m {list(dims)} with a {margin} m margin "
                              f"(axis {'xyz'[axis]}); move it or enlarge the room") from None


def _cross_check(c: SimulatorConfig) -> None:
    ls = c.loudspeaker
    if ls.highpass_hz >= ls.lowpass_hz:
        raise ConfigError(f"loudspeaker.highpass_hz ({ls.highpass_hz}) must be below loudspeaker.lowpass_hz "
                          f"({ls.lowpass_hz})") from None
    room = c.room
    _inside("room.head_position_m", room.head_position_m, room.dims_m, 0.2)
    if abs(room.source_height_m - room.head_position_m[2]) >= room.source_distance_m:
        raise ConfigError(f"room.source_height_m {room.source_height_m} differs from the head height "
                          f"{room.head_position_m[2]} by more than room.source_distance_m {room.source_distance_m}")
    _inside("the loudspeaker (room.source_distance_m/_azimuth_deg from the head)", c.source_position(), room.dims_m, 0.2)
    for i, position in enumerate(c.events.positions_m):
        _inside(f"events.positions_m[{i}]", position, room.dims_m, 0.1)
    for ear in c.ear_positions():
        _inside("an ear (room.head_position_m, head.ear_spacing_m)", ear, room.dims_m, 0.1)
    try:
        import pyroomacoustics as pra

        pra.inverse_sabine(room.rt60_s, list(room.dims_m))
    except ValueError as error:
        raise ConfigError(f"room.rt60_s {room.rt60_s} s is impossible in a {list(room.dims_m)} m room by Sabine's "
                          f"formula ({error}); use a longer RT60 or a smaller room") from None


def default_sim_config_path() -> pathlib.Path:
    """``config/sim/icub_lab.yaml``: the iCub lab of Lakomkin et al. (2018)."""
    from ser_robot.config_io import config_file

    return config_file("sim/icub_lab.yaml")


def load_sim_config(path: str | pathlib.Path | None = None,
                    overrides: Mapping[str, Any] | None = None) -> SimulatorConfig:
    """Read, merge ``overrides`` into, and validate a simulator YAML (default :func:`default_sim_config_path`).

    Raises :class:`ConfigError` with the file name and the ``section.key`` at fault.
    """
    path = pathlib.Path(path) if path is not None else default_sim_config_path()
    raw = read_yaml_mapping(path, "simulator configuration")
    try:
        return _build(deep_merge(raw, overrides or {}), str(path))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
