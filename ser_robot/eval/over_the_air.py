"""Over-the-air attack on a shipped model: is a perturbation played into the room a threat to the robot?

Threat model: a white-box attacker who knows the model file and the feature front end crafts, for each
utterance, a waveform perturbation of at most ``epsilon`` of full scale per sample (L-infinity; samples
kept in [-1, 1]) and plays utterance plus perturbation through a loudspeaker. The robot hears it in a
room the attacker does not know: the robot twin (:mod:`ser_robot.sim`, its held-out lab room, noises and
microphones). The attack is untargeted: any label but the true one counts as a success.

Arms, each crafted per utterance and written as 16-bit WAV files, so that the same files are scored
directly ("direct": the file fed to the pipeline, a digital attack) and played through the robot twin
("robot": over the air):

- ``noise``: random signs times ``epsilon`` (the same L-infinity size, no optimisation): the control;
- ``digital``: PGD on the file itself (:func:`~ser_robot.adversarial.attacks.pgd`, random start);
- ``eot``: PGD on the mean loss over random rooms and noise levels (expectation over transformation,
  :class:`~ser_robot.adversarial.over_the_air.AcousticChannel`) drawn from the RIR bank's *training*
  rooms; the robot twin's room belongs to no bank.

The attacker's model of the pipeline (:class:`PipelineSurrogate`) is the real one with two fixed
parts: the level normaliser's gain curve (computed on the current input, held constant in the gradient:
the gain is slow) and each speaker's stream statistics (over all its clean utterances, what the running
statistics converge to). Every reported figure comes from the real inference path
(:func:`~ser_robot.eval.offline_eval.evaluate_manifest`, each speaker one stream), never the surrogate.

Reported per arm, epsilon and condition: UAR, accuracy, and the success rate: the share of utterances
that the model gets right without perturbation (same condition) and wrong with it. The perturbation's
size is also given as a signal-to-perturbation ratio in dB (utterance power over perturbation power).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ser_robot.errors import ConfigError

__all__ = ["ARMS", "OverTheAirSettings", "PipelineSurrogate", "craft", "markdown_table", "over_the_air_attack",
           "select_utterances", "stream_statistics", "write_report", "write_wave"]

ARMS: tuple[str, ...] = ("noise", "digital", "eot")


@dataclass(frozen=True)
class OverTheAirSettings:
    """``epsilons``: perturbation bounds, fractions of full scale; ``steps``: PGD iterations; ``draws``:
    rooms per EOT step; ``snr_db``: range of the EOT channel's noise (dB below the heard speech);
    ``per_class``: utterances per class (``0``: all); ``seed``: starts, rooms and noise."""

    epsilons: tuple[float, ...] = (0.002, 0.005)
    steps: int = 10
    draws: int = 4
    snr_db: tuple[float, float] = (10.0, 30.0)
    per_class: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.epsilons or any(not (0.0 < e < 1.0) for e in self.epsilons):
            raise ConfigError(f"epsilons must be fractions of full scale in (0, 1), got {list(self.epsilons)}")
        if self.steps < 1 or self.draws < 1 or self.per_class < 0:
            raise ConfigError(f"need steps >= 1, draws >= 1 and per_class >= 0, got {self.steps}, {self.draws}, "
                              f"{self.per_class}")
        low, high = self.snr_db
        if not low <= high:
            raise ConfigError(f"snr_db must be (low, high) with low <= high, got {self.snr_db}")


class PipelineSurrogate(torch.nn.Module):
    """The attacker's differentiable model of the inference path of one speaker's stream:
    ``(batch, samples)`` waveforms -> ``(batch, classes)`` logits.

    Level normaliser (gain curve of the detached input, constant in the gradient), feature extractor,
    z-normalisation by the stream's ``mean`` / ``std`` ``(dims,)``, then the model.
    """

    def __init__(self, model: Any, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        from ser_robot.config import validate_node_params
        from ser_robot.features.sets import create_extractor

        self.network = model.model
        self.extractor = create_extractor(model.feature_set)
        self.sample_rate = int(model.sample_rate)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        params = validate_node_params("features", {"feature_set": model.feature_set})
        self.level = params["level_normalization"]
        self.level_options = {"target_dbfs": params["level_target_dbfs"],
                              "time_constant_s": params["level_time_constant_s"]}

    def gains(self, waves: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` per-sample gains of the level normaliser on ``waves`` (1 when it is off): its
        output over its input, per block (the normaliser holds one gain per block)."""
        from ser_robot.audio.level_normalizer import LevelNormalizer, normalize_level

        if self.level == "off":
            return torch.ones_like(waves)
        block = LevelNormalizer(self.sample_rate, **self.level_options).block
        out = []
        for row in waves.detach().cpu().double().numpy():
            levelled = normalize_level(row.astype(np.float32), self.sample_rate, **self.level_options)[: len(row)]
            pad = (-len(row)) % block
            power_in = (np.pad(row, (0, pad)).reshape(-1, block) ** 2).sum(1)
            power_out = (np.pad(levelled.astype(np.float64), (0, pad)).reshape(-1, block) ** 2).sum(1)
            gain = np.where(power_in > 1e-20, np.sqrt(power_out / np.maximum(power_in, 1e-20)), 1.0)
            out.append(np.repeat(gain, block)[: len(row)])
        return torch.from_numpy(np.stack(out)).to(waves)

    def inputs(self, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(model inputs (batch, frames, dims), lengths (batch,))`` of ``(batch, samples)`` waveforms."""
        frames = self.extractor(waves * self.gains(waves))
        lengths = torch.full((frames.shape[0],), frames.shape[1], dtype=torch.int64, device=frames.device)
        return (frames - self.mean) / self.std, lengths

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.network(*self.inputs(waves)).float()


def craft(surrogate: PipelineSurrogate, wave: torch.Tensor, label: int, arm: str, epsilon: float,
          settings: OverTheAirSettings, channel: Any = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The perturbed ``(samples,)`` waveform of ``arm`` (:data:`ARMS`) for ``wave`` ``(samples,)`` of class
    index ``label``; ``channel``: the :class:`~ser_robot.adversarial.over_the_air.AcousticChannel` of ``eot``."""
    from ser_robot.adversarial import ThreatModel, pgd

    threat = ThreatModel.waveform(epsilon)
    x = wave[None].float()
    target = torch.tensor([label])
    if arm == "noise":
        signs = torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1
        return threat.project(x + epsilon * signs, x)[0]
    if arm == "digital":
        def loss(waves: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(surrogate(waves), target.expand(waves.shape[0]), reduction="none")
    elif arm == "eot":
        if channel is None:
            raise ConfigError("the eot arm needs an acoustic channel (the RIR bank's training rooms)")

        def loss(waves: torch.Tensor) -> torch.Tensor:  # (1, samples) -> (1,): mean over the draws
            heard = torch.cat([channel(waves, generator) for _ in range(settings.draws)])
            logits = surrogate(heard)
            return F.cross_entropy(logits, target.expand(len(heard)), reduction="none").mean()[None]
    else:
        raise ConfigError(f"unknown over-the-air arm {arm!r}; choose from {list(ARMS)}")
    return pgd(loss, x, threat, steps=settings.steps, generator=generator)[0].detach()


def select_utterances(utterances: Sequence[Any], per_class: int, seed: int) -> list[Any]:
    """Up to ``per_class`` utterances of each label (seeded choice, manifest order kept; 0: all)."""
    if per_class == 0:
        return list(utterances)
    rng = np.random.default_rng(seed)
    keep: set[str] = set()
    for label in sorted({u.label for u in utterances}):
        ids = [u.id for u in utterances if u.label == label]
        keep.update(rng.choice(ids, size=min(per_class, len(ids)), replace=False).tolist())
    return [u for u in utterances if u.id in keep]


def stream_statistics(model: Any, utterances: Sequence[Any]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each speaker's statistics over the raw frames of all its clean ``utterances``."""
    from ser_robot.features.stream_normalization import speaker_statistics
    from ser_robot.inference.offline import read_audio, recording_frames

    frames: dict[str, list[torch.Tensor]] = {}
    for utterance in utterances:
        samples, rate = read_audio(utterance.path)
        frames.setdefault(utterance.speaker, []).append(
            torch.from_numpy(recording_frames(samples, rate, model.feature_set)))
    return {speaker: speaker_statistics(chunks) for speaker, chunks in frames.items()}


def write_wave(path: pathlib.Path, samples: np.ndarray, rate: int) -> None:
    """16-bit WAV, written whole or not at all (a temporary file renamed)."""
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    soundfile.write(str(partial), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    partial.replace(path)


def over_the_air_attack(model: Any, utterances: Sequence[Any], out: str | pathlib.Path, rir_bank: Any,
                        noise_bank: str | pathlib.Path, settings: OverTheAirSettings | None = None,
                        sim_config: str | pathlib.Path | None = None, sim_seed: int = 0,
                        progress: bool = True) -> dict[str, Any]:
    """Craft every arm at every epsilon for ``utterances`` (mono files of the model's rate), play them
    through the robot twin (``sim_config``, default the iCub lab's held-out condition, with the
    ``noise_bank``'s test clips), score everything with ``model`` (an
    :class:`~ser_robot.inference.model.EmotionModel`) and write ``out`` (``results.json``,
    ``results.csv``, per-condition predictions); returns the results. Each file is crafted with its own
    seed (``settings.seed``, arm, epsilon, utterance id); a run resumed in the same ``out`` keeps the files
    already crafted."""
    from tqdm import tqdm

    from ser_robot.adversarial.over_the_air import AcousticChannel
    from ser_robot.data.manifest import read_manifest, write_manifest
    from ser_robot.eval.offline_eval import evaluate_manifest, write_rows
    from ser_robot.inference.offline import read_audio
    from ser_robot.sim.simulator import simulate_robot

    settings = settings or OverTheAirSettings()
    out = pathlib.Path(out)
    if not model.labels:
        raise ConfigError(f"model {model.model_id} is dimensional; the over-the-air attack needs a categorical one")
    chosen = select_utterances(utterances, settings.per_class, settings.seed)
    if not chosen:
        raise ConfigError("no utterances to attack")
    stats = stream_statistics(model, chosen)
    channel = AcousticChannel.from_bank(rir_bank, "train", snr_db=settings.snr_db)
    manifests: dict[str, pathlib.Path] = {"clean": out / "audio" / "clean" / "manifest.jsonl"}
    write_manifest(manifests["clean"], chosen)
    sizes: dict[str, list[float]] = {}
    surrogates = {speaker: PipelineSurrogate(model, mean, std) for speaker, (mean, std) in stats.items()}
    tasks = [(arm, eps) for eps in settings.epsilons for arm in ARMS]
    bar = tqdm(total=len(tasks) * len(chosen), desc="over-the-air: craft", unit="utt", disable=not progress)
    for arm, eps in tasks:
        name = f"{arm}_eps{eps:g}"
        folder = out / "audio" / name
        crafted = []
        for utterance in chosen:
            samples, rate = read_audio(utterance.path)
            if samples.shape[1] != 1 or rate != model.sample_rate:
                raise ConfigError(f"{utterance.path}: the attack takes mono {model.sample_rate} Hz files, got "
                                  f"{samples.shape[1]} channel(s) at {rate} Hz")
            path = folder / utterance.speaker / f"{utterance.id}.wav"
            if not path.is_file():  # a resumed run keeps the files already crafted
                generator = torch.Generator().manual_seed(zlib.crc32(f"{settings.seed}:{name}:{utterance.id}".encode()))
                wave = torch.from_numpy(samples[:, 0])
                adversarial = craft(surrogates[utterance.speaker], wave, model.labels.index(utterance.label), arm,
                                    eps, settings, channel, generator).numpy()
                write_wave(path, adversarial, rate)
            adversarial = read_audio(path)[0][:, 0]
            delta = adversarial - samples[:, 0]
            sizes.setdefault(name, []).append(float(10 * np.log10(np.mean(samples[:, 0] ** 2) /
                                                                   max(np.mean(delta**2), 1e-20))))
            crafted.append(dataclasses.replace(utterance, path=str(path.resolve())))
            bar.update()
        manifests[name] = write_manifest(folder / "manifest.jsonl", crafted)
    bar.close()

    rows, results, correct = [], {}, {}
    for name, manifest in manifests.items():
        robot = simulate_robot(manifest, out / "robot" / name, sim_config, noise_bank=noise_bank, seed=sim_seed,
                               workers=1, progress=progress)
        for condition, part in (("direct", read_manifest(manifest)), ("robot", robot)):
            scored = evaluate_manifest(model, list(part), progress=progress)
            predictions = scored.pop("predictions")
            write_rows(out / "predictions" / f"{name}_{condition}.csv", predictions)
            correct[name, condition] = {row["id"]: row["true"] == row["predicted"] for row in predictions}
            results[f"{name} / {condition}"] = scored
    for name in manifests:
        if name == "clean":
            continue
        arm, eps = name.split("_eps")
        for condition in ("direct", "robot"):
            attacked = correct[name, condition]
            right = [i for i, ok in correct["clean", condition].items() if ok]
            success = float(np.mean([not attacked[i] for i in right])) if right else float("nan")
            scored = results[f"{name} / {condition}"]
            rows.append({"arm": arm, "epsilon": float(eps), "condition": condition,
                         "spr_db": round(float(np.mean(sizes[name])), 1), "uar": scored["uar"],
                         "accuracy": scored["accuracy"], "success_rate": success, "clean_correct": len(right)})
    for condition in ("direct", "robot"):
        scored = results[f"clean / {condition}"]
        rows.insert(0, {"arm": "clean", "epsilon": 0.0, "condition": condition, "spr_db": float("inf"),
                        "uar": scored["uar"], "accuracy": scored["accuracy"], "success_rate": 0.0,
                        "clean_correct": int(round(scored["accuracy"] * scored["utterances"]))})
    report = {"model_id": model.model_id, "settings": dataclasses.asdict(settings), "utterances": len(chosen),
              "speakers": sorted({u.speaker for u in chosen}), "rows": rows, "scores": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_rows(out / "results.csv", rows)
    return report


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The results as a Markdown table (percentages)."""
    lines = ["| arm | epsilon (full scale) | signal / perturbation (dB) | condition | UAR | accuracy | success rate |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for row in rows:
        spr = "-" if not np.isfinite(row["spr_db"]) else f"{row['spr_db']:.1f}"
        lines.append(f"| {row['arm']} | {row['epsilon']:g} | {spr} | {row['condition']} | {100 * row['uar']:.1f} % | "
                     f"{100 * row['accuracy']:.1f} % | {100 * row['success_rate']:.1f} % |")
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: str | pathlib.Path, command: str, machine: str) -> pathlib.Path:
    """``out/README.md`` of :func:`over_the_air_attack`'s ``report``: command, date, ``machine`` (a description),
    threat model, table."""
    import datetime

    settings = report["settings"]
    path = pathlib.Path(out) / "README.md"
    lines = [
        "# Over-the-air attack", "",
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {machine}",
        f"- Model: {report['model_id']}; {report['utterances']} utterances of {', '.join(report['speakers'])} "
        f"({settings['per_class']} per class), each speaker one stream.",
        f"- Threat model: white-box, untargeted, L-infinity bound epsilon (fraction of full scale) on the file's "
        f"samples. PGD: {settings['steps']} steps, random start; EOT: {settings['draws']} rooms of the RIR bank's "
        f"training split per step, noise {settings['snr_db'][0]:g}-{settings['snr_db'][1]:g} dB below the speech. "
        "*robot*: the files played through the robot twin (held-out lab room, noises, microphones); *direct*: "
        "the files themselves.",
        "- Success rate: share of the utterances right without perturbation (same condition) and wrong with it.",
        "", markdown_table(report["rows"]), "",
        "Module: `ser_robot.eval.over_the_air` (threat model and arms in its docstring). Per-utterance outputs: "
        "`predictions/`; all scores: `results.json`.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
