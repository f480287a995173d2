"""Augmentation banks: several renditions of every utterance, their features computed once.

Lakomkin et al. augmented offline with SoX; a bank does the same for the training loop. For
every utterance of a manifest it renders ``versions`` renditions through the augmentation chain
of an :class:`~ser_robot.train.config.AugmentationConfig` and stores their feature frames:

- version 0 is the clean signal (the normaliser's statistics come from it);
- versions 1 .. K-1 are independent draws of the whole chain (every step with its own
  probability, so a draw that applies nothing is as frequent as online), each from a generator
  seeded by ``(bank_seed, utterance id, version)``; what each applied, with its scalar
  parameters, is recorded.

A clean bank (``kind: none``) holds version 0 only. Each epoch, :class:`BankTrainingSet` draws
one augmented version per utterance, seeded by ``(training seed, epoch)``.

Layout of ``<bank_dir>/<key>/``::

    bank.json       the spec, its key, and one record per utterance: id, speaker, and per version
                    the first row, frame count, applied steps and their parameters; checksum
    features.bin    (rows, dims) bank_dtype, every rendition's frames back to back (np.memmap)

The key is a hash of the corpus *content* (ids, speakers, audio bytes), the chain (probabilities
and the content keys of its noise and RIR banks), the seed, the number of versions, the feature
set, the storage type and the code that renders and extracts (:func:`code_version`). A bank
whose key differs is rebuilt, never reused; a truncated or corrupt ``features.bin`` is detected
at load (size, checksum), named, and rebuilt.

Ablation arms (Lakomkin Table II) get their own bank: their chain differs (one probability is
0), so does the key. Filtering a full bank's versions by what they applied would leave about
half the versions per utterance (less variety than the full arm, a confound) and none for some.

Leakage: a bank may cover a whole corpus, so that every fold shares it; a fold only reads its
training utterances through :meth:`FeatureBank.training_view`, which refuses any utterance of a
test or validation speaker and any babble noise made from such a speaker's voice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import pathlib
import shutil
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ser_robot.data.manifest import Manifest, read_manifest
from ser_robot.errors import BankError
from ser_robot.train.config import AugmentationConfig

__all__ = [
    "BankSpec",
    "BankTrainingSet",
    "FeatureBank",
    "babble_speakers",
    "check_no_leak",
    "FeatureBatch",
    "code_version",
    "corpus_hash",
    "ensure_bank",
    "estimate_bytes",
]

log = logging.getLogger(__name__)

BANK_FORMAT = 1
_CODE_FOLDERS = ("augment", "features", "acoustics")
_CODE_FILES = ("train/bank.py", "train/features.py", "train/data.py", "audio/resample.py")
# Modules of those folders that only the live feature node runs (streaming, VAD): editing them must not
# invalidate every bank (each job of a running experiment would render its bank again).
_LIVE_ONLY = ("features/pipeline.py", "features/streaming.py", "features/vad.py")
_MAX_TEMPO_STRETCH = 1 / 0.85  # the slowest tempo of the Lakomkin chain lengthens an utterance by this much
_HEADROOM_BYTES = 512 * 2**20
_PARTIAL = ".partial-"  # an unfinished build: <key>.partial-<pid>


def code_files() -> list[str]:
    """The source files (relative to the package) that render and extract a bank's features."""
    root = pathlib.Path(__file__).resolve().parents[1]
    found = sorted(p.relative_to(root).as_posix() for folder in _CODE_FOLDERS for p in (root / folder).rglob("*.py"))
    return [name for name in found if name not in _LIVE_ONLY] + list(_CODE_FILES)


def code_version() -> str:
    """Hash of :func:`code_files` (augmentations, offline features, acoustics): a bank's code version."""
    root = pathlib.Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"bank-format-{BANK_FORMAT}".encode())
    for name in code_files():
        digest.update(name.encode())
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:16]


