"""The robot re-recording simulator: a corpus in, its "re-recorded on the robot" twin out.

The analogue of IEMOCAP-iCub (Lakomkin et al. 2018): every utterance is played through a
loudspeaker 1.6 m in front of the robot's head in a lab and recorded by its two ear
microphones, with the lab's background noise, the robot's ego-noise and occasional household
events. Stages, in order (all parameters in ``config/sim/icub_lab.yaml``):

1. loudspeaker: band limits, response ripple, tanh soft clip (:mod:`ser_robot.sim.loudspeaker`);
2. room: convolution with the two-ear impulse response of the lab (pyroomacoustics image
   source method, computed once) or, in the ``train`` condition, of a RIR-bank training room,
   with the spherical-head shadow on the direct sound (:mod:`ser_robot.sim.head`). The direct
   sound at the head centre keeps gain 1; the output is aligned on the earlier ear's direct
   arrival and as long as the input (the reverberant tail past the end is cut);
3. background: diffuse lab noise (fans, ventilation), the two ears decorrelated as in a diffuse
   field (:func:`~ser_robot.sim.levels.diffuse_pair`);
4. ego-noise: near field, partly different at each ear (:func:`~ser_robot.sim.levels.near_field_pair`);
5. household events with a probability per utterance, played from a point in the room;
6. microphone: gain, white self-noise (independent per ear), 16-bit quantisation (clipping counted).

Noise levels: ``snr_db`` of a stage is the active speech level at the ears (mean of both ears,
:func:`~ser_robot.sim.levels.active_level_db`) minus the noise's RMS level over the utterance
(events: minus the event's active level), the speech level being ``levels.reference_dbfs`` in
the ``fixed`` reference (the default) or the utterance's own in the ``utterance`` reference.

Determinism: every stage draws from its own generator seeded by (seed, utterance id, stage)
(:func:`stage_rng`), so an utterance's output does not depend on the others, on the worker that
made it, on resumption, or on which other stages are enabled. Output: 16 kHz stereo PCM_16 WAV.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import pathlib
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from ser_robot.acoustics.noise import SAMPLE_RATE
from ser_robot.acoustics.noise_bank import NoiseBank, NoiseClipRecord, build_noise_bank
from ser_robot.acoustics.rooms import RirBank, RirRecord
from ser_robot.data.manifest import Manifest, read_manifest, write_manifest
from ser_robot.errors import AcousticsError, ConfigError, DataError
from ser_robot.sim.conditions import condition_noise, lab_room_in_bank
from ser_robot.sim.config import SimulatorConfig, load_sim_config
from ser_robot.sim.head import BinauralIr, binaural_ir, lab_irs
from ser_robot.sim.levels import (
    active_level_db,
    diffuse_pair,
    near_field_pair,
    rms_db,
    scale_to_db,
)
from ser_robot.sim.loudspeaker import loudspeaker, loudspeaker_sos

__all__ = ["SIM_VERSION", "STAGES", "SimResult", "Simulator", "simulate_robot", "stage_rng"]

log = logging.getLogger(__name__)

SIM_VERSION = 1
"""Bumped whenever the simulation changes its output for the same inputs: part of every cache key."""

STAGES = ("room", "background", "ego_noise", "events", "microphone")
"""The stages that draw random numbers, each from its own :func:`stage_rng` stream."""

_EVENT_RANGE_DB = 20.0  # an event frame is within 20 dB of the clip's loudest frame


def stage_rng(seed: int, utterance_id: str, stage: str) -> np.random.Generator:
    """The generator of ``stage`` for utterance ``utterance_id`` under ``seed`` (independent of every other)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    digest = hashlib.sha256(f"{utterance_id}\0{stage}".encode()).digest()
    words = np.frombuffer(digest[:16], dtype=np.uint32).tolist()
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, *words]))


@dataclass(frozen=True)
class SimResult:
    """One simulated recording: ``pcm`` int16 ``(time, 2)`` (left, right) at 16 kHz, and the
    simulation's parameters (JSON-able, recorded in the manifest's ``extra["robot_sim"]``)."""

    pcm: np.ndarray
    params: dict[str, Any]

    @property
    def audio(self) -> np.ndarray:
        """The recording as float32 ``(2, time)``, full scale 1 (``pcm / 32768``)."""
        return (self.pcm.T.astype(np.float32) / 32768.0)


