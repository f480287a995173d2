"""Log-Mel spectrograms with one named preset per paper, as a :class:`FrameExtractor`.

``config/features.yaml`` is the single source of the presets (:data:`PRESETS` is loaded from it
at import); custom settings come from a mapping or a YAML file through :func:`load_logmel_config`,
validated like every other configuration (:class:`~ser_robot.errors.ConfigError` naming the key,
the value and what is allowed).

The DSP is ``torch.stft`` (``center=False``) and :func:`mel_filterbank` (the triangular filters of
HTK or Slaney, as librosa and torchaudio build them; checked against librosa in the tests). Frames are left-aligned as the :mod:`~ser_robot.features.base` contract
requires: frame ``i`` is the window applied to samples ``[i * hop_length, i * hop_length +
win_length)``. When ``n_fft > win_length`` the windowed frame is zero-padded to ``n_fft``
(torch/librosa put the window in the middle of an ``n_fft`` frame; we pad the signal by
``(n_fft - win_length) / 2`` zeros on each side so both agree, and the power spectrum does not
depend on where the zeros go).

The utterance-level length rules of the papers (segments, fixed frames, fixed duration) are not
part of ``forward`` (which must stream); :meth:`LogMel.model_inputs` applies them.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ser_robot.config_io import check_fields, check_keys, check_value, config_file, read_yaml_mapping, setting
from ser_robot.errors import ConfigError
from ser_robot.features.base import FrameExtractor
from ser_robot.features.segments import (
    CROP_MODES,
    PAD_MODES,
    fix_length,
    fix_samples,
    segment,
)

__all__ = [
    "PRESETS",
    "WINDOWS",
    "LogMel",
    "LogMelConfig",
    "load_logmel_config",
    "load_logmel_presets",
    "log_mel_spectrogram",
    "make_window",
    "mel_center_frequencies",
    "mel_filterbank",
]

WINDOWS = ("hamming", "hann", "blackman", "rectangular")
LOG_KINDS = ("db", "natural")
MEL_SCALES = ("htk", "slaney")
MEL_NORMS = (None, "slaney")
REQUIRED = ("sample_rate", "win_length", "hop_length", "n_mels")


@dataclass(frozen=True)
class LogMelConfig:
    """Settings of a log-Mel extractor. Lengths in samples, frequencies in Hz.

    ``n_fft=None`` becomes the next power of two >= ``win_length``; ``f_max=None`` becomes
    ``sample_rate / 2``. Output value: ``log(max(mel + log_offset, log_floor))`` where ``log`` is
    ``10 * log10`` of power (``20 * log10`` of magnitude, i.e. ``20 / power * log10``) for
    ``db`` and ``ln`` for ``natural``. At most one utterance-length rule: ``segment_frames`` (+
    ``segment_hop``), ``fixed_frames`` or ``max_seconds``; ``pad``/``crop`` say how it pads and
    crops. Invalid values raise :class:`ConfigError` on construction.
    """

    sample_rate: int = setting(min=1)
    win_length: int = setting(min=1)
    hop_length: int = setting(min=1)
    n_mels: int = setting(min=1)
    n_fft: int | None = setting(None, min=1)
    f_min: float = setting(0.0, min=0.0)
    f_max: float | None = setting(None, min=0.0)
    window: str = setting("hann", choices=WINDOWS)
    power: float = setting(2.0, min=1e-6)
    log: str = setting("db", choices=LOG_KINDS)
    log_floor: float = setting(1e-10, min=1e-38)
    log_offset: float = setting(0.0, min=0.0)
    mel_scale: str = setting("htk", choices=MEL_SCALES)
    mel_norm: str | None = setting(None, choices=("slaney",))
    segment_frames: int | None = setting(None, min=1)
    segment_hop: int | None = setting(None, min=1)
    fixed_frames: int | None = setting(None, min=1)
    max_seconds: float | None = setting(None, min=1e-3)
    pad: str = setting("constant", choices=PAD_MODES)
    crop: str = setting("start", choices=CROP_MODES)

    def __post_init__(self) -> None:
        try:
            check_fields(self)
        except ConfigError as exc:
            raise ConfigError(f"logmel settings: {exc}") from None
        if self.n_fft is None:
            object.__setattr__(self, "n_fft", 1 << (self.win_length - 1).bit_length())
        if self.n_fft < self.win_length:
            raise ConfigError(
                f"logmel setting 'n_fft' is {self.n_fft}, shorter than win_length {self.win_length}; "
                "use n_fft >= win_length (or null for the next power of two)"
            ) from None
        nyquist = self.sample_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if f_max > nyquist or self.f_min >= f_max:
            raise ConfigError(
                f"logmel settings need 0 <= f_min < f_max <= sample_rate / 2 = {nyquist:g} Hz, "
                f"got f_min {self.f_min:g} and f_max {f_max:g}"
            ) from None
        rules = [k for k in ("segment_frames", "fixed_frames", "max_seconds") if getattr(self, k) is not None]
        if len(rules) > 1:
            raise ConfigError(
                f"logmel settings {' and '.join(rules)} are both set; choose at most one utterance-length rule"
            ) from None
        if self.segment_hop is not None and self.segment_frames is None:
            raise ConfigError("logmel setting 'segment_hop' needs 'segment_frames'") from None

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def max_samples(self) -> int | None:
        """``max_seconds`` in samples (None without that rule)."""
        return None if self.max_seconds is None else round(self.max_seconds * self.sample_rate)

    def replace(self, **changes: Any) -> LogMelConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, loadable again with :func:`load_logmel_config`."""
        return dataclasses.asdict(self)


