"""Speech from Debian's espeak-ng, as float32 samples."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np

from ser_robot.errors import AudioError

__all__ = ["espeak_ng"]


def espeak_ng(text: str, voice: str = "en-us", words_per_minute: int = 160, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Synthesise ``text``; returns mono float32 samples ``(samples,)`` and their rate in Hz.

    ``pitch`` is espeak-ng's 0-99 pitch setting.
    """
    import soundfile

    if shutil.which("espeak-ng") is None:
        raise AudioError("espeak-ng not found: install the Debian package espeak-ng (make setup does this)")
    result = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-p", str(pitch), "--stdout", text],
        capture_output=True, timeout=60,
    )
    if result.returncode != 0 or not result.stdout:
        raise AudioError(f"espeak-ng failed for voice {voice!r}: {result.stderr.decode(errors='replace').strip()}")
    samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
    return samples, rate
