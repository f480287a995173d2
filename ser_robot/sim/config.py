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
from ser_robot.config_io import deep_merge, read_yaml_mapping
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


@dataclass(frozen=True)
class LevelsConfig:
    """``reference``: one of :data:`LEVEL_REFERENCES`; ``reference_dbfs``: active speech level (dBFS,
    at the ears) that the ``snr_db`` values refer to when ``reference == "fixed"``;
    ``active_range_db``: frames within this many dB of the loudest 10 ms frame count as active speech."""

    reference: str
    reference_dbfs: float
    active_range_db: float


@dataclass(frozen=True)
class LoudspeakerConfig:
    """Band limits (Butterworth, Hz and order), peaking EQ ripple ``(centre Hz, gain dB, Q)`` and
    ``drive``: the tanh soft clip ``tanh(drive * x) / drive`` (small signals unchanged)."""

    enabled: bool
    highpass_hz: float
    highpass_order: int
    lowpass_hz: float
    lowpass_order: int
    ripple: tuple[tuple[float, float, float], ...]
    drive: float


@dataclass(frozen=True)
class RoomConfig:
    """The lab: shoe box ``dims_m`` (x, y, z), target ``rt60_s``; head centre ``head_position_m``,
    facing ``head_yaw_deg`` (deg from +x); loudspeaker ``source_distance_m`` from the head centre at
    ``source_azimuth_deg`` (REP 103) and ``source_height_m``; image order capped at ``max_order_cap``."""

    dims_m: tuple[float, float, float]
    rt60_s: float
    max_order_cap: int
    head_position_m: tuple[float, float, float]
    head_yaw_deg: float
    source_distance_m: float
    source_azimuth_deg: float
    source_height_m: float


@dataclass(frozen=True)
class HeadConfig:
    """Two ears ``ear_spacing_m`` apart (head radius = half of it) pointing at +-``ear_angle_deg``;
    ``shadow``: apply the spherical-head shadow filter (Brown & Duda 1998) to the direct sound."""

    ear_spacing_m: float
    ear_angle_deg: float
    shadow: bool


@dataclass(frozen=True)
class BackgroundConfig:
    """Diffuse lab noise: a category drawn per utterance from ``categories``, at ``snr_db``;
    ``diffuse``: two-ear coherence of a spherically isotropic field (else independent ears)."""

    enabled: bool
    categories: tuple[str, ...]
    snr_db: float
    diffuse: bool


@dataclass(frozen=True)
class EgoNoiseConfig:
    """Robot ego-noise at the microphones: a category from ``categories`` at ``snr_db``; near field:
    ``ear_coherence`` (0..1) of a shared component, the left ear ``level_difference_db`` louder."""

    enabled: bool
    categories: tuple[str, ...]
    snr_db: float
    ear_coherence: float
    level_difference_db: float


@dataclass(frozen=True)
class EventsConfig:
    """Household events with ``probability`` per utterance, at ``snr_db`` (event active level vs
    speech), played from one of ``positions_m`` in the lab (test condition)."""

    enabled: bool
    probability: float
    categories: tuple[str, ...]
    snr_db: float
    positions_m: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class MicrophoneConfig:
    """Preamp ``gain_db`` (applied to everything acoustic), self-noise (white, ``self_noise_dbfs`` RMS
    per ear, independent), then ``bits``-bit quantisation (16: PCM_16 WAV)."""

    gain_db: float
    self_noise: bool
    self_noise_dbfs: float
    bits: int


@dataclass(frozen=True)
class SimulatorConfig:
    """The whole simulator configuration (see ``config/sim/icub_lab.yaml`` for the meaning of each key).

    ``condition``: ``"test"`` or ``"train"`` (:data:`CONDITIONS`); ``noise_test_fraction``: the
    fraction of each noise category's clips reserved for the robot test condition
    (:meth:`~ser_robot.acoustics.NoiseBank.split_clips`). ``source``: the YAML path (or ``None``).
    """

    condition: str
    noise_test_fraction: float
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


# -- schema ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Spec:
    kind: str  # bool, int, float, str, strs, triples, points, vec3
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    min_items: int = 0


_NOISE_CHOICES = tuple(name for name, category in CATEGORIES.items() if not category.needs_speech)