def load_logmel_config(source: Mapping[str, Any] | str | pathlib.Path) -> LogMelConfig:
    """A validated :class:`LogMelConfig` from a mapping or a YAML file holding one.

    ``base: <preset>`` starts from a preset of :data:`PRESETS` and overrides its keys; without
    it, ``sample_rate``, ``win_length``, ``hop_length`` and ``n_mels`` are required. Unknown
    keys, missing ones and bad values raise :class:`ConfigError`.
    """
    if isinstance(source, (str, pathlib.Path)):
        path = pathlib.Path(source)
        mapping = read_yaml_mapping(path, "feature configuration")
        try:
            return _from_mapping(mapping, PRESETS)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return _from_mapping(source, PRESETS)


def load_logmel_presets(path: str | pathlib.Path | None = None) -> dict[str, LogMelConfig]:
    """The ``logmel:`` section of ``config/features.yaml`` (or ``path``): name -> config."""
    path = pathlib.Path(path) if path is not None else config_file("features.yaml")
    raw = read_yaml_mapping(path, "feature configuration")
    section = raw.get("logmel")
    if not isinstance(section, dict) or not section:
        raise ConfigError(f"{path} must have a 'logmel' section mapping preset names to settings") from None
    presets: dict[str, LogMelConfig] = {}
    for name, mapping in section.items():
        try:
            presets[str(name)] = _from_mapping(mapping, presets)
        except ConfigError as exc:
            raise ConfigError(f"{path}: preset '{name}': {exc}") from None
    return presets


def _from_mapping(mapping: Any, presets: Mapping[str, LogMelConfig]) -> LogMelConfig:
    known = [f.name for f in dataclasses.fields(LogMelConfig)]
    values = check_keys(mapping, ["base", *known], where="logmel settings")
    base = values.pop("base", None)
    if base is not None:
        check_value("base", base, str, where="logmel settings", choices=tuple(presets))
        values = {**presets[base].to_dict(), **values}
    missing = [k for k in REQUIRED if k not in values]
    if missing:
        raise ConfigError(
            f"logmel setting(s) {', '.join(missing)} missing; give them or a 'base' preset "
            f"({', '.join(presets)})"
        ) from None
    return LogMelConfig(**values)


PRESETS: dict[str, LogMelConfig] = load_logmel_presets()
"""One preset per paper: ``latif2020``, ``mtl_aug``, ``ren2020``, ``ssad`` (``config/features.yaml``)."""


# --- functional -------------------------------------------------------------------------------


