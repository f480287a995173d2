"""The robot's head in the room: two ear microphones, the lab's impulse responses, head shadow.

pyroomacoustics simulates two omnidirectional microphones in free space: inter-aural time
differences come from geometry (ears ``ear_spacing_m`` apart), level differences only from
distance. A head also *shadows* the far ear at high frequencies. We add the spherical-head model
of Brown & Duda (1998, "A structural model for binaural sound synthesis", IEEE TSAP 6(5)): for
an ear whose axis makes the angle ``theta`` with the source direction, the single-pole,
single-zero filter

    H(w, theta) = (1 + j alpha(theta) w / (2 w0)) / (1 + j w / (2 w0)),   w0 = c / a,
    alpha(theta) = (1 + alpha_min / 2) + (1 - alpha_min / 2) cos(theta / theta_min * 180 deg),

with ``alpha_min = 0.1``, ``theta_min = 150 deg``, ``a`` the head radius: a high shelf above
about ``c / (pi a)`` Hz (1.46 kHz for a = 7.5 cm) of +6 dB for an ear facing the source
(theta = 0), down to -11 dB for the far ear (theta = 180 deg). It is a simple model (no pinna,
no torso) and is applied to the **direct sound only** (the first ~2 ms of each ear's IR around
its direct-path arrival): the reverberant field arrives from all directions.

Conventions: azimuth in degrees, ROS REP 103 (0 = ahead, positive = left); channels (left, right).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from ser_robot.acoustics.rooms import SPEED_OF_SOUND
from ser_robot.errors import AcousticsError

__all__ = [
    "ALPHA_MIN",
    "THETA_MIN_DEG",
    "BinauralIr",
    "apply_head_shadow",
    "binaural_ir",
    "direct_amplitude_at_1m",
    "ear_positions",
    "head_shadow_ba",
    "lab_irs",
    "shadow_alpha",
]

ALPHA_MIN = 0.1
"""Brown & Duda's minimum high-frequency gain (linear) of the shadowed ear."""

THETA_MIN_DEG = 150.0
"""Brown & Duda's angle (deg) between ear axis and source where the shadow is deepest."""

DIRECT_WINDOW_S = 0.002
"""Length of the direct-sound part of an IR (s after the direct arrival) that the head shadow filters."""


def ear_positions(head: Sequence[float], yaw_deg: float, spacing_m: float) -> np.ndarray:
    """Ear positions, shape ``(3, 2)`` (metres; columns left, right), the left one at ``yaw + 90`` deg."""
    left = np.array([math.cos(math.radians(yaw_deg + 90.0)), math.sin(math.radians(yaw_deg + 90.0)), 0.0])
    centre = np.asarray(head, dtype=np.float64)
    return np.stack([centre + spacing_m / 2 * left, centre - spacing_m / 2 * left], axis=1)


def shadow_alpha(azimuth_deg: float, ear_angle_deg: float = 90.0) -> tuple[float, float]:
    """Brown & Duda's high-frequency gain ``alpha`` (linear) of the (left, right) ear for a source at ``azimuth_deg``.

    The left ear's axis points at ``+ear_angle_deg``, the right one's at ``-ear_angle_deg``.
    """
    alphas = []
    for ear_axis in (ear_angle_deg, -ear_angle_deg):
        theta = abs((azimuth_deg - ear_axis + 180.0) % 360.0 - 180.0)  # 0..180 deg
        alphas.append((1 + ALPHA_MIN / 2) + (1 - ALPHA_MIN / 2) * math.cos(math.radians(theta / THETA_MIN_DEG * 180.0)))
    return alphas[0], alphas[1]