_SCHEMA: dict[str, dict[str, _Spec] | _Spec] = {
    "condition": _Spec("str", choices=CONDITIONS),
    "noise_test_fraction": _Spec("float", 0.01, 0.9),
    "levels": {
        "reference": _Spec("str", choices=LEVEL_REFERENCES),
        "reference_dbfs": _Spec("float", -80.0, 0.0),
        "active_range_db": _Spec("float", 10.0, 80.0),
    },
    "loudspeaker": {
        "enabled": _Spec("bool"),
        "highpass_hz": _Spec("float", 10.0, 1000.0),
        "highpass_order": _Spec("int", 1, 8),
        "lowpass_hz": _Spec("float", 1000.0, 0.49 * SAMPLE_RATE),
        "lowpass_order": _Spec("int", 1, 8),
        "ripple": _Spec("triples"),
        "drive": _Spec("float", 0.01, 20.0),
    },
    "room": {
        "dims_m": _Spec("vec3", 1.5, 50.0),
        "rt60_s": _Spec("float", 0.1, 3.0),
        "max_order_cap": _Spec("int", 1, 200),
        "head_position_m": _Spec("vec3", 0.0, 50.0),
        "head_yaw_deg": _Spec("float", -360.0, 360.0),
        "source_distance_m": _Spec("float", 0.3, 20.0),
        "source_azimuth_deg": _Spec("float", -180.0, 180.0),
        "source_height_m": _Spec("float", 0.0, 50.0),
    },
    "head": {
        "ear_spacing_m": _Spec("float", 0.05, 0.5),
        "ear_angle_deg": _Spec("float", 45.0, 135.0),
        "shadow": _Spec("bool"),
    },
    "background": {
        "enabled": _Spec("bool"),
        "categories": _Spec("strs", choices=_NOISE_CHOICES, min_items=1),
        "snr_db": _Spec("float", -20.0, 80.0),
        "diffuse": _Spec("bool"),
    },
    "ego_noise": {
        "enabled": _Spec("bool"),
        "categories": _Spec("strs", choices=_NOISE_CHOICES, min_items=1),
        "snr_db": _Spec("float", -20.0, 80.0),
        "ear_coherence": _Spec("float", 0.0, 1.0),
        "level_difference_db": _Spec("float", -20.0, 20.0),
    },
    "events": {
        "enabled": _Spec("bool"),
        "probability": _Spec("float", 0.0, 1.0),
        "categories": _Spec("strs", choices=_NOISE_CHOICES, min_items=1),
        "snr_db": _Spec("float", -20.0, 80.0),
        "positions_m": _Spec("points", 0.0, 50.0, min_items=1),
    },
    "microphone": {
        "gain_db": _Spec("float", -40.0, 40.0),
        "self_noise": _Spec("bool"),
        "self_noise_dbfs": _Spec("float", -120.0, -20.0),
        "bits": _Spec("int", 16, 16),
    },
}

_SECTIONS: dict[str, type] = {
    "levels": LevelsConfig, "loudspeaker": LoudspeakerConfig, "room": RoomConfig, "head": HeadConfig,
    "background": BackgroundConfig, "ego_noise": EgoNoiseConfig, "events": EventsConfig,
    "microphone": MicrophoneConfig,
}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _range(name: str, value: float, spec: _Spec) -> None:
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"{name} is {value}, below its minimum {spec.min}") from None
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"{name} is {value}, above its maximum {spec.max}") from None


def _check(name: str, value: Any, spec: _Spec) -> Any:
    """``value`` converted to the spec's type, or :class:`ConfigError` naming ``name``."""
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}") from None
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
        _range(name, value, spec)
        return value
    if kind == "float":
        if not _number(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}") from None
        _range(name, float(value), spec)
        return float(value)
    if kind == "str":
        if not isinstance(value, str) or (spec.choices and value not in spec.choices):
            raise ConfigError(f"{name} got {value!r}; allowed values: {', '.join(spec.choices or ())}") from None
        return value
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list, got {value!r}") from None
    if len(value) < spec.min_items:
        raise ConfigError(f"{name} needs at least {spec.min_items} item(s), got {len(value)}") from None
    if kind == "strs":
        for item in value:
            if not isinstance(item, str) or (spec.choices and item not in spec.choices):
                raise ConfigError(f"{name} lists {item!r}; allowed values (noise categories that need no speech): "
                                  f"{', '.join(spec.choices or ())}") from None
        if len(set(value)) != len(value):
            raise ConfigError(f"{name} lists a category twice: {list(value)}") from None
        return tuple(value)
    if kind == "vec3":
        if len(value) != 3 or not all(_number(v) for v in value):
            raise ConfigError(f"{name} must be 3 numbers [x, y, z] in metres, got {value!r}") from None
        for v in value:
            _range(name, float(v), spec)
        return tuple(float(v) for v in value)
    if kind == "points":
        return tuple(_check(f"{name}[{i}]", item, _Spec("vec3", spec.min, spec.max)) for i, item in enumerate(value))
    if kind == "triples":
        out = []
        for i, item in enumerate(value):
            where = f"{name}[{i}]"
            if not isinstance(item, (list, tuple)) or len(item) != 3 or not all(_number(v) for v in item):
                raise ConfigError(f"{where} must be [centre_hz, gain_db, q], got {item!r}") from None
            centre, gain, q = (float(v) for v in item)
            _range(f"{where} centre_hz", centre, _Spec("float", 20.0, 0.49 * SAMPLE_RATE))
            _range(f"{where} gain_db", gain, _Spec("float", -12.0, 12.0))
            _range(f"{where} q", q, _Spec("float", 0.1, 20.0))
            out.append((centre, gain, q))
        return tuple(out)
    raise AssertionError(kind)  # pragma: no cover - schema bug


def _keys(name: str, given: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        where = f"{name}." if name else ""
        raise ConfigError(f"unknown key(s) {', '.join(where + k for k in unknown)}; known keys: "
                          f"{', '.join(where + k for k in known)}") from None
    missing = [k for k in known if k not in given]
    if missing:
        raise ConfigError(f"missing key(s) {', '.join((name + '.' if name else '') + k for k in missing)}: "
                          "every key must be set (see config/sim/icub_lab.yaml)") from None


def _build(raw: Mapping[str, Any], source: str | None) -> SimulatorConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the simulator configuration must be a mapping of sections, got {type(raw).__name__}")
    _keys("", raw, _SCHEMA)
    values: dict[str, Any] = {}
    for key, spec in _SCHEMA.items():
        if isinstance(spec, _Spec):
            values[key] = _check(key, raw[key], spec)
            continue
        section = raw[key]
        if not isinstance(section, Mapping):
            raise ConfigError(f"{key} must be a mapping of keys, got {section!r}") from None
        _keys(key, section, spec)
        values[key] = _SECTIONS[key](**{k: _check(f"{key}.{k}", section[k], s) for k, s in spec.items()})
    config = SimulatorConfig(**values, source=source)
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
