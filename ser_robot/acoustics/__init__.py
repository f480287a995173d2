"""Acoustic conditions for augmentation and robustness tests: a noise bank and room impulse responses.

- :mod:`~ser_robot.acoustics.noise`: the noise categories (coloured, HVAC/computer fan, robot
  ego-noise, babble, household events, stand-ins for the DEMAND scenes) and :func:`generate_noise`.
- :mod:`~ser_robot.acoustics.ego_noise`, :mod:`~ser_robot.acoustics.household`: the models behind
  the ego-noise and household-event categories.
- :mod:`~ser_robot.acoustics.noise_bank`: :func:`build_noise_bank` writes clips once (WAV +
  ``manifest.json``, cached) and :class:`NoiseBank` samples from them, with held-out conditions.
- :mod:`~ser_robot.acoustics.rooms`: :func:`build_rir_bank` simulates two-ear RIRs with
  pyroomacoustics, :class:`RirBank` samples them (train/test rooms disjoint), :func:`measure_rt60`.

Everything is 16 kHz and deterministic from a seed.
"""

from ser_robot.acoustics.noise import (
    CATEGORIES,
    CLIP_RMS_DBFS,
    PEAK_LIMIT,
    SAMPLE_RATE,
    SCENE_STANDINS,
    AcousticsError,
    NoiseCategory,
    NoiseClip,
    category_rng,
    generate_noise,
)
from ser_robot.acoustics.noise_bank import (
    NOISE_CONDITIONS,
    NoiseBank,
    NoiseClipRecord,
    build_noise_bank,
)
from ser_robot.acoustics.rooms import (
    Rir,
    RirBank,
    RirRecord,
    build_rir_bank,
    measure_rt60,
)

__all__ = [
    "CATEGORIES",
    "CLIP_RMS_DBFS",
    "NOISE_CONDITIONS",
    "PEAK_LIMIT",
    "SAMPLE_RATE",
    "SCENE_STANDINS",
    "AcousticsError",
    "NoiseBank",
    "NoiseCategory",
    "NoiseClip",
    "NoiseClipRecord",
    "Rir",
    "RirBank",
    "RirRecord",
    "build_noise_bank",
    "build_rir_bank",
    "category_rng",
    "generate_noise",
    "measure_rt60",
]
