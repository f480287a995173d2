"""The noise bank: clips of every noise category written once as WAV, with a JSON manifest.

Layout of ``out``::

    out/manifest.json                                  settings, key, one record per clip
    out/wav/<category>/<category>_<index:03d>_<key>.wav 16 kHz mono 16-bit PCM, -30 dBFS RMS

Clip ``index`` of ``category`` depends only on (seed, category, index, seconds, the speech
pool for babble) through :func:`~ser_robot.acoustics.noise.category_rng`, and its file name
carries the hash of exactly those, so re-building with the same arguments writes nothing (not
even the manifest), and growing ``clips_per_category`` reuses the clips already there. Files no
longer referenced are removed from ``out/wav``.

Held-out conditions: :meth:`NoiseBank.split_categories` (train on some categories, test on
others; :data:`NOISE_CONDITIONS` names the ones the papers motivate) and
:meth:`NoiseBank.split_clips` (same categories, disjoint clips: different seeds and drawn
parameters). Babble is speaker-disjoint from a fold when built with that fold's test speakers
in ``exclude_speakers``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pathlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ser_robot.acoustics._bank import MANIFEST, read_bank_manifest
from ser_robot.acoustics.noise import (
    CATEGORIES,
    CLIP_RMS_DBFS,
    SAMPLE_RATE,
    SCENE_STANDINS,
    AcousticsError,
    category_rng,
    generate_noise,
    speech_pool,
)
from ser_robot.data.manifest import Utterance, read_manifest

__all__ = ["NOISE_BANK_VERSION", "NOISE_CONDITIONS", "NoiseBank", "NoiseClipRecord", "build_noise_bank"]

log = logging.getLogger(__name__)

NOISE_BANK_VERSION = 1
"""Bumped whenever a generator changes its output: part of every cache key."""


NOISE_CONDITIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "unseen_scenes": (
        tuple(c for c in CATEGORIES if c not in SCENE_STANDINS), SCENE_STANDINS),
    "unseen_ego": (
        tuple(c for c in CATEGORIES if CATEGORIES[c].family != "ego"),
        tuple(c for c in CATEGORIES if CATEGORIES[c].family == "ego")),
    "recorded_events": (
        tuple(c for c in CATEGORIES if c != "household_recorded"), ("household_recorded",)),
}
"""Named (train categories, test categories) pairs for :meth:`NoiseBank.condition`.

- ``unseen_scenes``: Latif et al.'s mismatched setting: no scene noise in training, tested on
  the five DEMAND stand-ins.
