"""A figure of one utterance before and after re-recording: spectrograms of the clean signal and both ears."""

from __future__ import annotations

import os
import pathlib

import numpy as np
from scipy import signal

from ser_robot.errors import DataError

__all__ = ["plot_rerecording"]


def _spectrogram_db(x: np.ndarray, fs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequencies Hz ``(f,)``, times s ``(t,)``, power dB ``(f, t)``): 32 ms Hann frames, 8 ms hop."""
    nperseg = int(0.032 * fs)
    freqs, times, power = signal.spectrogram(x, fs=fs, window="hann", nperseg=nperseg, noverlap=nperseg * 3 // 4)
    return freqs, times, 10.0 * np.log10(power + 1e-12)


def plot_rerecording(clean_path: str | os.PathLike, robot_path: str | os.PathLike,
                     png_path: str | os.PathLike) -> pathlib.Path:
    """Write a PNG with three spectrograms (dB, common colour scale): the clean utterance and the
    robot recording's left and right ears. Needs matplotlib (Agg backend); returns ``png_path``."""
    import soundfile

    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ModuleNotFoundError("plot_rerecording needs matplotlib: install it (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean, fs_clean = soundfile.read(str(clean_path), dtype="float64", always_2d=True)
    robot, fs_robot = soundfile.read(str(robot_path), dtype="float64", always_2d=True)
    if robot.shape[1] != 2:
        raise DataError(f"{robot_path}: expected a two-ear (stereo) recording, got {robot.shape[1]} channel(s)")
    panels = [("clean", clean.mean(axis=1), fs_clean), ("robot, left ear", robot[:, 0], fs_robot),
              ("robot, right ear", robot[:, 1], fs_robot)]
    spectra = [(title, *_spectrogram_db(x, fs)) for title, x, fs in panels]
    top = max(float(s[3].max()) for s in spectra)
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True, constrained_layout=True)
    for ax, (title, freqs, times, power) in zip(axes, spectra):
        mesh = ax.pcolormesh(times, freqs / 1000.0, power, shading="auto", vmin=top - 80.0, vmax=top, cmap="magma")
        ax.set_title(title)
        ax.set_ylabel("frequency (kHz)")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(mesh, ax=axes, label="power (dB)")
    fig.suptitle(pathlib.Path(robot_path).stem)
    png_path = pathlib.Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