def corpus_hash(manifest: Manifest) -> str:
    """Hash of a manifest's content: every utterance's id, speaker and audio bytes, in id order."""
    digest = hashlib.sha256()
    for utterance in sorted(manifest, key=lambda u: u.id):
        digest.update(f"{utterance.id}\0{utterance.speaker}\0".encode())
        try:
            digest.update(hashlib.blake2b(pathlib.Path(utterance.path).read_bytes()).digest())
        except OSError as error:
            raise BankError(f"cannot read {utterance.path} of utterance {utterance.id} to hash the corpus: "
                            f"{error}") from None
    return digest.hexdigest()[:16]


def _chain_key(config: AugmentationConfig) -> dict[str, Any]:
    """What of an augmentation configuration changes a rendition, with banks replaced by their content keys."""
    if not config.enabled:
        return {"kind": "none"}
    from ser_robot.acoustics import NoiseBank, RirBank

    key: dict[str, Any] = {k: getattr(config, k) for k in ("kind", "p_tempo", "p_gain", "p_noise", "p_ir",
                                                             "nsr_power", "include_ego")}
    if config.p_channel:  # added later: absent at 0, so older banks keep their keys
        key["p_channel"] = config.p_channel
    key["noise_bank"] = NoiseBank.load(config.noise_bank).key if config.noise_bank else None
    key["rir_bank"] = RirBank.load(config.rir_bank).key if config.rir_bank else None
    key["sim_config"] = (hashlib.sha256(pathlib.Path(config.sim_config).read_bytes()).hexdigest()[:16]
                         if config.sim_config else None)
    return key


def babble_speakers(config: AugmentationConfig) -> set[str]:
    """Speakers whose voices the chain's noise bank mixes into babble (empty without babble)."""
    if not config.enabled or not config.noise_bank:
        return set()
    from ser_robot.acoustics import NoiseBank

    settings = NoiseBank.load(config.noise_bank).settings
    if not settings.get("speech_pool") or not settings.get("speech_manifest"):
        return set()
    speakers = {u.speaker for u in read_manifest(settings["speech_manifest"], check_files=False)}
    return speakers - set(settings.get("exclude_speakers") or ())


@dataclass(frozen=True)
class BankSpec:
    """What a bank holds: the ``manifest``'s utterances rendered ``versions`` times (1 for a clean
    chain) with ``augmentation``'s chain, seeded by ``seed``, as ``feature_set`` frames stored as ``dtype``."""

    manifest: Manifest
    augmentation: AugmentationConfig
    feature_set: str
    versions: int
    seed: int
    dtype: str
    sample_rate: int = 16000
    level: str = "off"  # "agc": the level normaliser before the features (TrainConfig.level_normalization)

    @classmethod
    def from_config(cls, manifest: Manifest, augmentation: AugmentationConfig, feature_set: str,
                    sample_rate: int = 16000, level: str = "off") -> BankSpec:
        """The bank of a training configuration's ``augmentation`` over ``manifest``."""
        versions = augmentation.versions if augmentation.enabled else 1
        return cls(manifest, augmentation, feature_set, versions, augmentation.bank_seed, augmentation.bank_dtype,
                   sample_rate, level)

    def describe(self, corpus: str | None = None) -> dict[str, Any]:
        """The plain values the key hashes (``corpus``: a precomputed :func:`corpus_hash`)."""
        description = {"format": BANK_FORMAT, "corpus": corpus or corpus_hash(self.manifest),
                       "utterances": len(self.manifest), "chain": _chain_key(self.augmentation),
                       "feature_set": self.feature_set, "versions": self.versions, "seed": self.seed,
                       "dtype": self.dtype, "sample_rate": self.sample_rate, "code": code_version()}
        if self.level != "off":
            description["level"] = self.level
        return description

    @staticmethod
    def key_of(description: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:20]