- ``unseen_ego``: Lakomkin et al.: no robot ego-noise in training, tested on ego-noise.
- ``recorded_events``: trained on synthesised events, tested on recorded ones.
"""


@dataclass(frozen=True)
class NoiseClipRecord:
    """One clip of the bank: ``file`` relative to the bank's folder; ``params`` as drawn by its generator."""

    category: str
    family: str
    index: int
    file: str
    seed: int
    seconds: float
    key: str
    params: dict[str, Any] = field(default_factory=dict)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class NoiseBank:
    """A folder of noise clips and their manifest (see the module docstring).

    ``records``: the clips, in category order then index; ``key``: the hash of the build arguments
    (``None`` for a subset). Audio is read lazily and kept.
    """

    def __init__(self, root: str | pathlib.Path, records: Sequence[NoiseClipRecord], settings: dict[str, Any],
                 key: str | None = None):
        self.root = pathlib.Path(root)
        self.key = key
        self.records = list(records)
        self.settings = dict(settings)
        self._audio: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"NoiseBank({self.root}, {len(self)} clips, categories={self.categories})"

    @classmethod
    def load(cls, path: str | pathlib.Path) -> NoiseBank:
        """Read a bank from its folder or its ``manifest.json``; raises :class:`AcousticsError` naming what is wrong."""
        root, records, data = read_bank_manifest(path, "noise bank", "build_noise_bank", "clips", NoiseClipRecord)
        if "settings" not in data:
            raise AcousticsError(f"noise bank manifest in {root} is malformed (no settings); rebuild it")
        return cls(root, records, data["settings"], data.get("key"))

    @property
    def categories(self) -> list[str]:
        """Categories present, in registry order."""
        return list(dict.fromkeys(r.category for r in self.records))

    def clips(self, category: str) -> list[NoiseClipRecord]:
        """The clips of ``category`` (raises :class:`AcousticsError` if the bank has none)."""
        chosen = [r for r in self.records if r.category == category]
        if not chosen:
            raise AcousticsError(f"noise bank {self.root} has no clips of category {category!r}; "
                                 f"it has {self.categories}")
        return chosen

    def audio(self, record: NoiseClipRecord) -> np.ndarray:
        """The samples of ``record``: float32, shape ``(n,)``, 16 kHz (read once, then kept; read-only)."""
        if record.file not in self._audio:
            import soundfile

            samples, rate = soundfile.read(str(self.root / record.file), dtype="float32")
            if rate != SAMPLE_RATE or samples.ndim != 1:
                raise AcousticsError(f"noise clip {record.file}: expected 16 kHz mono, got {rate} Hz, "
                                     f"shape {samples.shape}; rebuild the bank")
            samples.setflags(write=False)
            self._audio[record.file] = samples
        return self._audio[record.file]

    def sample_with_info(self, rng: np.random.Generator, seconds: float, categories: Iterable[str] | None = None,
                         ) -> tuple[np.ndarray, NoiseClipRecord, int]:
        """Like :meth:`sample`, also returning the clip record and the start offset (samples)."""
        names = self.categories if categories is None else list(categories)
        if not names:
            raise AcousticsError("no noise categories to sample from: categories is empty")
        for name in names:
            self.clips(name)
        category = names[int(rng.integers(len(names)))]
        pool = self.clips(category)
        record = pool[int(rng.integers(len(pool)))]
        audio = self.audio(record)
        n = max(1, int(round(seconds * SAMPLE_RATE)))  # noqa: RUF046 (numpy scalars)
        offset = int(rng.integers(len(audio)))
        return np.take(audio, np.arange(offset, offset + n), mode="wrap").astype(np.float32), record, offset

    def sample(self, rng: np.random.Generator, seconds: float, categories: Iterable[str] | None = None) -> np.ndarray:
        """``seconds`` s of noise, float32 ``(round(seconds * 16000),)`` at the clips' level (-30 dBFS RMS).

        A category is drawn uniformly from ``categories`` (default: all of the bank's), then one of
        its clips uniformly, then a start offset uniformly; the clip loops if shorter than asked.
        """
        return self.sample_with_info(rng, seconds, categories)[0]

    def subset(self, categories: Iterable[str] | None = None, indices: Iterable[int] | None = None) -> NoiseBank:
        """A view with only the given categories and/or clip indices (same folder, audio cache shared)."""
        wanted = None if categories is None else list(categories)
        if wanted is not None:
            unknown = sorted(set(wanted) - set(self.categories))
            if unknown:
                raise AcousticsError(f"noise bank {self.root} has no category {unknown}; it has {self.categories}")
        keep_index = None if indices is None else set(indices)
        records = [r for r in self.records if (wanted is None or r.category in wanted)
                   and (keep_index is None or r.index in keep_index)]
        bank = NoiseBank(self.root, records, dict(self.settings, subset={"categories": wanted, "indices": (
            sorted(keep_index) if keep_index is not None else None)}))
        bank._audio = self._audio
        return bank

    def split_categories(self, train: Iterable[str], test: Iterable[str]) -> tuple[NoiseBank, NoiseBank]:
        """(train bank, test bank) over disjoint category lists; categories the bank lacks are skipped
        silently only if the other list still has some, and an overlap raises :class:`AcousticsError`."""
        train, test = [c for c in train if c in self.categories], [c for c in test if c in self.categories]
        overlap = sorted(set(train) & set(test))
        if overlap:
            raise AcousticsError(f"train and test noise categories overlap: {overlap}; a held-out condition needs "
                                 "disjoint categories")
        if not train or not test:
            raise AcousticsError(f"noise condition split leaves {'train' if not train else 'test'} empty in bank "
                                 f"{self.root} (categories {self.categories}); build the bank with those categories")
        return self.subset(train), self.subset(test)

    def split_clips(self, test_fraction: float = 0.25) -> tuple[NoiseBank, NoiseBank]:
        """(train bank, test bank) with the same categories and disjoint clips (different seeds).

        The last ``ceil(test_fraction * k)`` clip indices of the ``k`` per category are the test
        part (at least one, and at least one left for training).
        """
        indices = sorted({r.index for r in self.records})
        if len(indices) < 2 or not 0 < test_fraction < 1:
            raise AcousticsError(f"cannot split {len(indices)} clip(s) per category with test_fraction "
                                 f"{test_fraction}; use at least 2 clips per category and 0 < fraction < 1")
        n_test = min(len(indices) - 1, max(1, int(np.ceil(test_fraction * len(indices)))))
        return self.subset(indices=indices[:-n_test]), self.subset(indices=indices[-n_test:])

    def condition(self, name: str) -> tuple[NoiseBank, NoiseBank]:
        """(train bank, test bank) of the named held-out condition in :data:`NOISE_CONDITIONS`."""
        if name not in NOISE_CONDITIONS:
            raise AcousticsError(f"unknown noise condition {name!r}; known conditions are {sorted(NOISE_CONDITIONS)}")
        return self.split_categories(*NOISE_CONDITIONS[name])


def _speech(speech_manifest: str | pathlib.Path | Sequence[Utterance] | None) -> tuple[list[Utterance] | None, str | None]:
    if speech_manifest is None:
        return None, None
    if isinstance(speech_manifest, (str, pathlib.Path)):
        path = pathlib.Path(speech_manifest).resolve()
        return list(read_manifest(path, check_files=True)), str(path)
    return list(speech_manifest), None