def _load_noise(noise_bank: NoiseBank | str | os.PathLike) -> NoiseBank:
    return noise_bank if isinstance(noise_bank, NoiseBank) else NoiseBank.load(noise_bank)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class Simulator:
    """The re-recording simulator for one configuration, noise bank, seed and (train condition) RIR bank.

    ``config``: a :class:`SimulatorConfig`; ``noise_bank``: the **full** bank (or its folder), from
    which :func:`~ser_robot.sim.conditions.condition_noise` keeps the condition's clips; ``seed``:
    master seed (non-negative int); ``rir_bank``: needed only for ``condition == "train"`` (its
    training rooms are used). Picklable: worker processes receive it whole.
    """

    def __init__(self, config: SimulatorConfig, noise_bank: NoiseBank | str | os.PathLike, seed: int = 0,
                 rir_bank: RirBank | str | os.PathLike | None = None):
        stage_rng(seed, "", "check")  # validates the seed
        self.config = config
        self.seed = int(seed)
        self.fs = SAMPLE_RATE
        stages_on = config.background.enabled or config.ego_noise.enabled or config.events.enabled
        self.noise = condition_noise(_load_noise(noise_bank), config) if stages_on else None
        ls = config.loudspeaker
        self._sos = loudspeaker_sos(ls.highpass_hz, ls.highpass_order, ls.lowpass_hz, ls.lowpass_order, ls.ripple,
                                    self.fs)
        self.rirs: RirBank | None = None
        self._bank_irs: dict[str, BinauralIr] = {}
        if config.condition == "test":
            r, h = config.room, config.head
            irs = lab_irs(r.dims_m, r.rt60_s, r.max_order_cap, r.head_position_m, r.head_yaw_deg, h.ear_spacing_m,
                          h.ear_angle_deg, h.shadow, [config.source_position(), *config.events.positions_m], self.fs)
            self.speech_ir: BinauralIr | None = irs[0]
            self.event_irs: list[BinauralIr] = irs[1:]
            room_id: Any = irs[0].info
        else:
            if rir_bank is None:
                raise ConfigError("condition 'train' simulates RIR-bank training rooms: pass rir_bank (a RirBank or "
                                  "its folder, see ser_robot.acoustics.build_rir_bank)")
            bank = rir_bank if isinstance(rir_bank, RirBank) else RirBank.load(rir_bank)
            self.rirs = bank.subset("train")
            if not self.rirs.records:
                raise AcousticsError(f"RIR bank {bank.root} has no training room")
            clash = lab_room_in_bank(config, self.rirs)
            if clash:
                raise AcousticsError(f"RIR bank {bank.root}: training room {clash[0].room} is the robot lab room; the "
                                     "train condition must not use it")
            self.speech_ir, self.event_irs = None, []
            room_id = sorted(r.file for r in self.rirs.records)
        clips = sorted(r.file for r in self.noise.records) if self.noise is not None else []
        self.key = _hash({"version": SIM_VERSION, "config": config.key(), "seed": self.seed, "clips": clips,
                          "room": room_id})
        """Hash of everything that determines the output (version, configuration, seed, clips, rooms)."""

    def __repr__(self) -> str:
        return f"Simulator(condition={self.config.condition!r}, seed={self.seed}, key={self.key[:12]})"

    # -- stages ---------------------------------------------------------------------------------

    def _bank_ir(self, record: RirRecord) -> BinauralIr:
        if record.file not in self._bank_irs:
            assert self.rirs is not None
            distance = float(np.linalg.norm(np.subtract(record.source_position, record.head_position)))
            h = self.config.head
            self._bank_irs[record.file] = binaural_ir(
                self.rirs.ir(record), record.direct_delay_samples, record.azimuth_deg, distance,
                record.ear_spacing_m / 2, h.ear_angle_deg, h.shadow, self.fs,
                {"room": record.room, "rir": record.file, "dims_m": record.room_dim,
                 "rt60_target_s": record.rt60_target_s, "azimuth_deg": record.azimuth_deg,
                 "distance_m": round(distance, 4)})
        return self._bank_irs[record.file]

    def _room_irs(self, rng: np.random.Generator) -> tuple[BinauralIr, list[BinauralIr]]:
        """(speech IR, candidate event IRs) for one utterance."""
        if self.speech_ir is not None:
            return self.speech_ir, self.event_irs
        assert self.rirs is not None
        records = self.rirs.records
        speech = records[int(rng.integers(len(records)))]
        others = [r for r in records if r.room == speech.room and r.file != speech.file] or [speech]
        return self._bank_ir(speech), [self._bank_ir(r) for r in others]

    @staticmethod
    def _convolve(x: np.ndarray, bir: BinauralIr) -> np.ndarray:
        """``x`` ``(n,)`` through ``bir``: ``(2, n)``, aligned on the earlier ear's direct sound."""
        shift = min(bir.direct)
        n = len(x)
        return signal.fftconvolve(x[None, :], bir.ir, axes=-1)[:, shift: shift + n]

    def _pick_clip(self, rng: np.random.Generator, categories: Sequence[str]) -> tuple[str, NoiseClipRecord, np.ndarray]:
        assert self.noise is not None
        category = categories[int(rng.integers(len(categories)))]
        pool = self.noise.clips(category)
        record = pool[int(rng.integers(len(pool)))]
        return category, record, self.noise.audio(record).astype(np.float64)

    @staticmethod
    def _segments(rng: np.random.Generator, clip: np.ndarray, n: int, count: int) -> tuple[list[np.ndarray], list[int]]:
        """``count`` ``n``-sample segments of ``clip`` (looped) starting ``len(clip) / count`` samples apart."""
        first = int(rng.integers(len(clip)))
        offsets = [(first + k * len(clip) // count) % len(clip) for k in range(count)]
        return [np.take(clip, np.arange(o, o + n), mode="wrap") for o in offsets], offsets

    def _level(self, speech_db: float) -> float:
        lv = self.config.levels
        return lv.reference_dbfs if lv.reference == "fixed" else speech_db

    def _background(self, rng: np.random.Generator, n: int, speech_db: float) -> tuple[np.ndarray, dict[str, Any]]:
        cfg = self.config.background
        category, record, clip = self._pick_clip(rng, cfg.categories)
        (a, b), offsets = self._segments(rng, clip, n, 2)
        pair = diffuse_pair(a, b, self.config.head.ear_spacing_m, self.fs) if cfg.diffuse else np.stack([a, b])
        target = self._level(speech_db) - cfg.snr_db
        pair = scale_to_db(pair, rms_db(pair), target)
        return pair, {"category": category, "clip": record.file, "offsets": offsets, "level_dbfs": round(target, 3),
                      "snr_db": round(speech_db - target, 3)}

    def _ego(self, rng: np.random.Generator, n: int, speech_db: float) -> tuple[np.ndarray, dict[str, Any]]:
        cfg = self.config.ego_noise
        category, record, clip = self._pick_clip(rng, cfg.categories)
        (common, left, right), offsets = self._segments(rng, clip, n, 3)
        pair = near_field_pair(common, left, right, cfg.ear_coherence, cfg.level_difference_db)
        target = self._level(speech_db) - cfg.snr_db
        pair = scale_to_db(pair, rms_db(pair), target)
        return pair, {"category": category, "clip": record.file, "offsets": offsets, "level_dbfs": round(target, 3),
                      "snr_db": round(speech_db - target, 3)}

    def _event(self, rng: np.random.Generator, n: int, speech_db: float, irs: list[BinauralIr],
               ) -> tuple[np.ndarray | None, dict[str, Any] | None]:
        cfg = self.config.events
        if rng.random() >= cfg.probability:
            return None, None
        category, record, clip = self._pick_clip(rng, cfg.categories)
        frame = int(round(0.01 * self.fs))  # noqa: RUF046
        frames = len(clip) // frame
        power = np.mean(np.square(clip[: frames * frame]).reshape(frames, frame), axis=1)
        active = np.flatnonzero(power >= power.max() * 10.0 ** (-_EVENT_RANGE_DB / 10.0))
        anchor = int(active[int(rng.integers(len(active)))]) * frame  # a sample where the event sounds
        at = int(rng.integers(n))  # where it lands in the utterance
        start = anchor - at
        dry = np.zeros(n)
        lo, hi = max(0, start), min(len(clip), start + n)
        dry[lo - start: hi - start] = clip[lo:hi]
        bir = irs[int(rng.integers(len(irs)))]
        pair = self._convolve(dry, bir)
        level = active_level_db(pair, self.fs, self.config.levels.active_range_db)
        target = self._level(speech_db) - cfg.snr_db
        pair = scale_to_db(pair, level, target)
        return pair, {"category": category, "clip": record.file, "clip_offset": start, "at_s": round(at / self.fs, 4),
                      "from": bir.info, "level_dbfs": round(target, 3), "snr_db": round(speech_db - target, 3)}

    # -- public ---------------------------------------------------------------------------------

    def simulate(self, audio: np.ndarray, fs: int, utterance_id: str) -> SimResult:
        """Re-record ``audio`` (``(time,)`` or ``(time, channels)``, float, full scale 1, ``fs`` Hz; channels
        are averaged, other rates resampled to 16 kHz) as utterance ``utterance_id``.

        Returns a :class:`SimResult`: int16 ``(n, 2)`` at 16 kHz, ``n`` the input length at 16 kHz.
        """
        x = np.asarray(audio, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if x.ndim != 1 or x.size == 0:
            raise DataError(f"utterance {utterance_id!r}: expected audio of shape (time,) or (time, channels), "
                            f"got {np.shape(audio)}")
        if fs != self.fs:
            g = math.gcd(int(fs), self.fs)
            x = signal.resample_poly(x, self.fs // g, int(fs) // g)
        n = len(x)
        cfg = self.config
        rngs = {stage: stage_rng(self.seed, utterance_id, stage) for stage in STAGES}
        params: dict[str, Any] = {"version": SIM_VERSION, "key": self.key, "condition": cfg.condition,
                                  "seed": self.seed, "config": cfg.source}
        if cfg.loudspeaker.enabled:
            peak = float(np.max(np.abs(x)))
            x = loudspeaker(x, self._sos, cfg.loudspeaker.drive)
            params["loudspeaker"] = {"input_peak_dbfs": round(20 * math.log10(max(peak, 1e-10)), 3)}
        speech_ir, event_irs = self._room_irs(rngs["room"])
        ears = self._convolve(x, speech_ir)
        params["room"] = dict(speech_ir.info)
        speech_db = active_level_db(ears, self.fs, cfg.levels.active_range_db)
        params["speech_level_dbfs"] = round(speech_db, 3)
        mix = ears.copy()
        for name, stage, make in (("background", cfg.background, self._background), ("ego_noise", cfg.ego_noise, self._ego)):
            if stage.enabled:
                noise, info = make(rngs[name], n, speech_db)
                mix += noise
                params[name] = info
        if cfg.events.enabled:
            event, info = self._event(rngs["events"], n, speech_db, event_irs)
            if event is not None:
                mix += event
            params["event"] = info
        mic = cfg.microphone
        mix *= 10.0 ** (mic.gain_db / 20.0)
        if mic.self_noise:
            mix += rngs["microphone"].standard_normal(mix.shape) * 10.0 ** (mic.self_noise_dbfs / 20.0)
        scaled = np.round(mix * 32768.0)
        clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
        pcm = np.clip(scaled, -32768, 32767).astype(np.int16).T.copy()
        params["microphone"] = {"gain_db": mic.gain_db, "self_noise_dbfs": mic.self_noise_dbfs if mic.self_noise else None,
                                "clipped_samples": clipped}
        if clipped:
            log.debug("utterance %s: %d samples clipped at 16 bits", utterance_id, clipped)
        return SimResult(pcm, params)

    def simulate_file(self, path: str | os.PathLike, utterance_id: str) -> SimResult:
        """:meth:`simulate` on an audio file (any rate and channel count soundfile reads)."""
        import soundfile

        try:
            audio, fs = soundfile.read(str(path), dtype="float64", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise DataError(f"cannot read audio file {path} of utterance {utterance_id!r}: {error}") from None
        return self.simulate(audio, int(fs), utterance_id)


# -- corpus runs ----------------------------------------------------------------------------------

_WORKER: Simulator | None = None


def _init_worker(simulator: Simulator) -> None:
    global _WORKER
    _WORKER = simulator


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"


def _job(simulator: Simulator, utterance_id: str, source: str, wav: str) -> tuple[dict[str, Any], int]:
    """Simulate one utterance into ``wav`` (+ a ``.json`` sidecar), unless a run with the same key made it."""
    import soundfile

    wav_path = pathlib.Path(wav)
    sidecar = wav_path.with_suffix(".json")
    if wav_path.is_file() and sidecar.is_file():
        try:
            done = json.loads(sidecar.read_text(encoding="utf-8"))
            if done.get("key") == simulator.key and done.get("id") == utterance_id:
                return done["params"], int(done["frames"])
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
    result = simulator.simulate_file(source, utterance_id)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = wav_path.with_suffix(".tmp.wav")
    soundfile.write(str(tmp), result.pcm, simulator.fs, subtype="PCM_16")
    tmp.replace(wav_path)
    tmp_json = sidecar.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps({"id": utterance_id, "key": simulator.key, "frames": len(result.pcm),
                                    "params": result.params}) + "\n", encoding="utf-8")
    tmp_json.replace(sidecar)
    return result.params, len(result.pcm)


def _worker_job(args: tuple[str, str, str]) -> tuple[dict[str, Any], int]:
    assert _WORKER is not None
    return _job(_WORKER, *args)


def simulate_robot(manifest_path: str | os.PathLike, out_dir: str | os.PathLike,
                   config_path: str | os.PathLike | None = None, noise_bank: NoiseBank | str | os.PathLike | None = None,
                   seed: int = 0, workers: int | None = None, progress: bool = True, *,
                   rir_bank: RirBank | str | os.PathLike | None = None,
                   overrides: Mapping[str, Any] | None = None) -> Manifest:
    """Re-record the corpus of ``manifest_path`` "on the robot" into ``out_dir``; return the new manifest.

    ``config_path``: simulator YAML (default ``config/sim/icub_lab.yaml``), ``overrides`` merged into
    it (e.g. ``{"events": {"probability": 0.0}}``). ``noise_bank``: the full noise bank or its folder;
    ``None`` builds (or reuses) the default bank in ``out_dir/../noise_bank`` (every category that
    needs no speech). ``seed``: master seed. ``workers``: processes (default: all CPUs; 1 = in this
    process). ``rir_bank``: only for ``condition: train``.

    Writes ``out_dir/wav/<speaker>/<id>.wav`` (16 kHz stereo PCM_16, left/right ear) with a
    ``.json`` sidecar each (a resumed run with the same key skips finished utterances),
    ``out_dir/manifest.jsonl`` (same ids, labels and speakers; ``extra["robot_sim"]`` holds each
    utterance's simulation parameters) and ``out_dir/sim_config.yaml`` (the effective configuration,
    seed, noise bank and key).
    """
    import yaml
    from tqdm import tqdm

    config = load_sim_config(config_path, overrides)
    manifest = read_manifest(manifest_path, check_files=True)
    out = pathlib.Path(out_dir).resolve()
    if noise_bank is None:
        noise_bank = build_noise_bank(out.parent / "noise_bank", progress=progress)
    bank = _load_noise(noise_bank)
    simulator = Simulator(config, bank, seed, rir_bank)
    jobs = [(u.id, u.path, str(out / "wav" / _safe(u.speaker) / f"{_safe(u.id)}.wav")) for u in manifest]
    if len({j[2] for j in jobs}) != len(jobs):
        raise DataError("two utterance ids map to the same output file name after replacing unusual characters; "
                        "rename them")
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    bar = tqdm(total=len(jobs), desc="robot-sim", unit="utt", disable=not progress)
    results: list[tuple[dict[str, Any], int]] = []
    if workers == 1:
        for job in jobs:
            results.append(_job(simulator, *job))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(simulator,)) as pool:
            for result in pool.map(_worker_job, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers)))):
                results.append(result)
                bar.update()
    bar.close()
    utterances = [dataclasses.replace(u, path=wav, sample_rate=SAMPLE_RATE, duration_s=round(frames / SAMPLE_RATE, 6),
                                      extra={**u.extra, "robot_sim": params})
                  for u, (_, _, wav), (params, frames) in zip(manifest, jobs, results)]
    robot = Manifest(utterances, manifest.labels)
    write_manifest(out / "manifest.jsonl", robot)
    summary = {"kind": "ser_robot.robot_sim", "version": SIM_VERSION, "key": simulator.key, "seed": simulator.seed,
               "source_manifest": str(pathlib.Path(manifest_path).resolve()), "noise_bank": str(bank.root),
               "config_file": config.source, "config": config.to_dict()}
    (out / "sim_config.yaml").write_text(yaml.safe_dump(summary, sort_keys=False), encoding="utf-8")
    clipped = sum(1 for params, _ in results if params["microphone"]["clipped_samples"])
    if clipped:
        log.warning("%d of %d utterances clipped at 16 bits; lower microphone.gain_db", clipped, len(results))
    return robot