def head_shadow_ba(alpha: float, head_radius_m: float, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """The head-shadow filter ``(b, a)`` (bilinear transform of Brown & Duda's analogue shelf).

    DC gain 1, high-frequency gain ``alpha``; corner ``2 c / a`` rad/s for head radius ``a`` m.
    """
    if head_radius_m <= 0:
        raise AcousticsError(f"head radius must be positive metres, got {head_radius_m}")
    w0 = SPEED_OF_SOUND / head_radius_m
    return signal.bilinear([alpha / (2 * w0), 1.0], [1.0 / (2 * w0), 1.0], fs)


def apply_head_shadow(ir: np.ndarray, direct: Sequence[int], azimuth_deg: float, head_radius_m: float,
                      ear_angle_deg: float, fs: int) -> np.ndarray:
    """``ir`` ``(2, n)`` with each ear's direct sound (samples ``< direct[e] + 2 ms``, raised-cosine
    1 ms fade-out) passed through its :func:`head_shadow_ba` filter; the rest is unchanged."""
    out = np.array(ir, dtype=np.float64)
    n = out.shape[1]
    hold, ramp = int(round(DIRECT_WINDOW_S * fs)), int(round(0.001 * fs))  # noqa: RUF046
    for ear, alpha in enumerate(shadow_alpha(azimuth_deg, ear_angle_deg)):
        window = np.zeros(n)
        stop = min(n, int(direct[ear]) + hold)
        window[:stop] = 1.0
        fall = 0.5 + 0.5 * np.cos(np.linspace(0.0, math.pi, ramp + 2)[1:-1])
        end = min(n, stop + ramp)
        window[stop:end] = fall[: end - stop]
        b, a = head_shadow_ba(alpha, head_radius_m, fs)
        out[ear] = signal.lfilter(b, a, out[ear] * window) + out[ear] * (1.0 - window)
    return out


@dataclass(frozen=True)
class BinauralIr:
    """A two-ear impulse response ready to convolve: ``ir`` float64 ``(2, n)`` (left, right), scaled so
    that the direct sound at the head centre has gain 1; ``direct``: direct-path sample index per ear;
    ``azimuth_deg``/``distance_m`` of the source; ``info``: JSON-able description (room, RT60...)."""

    ir: np.ndarray
    direct: tuple[int, int]
    azimuth_deg: float
    distance_m: float
    info: dict[str, Any]


@functools.cache
def direct_amplitude_at_1m(fs: int) -> float:
    """Amplitude of pyroomacoustics' direct path at 1 m (the RMS-equivalent of its fractional-delay pulse).

    Measured once in an anechoic simulation, so the normalisation follows the installed version's
    convention (0.10 uses ``1 / r``, about 0.99 here; ``1 / (4 pi r)`` in others).
    """
    import pyroomacoustics as pra

    room = pra.ShoeBox([6.0, 6.0, 6.0], fs=fs, materials=pra.Material(0.99), max_order=0, air_absorption=False)
    room.add_source([4.0, 3.0, 3.0])
    room.add_microphone_array(np.array([[3.0], [3.0], [3.0]]))
    room.compute_rir()
    return float(np.sqrt(np.sum(np.square(room.rir[0][0]))))


def binaural_ir(raw: np.ndarray, direct: Sequence[int], azimuth_deg: float, distance_m: float,
                head_radius_m: float, ear_angle_deg: float, shadow: bool, fs: int,
                info: dict[str, Any] | None = None) -> BinauralIr:
    """Turn a pyroomacoustics two-ear RIR (``(2, n)``, direct path falling as ``1 / r``) into a
    :class:`BinauralIr`: gain ``distance_m / direct_amplitude_at_1m`` (direct sound at the head
    centre = 1) and, if ``shadow``, the head shadow."""
    ir = np.asarray(raw, dtype=np.float64) * (distance_m / direct_amplitude_at_1m(fs))
    if shadow:
        ir = apply_head_shadow(ir, direct, azimuth_deg, head_radius_m, ear_angle_deg, fs)
    return BinauralIr(ir, (int(direct[0]), int(direct[1])), float(azimuth_deg), float(distance_m), dict(info or {}))


def _azimuth(head: np.ndarray, yaw_deg: float, point: Sequence[float]) -> tuple[float, float]:
    dx, dy = point[0] - head[0], point[1] - head[1]
    azimuth = (math.degrees(math.atan2(dy, dx)) - yaw_deg + 180.0) % 360.0 - 180.0
    return azimuth, float(np.linalg.norm(np.asarray(point) - head))


def _shoebox_rirs(dims_m: Sequence[float], absorption: float, max_order: int, ears: np.ndarray,
                  sources_m: Sequence[Sequence[float]], fs: int) -> list[np.ndarray]:
    """pyroomacoustics RIRs ``(2, n)`` (left, right) of each source, physical amplitudes."""
    import pyroomacoustics as pra

    room = pra.ShoeBox(list(dims_m), fs=fs, materials=pra.Material(absorption), max_order=max_order,
                       air_absorption=False)
    for source in sources_m:
        room.add_source(list(source))
    room.add_microphone_array(ears)
    room.compute_rir()
    out = []
    for index in range(len(sources_m)):
        raw = np.zeros((2, max(len(room.rir[0][index]), len(room.rir[1][index]))))
        for ear in range(2):
            raw[ear, : len(room.rir[ear][index])] = room.rir[ear][index]
        out.append(raw)
    return out


CALIBRATION_TOLERANCE = 0.03
"""Relative RT60 error (measured on the simulated IR vs configured) that the lab's absorption is calibrated to."""


def lab_irs(dims_m: Sequence[float], rt60_s: float, max_order_cap: int, head_m: Sequence[float], yaw_deg: float,
            ear_spacing_m: float, ear_angle_deg: float, shadow: bool, sources_m: Sequence[Sequence[float]],
            fs: int) -> list[BinauralIr]:
    """Simulate the lab room once for every source position: one :class:`BinauralIr` per source.

    Shoe box ``dims_m`` with one absorption coefficient on every wall, image source method up to
    ``min(Sabine's order, max_order_cap)``, no air absorption; the ears of :func:`ear_positions`.
    The absorption starts from Sabine's formula (``pra.inverse_sabine``) and is calibrated (up to
    3 more simulations of the first source) until the T30 measured on the simulated IR
    (:func:`~ser_robot.acoustics.measure_rt60`, mean of the ears) is within 3 % of ``rt60_s``: the
    image source method decays more slowly than Sabine predicts (+8 % at 0.45 s, +18 % at 0.7 s
    here). Results are cached per process. ``info`` holds the room, the absorption, the order, the
    measured RT60, the source's position, azimuth (deg, REP 103) and distance (m).
    """
    return list(_lab_irs(tuple(map(float, dims_m)), float(rt60_s), int(max_order_cap), tuple(map(float, head_m)),
                         float(yaw_deg), float(ear_spacing_m), float(ear_angle_deg), bool(shadow),
                         tuple(tuple(map(float, s)) for s in sources_m), int(fs)))


@functools.lru_cache(maxsize=8)
def _lab_irs(dims_m: tuple[float, ...], rt60_s: float, max_order_cap: int, head_m: tuple[float, ...], yaw_deg: float,
             ear_spacing_m: float, ear_angle_deg: float, shadow: bool, sources_m: tuple[tuple[float, ...], ...],
             fs: int) -> tuple[BinauralIr, ...]:
    import pyroomacoustics as pra

    from ser_robot.acoustics.rooms import measure_rt60

    head = np.asarray(head_m, dtype=np.float64)
    ears = ear_positions(head, yaw_deg, ear_spacing_m)
    sabine_rt60 = rt60_s
    for _ in range(4):
        try:
            absorption, max_order = pra.inverse_sabine(sabine_rt60, list(dims_m))
        except ValueError as error:
            raise AcousticsError(f"RT60 {rt60_s} s is impossible in a {list(dims_m)} m room ({error})") from None
        max_order = int(min(max_order, max_order_cap))
        first = _shoebox_rirs(dims_m, absorption, max_order, ears, sources_m[:1], fs)[0]
        measured = float(np.mean(measure_rt60(first, fs)))
        if abs(measured / rt60_s - 1.0) <= CALIBRATION_TOLERANCE:
            break
        sabine_rt60 *= rt60_s / measured
    raws = [first] if len(sources_m) == 1 else _shoebox_rirs(dims_m, absorption, max_order, ears, sources_m, fs)
    global_delay = int(pra.constants.get("frac_delay_length")) // 2
    out = []
    for source, raw in zip(sources_m, raws):
        direct = [int(round(np.linalg.norm(np.asarray(source) - ears[:, e]) / SPEED_OF_SOUND * fs)) + global_delay  # noqa: RUF046
                  for e in range(2)]
        azimuth, distance = _azimuth(head, yaw_deg, source)
        info = {"room": "lab", "dims_m": list(dims_m), "rt60_target_s": rt60_s, "rt60_measured_s": round(measured, 4),
                "absorption": round(float(absorption), 5), "max_order": max_order,
                "source_m": [round(v, 4) for v in source], "azimuth_deg": round(azimuth, 3),
                "distance_m": round(distance, 4)}
        bir = binaural_ir(raw, direct, azimuth, distance, ear_spacing_m / 2, ear_angle_deg, shadow, fs, info)
        bir.ir.setflags(write=False)
        out.append(bir)
    return tuple(out)