def make_window(kind: str, length: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Periodic analysis window ``(length,)`` (``kind`` in :data:`WINDOWS`), as librosa's ``fftbins=True``."""
    if kind == "hamming":
        return torch.hamming_window(length, periodic=True, dtype=dtype)
    if kind == "hann":
        return torch.hann_window(length, periodic=True, dtype=dtype)
    if kind == "blackman":
        return torch.blackman_window(length, periodic=True, dtype=dtype)
    if kind == "rectangular":
        return torch.ones(length, dtype=dtype)
    raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {kind!r}")


def log_mel_spectrogram(
    samples: torch.Tensor,
    window: torch.Tensor,
    fbanks: torch.Tensor,
    n_fft: int,
    hop_length: int,
    power: float = 2.0,
    log: str = "db",
    log_floor: float = 1e-10,
    log_offset: float = 0.0,
) -> torch.Tensor:
    """Left-aligned log-Mel spectrogram: ``(..., samples)`` -> ``(..., frames, n_mels)``.

    ``window`` ``(win_length,)``, ``fbanks`` ``(n_fft // 2 + 1, n_mels)`` (see
    :func:`mel_filterbank`). ``frames = 1 + (samples - win_length) // hop_length`` (0 when
    shorter than one window). Values in dB (``log="db"``) or nats, see :class:`LogMelConfig`.
    """
    win_length = window.shape[-1]
    n_mels = fbanks.shape[-1]
    if fbanks.shape[0] != n_fft // 2 + 1:
        raise ValueError(f"fbanks has {fbanks.shape[0]} rows, n_fft {n_fft} needs {n_fft // 2 + 1}")
    if n_fft < win_length:
        raise ValueError(f"n_fft {n_fft} is shorter than the window ({win_length})")
    lead = samples.shape[:-1]
    x = samples.reshape(math.prod(lead), samples.shape[-1])
    if not x.is_floating_point():
        x = x.float()
    if x.shape[-1] < win_length:
        return x.new_zeros((*lead, 0, n_mels))
    left = (n_fft - win_length) // 2  # torch.stft centres a short window in the n_fft frame
    if n_fft > win_length:
        x = torch.nn.functional.pad(x, (left, n_fft - win_length - left))
    spec = torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window.to(x.dtype),
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )  # complex (batch, freq, frames)
    if power == 2.0:  # |X|^2 without the square root of abs(): ~2x faster than abs().pow(2)
        spec = spec.real.square() + spec.imag.square()
    else:
        spec = spec.abs().pow(power)
    mel = torch.matmul(spec.transpose(-1, -2), fbanks.to(x.dtype))  # (batch, frames, n_mels)
    if log_offset:
        mel = mel + log_offset
    mel = mel.clamp_min(log_floor)
    out = (20.0 / power) * torch.log10(mel) if log == "db" else torch.log(mel)
    return out.reshape(*lead, out.shape[-2], n_mels)


def _hz_to_mel(hz: float, scale: str) -> float:
    if scale == "htk":
        return 2595.0 * math.log10(1.0 + hz / 700.0)
    if hz < 1000.0:
        return hz * 3.0 / 200.0
    return 15.0 + math.log(hz / 1000.0) / (math.log(6.4) / 27.0)


def _mel_to_hz(mel: float, scale: str) -> float:
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    if mel < 15.0:
        return mel * 200.0 / 3.0
    return 1000.0 * math.exp((mel - 15.0) * math.log(6.4) / 27.0)


