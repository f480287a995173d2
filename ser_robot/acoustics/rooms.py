"""A bank of two-ear room impulse responses (RIRs), simulated with pyroomacoustics.

Each room is a shoe box (image source method, ``pra.ShoeBox``) with one absorption coefficient
on every wall from ``pra.inverse_sabine(rt60, room_dim)`` (Sabine's formula inverted), the
image order that formula asks for capped at ``max_order_cap``, no air absorption, 16 kHz.
A head stands in the room: two omnidirectional microphones ``ear_spacing`` m apart (0.17 m,
about an adult head's width; no head shadow, so level differences come from distance only,
time differences from geometry) at ``head_height`` m (1.2 m, a seated person or a small
robot), facing a random horizontal direction. Sources (talkers) stand at horizontal distance
0.5-3 m from the head centre, at 1.1-1.7 m height.

Azimuth convention (ROS REP 103: x forward, y left, angles counter-clockwise): azimuth 0 deg
is straight ahead, **positive azimuth is to the head's left**, -90 deg is the right ear's side.
Channels are ordered (left, right); a source at positive azimuth reaches the left ear first.

Layout of ``out``::

    out/manifest.json                                 settings, key, one record per RIR
    out/rir/room<r:03d>_src<s:02d>_<key>.wav          stereo float32 WAV (left, right), 16 kHz

IR amplitudes are pyroomacoustics' own (its direct path falls as ``1 / r``: energy 0.98 at 1 m
with 0.10.1, not ``1 / (4 pi r)``), after its global delay of 40 samples; normalise where you
convolve. ``rt60_target_s`` is the Sabine design value; ``rt60_measured_s`` is measured on the
simulated response (Schroeder, both ears averaged) and runs 5-20 % above it. Rooms, not RIRs, are the unit of the
train/test split: ``test_fraction`` of the rooms (at least one) hold only test RIRs, so a test
RIR never shares a room with a training one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ser_robot.acoustics._bank import MANIFEST, read_bank_manifest
from ser_robot.acoustics._dsp import SAMPLE_RATE
from ser_robot.errors import AcousticsError

__all__ = [
    "RIR_BANK_VERSION",
    "SPEED_OF_SOUND",
    "Rir",
    "RirBank",
    "RirRecord",
    "build_rir_bank",
    "measure_rt60",
    "simulate_room",
]

RIR_BANK_VERSION = 1
"""Bumped whenever the simulation changes its output: part of every cache key."""

SPEED_OF_SOUND = 343.0
"""m/s, pyroomacoustics' default."""



@dataclass(frozen=True)
class RirRecord:
    """One two-ear RIR and the room and geometry it was simulated for (lengths m, angles deg, times s)."""

    file: str
    room: int
    source: int
    split: str
    room_dim: list[float]
    rt60_target_s: float
    absorption: float
    max_order: int
    head_position: list[float]
    head_yaw_deg: float
    source_position: list[float]
    distance_m: float
    azimuth_deg: float
    elevation_deg: float
    ear_spacing_m: float
    direct_delay_samples: list[int]
    length: int
    fs: int
    key: str
    rt60_measured_s: float | None = None


class Rir(NamedTuple):
    """An impulse response ``ir`` (float32, shape ``(2, n)``: left, right) and its record."""

    ir: np.ndarray
    record: RirRecord


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def measure_rt60(ir: np.ndarray, fs: int = SAMPLE_RATE, decay_db: float = 20.0) -> float | np.ndarray:
    """Reverberation time (s) of ``ir`` by Schroeder backward integration.

    The energy decay curve ``EDC(t) = sum_{tau >= t} ir(tau)^2`` (dB re its start) is fitted by
    least squares between -5 dB and ``-5 - decay_db`` dB (T20 for 20, T30 for 30) and the slope
    extrapolated to 60 dB. ``ir``: shape ``(..., time)``; returns a float for a 1-D IR, else an
    array of the leading shape. Raises :class:`AcousticsError` if the EDC never decays that far.
    """
    ir = np.asarray(ir, dtype=np.float64)
    if ir.ndim > 1:
        flat = ir.reshape(-1, ir.shape[-1])
        return np.array([measure_rt60(row, fs, decay_db) for row in flat]).reshape(ir.shape[:-1])
    energy = np.cumsum(ir[::-1] ** 2)[::-1]
    if energy.size == 0 or energy[0] <= 0:
        raise AcousticsError("cannot measure RT60 of a silent impulse response")
    edc_db = 10 * np.log10(np.maximum(energy / energy[0], 1e-30))
    start = int(np.argmax(edc_db <= -5.0))
    below = edc_db <= -5.0 - decay_db
    if not below.any():
        raise AcousticsError(f"impulse response decays only {-edc_db[-2]:.1f} dB, less than the "
                             f"{5 + decay_db:.0f} dB needed for T{decay_db:.0f}; use a longer IR or a smaller decay_db")
    stop = int(np.argmax(below))
    t = np.arange(start, stop + 1) / fs
    slope = np.polyfit(t, edc_db[start:stop + 1], 1)[0]  # dB/s
    return float(-60.0 / slope)