class VersionRecord(NamedTuple):
    """One rendition: its first ``row`` in ``features.bin``, its ``frames``, the ``applied`` step
    names and the scalar ``params`` of those steps (``{"tempo": {"factor": 1.07}, ...}``)."""

    row: int
    frames: int
    applied: tuple[str, ...]
    params: dict[str, dict[str, float]]


class FeatureBank:
    """A built bank (see the module docstring), its features memory-mapped (or read into memory)."""

    def __init__(self, root: pathlib.Path, meta: dict[str, Any], features: np.ndarray) -> None:
        self.root = root
        self.meta = meta
        self.key: str = meta["key"]
        self.features = features
        self.names: tuple[str, ...] = tuple(meta["feature_names"])
        self.steps: tuple[str, ...] = tuple(meta["steps"])
        self.versions = int(meta["spec"]["versions"])
        self.records: dict[str, tuple[str, list[VersionRecord]]] = {
            r["id"]: (r["speaker"], [VersionRecord(v["row"], v["frames"], tuple(v["applied"]), v["params"])
                                     for v in r["versions"]]) for r in meta["utterances"]}

    def __repr__(self) -> str:
        return f"FeatureBank({self.root}, {len(self.records)} utterances x {self.versions} versions)"

    @property
    def nbytes(self) -> int:
        return int(self.features.nbytes)

    @classmethod
    def load(cls, root: str | pathlib.Path, key: str | None = None, verify: bool = True,
             in_memory: bool = False) -> FeatureBank:
        """Open the bank in folder ``root``; raises :class:`BankError` naming the file when it is not the bank
        of ``key``, is truncated, or (``verify``) fails its checksum. ``in_memory`` reads the features into RAM."""
        root = pathlib.Path(root)
        meta_path, data_path = root / "bank.json", root / "features.bin"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BankError(f"augmentation bank {meta_path} is unreadable ({error}); it will be rebuilt") from None
        if key is not None and meta.get("key") != key:
            raise BankError(f"augmentation bank {root} has key {meta.get('key')!r}, not {key!r}: it was built from "
                            "another corpus, chain, seed, feature set or code")
        rows, dims = int(meta["rows"]), int(meta["dims"])
        expected = rows * dims * np.dtype(meta["spec"]["dtype"]).itemsize
        size = data_path.stat().st_size if data_path.is_file() else -1
        if size != expected:
            raise BankError(f"augmentation bank file {data_path} is truncated or missing: {size} bytes, expected "
                            f"{expected} ({rows} rows x {dims} features)")
        if verify and _checksum(data_path) != meta["checksum"]:
            raise BankError(f"augmentation bank file {data_path} is corrupt: its checksum differs from bank.json's")
        features = np.memmap(data_path, dtype=meta["spec"]["dtype"], mode="r", shape=(rows, dims))
        if in_memory:
            features = np.array(features)
        return cls(root, meta, features)

    def frames(self, utterance_id: str, version: int) -> np.ndarray:
        """``(frames, dims)`` features of one rendition, as stored (a view when memory-mapped)."""
        record = self.records[utterance_id][1][version]
        return self.features[record.row: record.row + record.frames]

    def training_view(self, train: Manifest, forbidden_speakers: Iterable[str]) -> Manifest:
        """``train`` checked against this bank: every utterance is in it, none is a ``forbidden_speakers``'s
        (a fold's test and validation speakers), and no babble in its renditions used their voices.

        Raises :class:`BankError` naming the speaker or utterance otherwise; returns ``train``.
        """
        check_no_leak(train, forbidden_speakers, self.meta["babble_speakers"], str(self.root))
        missing = [u.id for u in train if u.id not in self.records]
        if missing:
            raise BankError(f"augmentation bank {self.root} lacks {len(missing)} training utterance(s), e.g. "
                            f"{missing[:3]}; build it over a manifest that holds them (augmentation.bank_manifest)")
        return train