def build_noise_bank(out: str | pathlib.Path, seed: int = 0, seconds_per_clip: float = 10.0,
                     clips_per_category: int = 4, speech_manifest: str | pathlib.Path | Sequence[Utterance] | None = None,
                     exclude_speakers: Iterable[str] = (), categories: Iterable[str] | None = None,
                     progress: bool = False) -> NoiseBank:
    """Build (or reuse) a noise bank in folder ``out`` and return it.

    ``seed``: master seed; clip ``i`` of category ``c`` uses :func:`category_rng(seed, c, i)`.
    ``seconds_per_clip``: clip length, s. ``clips_per_category``: clips (independent draws) per
    category. ``speech_manifest``: a speech manifest (path, or utterances) for the babble-based
    categories (``babble``, ``station_standin``, ``cafeteria_standin``); ``exclude_speakers``:
    speakers babble must never use (the test fold's). ``categories``: names from
    :data:`~ser_robot.acoustics.noise.CATEGORIES`; ``None`` means all, except the babble-based
    ones when no speech manifest is given (logged). Every clip is 16 kHz mono 16-bit PCM at
    -30 dBFS RMS (peak-limited at 0.99, see :func:`~ser_robot.acoustics.noise.generate_noise`).

    Cached: the same arguments write nothing; see the module docstring. Raises
    :class:`AcousticsError` for an unknown category, a babble category without speech, or a
    speech pool left empty by ``exclude_speakers``.
    """
    out = pathlib.Path(out)
    if clips_per_category < 1:
        raise AcousticsError(f"clips_per_category must be at least 1, got {clips_per_category}")
    if not seconds_per_clip > 0:
        raise AcousticsError(f"seconds_per_clip must be positive seconds, got {seconds_per_clip!r}")
    utterances, manifest_path = _speech(speech_manifest)
    excluded = sorted(set(exclude_speakers))
    if categories is None:
        names = [c for c in CATEGORIES if utterances is not None or not CATEGORIES[c].needs_speech]
        if utterances is None:
            log.warning("no speech manifest: noise bank without the babble-based categories %s",
                        [c for c in CATEGORIES if CATEGORIES[c].needs_speech])
    else:
        names = list(dict.fromkeys(categories))
        unknown = [c for c in names if c not in CATEGORIES]
        if unknown:
            raise AcousticsError(f"unknown noise category {unknown}; known categories are {list(CATEGORIES)}")
        needing = [c for c in names if CATEGORIES[c].needs_speech]
        if needing and utterances is None:
            raise AcousticsError(f"noise categories {needing} mix babble and need speech_manifest "
                                 "(e.g. out/synth/manifest.jsonl)")
    pool = speech_pool(utterances, excluded) if utterances is not None and any(
        CATEGORIES[c].needs_speech for c in names) else None
    pool_id = _hash([(u.id, u.path) for u in pool]) if pool is not None else None
    settings = {"version": NOISE_BANK_VERSION, "seed": int(seed), "seconds_per_clip": float(seconds_per_clip),
                "clips_per_category": int(clips_per_category), "categories": names,
                "speech_manifest": manifest_path, "speech_pool": pool_id, "exclude_speakers": excluded,
                "sample_rate": SAMPLE_RATE, "rms_dbfs": CLIP_RMS_DBFS}
    key = _hash(settings)
    manifest = out / MANIFEST
    old: dict[str, NoiseClipRecord] = {}
    if manifest.is_file():
        try:
            bank = NoiseBank.load(out)
            if bank.key == key:
                return bank
            old = {r.file: r for r in bank.records}
        except AcousticsError:
            old = {}
    jobs = [(c, i) for c in names for i in range(clips_per_category)]
    if progress:
        from tqdm import tqdm
        jobs = tqdm(jobs, desc="noise bank", unit="clip")
    records = []
    import soundfile

    for category, index in jobs:
        clip_key = _hash({"version": NOISE_BANK_VERSION, "category": category, "seed": int(seed), "index": index,
                          "seconds": float(seconds_per_clip), "rms_dbfs": CLIP_RMS_DBFS,
                          "speech": pool_id if CATEGORIES[category].needs_speech else None})[:12]
        file = f"wav/{category}/{category}_{index:03d}_{clip_key}.wav"
        if file in old and (out / file).is_file():
            records.append(old[file])
            continue
        clip = generate_noise(category, category_rng(seed, category, index), seconds_per_clip, pool)
        path = out / file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        soundfile.write(str(tmp), clip.samples, SAMPLE_RATE, subtype="PCM_16")
        tmp.replace(path)
        records.append(NoiseClipRecord(category, CATEGORIES[category].family, index, file, int(seed),
                                       float(seconds_per_clip), clip_key, clip.params))
    referenced = {out / r.file for r in records}
    for stale in (out / "wav").glob("*/*.wav") if (out / "wav").is_dir() else []:
        if stale not in referenced:
            stale.unlink()
    payload = {"kind": "ser_robot.noise_bank", "key": key, "settings": settings,
               "clips": [dataclasses.asdict(r) for r in records]}
    out.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(manifest)
    return NoiseBank.load(out)