def _draw_room(rng: np.random.Generator, rt60_range: tuple[float, float],
               room_size_range: tuple[tuple[float, float], ...]) -> tuple[list[float], float, float, int]:
    import pyroomacoustics as pra

    for _ in range(200):
        dims = [float(rng.uniform(low, high)) for low, high in room_size_range]
        rt60 = float(rng.uniform(*rt60_range))
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:
            continue  # room too large for so short an RT60: draw again
        return dims, rt60, float(absorption), int(max_order)
    raise AcousticsError(f"no room of sizes {room_size_range} m can have an RT60 in {rt60_range} s "
                         "(pra.inverse_sabine failed 200 times); widen the ranges")


def _draw_geometry(rng: np.random.Generator, dims: list[float], distance_range: tuple[float, float],
                   azimuth_range: tuple[float, float], head_height: float,
                   source_height_range: tuple[float, float], margin: float = 0.3) -> dict[str, Any]:
    for _ in range(2000):
        head = np.array([rng.uniform(margin, dims[0] - margin), rng.uniform(margin, dims[1] - margin), head_height])
        yaw = float(rng.uniform(0.0, 360.0))
        azimuth = float(rng.uniform(*azimuth_range))
        distance = float(rng.uniform(*distance_range))
        angle = math.radians(yaw + azimuth)
        source = np.array([head[0] + distance * math.cos(angle), head[1] + distance * math.sin(angle),
                           rng.uniform(*source_height_range)])
        if all(margin <= source[k] <= dims[k] - margin for k in range(3)):
            elevation = math.degrees(math.atan2(source[2] - head[2], distance))
            return {"head": head, "yaw": yaw, "azimuth": azimuth, "distance": distance, "source": source,
                    "elevation": elevation}
    raise AcousticsError(f"cannot place a source {distance_range} m from a head in a room of {dims} m; "
                         "use a smaller distance range or larger rooms")


def _ears(head: np.ndarray, yaw_deg: float, spacing: float) -> np.ndarray:
    """Ear positions, shape ``(3, 2)``: columns left, right (left = +90 deg from the facing direction)."""
    left = np.array([math.cos(math.radians(yaw_deg + 90.0)), math.sin(math.radians(yaw_deg + 90.0)), 0.0])
    return np.stack([head + spacing / 2 * left, head - spacing / 2 * left], axis=1)