def check_no_leak(train: Manifest, forbidden_speakers: Iterable[str], babble: Iterable[str], bank: str) -> None:
    """Raise :class:`BankError` naming the speaker when ``train`` holds a ``forbidden_speakers``'s utterance
    (a fold's test and validation speakers) or the ``babble`` speakers of the chain's noise include one."""
    forbidden = set(forbidden_speakers)
    leaking = sorted({u.speaker for u in train if u.speaker in forbidden})
    if leaking:
        raise BankError(f"the training part holds utterances of test or validation speaker(s) {leaking}; "
                        "a fold must never train on them (check the fold definition)")
    mixed = sorted(set(babble) & forbidden)
    if mixed:
        raise BankError(f"augmentation bank {bank} mixes the voice of test or validation speaker(s) {mixed} into "
                        "its babble noise; build the noise bank with those speakers excluded (exclude_speakers) "
                        "for this fold")


def _checksum(path: pathlib.Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(2**24), b""):
            digest.update(block)
    return digest.hexdigest()


def estimate_bytes(spec: BankSpec, dims: int, frame_rate: float = 100.0) -> int:
    """An upper bound of ``features.bin``'s size: every rendition at the slowest tempo."""
    seconds = sum(u.duration_s for u in spec.manifest)
    stretch = _MAX_TEMPO_STRETCH if spec.augmentation.enabled else 1.0
    frames = seconds * frame_rate * (1 + (spec.versions - 1) * stretch) + 2 * len(spec.manifest) * spec.versions
    return int(math.ceil(frames * dims * np.dtype(spec.dtype).itemsize))


# --- rendering ------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(augmentation: dict[str, Any], feature_set: str, sample_rate: int, threads: int,
                 level: str = "off") -> None:
    from ser_robot.features.sets import create_extractor
    from ser_robot.train.features import BatchFeaturizer, build_augmentation

    torch.set_num_threads(threads)
    config = AugmentationConfig(**augmentation)
    _WORKER["featurizer"] = BatchFeaturizer(create_extractor(feature_set), None,
                                            build_augmentation(config, sample_rate), level=level)
    _WORKER["sample_rate"] = sample_rate


def _version_generator(seed: int, utterance_id: str, version: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, zlib.crc32(utterance_id.encode()), version]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _render(task: tuple[str, str, int, int]) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """All versions of one utterance: ``(frames per version, records without rows)``."""
    from ser_robot.train.data import load_waveform

    utterance_id, path, versions, seed = task
    featurizer = _WORKER["featurizer"]
    wave = load_waveform(path, _WORKER["sample_rate"])[None, None, :]
    length = torch.tensor([wave.shape[-1]])
    arrays, records = [], []
    for version in range(versions):
        augment = version > 0
        feats = featurizer(wave, length, augment=augment,
                           generator=_version_generator(seed, utterance_id, version) if augment else None)
        frames = int(feats.lengths[0])
        arrays.append(feats.features[0, :frames].numpy())
        applied = [name for name, on in zip(feats.names, feats.applied[0].tolist()) if on]
        params = {name: {k: float(v[0]) for k, v in feats.params.get(name, {}).items()} for name in applied}
        records.append({"frames": frames, "applied": applied, "params": params})
    return arrays, records


def _build(spec: BankSpec, description: dict[str, Any], key: str, root: pathlib.Path, workers: int,
           progress: bool) -> FeatureBank:
    from ser_robot.features.sets import create_extractor
    from ser_robot.train.features import build_augmentation

    extractor = create_extractor(spec.feature_set)
    chain = build_augmentation(spec.augmentation, spec.sample_rate)
    needed = estimate_bytes(spec, len(extractor.names), extractor.sample_rate / extractor.hop_length)
    root.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root.parent).free
    if needed + _HEADROOM_BYTES > free:
        raise BankError(f"augmentation bank {root} would need up to {needed / 2**30:.2f} GiB but "
                        f"{free / 2**30:.2f} GiB are free on its disk; free space, lower augmentation.versions or "
                        "use bank_dtype float16")
    _remove_orphaned_partials(root)
    partial = root.with_name(f"{root.name}{_PARTIAL}{os.getpid()}")  # one per process: builds may race
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _render_into(spec, description, key, partial, extractor, chain, workers, progress)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(root, ignore_errors=True)
    try:
        partial.rename(root)
    except OSError:  # another process finished the same bank between the two lines above: keep its bank
        shutil.rmtree(partial, ignore_errors=True)
    return FeatureBank.load(root, key, verify=False)


