"""Finding sounddevice (PortAudio) input and output devices by index or by a substring of their name."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

from ser_robot.errors import AudioDeviceError

__all__ = ["InputDevice", "OutputDevice", "list_input_devices", "list_output_devices", "open_streams",
           "resolve_input_device", "resolve_output_device", "track_stream"]

_STREAMS: weakref.WeakSet[Any] = weakref.WeakSet()
"""PortAudio streams this process opened through :func:`track_stream`."""


@dataclass(frozen=True)
class InputDevice:
    """An input-capable device as PortAudio reports it."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    default_sample_rate: float

    def describe(self) -> str:
        return (
            f"[{self.index}] {self.name} ({self.hostapi}, {self.max_input_channels} in, "
            f"{self.default_sample_rate:g} Hz)"
        )


@dataclass(frozen=True)
class OutputDevice:
    """An output-capable device as PortAudio reports it."""

    index: int
    name: str
    hostapi: str
    max_output_channels: int
    default_sample_rate: float

    def describe(self) -> str:
        return (
            f"[{self.index}] {self.name} ({self.hostapi}, {self.max_output_channels} out, "
            f"{self.default_sample_rate:g} Hz)"
        )


Device = TypeVar("Device", InputDevice, OutputDevice)


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio library missing
        raise AudioDeviceError(
            f"sounddevice cannot load PortAudio ({exc}); install it with "
            "'apt-get install libportaudio2' (make setup does this)"
        ) from None
    return sounddevice


def track_stream(stream: Any) -> None:
    """Register a sounddevice stream this process opened, so that a device refresh never
    re-initialises PortAudio under it."""
    _STREAMS.add(stream)


def open_streams() -> int:
    """Number of tracked streams not closed yet."""
    return sum(1 for stream in list(_STREAMS) if not stream.closed)


def list_input_devices(refresh: bool = False) -> list[InputDevice]:
    """All devices with at least one input channel.

    ``refresh`` re-initialises PortAudio so devices plugged in (or lost) since start are seen,
    but only while no tracked stream is open: re-initialising would stop every stream of the
    process (another microphone, a corpus player's output). With streams open the current list
    is returned; a device plugged in since start appears once they are closed.
    """
    sd = _sounddevice()
    if refresh and open_streams() == 0:
        sd._terminate()
        sd._initialize()
    hostapis = sd.query_hostapis()
    devices = []
    for index, info in enumerate(sd.query_devices()):
        if info["max_input_channels"] > 0:
            devices.append(
                InputDevice(
                    index=index,
                    name=info["name"],
                    hostapi=hostapis[info["hostapi"]]["name"],
                    max_input_channels=int(info["max_input_channels"]),
                    default_sample_rate=float(info["default_samplerate"]),
                )
            )
    return devices


def list_output_devices() -> list[OutputDevice]:
    """All devices with at least one output channel."""
    sd = _sounddevice()
    hostapis = sd.query_hostapis()
    return [
        OutputDevice(index, info["name"], hostapis[info["hostapi"]]["name"], int(info["max_output_channels"]),
                     float(info["default_samplerate"]))
        for index, info in enumerate(sd.query_devices())
        if info["max_output_channels"] > 0
    ]


def _choose(devices: Sequence[Device], spec: str, default: int | None, direction: str, hint: str = "") -> Device:
    """The one device of ``devices`` named by ``spec`` (index, name or name substring; "" = ``default``)."""
    available = "; ".join(d.describe() for d in devices) or "none"
    spec = spec.strip()
    if spec == "":
        matches = [d for d in devices if d.index == default] or list(devices[:1])
    elif spec.lstrip("-").isdigit():
        matches = [d for d in devices if d.index == int(spec)]
    else:
        exact = [d for d in devices if d.name.lower() == spec.lower()]
        matches = exact or [d for d in devices if spec.lower() in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        what = f"no default {direction} device" if spec == "" else f"no {direction} device matches {spec!r}"
        raise AudioDeviceError(
            f"{what}. Available {direction} devices: {available}. Set the 'device' parameter to one "
            f"of these indices or names{hint}."
        )
    raise AudioDeviceError(
        f"{direction} device {spec!r} is ambiguous: it matches "
        f"{'; '.join(d.describe() for d in matches)}. Use an index or a longer name."
    )


def resolve_input_device(spec: str, refresh: bool = False) -> InputDevice:
    """The input device named by ``spec``: an index, a case-insensitive name substring, or "" for the default.

    Raises :class:`AudioDeviceError` listing the available input devices when none (or more
    than one, for an ambiguous substring) matches.
    """
    devices = list_input_devices(refresh=refresh)
    default = None
    if spec.strip() == "":
        sd = _sounddevice()
        default = sd.default.device[0]
        if default is None or default < 0:
            default = sd.query_hostapis(0).get("default_input_device", -1) if devices else -1
    return _choose(devices, spec, default, "input")


def resolve_output_device(spec: str) -> OutputDevice:
    """The output device named by ``spec``: an index, a case-insensitive name substring, or "" for the default.

    Raises :class:`AudioDeviceError` listing the output devices when none (or several) match.
    """
    default = _sounddevice().default.device[1] if spec.strip() == "" else None
    return _choose(list_output_devices(), spec, default, "output",
                   " (the virtual ears: 'pulse', with ser_ears as the default sink)")
