"""Data preparation of an experiment: corpus, robot twin and training banks, in a cache (idempotent).

Layout of the cache folder (``cache:`` in the experiment, default ``out/corpora``)::

    synth_<speakers>x<sentences>_s<seed>/corpus/manifest.jsonl   generated corpus (ser-robot synth-corpus)
    synth_<speakers>x<sentences>_s<seed>/robot_<sim>_s<seed>/     its robot twin (ser-robot simulate-robot)
    noise_bank_s<seed>_<clips>x<seconds>s/                         noise bank without babble categories
    rir_bank_<count>_s<seed>/                                      two-ear RIR bank
    synth_.../noisy_snr<dB>_<noises>_s<seed>/                      noisy test copy (corpus.noisy)

Each step is skipped when its output is present (the corpus: ``corpus.json`` with the same
settings; the twin: ``sim_config.yaml`` with the same source and seed; the banks are cached by
their own builders). The noise bank is built without a speech manifest (no babble: a babble
made of the corpus' own speakers would leak test speakers into training). The robot twin draws
the bank's held-out test clips, training augmentation its training clips
(:mod:`ser_robot.sim.conditions`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from dataclasses import dataclass, field

import yaml

from ser_robot.experiments.config import CorpusConfig, ExperimentConfig

__all__ = ["PreparedData", "prepare_corpus", "prepare_data"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    """Paths of a prepared experiment: the clean ``manifest``, its ``robot`` twin, the two banks, the
    ``cache`` folder that holds them (augmentation banks go to its ``banks/``) and the ``noisy`` test
    copies by test-set name (``snr0`` ...); ``target``: the same for a cross-corpus experiment's target corpus."""

    manifest: pathlib.Path
    robot: pathlib.Path
    noise_bank: pathlib.Path
    rir_bank: pathlib.Path
    cache: pathlib.Path
    noisy: dict[str, pathlib.Path] = field(default_factory=dict)
    target: PreparedData | None = None


def _number(value: float) -> str:
    return f"{value:g}".replace(".", "p")


def prepare_data(experiment: ExperimentConfig, cache: str | pathlib.Path | None = None, workers: int = 1,
                 progress: bool = True) -> PreparedData:
    """Generate (or reuse) the corpus, noise bank, RIR bank and robot twin of ``experiment``.

    ``cache``: folder (default: the experiment's ``cache``, relative to the working directory).
    ``workers``: processes for corpus generation and simulation.
    """
    cache = cache if cache is not None else experiment.cache
    prepared = prepare_corpus(experiment.corpus, cache, workers, progress)
    if experiment.target is not None:  # the cross-corpus selection and test corpus, its robot twin and noisy copies
        prepared = dataclasses.replace(prepared, target=prepare_corpus(experiment.target, cache, workers, progress))
    return prepared