def _remove_orphaned_partials(root: pathlib.Path) -> None:
    """Delete the unfinished builds of ``root`` whose process is gone (a killed build leaves one)."""
    for partial in root.parent.glob(f"{root.name}{_PARTIAL}*"):
        pid = partial.name.rpartition(_PARTIAL)[2]
        if pid.isdigit() and not pathlib.Path(f"/proc/{pid}").exists():
            shutil.rmtree(partial, ignore_errors=True)


def _render_into(spec: BankSpec, description: dict[str, Any], key: str, partial: pathlib.Path, extractor: Any,
                 chain: Any, workers: int, progress: bool) -> None:
    """Render every version of every utterance into ``partial/features.bin`` and write ``partial/bank.json``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    dtype = np.dtype(spec.dtype)
    tasks = [(u.id, str(u.path), spec.versions, spec.seed) for u in spec.manifest]
    records, row = [], 0
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    init = (dataclasses.asdict(spec.augmentation), spec.feature_set, spec.sample_rate, threads, spec.level)
    bar = tqdm(total=len(tasks), desc=f"bank {key[:8]} ({spec.versions} versions)", unit="utt", disable=not progress)
    with (partial / "features.bin").open("wb") as stream:
        if workers > 1:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker, initargs=init)
            results: Iterable = pool.map(_render, tasks, chunksize=8)
        else:
            pool = None
            _init_worker(*init)
            results = map(_render, tasks)
        try:
            for (utterance_id, _, _, _), utterance, (arrays, versions) in zip(tasks, spec.manifest, results):
                for array, version in zip(arrays, versions):
                    stored = array.astype(dtype)
                    if not np.array_equal(np.isfinite(stored), np.isfinite(array)):
                        raise BankError(f"features of {utterance_id} overflow {spec.dtype}; use bank_dtype float32")
                    stream.write(np.ascontiguousarray(stored).tobytes())
                    version["row"] = row
                    row += version["frames"]
                records.append({"id": utterance_id, "speaker": utterance.speaker, "versions": versions})
                bar.update()
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    meta = {"key": key, "spec": description, "rows": row, "dims": len(extractor.names),
            "feature_names": list(extractor.names), "steps": list(chain.names) if chain is not None else [],
            "babble_speakers": sorted(babble_speakers(spec.augmentation)),
            "checksum": _checksum(partial / "features.bin"), "utterances": records}
    (partial / "bank.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")


def ensure_bank(spec: BankSpec, bank_dir: str | pathlib.Path, workers: int = 1, progress: bool = False,
                corpus: str | None = None, in_memory: bool = False) -> FeatureBank:
    """The bank of ``spec`` in ``bank_dir/<key>``: loaded when it is there and intact, else (re)built.

    ``corpus``: :func:`corpus_hash` of ``spec.manifest`` when the caller has it. ``workers``
    processes render in parallel. Raises :class:`BankError` when the disk is too small.
    """
    description = spec.describe(corpus)
    key = BankSpec.key_of(description)
    root = pathlib.Path(bank_dir) / key
    if (root / "bank.json").is_file():
        try:
            return FeatureBank.load(root, key, in_memory=in_memory)
        except BankError as error:
            log.warning("%s; rebuilding it", error)
    bank = _build(spec, description, key, root, workers, progress)
    return FeatureBank.load(root, key, verify=False, in_memory=True) if in_memory else bank


# --- training from a bank -------------------------------------------------------------------------


class FeatureExample(NamedTuple):
    """One utterance's drawn rendition: ``features`` ``(frames, dims)`` float32 raw; class ``label``;
    ``dimensional`` ``(2,)``; dataset ``index``; ``applied`` ``(steps,)`` bool; bank ``version``."""

    features: torch.Tensor
    label: int
    dimensional: torch.Tensor
    index: int
    applied: torch.Tensor
    version: int


class FeatureBatch(NamedTuple):
    """A padded batch of bank features: ``features`` ``(batch, frames, dims)`` float32 raw (padding 0),
    ``lengths`` ``(batch,)`` frames, ``labels``, ``dimensional``, ``indices`` as in
    :class:`~ser_robot.train.data.Batch`, ``applied`` ``(batch, steps)`` bool, ``versions`` ``(batch,)``."""

    features: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    dimensional: torch.Tensor
    indices: torch.Tensor
    applied: torch.Tensor
    versions: torch.Tensor

    def targets(self, head: str) -> torch.Tensor:
        return self.labels if head == "categorical" else self.dimensional


def collate_features(examples: Sequence[FeatureExample]) -> FeatureBatch:
    """Stack examples into a zero-padded :class:`FeatureBatch`."""
    lengths = torch.tensor([e.features.shape[0] for e in examples], dtype=torch.int64)
    out = torch.zeros(len(examples), int(lengths.max()), examples[0].features.shape[1], dtype=torch.float32)
    for row, example in enumerate(examples):
        out[row, : example.features.shape[0]] = example.features
    return FeatureBatch(out, lengths, torch.tensor([e.label for e in examples], dtype=torch.int64),
                        torch.stack([e.dimensional for e in examples]).float(),
                        torch.tensor([e.index for e in examples], dtype=torch.int64),
                        torch.stack([e.applied for e in examples]),
                        torch.tensor([e.version for e in examples], dtype=torch.int64))


class BankTrainingSet(torch.utils.data.Dataset):
    """The training utterances of a :class:`~ser_robot.train.data.UtteranceDataset` served from a bank.

    :meth:`set_epoch` draws one augmented version (1 .. K-1) per utterance from a generator seeded
    by ``(seed, epoch)`` (version 0 in a clean bank); :meth:`clean` gives version 0, for the
    normaliser's statistics.
    """

    def __init__(self, bank: FeatureBank, dataset: Any, seed: int) -> None:
        self.bank = bank
        self.dataset = dataset
        self.ids = [u.id for u in dataset.manifest]
        self.seed = int(seed)
        self.versions = np.zeros(len(self.ids), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def durations(self) -> list[float]:
        return self.dataset.durations

    def draw(self, epoch: int) -> np.ndarray:
        """The version of each utterance in ``epoch`` (a function of ``(seed, epoch)`` only)."""
        if self.bank.versions == 1:
            return np.zeros(len(self.ids), dtype=np.int64)
        rng = np.random.default_rng([self.seed, int(epoch), 0xBA4C])
        return rng.integers(1, self.bank.versions, size=len(self.ids))

    def set_epoch(self, epoch: int) -> None:
        self.versions = self.draw(epoch)

    def example(self, index: int, version: int) -> FeatureExample:
        utterance_id = self.ids[index]
        record = self.bank.records[utterance_id][1][version]
        feats = torch.from_numpy(np.asarray(self.bank.frames(utterance_id, version), dtype=np.float32))
        applied = torch.tensor([step in record.applied for step in self.bank.steps], dtype=torch.bool)
        item = self.dataset.item_targets(index)
        return FeatureExample(feats, item[0], item[1], int(index), applied, int(version))

    def clean(self, index: int) -> FeatureExample:
        return self.example(index, 0)

    def __getitem__(self, index: int) -> FeatureExample:
        return self.example(index, int(self.versions[index]))
