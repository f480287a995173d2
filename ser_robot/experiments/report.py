"""The results folder's ``README.md``: provenance (command, date, machine), data labelling, tables.

Provenance is written once per run into ``run_info.json`` (:func:`machine_info`, the command,
the times); :func:`write_readme` composes the README from it and the current tables, so
:func:`~ser_robot.experiments.tables.rebuild_tables` keeps it in step.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["machine_info", "write_readme"]


def machine_info() -> dict[str, Any]:
    """Host, OS, CPU, core count, Python, and the torch version and device when torch is loaded."""
    info: dict[str, Any] = {"host": platform.node(), "os": platform.platform(), "cpu": _cpu_name(),
                            "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def _cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _corpus_text(experiment: Mapping[str, Any]) -> str:
    corpus = experiment["corpus"]
    if corpus.get("synth"):
        spec = corpus["synth"]
        return (f"**Synthetic corpus** (`ser-robot synth-corpus`: {spec['speakers']} synthetic TTS speakers x "
                f"{spec['sentences']} sentences x 4 classes, seed {spec['seed']}), standing in for IEMOCAP, and its "
                f"**simulated robot re-recording** (`ser-robot simulate-robot`, seed {corpus['sim_seed']}), standing in "
                "for IEMOCAP-iCub. Absolute numbers are not comparable with the paper's; the comparisons between "
                "arms (gaps, improvements, ablation) are what this replication measures.")
    return (f"Corpus manifest `{corpus['manifest']}`; robot twin "
            f"{'`' + corpus['robot'] + '`' if corpus.get('robot') else '**simulated** (`ser-robot simulate-robot`)'}.")


def write_readme(results_dir: pathlib.Path, experiment: Mapping[str, Any], markdown: str,
                 files: Sequence[pathlib.Path]) -> pathlib.Path:
    """Write ``results_dir/README.md`` from ``run_info.json``, the ``experiment`` dict and the tables ``markdown``."""
    info_path = results_dir / "run_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    machine = info.get("machine", {})
    protocol = experiment["protocol"]
    lines = [
        f"# Experiment `{experiment['name']}`",
        "",
        experiment.get("description") or "",
        "",
        "## Data",
        "",
        _corpus_text(experiment),
        "",
        "## How it was run",
        "",
        *([] if info.get("finished") else ["**In progress**: these are the results of the jobs finished so far (the "
                                           "run has not ended, or was interrupted); the same command resumes it.", ""]),
        "```",
        info.get("command", "(unknown: results rebuilt without run_info.json)"),
        "```",
        "",
        f"- date: {info.get('finished') or info.get('started', 'unknown')} (started {info.get('started', 'unknown')})",
        f"- machine: {machine.get('host', '?')}, {machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores, "
        f"{machine.get('os', '?')}; Python {machine.get('python', '?')}, torch {machine.get('torch', '?')}"
        + (f", GPU {machine['cuda']}" if machine.get("cuda") else ", no GPU"),
        (f"- jobs: {info.get('jobs_total', '?')} (trained this run: {info.get('jobs_run', '?')}, found finished: "
        f"{info.get('jobs_skipped', '?')}), {info.get('workers', '?')} worker process(es), "
        f"{info.get('seconds', float('nan')):.0f} s wall clock"),
        (f"- protocol: leave-one-{protocol.get('scheme', 'speaker')}-out, validation `{protocol['validation']}`, "
        f"folds `{protocol['folds']}`, {protocol['repetitions']} repetition(s) (training seed = {experiment['seed']} "
        "+ repetition)"),
        (f"- base training configuration: `{experiment['train_config']}` with overrides "
        f"`{json.dumps(experiment['train_overrides'])}`; the effective configuration of every job is "
        "`jobs/<arm>/rep<r>/<test speaker>/train/train_config.yaml`"),
        "- the experiment file as given: `experiment.yaml`; as resolved: `experiment.resolved.json`",
        "",
        ("Rebuild tables and figures from the saved predictions without training: "
        "`python -c \"from ser_robot.experiments import rebuild_tables; rebuild_tables('<this folder>')\"`."),
        "",
        "## Files",
        "",
        "- `runs.csv`: one row per job (arm x fold x repetition) and test set, every metric",
        "- `tables.md`: the tables below",
        "- `effects.csv`: every effect the paper claims, with its interval, p-value and verdict",
        ("- `jobs/<arm>/rep<r>/<test speaker>/`: `job.json`, `predictions_clean.csv`, `predictions_robot.csv`, "
        "`train/` (checkpoints, history)"),
    ]
    figures = sorted(p.name for p in files if p.suffix == ".png")
    if figures:
        lines.append("- `figures/`: " + ", ".join(f"`{name}`" for name in figures))
    lines += ["", "## Results", "", markdown.split("\n", 1)[1] if markdown.startswith("# ") else markdown]
    path = results_dir / "README.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