def prepare_corpus(corpus: CorpusConfig, cache: str | pathlib.Path, workers: int = 1,
                   progress: bool = True) -> PreparedData:
    """Generate (or reuse) ``corpus``, its noise bank, RIR bank and robot twin in the ``cache`` folder."""
    from ser_robot.acoustics import build_noise_bank, build_rir_bank
    from ser_robot.sim import simulate_robot

    root = pathlib.Path(cache).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    noise = corpus.noise_bank
    noise_dir = root / f"noise_bank_s{noise.seed}_{noise.clips_per_category}x{_number(noise.seconds_per_clip)}s"
    bank = build_noise_bank(noise_dir, seed=noise.seed, seconds_per_clip=noise.seconds_per_clip,
                            clips_per_category=noise.clips_per_category, speech_manifest=None, progress=progress)
    rir = corpus.rir_bank
    rir_dir = root / f"rir_bank_{rir.count}_s{rir.seed}"
    build_rir_bank(rir_dir, count=rir.count, seed=rir.seed, progress=progress)

    if corpus.synth is not None:
        spec = corpus.synth
        voices = spec.get("voices", "core")
        offsets = "".join(f"_{key[6]}{spec[key]}" for key in ("first_voice", "first_sentence") if spec.get(key))
        folder = root / (f"synth_{'' if voices == 'core' else voices + '_'}{spec['speakers']}x{spec['sentences']}"
                         f"{offsets}_s{spec['seed']}")
        manifest = folder / "corpus" / "manifest.jsonl"
        if not _corpus_ready(folder / "corpus", spec):
            from ser_robot.data.synth.corpus import generate_corpus

            log.info("generating the synthetic corpus into %s", folder / "corpus")
            generate_corpus(folder / "corpus", speakers=spec["speakers"], sentences=spec["sentences"], seed=spec["seed"],
                            workers=workers, progress=progress, voices=voices,
                            first_voice=spec.get("first_voice", 0), first_sentence=spec.get("first_sentence", 0))
    else:
        manifest = pathlib.Path(corpus.manifest)  # type: ignore[arg-type]
        folder = root / f"{manifest.parent.name or 'corpus'}_{_short_hash(str(manifest.resolve()))}"
    if corpus.robot is not None:
        robot = pathlib.Path(corpus.robot)
    else:
        sim_name = pathlib.Path(corpus.sim_config).stem if corpus.sim_config else "icub_lab"
        twin = folder / f"robot_{sim_name}_s{corpus.sim_seed}"
        robot = twin / "manifest.jsonl"
        if not _twin_ready(twin, manifest, bank.root):
            log.info("simulating the robot twin into %s", twin)
            simulate_robot(manifest, twin, config_path=corpus.sim_config, noise_bank=bank, seed=corpus.sim_seed,
                           workers=workers, progress=progress)
    noisy = {}
    if corpus.noisy is not None:
        from ser_robot.eval.noisy_twin import noisy_twin

        tag = "+".join(n.removesuffix("_standin") for n in corpus.noisy.noises)
        for name, snr in zip(corpus.noisy.test_sets, corpus.noisy.snr_db):
            noisy[name] = noisy_twin(manifest, folder / f"noisy_{name}_{tag}_s{corpus.noisy.seed}", snr,
                                     corpus.noisy.noises, corpus.noisy.seed, progress).resolve()
    return PreparedData(manifest=manifest.resolve(), robot=robot.resolve(), noise_bank=noise_dir, rir_bank=rir_dir,
                        cache=root, noisy=noisy)


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _corpus_ready(folder: pathlib.Path, spec: dict[str, int]) -> bool:
    """True when ``folder`` holds a finished synthetic corpus of ``spec``."""
    settings = folder / "corpus.json"
    if not (settings.is_file() and (folder / "manifest.jsonl").is_file()):
        return False
    try:
        data = json.loads(settings.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    from ser_robot.data.synth.corpus import select_voices

    try:
        voices = [v.id for v in select_voices(spec["speakers"], spec.get("voices", "core"), spec.get("first_voice", 0))]
    except Exception:  # noqa: BLE001 - an engine missing here: generate_corpus names it
        return False
    return (data.get("seed") == spec["seed"] and data.get("speakers") == voices
            and data.get("sentences") == spec["sentences"] and data.get("voices", "core") == spec.get("voices", "core")
            and data.get("first_sentence", 0) == spec.get("first_sentence", 0))


def _twin_ready(folder: pathlib.Path, manifest: pathlib.Path, noise_bank: pathlib.Path) -> bool:
    """True when ``folder`` holds a finished twin of ``manifest`` (its summary names that source and bank)."""
    summary = folder / "sim_config.yaml"
    if not (summary.is_file() and (folder / "manifest.jsonl").is_file()):
        return False
    try:
        data = yaml.safe_load(summary.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    return (data.get("source_manifest") == str(manifest.resolve())
            and pathlib.Path(str(data.get("noise_bank"))).resolve() == noise_bank.resolve())