def simulate_room(dims: list[float], absorption: float, max_order: int, sources: list[np.ndarray],
                  ears: list[np.ndarray], fs: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Two-ear RIRs of ``sources`` (each ``(3,)`` m) heard at ``ears`` (each ``(3, 2)`` m) in a shoe box.

    One simulation per source (each source has its own head). Returns float32 arrays ``(2, n)``.
    """
    import pyroomacoustics as pra

    irs = []
    for source, pair in zip(sources, ears):
        room = pra.ShoeBox(dims, fs=fs, materials=pra.Material(absorption), max_order=max_order, air_absorption=False)
        room.add_source(list(source))
        room.add_microphone_array(pair)
        room.compute_rir()
        length = max(len(room.rir[0][0]), len(room.rir[1][0]))
        ir = np.zeros((2, length), dtype=np.float32)
        for ear in range(2):
            ir[ear, :len(room.rir[ear][0])] = room.rir[ear][0]
        irs.append(ir)
    return irs


class RirBank:
    """A folder of two-ear RIRs with their manifest (see the module docstring)."""

    def __init__(self, root: str | pathlib.Path, records: Iterable[RirRecord], settings: dict[str, Any],
                 key: str | None = None):
        self.root = pathlib.Path(root)
        self.records = list(records)
        self.settings = dict(settings)
        self.key = key
        self._irs: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"RirBank({self.root}, {len(self)} RIRs in {len(self.rooms)} rooms)"

    @classmethod
    def load(cls, path: str | pathlib.Path) -> RirBank:
        """Read a bank from its folder or ``manifest.json``; raises :class:`AcousticsError` naming what is wrong."""
        root, records, data = read_bank_manifest(path, "RIR bank", "build_rir_bank", "rirs", RirRecord)
        return cls(root, records, data.get("settings", {}), data.get("key"))

    @property
    def rooms(self) -> list[int]:
        """Room indices present."""
        return sorted({r.room for r in self.records})

    def ir(self, record: RirRecord) -> np.ndarray:
        """The IR of ``record``: float32 ``(2, n)`` (left, right), read once then kept (read-only)."""
        if record.file not in self._irs:
            import soundfile

            audio, rate = soundfile.read(str(self.root / record.file), dtype="float32", always_2d=True)
            if rate != record.fs or audio.shape[1] != 2:
                raise AcousticsError(f"RIR {record.file}: expected stereo at {record.fs} Hz, got {audio.shape[1]} "
                                     f"channel(s) at {rate} Hz; rebuild the bank")
            ir = np.ascontiguousarray(audio.T)
            ir.setflags(write=False)
            self._irs[record.file] = ir
        return self._irs[record.file]

    def subset(self, split: str) -> RirBank:
        """The RIRs of one condition, ``"train"`` or ``"test"`` (disjoint rooms)."""
        if split not in ("train", "test"):
            raise AcousticsError(f"RIR split must be 'train' or 'test', got {split!r}")
        bank = RirBank(self.root, [r for r in self.records if r.split == split], dict(self.settings, subset=split))
        bank._irs = self._irs
        return bank

    def split(self) -> tuple[RirBank, RirBank]:
        """(train bank, test bank): RIRs of disjoint rooms."""
        return self.subset("train"), self.subset("test")

    def sample(self, rng: np.random.Generator) -> Rir:
        """A uniformly drawn RIR of this bank (use :meth:`subset` first to stay within a condition)."""
        if not self.records:
            raise AcousticsError(f"RIR bank {self.root} is empty{' for ' + self.settings['subset'] if 'subset' in self.settings else ''}")
        record = self.records[int(rng.integers(len(self.records)))]
        return Rir(self.ir(record), record)


def build_rir_bank(out: str | pathlib.Path, count: int = 64, seed: int = 0,
                   rt60_range: tuple[float, float] = (0.2, 0.9),
                   room_size_range: tuple[tuple[float, float], ...] = ((3.5, 10.0), (3.0, 8.0), (2.5, 4.0)),
                   distance_range: tuple[float, float] = (0.5, 3.0), azimuth_range: tuple[float, float] = (-90.0, 90.0),
                   sources_per_room: int = 4, ear_spacing: float = 0.17, head_height: float = 1.2,
                   source_height_range: tuple[float, float] = (1.1, 1.7), max_order_cap: int = 60,
                   test_fraction: float = 0.25, progress: bool = False) -> RirBank:
    """Simulate (or reuse) ``count`` two-ear RIRs into folder ``out`` and return the bank.

    ``count`` RIRs come from ``ceil(count / sources_per_room)`` rooms. Room ``r`` draws, from
    ``SeedSequence([seed, r])``: its size (m, per axis in ``room_size_range``: length, width,
    height), its target RT60 (s, uniform in ``rt60_range``; absorption by Sabine), and per source
    a head position and facing, an azimuth (deg, in ``azimuth_range``, positive = left), a
    horizontal distance (m, in ``distance_range``) and a source height (m). ``max_order_cap``
    bounds the image order (time and the tail's completeness). ``test_fraction`` of the rooms (at
    least one if there are two or more) form the test condition. ``ear_spacing``: m between the
    two ears; ``head_height``: m.

    Cached: a room's files are named by the hash of everything that determines them and are
    not recomputed when present; the manifest is not rewritten when nothing changed.
    """
    out = pathlib.Path(out)
    if count < 1 or sources_per_room < 1:
        raise AcousticsError(f"count and sources_per_room must be at least 1, got {count} and {sources_per_room}")
    if not 0.0 < rt60_range[0] <= rt60_range[1]:
        raise AcousticsError(f"rt60_range must be (low, high) seconds with 0 < low <= high, got {rt60_range}")
    if not 0.0 <= test_fraction < 1.0:
        raise AcousticsError(f"test_fraction must be in [0, 1), got {test_fraction}")
    n_rooms = math.ceil(count / sources_per_room)
    settings = {"version": RIR_BANK_VERSION, "count": int(count), "seed": int(seed),
                "rt60_range": list(map(float, rt60_range)),
                "room_size_range": [list(map(float, r)) for r in room_size_range],
                "distance_range": list(map(float, distance_range)), "azimuth_range": list(map(float, azimuth_range)),
                "sources_per_room": int(sources_per_room), "ear_spacing": float(ear_spacing),
                "head_height": float(head_height), "source_height_range": list(map(float, source_height_range)),
                "max_order_cap": int(max_order_cap), "test_fraction": float(test_fraction), "fs": SAMPLE_RATE}
    key = _hash(settings)
    old: dict[str, RirRecord] = {}
    if (out / MANIFEST).is_file():
        try:
            bank = RirBank.load(out)
            if bank.key == key:
                return bank
            old = {r.file: r for r in bank.records}
        except AcousticsError:
            old = {}
    n_test = 0 if n_rooms < 2 or test_fraction == 0 else min(n_rooms - 1, max(1, round(test_fraction * n_rooms)))
    test_rooms = set(np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E57])).permutation(n_rooms)[:n_test].tolist())
    room_settings = {k: settings[k] for k in settings if k not in ("count", "test_fraction", "sources_per_room")}
    rooms = range(n_rooms)
    if progress:
        from tqdm import tqdm
        rooms = tqdm(rooms, desc="RIR bank", unit="room")
    import pyroomacoustics as pra
    import soundfile

    global_delay = int(pra.constants.get("frac_delay_length")) // 2  # samples before the direct path (40)
    records: list[RirRecord] = []
    for room in rooms:
        sources = min(sources_per_room, count - room * sources_per_room)
        room_key = _hash({"room": room, "sources": sources, **room_settings})[:12]
        split = "test" if room in test_rooms else "train"
        files = [f"rir/room{room:03d}_src{s:02d}_{room_key}.wav" for s in range(sources)]
        if all(f in old and (out / f).is_file() for f in files):
            records.extend(dataclasses.replace(old[f], split=split) for f in files)
            continue
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), room]))
        dims, rt60, absorption, max_order = _draw_room(rng, rt60_range, room_size_range)
        max_order = min(max_order, max_order_cap)
        geometry = [_draw_geometry(rng, dims, distance_range, azimuth_range, head_height, source_height_range)
                    for _ in range(sources)]
        ears = [_ears(g["head"], g["yaw"], ear_spacing) for g in geometry]
        irs = simulate_room(dims, absorption, max_order, [g["source"] for g in geometry], ears)
        for s, (g, pair, ir, file) in enumerate(zip(geometry, ears, irs, files)):
            path = out / file
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.wav")
            soundfile.write(str(tmp), ir.T, SAMPLE_RATE, subtype="FLOAT")
            tmp.replace(path)
            delays = [int(round(np.linalg.norm(g["source"] - pair[:, e]) / SPEED_OF_SOUND * SAMPLE_RATE))  # noqa: RUF046
                      + global_delay for e in range(2)]
            records.append(RirRecord(
                file=file, room=room, source=s, split=split, room_dim=[round(d, 4) for d in dims],
                rt60_target_s=round(rt60, 4), absorption=round(absorption, 5), max_order=max_order,
                head_position=[round(float(v), 4) for v in g["head"]], head_yaw_deg=round(g["yaw"], 3),
                source_position=[round(float(v), 4) for v in g["source"]], distance_m=round(g["distance"], 4),
                azimuth_deg=round(g["azimuth"], 3), elevation_deg=round(g["elevation"], 3),
                ear_spacing_m=float(ear_spacing), direct_delay_samples=delays, length=int(ir.shape[1]),
                fs=SAMPLE_RATE, key=room_key, rt60_measured_s=round(float(np.mean(measure_rt60(ir, SAMPLE_RATE))), 4)))
    referenced = {out / r.file for r in records}
    for stale in (out / "rir").glob("*.wav") if (out / "rir").is_dir() else []:
        if stale not in referenced:
            stale.unlink()
    payload = {"kind": "ser_robot.rir_bank", "key": key, "settings": settings,
               "azimuth_convention": "degrees, 0 = ahead, positive = to the head's left (ROS REP 103); "
                                     "channels (left, right)",
               "rirs": [dataclasses.asdict(r) for r in records]}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out / MANIFEST)
    return RirBank.load(out)