def mel_filterbank(
    n_freqs: int,
    f_min: float,
    f_max: float,
    n_mels: int,
    sample_rate: int,
    norm: str | None = None,
    scale: str = "htk",
) -> torch.Tensor:
    """Triangular Mel filters ``(n_freqs, n_mels)`` (float32) over the ``n_freqs`` bins of a one-sided
    spectrum from 0 to ``sample_rate // 2`` Hz.

    Band ``m`` rises from the ``m``-th to the ``m+1``-th of ``n_mels + 2`` points spaced evenly on
    the ``scale`` Mel scale between ``f_min`` and ``f_max`` Hz, and falls to the ``m+2``-th.
    ``norm="slaney"`` scales each band to unit area (``2 / bandwidth``). A band narrower than one
    bin comes out all zero; :class:`LogMel` refuses such settings.
    """
    bins = torch.linspace(0.0, float(sample_rate // 2), n_freqs, dtype=torch.float64)
    low, high = _hz_to_mel(f_min, scale), _hz_to_mel(f_max, scale)
    points = torch.tensor(
        [_mel_to_hz(low + (high - low) * i / (n_mels + 1), scale) for i in range(n_mels + 2)], dtype=torch.float64
    )
    width = points[1:] - points[:-1]  # (n_mels + 1,)
    offset = points.unsqueeze(0) - bins.unsqueeze(1)  # (n_freqs, n_mels + 2)
    rising = -offset[:, :-2] / width[:-1]
    falling = offset[:, 2:] / width[1:]
    fbanks = torch.minimum(rising, falling).clamp_min(0.0)
    if norm == "slaney":
        fbanks = fbanks * (2.0 / (points[2:] - points[:-2]))
    return fbanks.to(torch.float32)


def mel_center_frequencies(n_mels: int, f_min: float, f_max: float, scale: str = "htk") -> torch.Tensor:
    """Centre (peak) frequency in Hz of each of ``n_mels`` triangular bands, ``(n_mels,)``."""
    low, high = _hz_to_mel(f_min, scale), _hz_to_mel(f_max, scale)
    step = (high - low) / (n_mels + 1)
    return torch.tensor([_mel_to_hz(low + step * (m + 1), scale) for m in range(n_mels)], dtype=torch.float64)


# --- module -----------------------------------------------------------------------------------


class LogMel(FrameExtractor):
    """Log-Mel frames ``(batch, samples)`` -> ``(batch, frames, n_mels)`` (any leading dims).

    ``config`` is a :class:`LogMelConfig` or a preset name of :data:`PRESETS`. Names are
    ``logmel_000`` ... ; ``context`` is ``(0, 0)`` (each frame depends on its window only).
    """

    def __init__(self, config: LogMelConfig | str = "latif2020") -> None:
        super().__init__()
        if isinstance(config, str):
            if config not in PRESETS:
                raise ConfigError(
                    f"unknown logmel preset {config!r}; presets: {', '.join(PRESETS)}"
                ) from None
            config = PRESETS[config]
        self.config = config
        self.sample_rate = config.sample_rate
        self.window_length = config.win_length
        self.hop_length = config.hop_length
        self.context = (0, 0)
        self.names = tuple(f"logmel_{i:03d}" for i in range(config.n_mels))
        self.f_max = config.sample_rate / 2 if config.f_max is None else config.f_max
        fbanks = mel_filterbank(
            config.n_fft // 2 + 1, config.f_min, self.f_max, config.n_mels, config.sample_rate,
            config.mel_norm, config.mel_scale,
        )
        empty = (fbanks.max(dim=0).values <= 0).nonzero().flatten().tolist()
        if empty:
            raise ConfigError(
                f"logmel settings give {len(empty)} empty mel band(s) (index {empty[:5]}): "
                f"{config.n_mels} bands are too narrow for n_fft {config.n_fft} at {config.sample_rate} Hz; "
                "raise n_fft, lower n_mels or use mel_scale slaney"
            ) from None
        self.register_buffer("window", make_window(config.window, config.win_length), persistent=False)
        self.register_buffer("fbanks", fbanks, persistent=False)

    @property
    def pad_value(self) -> float:
        """The output value of silence (all-zero input): the log of ``log_floor`` (or of ``log_offset``)."""
        c = self.config
        level = torch.tensor(max(c.log_offset, c.log_floor), dtype=torch.float64)
        value = (20.0 / c.power) * torch.log10(level) if c.log == "db" else torch.log(level)
        return float(value)

    @property
    def band_centers_hz(self) -> torch.Tensor:
        """``(n_mels,)`` centre frequency of each band in Hz."""
        c = self.config
        return mel_center_frequencies(c.n_mels, c.f_min, self.f_max, c.mel_scale)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """``(..., samples)`` float at ``sample_rate`` -> ``(..., frames, n_mels)``."""
        c = self.config
        return log_mel_spectrogram(
            samples, self.window, self.fbanks, c.n_fft, c.hop_length, c.power, c.log, c.log_floor, c.log_offset
        )

    def model_inputs(self, samples: torch.Tensor) -> torch.Tensor:
        """One utterance ``(samples,)`` -> ``(segments, frames, n_mels)`` by the preset's length rule.

        ``max_seconds``: the waveform is cut or padded (``pad``/``crop``) to that duration, one
        segment. ``fixed_frames``: :func:`~ser_robot.features.segments.fix_length`, one
        segment. ``segment_frames``: :func:`~ser_robot.features.segments.segment` (several).
        No rule: the whole utterance as one segment. Constant padding of frames uses
        :attr:`pad_value` (silence).
        """
        if samples.dim() != 1:
            raise ValueError(f"model_inputs takes one utterance (samples,), got shape {tuple(samples.shape)}")
        c = self.config
        if c.max_samples is not None:
            samples = fix_samples(samples, c.max_samples, pad=c.pad, crop=c.crop)
        frames = self(samples)
        if c.fixed_frames is not None:
            return fix_length(frames, c.fixed_frames, c.pad, c.crop, self.pad_value).unsqueeze(0)
        if c.segment_frames is not None:
            return segment(frames, c.segment_frames, c.segment_hop, self.pad_value)
        return frames.unsqueeze(0)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"sample_rate={c.sample_rate}, win_length={c.win_length}, hop_length={c.hop_length}, "
            f"n_fft={c.n_fft}, n_mels={c.n_mels}, window={c.window}"
        )
