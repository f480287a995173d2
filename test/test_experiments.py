"""Tests of ser_robot.experiments: the config checks, the table builder on hand-made runs, and both
tiny experiments end to end (results folder, resume, rebuild without training).

The two tiny experiments share one cache (corpus, robot twin, banks: generated once, ~8 s) and
together take about 1.5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from ser_robot.errors import ConfigError
from ser_robot.experiments import (
    ExperimentError,
    load_experiment,
    rebuild_tables,
    run_experiment,
)
from ser_robot.experiments.config import TEST_SETS
from ser_robot.experiments.tables import (
    RUN_COLUMNS,
    read_runs,
    relative_change,
    summarise,
    table1_markdown,
    table2_markdown,
)

# The module fixtures train every arm of the tiny experiments (about a minute each on 2 idle
# cores); pytest-timeout counts fixture setup in the first test, so allow for a loaded machine.
pytestmark = pytest.mark.timeout(900)

REPO = pathlib.Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "training" / "experiments"
TINY1 = EXPERIMENTS / "lakomkin_table1_tiny.yaml"
TINY2 = EXPERIMENTS / "lakomkin_table2_tiny.yaml"


# --- the table builder on hand-made runs -------------------------------------------------------------------


def _run(arm, label, head, training, fold, rep, test, removed=None, **metrics):
    return {"arm": arm, "label": label, "model": f"lakomkin_{label.lower()}", "head": head, "training": training,
            "removed": removed, "fold": fold, "repetition": rep, "test_set": test, **metrics}


def _cells(markdown: str, *prefix: str) -> list[str]:
    """The cells after ``prefix`` of the first table row starting with the ``prefix`` cells."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[: len(prefix)] == list(prefix):
            return cells[len(prefix):]
    raise AssertionError(f"no row {prefix} in\n{markdown}")


def _mean(cell: str) -> float:
    return float(cell.split("±")[0])


def test_relative_change_matches_the_paper():
    # Table I, RNN trained on IEMOCAP: F-score 0.531 clean -> 0.144 iCub is a -72.9% gap; with augmentation
    # 0.411 on iCub, a +185.4% improvement; Table II's formula is the same.
    assert relative_change(0.144, 0.531) == pytest.approx(-72.88, abs=0.01)
    assert relative_change(0.411, 0.144) == pytest.approx(185.42, abs=0.01)
    assert relative_change(0.493, 0.430) == pytest.approx(14.65, abs=0.01)  # MAE: positive = worse
    assert math.isnan(relative_change(1.0, 0.0))
    assert relative_change(-0.2, -0.4) == pytest.approx(50.0)  # |base|: a correlation closer to 0 from below


@pytest.fixture
def handmade_runs():
    """RNN categorical and dimensional, clean and augmented, 2 folds x 2 repetitions, known values."""
    runs = []
    f1 = {("clean", "clean"): 0.50, ("clean", "robot"): 0.20, ("augmented", "clean"): 0.55,
          ("augmented", "robot"): 0.40}
    mae = {("clean", "clean"): 0.40, ("clean", "robot"): 0.60, ("augmented", "clean"): 0.42,
           ("augmented", "robot"): 0.45}
    for training in ("clean", "augmented"):
        for test in TEST_SETS:
            for rep in (0, 1):
                for k, fold in enumerate(("A", "B")):
                    shift = (-0.02 if k == 0 else 0.02) + (0.01 if rep else -0.01)  # folds +-0.02, reps +-0.01
                    base = f1[(training, test)] + shift
                    runs.append(_run(f"rnn_cat_{training}", "RNN", "categorical", training, fold, rep, test,
                                     accuracy=base + 0.1, uar=base + 0.05, macro_f1=base))
                    m = mae[(training, test)] + shift
                    runs.append(_run(f"rnn_dim_{training}", "RNN", "dimensional", training, fold, rep, test,
                                     arousal_mae=m, valence_mae=m + 0.2, arousal_r=0.6, valence_r=0.3,
                                     arousal_ccc=0.5, valence_ccc=0.2))
    return runs


def test_summary_averages_folds_then_spreads_over_repetitions(handmade_runs):
    summary = summarise(handmade_runs)[("rnn_cat_clean", "robot")]
    assert summary.spread == "repetitions" and summary.repetitions == 2 and summary.folds == 2
    stat = summary.metrics["macro_f1"]
    assert stat.mean == pytest.approx(0.20)
    assert stat.std == pytest.approx(math.sqrt(2) * 0.01)  # fold means 0.19 and 0.21: sample std
    single = summarise([r for r in handmade_runs if r["repetition"] == 0])[("rnn_cat_clean", "robot")]
    assert single.spread == "folds" and single.metrics["macro_f1"].n == 2


def test_table1_rows_gap_and_improvement(handmade_runs):
    markdown = table1_markdown(handmade_runs)
    header = _cells(markdown, "Model")
    assert header == ["Training", "Test", "Accuracy", "UAR", "Macro-F1", "Arousal MAE", "Valence MAE", "Arousal r",
                      "Valence r"]
    clean_clean = _cells(markdown, "RNN", "clean", "clean")
    assert _mean(clean_clean[2]) == pytest.approx(0.50) and _mean(clean_clean[3]) == pytest.approx(0.40)
    assert clean_clean[2] == "0.500 ± 0.014"
    gap = _cells(markdown, "RNN", "clean", "**gap %** (robot − clean)")
    assert gap[2] == f"{relative_change(0.20, 0.50):+.1f}%" == "-60.0%"
    assert gap[3] == f"{relative_change(0.60, 0.40):+.1f}%" == "+50.0%"  # MAE up: worse
    assert gap[5] == "+0.0%"  # arousal r identical
    gap_aug = _cells(markdown, "RNN", "augmented", "**gap %** (robot − clean)")
    assert gap_aug[2] == f"{relative_change(0.40, 0.55):+.1f}%"
    improvement = _cells(markdown, "RNN", "augmented vs clean", "**improvement %** on robot")
    assert improvement[2] == "+100.0%"  # 0.40 vs 0.20
    assert improvement[3] == f"{relative_change(0.45, 0.60):+.1f}%" == "-25.0%"
    assert "over 2 repetitions of the average over 2 folds" in markdown
    # no CNN arms: no CNN rows; a model without a clean arm gets no improvement row
    assert "| CNN |" not in markdown
    only_aug = [r for r in handmade_runs if r["training"] == "augmented"]
    assert "**improvement %**" not in table1_markdown(only_aug)


def test_table2_relative_f_score_change():
    runs = []
    f1 = {None: (0.54, 0.411), "tempo": (0.552, 0.386), "noise": (0.592, 0.26)}
    for removed, (clean, robot) in f1.items():
        arm = f"rnn_{removed or 'full'}"
        for fold in ("A", "B"):
            for test, value in (("clean", clean), ("robot", robot)):
                runs.append(_run(arm, "RNN", "categorical", "augmented", fold, 0, test, removed=removed,
                                 accuracy=value, uar=value, macro_f1=value))
    markdown = table2_markdown(runs)
    assert _cells(markdown, "RNN", "none (full augmentation)")[:2] == ["0.540 ± 0.000", "0.411 ± 0.000"]
    tempo = _cells(markdown, "RNN", "-tempo")
    assert tempo[2:] == [f"{relative_change(0.552, 0.54):+.1f}%", f"{relative_change(0.386, 0.411):+.1f}%"]
    assert tempo[2:] == ["+2.2%", "-6.1%"]
    noise = _cells(markdown, "RNN", "-background noise")
    assert noise[3] == "-36.7%"  # the paper's -36.8% from its rounded base
    assert "-loudness" not in markdown  # no arm, no row


# --- configuration errors ----------------------------------------------------------------------------------


def _write(tmp_path: pathlib.Path, change) -> pathlib.Path:
    data = yaml.safe_load(TINY1.read_text())
    change(data)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _arm0(data, **changes):
    data["arms"][0].update(changes)


@pytest.mark.parametrize("change, match", [
    (lambda d: d.update(colour="red"), r"unknown key\(s\) \['colour'\]"),
    (lambda d: d.pop("arms"), r"required key\(s\) \['arms'\] missing"),
    (lambda d: d.update(arms=[]), "'arms' must be a non-empty list"),
    (lambda d: d["corpus"].update(manifest="x.jsonl"), "exactly one of 'manifest'"),
    (lambda d: d["corpus"]["synth"].update(speakers="four"), "'speakers' must be an integer >= 2"),
    (lambda d: d["protocol"].update(folds="some"), "'folds' must be 'all', a count"),
    (lambda d: d["protocol"].update(validation="random"), r"'validation' must be one of \['partner'"),
    (lambda d: d["protocol"].update(repetitions=0), "'repetitions' must be an integer >= 1"),
    (lambda d: d["protocol"].update(scheme="utterance"), r"'scheme' must be one of \['speaker', 'session', 'cross_corpus'\]"),
    (lambda d: d["protocol"].update(scheme="session"), "no partner is left to validate; use validation: next"),
    (lambda d: d["train"].update(config="nowhere.yaml"), "config 'nowhere.yaml' not found"),
    (lambda d: d.update(tables=["table3"]), r"'tables' must be one of \['table1', 'table2', 'labelled_fraction'\]"),
    (lambda d: _arm0(d, head="both"), r"arms\[0\]: key 'head' must be one of"),
    (lambda d: _arm0(d, name="a b"), "folder name"),
    (lambda d: _arm0(d, removed="pitch"), r"'removed' must be one of \['tempo', 'gain', 'noise', 'ir'\]"),
    (lambda d: d["arms"].append(dict(d["arms"][0])), r"arm names must be unique, \['rnn_categorical_clean'\]"),
    (lambda d: _arm0(d, overrides={"augmentation": {"p_tempoo": 0}}),
     r"arm 'rnn_categorical_clean'.*unknown key\(s\) \['augmentation.p_tempoo'\]"),
    (lambda d: _arm0(d, overrides={"epochs": 0}), "arm 'rnn_categorical_clean'.*'epochs' must be an integer >= 1"),
    (lambda d: _arm0(d, overrides={}), "says training: clean but its augmentation.kind is 'lakomkin'"),
    (lambda d: _arm0(d, training="augmented", removed="tempo", overrides={}),
     r"says removed: tempo but augmentation.p_tempo is 0.5"),
    (lambda d: d.update(tables=["table2"]), "table2 \\(the ablation\\) needs"),
])
def test_config_errors_name_the_key(tmp_path, change, match):
    with pytest.raises(ConfigError, match=match):
        load_experiment(_write(tmp_path, change))


def test_missing_experiment_file(tmp_path):
    with pytest.raises(ConfigError, match="not found; see training/experiments/"):
        load_experiment(tmp_path / "nope.yaml")


def test_shipped_experiments_load():
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        experiment = load_experiment(path)
        assert experiment.name == path.stem
    full = load_experiment(EXPERIMENTS / "lakomkin_table1_paper.yaml")
    assert len(full.arms) == 8 and full.protocol.repetitions == 3 and full.protocol.folds == "all"
    assert full.corpus.synth == {"speakers": 10, "sentences": 100, "seed": 0}
    ablation = load_experiment(EXPERIMENTS / "lakomkin_table2_paper.yaml")
    assert [a.removed for a in ablation.arms] == [None, "tempo", "gain", "noise", "ir"]


def test_command_does_not_import_torch():
    code = ("import argparse, sys; from ser_robot.experiments.command import add_arguments; "
            "a = add_arguments(argparse.ArgumentParser()).parse_args(['x.yaml', '--workers', '2']); "
            "assert a.workers == 2 and a.out is None; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- the tiny experiments end to end -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def table1(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "table1"
    return run_experiment(TINY1, out=out, workers=1, progress=False, cache=cache)


@pytest.fixture(scope="module")
def table2(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "table2"
    return run_experiment(TINY2, out=out, workers=2, progress=False, cache=cache)


def _csv_rows(path: pathlib.Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_table1_tiny_results_folder(table1):
    out = table1.out_dir
    assert table1.jobs_run == 16 and table1.jobs_skipped == 0  # 8 arms x 2 folds x 1 repetition
    for name in ("README.md", "tables.md", "runs.csv", "experiment.yaml", "experiment.resolved.json", "run_info.json"):
        assert (out / name).is_file(), name
    rows = _csv_rows(out / "runs.csv")
    assert len(rows) == 16 * 2 and list(rows[0]) == list(RUN_COLUMNS)
    assert {r["test_set"] for r in rows} == {"clean", "robot"}
    assert len({r["test_speaker"] for r in rows}) == 2
    for row in rows:
        filled = "macro_f1" if row["head"] == "categorical" else "arousal_mae"
        empty = "arousal_mae" if row["head"] == "categorical" else "macro_f1"
        assert row[filled] != "" and row[empty] == ""
    markdown = (out / "tables.md").read_text()
    assert "## Table I" in markdown and "## Table II" not in markdown
    for model in ("RNN", "CNN"):
        for training in ("clean", "augmented"):
            for test in ("clean", "robot (simulated)"):
                cells = _cells(markdown, model, training, test)
                assert len(cells) == 7 and all(re.match(r"-?\d\.\d{3}", c) for c in cells), cells
            assert len(_cells(markdown, model, training, "**gap %** (robot − clean)")) == 7
        assert all(c.endswith("%") for c in _cells(markdown, model, "augmented vs clean", "**improvement %** on robot"))
    assert "mean ± sample std over 2 folds (a single repetition)" in markdown
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len([f for f in figures if f.startswith("confusion_")]) == 4 * 2 + 1  # categorical arms x tests + grid
    assert {f for f in figures if f.startswith("violin_")} == {f"violin_{m}_{t}.png" for m in ("RNN", "CNN")
                                                                   for t in ("clean", "robot")}
    job = out / "jobs" / "rnn_categorical_augmented" / "rep0" / "s01f_slt"
    for name in ("job.json", "predictions_clean.csv", "predictions_robot.csv", "train/best.pt"):
        assert (job / name).is_file(), name
    predictions = _csv_rows(job / "predictions_robot.csv")
    assert len(predictions) == 8 and {p["speaker"] for p in predictions} == {"s01f_slt"}
    clean_ids = [p["id"] for p in _csv_rows(job / "predictions_clean.csv")]
    assert clean_ids == [p["id"] for p in predictions]  # same utterances, same model, two conditions
    readme = (out / "README.md").read_text()
    assert "Synthetic corpus" in readme and "simulated robot re-recording" in readme
    assert f"ser-robot experiment {TINY1}" in readme and "--workers 1" in readme
    info = json.loads((out / "run_info.json").read_text())
    assert info["machine"]["cpu_count"] and info["finished"][:4].isdigit()
    assert "## Table I" in readme


def test_table2_tiny_results_folder(table2):
    out = table2.out_dir
    assert table2.jobs_run == 10  # 5 arms x 2 folds, in 2 worker processes
    assert len(_csv_rows(out / "runs.csv")) == 20
    markdown = (out / "tables.md").read_text()
    assert "## Table II" in markdown and "## Table I:" not in markdown
    full = _cells(markdown, "RNN", "none (full augmentation)")
    for name in ("-tempo", "-loudness", "-background noise", "-filter impulse response"):
        cells = _cells(markdown, "RNN", name)
        delta = relative_change(_mean(cells[1]), _mean(full[1]))
        assert cells[3].endswith("%") and cells[2].endswith("%")
        assert float(cells[3].rstrip("%")) == pytest.approx(delta, abs=0.6)  # from 3-decimal rounded cells
    assert not list((out / "figures").glob("violin_*.png"))  # no dimensional arm
    jobs = [json.loads(p.read_text()) for p in out.glob("jobs/*/rep0/*/job.json")]
    assert {j["threads"] for j in jobs} == {max(1, (__import__("os").cpu_count() or 1) // 2)}


def test_shared_cache_and_same_seed_give_the_same_model(table1, table2):
    """The ablation's full arm and Table I's augmented RNN are one configuration: the same predictions (up to
    float rounding: table1 ran with 2 torch threads in this process, table2 with 1 per worker process)."""
    a = _csv_rows(table1.out_dir / "jobs" / "rnn_categorical_augmented" / "rep0" / "s01m_awb" / "predictions_robot.csv")
    b = _csv_rows(table2.out_dir / "jobs" / "rnn_full" / "rep0" / "s01m_awb" / "predictions_robot.csv")
    assert [(r["id"], r["predicted"]) for r in a] == [(r["id"], r["predicted"]) for r in b]
    for ra, rb in zip(a, b):
        for key in (k for k in ra if k.startswith("logit_")):
            assert float(ra[key]) == pytest.approx(float(rb[key]), abs=1e-5)
    assert json.loads((table1.out_dir / "run_info.json").read_text())["data"] == \
        json.loads((table2.out_dir / "run_info.json").read_text())["data"]


def test_resume_skips_finished_jobs(table1, cache):
    out = table1.out_dir
    before = (out / "runs.csv").read_text()
    again = run_experiment(TINY1, out=out, workers=1, progress=False, cache=cache)
    assert again.jobs_run == 0 and again.jobs_skipped == 16
    assert (out / "runs.csv").read_text() == before
    job = out / "jobs" / "cnn_categorical_clean" / "rep0" / "s01m_awb"
    (job / "job.json").unlink()  # an interrupted job: continues from its last.pt
    resumed = run_experiment(TINY1, out=out, workers=1, progress=False, cache=cache)
    assert resumed.jobs_run == 1 and resumed.jobs_skipped == 15
    assert _same_metrics(before, (out / "runs.csv").read_text())  # same weights: resumed, not retrained


def _same_metrics(a: str, b: str) -> bool:
    drop = ("train_seconds",)
    rows = [[{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(t.splitlines())] for t in (a, b)]
    return rows[0] == rows[1]


def test_changed_configuration_is_refused(table1, cache, tmp_path):
    def more_epochs(data):
        data["train"]["overrides"]["epochs"] = 2

    with pytest.raises(ExperimentError, match="finished with another configuration"):
        run_experiment(_write(tmp_path, more_epochs), out=table1.out_dir, progress=False, cache=cache)


def test_too_many_folds(cache, tmp_path):
    path = _write(tmp_path, lambda d: d["protocol"].update(folds=9))
    with pytest.raises(ExperimentError, match=r"protocol.folds is 9 but the corpus has 4 folds \(speaker scheme\)"):
        run_experiment(path, out=tmp_path / "out", progress=False, cache=cache)


def test_rebuild_tables_reproduces_the_tables(table1, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(table1.out_dir, copy)
    originals = {name: (copy / name).read_text() for name in ("runs.csv", "tables.md")}
    for name in ("runs.csv", "tables.md", "README.md"):
        (copy / name).unlink()
    shutil.rmtree(copy / "figures")
    for best in copy.glob("jobs/*/rep0/*/train/*.pt"):
        best.unlink()  # no model needed: everything comes from the saved predictions
    tables = rebuild_tables(copy)
    assert (copy / "runs.csv").read_text() == originals["runs.csv"]
    assert (copy / "tables.md").read_text() == originals["tables.md"] == tables.markdown
    assert len(list((copy / "figures").glob("*.png"))) == 13
    assert read_runs(copy / "runs.csv")[0]["repetition"] == 0
    with pytest.raises(ExperimentError, match="not an experiment results folder"):
        rebuild_tables(tmp_path)


# --- the tiny experiments from augmentation banks ------------------------------------------------------------


def _bank_mode(path: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """The tiny experiment ``path`` with its augmentation precomputed (3 renditions per utterance)."""
    data = yaml.safe_load(path.read_text())
    overrides = data["train"]["overrides"]
    overrides["augmentation"] = {**(overrides.get("augmentation") or {}), "mode": "bank", "versions": 3}
    data["train"]["config"] = str(REPO / data["train"]["config"])
    out = tmp_path / path.name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


@pytest.fixture(scope="module")
def bank_tables(cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bank_mode")
    table1 = run_experiment(_bank_mode(TINY1, folder), out=folder / "table1", workers=2, progress=False, cache=cache)
    table2 = run_experiment(_bank_mode(TINY2, folder), out=folder / "table2", workers=2, progress=False, cache=cache)
    return table1, table2


def test_tiny_tables_from_banks(bank_tables, cache):
    """Both tables run from banks: one bank per chain in the cache, shared by folds, arms and experiments."""
    table1, table2 = bank_tables
    assert table1.jobs_run == 16 and table2.jobs_run == 10
    for result, header in ((table1, "## Table I"), (table2, "## Table II")):
        markdown = (result.out_dir / "tables.md").read_text()
        assert header in markdown and "## Effects the paper claims" in markdown
    chains = [json.loads(p.read_text())["spec"]["chain"] for p in (cache / "banks").glob("*/bank.json")]
    assert len(chains) == 6  # clean, full (Table I's augmented arms = Table II's full arm), 4 ablations
    assert sum(c == {"kind": "none"} for c in chains) == 1
    job = json.loads(next((table2.out_dir / "jobs" / "rnn_minus_tempo").glob("rep0/*/job.json")).read_text())
    config = yaml.safe_load((table2.out_dir / "jobs" / "rnn_minus_tempo" / "rep0" / job["test_speaker"] / "train" /
                             "train_config.yaml").read_text())
    assert config["augmentation"]["mode"] == "bank" and config["augmentation"]["p_tempo"] == 0
    assert config["augmentation"]["bank_dir"] == str(cache.resolve() / "banks")


def test_session_folds_test_both_speakers_of_a_session(tiny_corpus):
    from ser_robot.data.manifest import read_manifest
    from ser_robot.experiments.runner import experiment_folds

    manifest = read_manifest(tiny_corpus)
    folds = experiment_folds(manifest, "session", "none")
    assert len(folds) == len(manifest.sessions) == 2
    tested = [s for fold in folds for s in fold.test.speakers]
    assert sorted(tested) == sorted(manifest.speakers) and all(len(f.test.speakers) == 2 for f in folds)


def test_prepare_features_lists_the_banks_of_an_experiment(bank_tables, cache, tmp_path, capsys):
    import argparse

    from ser_robot.experiments.command import add_prepare_arguments, run_prepare_from_args

    path = _bank_mode(TINY1, tmp_path)
    args = add_prepare_arguments(argparse.ArgumentParser()).parse_args([str(path), "--cache", str(cache),
                                                                        "--no-progress"])
    assert run_prepare_from_args(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "utterances x" in line]
    assert len(lines) == 2 and any("x 1 versions" in line and "clean" in line for line in lines)


def test_gpu_burst_stops_at_its_deadline_and_resumes(cache, tmp_path):
    """The burst script (training/gpu_burst.py) at tiny size on the CPU: stopped at its deadline it leaves a
    report and resumable jobs; run again, it finishes them."""
    data = yaml.safe_load(TINY1.read_text())
    data["arms"] = data["arms"][:2]
    data["train"]["config"] = str(REPO / data["train"]["config"])
    experiment = tmp_path / "burst.yaml"
    experiment.write_text(yaml.safe_dump(data, sort_keys=False))
    command = [sys.executable, str(REPO / "training" / "gpu_burst.py"), "--experiment", str(experiment),
               "--out", str(tmp_path / "burst"), "--workers", "1", "--cache", str(cache)]
    # 1 s: less than the child's start (imports) on any machine; 3 s let a quiet machine finish all 4 tiny jobs
    subprocess.run([*command, "--seconds", "1"], check=True, cwd=REPO, timeout=300)
    first = json.loads((tmp_path / "burst" / "burst.json").read_text())
    assert first["stopped_at_deadline"] and first["jobs_finished"] < 4 and first["device"]
    subprocess.run([*command, "--seconds", "400"], check=True, cwd=REPO, timeout=600)
    second = json.loads((tmp_path / "burst" / "burst.json").read_text())
    assert not second["stopped_at_deadline"] and second["returncode"] == 0 and second["jobs_finished"] == 4
    assert (tmp_path / "burst" / "results" / "tables.md").is_file()


def test_ray_launcher_gives_the_local_results(table2, cache, tmp_path):
    """The tiny Table II through a local Ray cluster started here (Ray's own scheduling, one CPU per job)
    equals the local process pool's run of the same jobs (1 torch thread per job in both)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_experiment(TINY2, out=tmp_path / "ray", workers=2, progress=False, cache=cache, launcher="ray")
    finally:
        ray.shutdown()
    assert result.jobs_run == 10
    assert json.loads((result.out_dir / "run_info.json").read_text())["launcher"] == "ray"
    local = sorted(table2.out_dir.glob("jobs/*/rep0/*/predictions_*.csv"))
    assert len(local) == 20
    for path in local:
        mine = _csv_rows(result.out_dir / path.relative_to(table2.out_dir))
        theirs = _csv_rows(path)
        assert [(r["id"], r["predicted"]) for r in mine] == [(r["id"], r["predicted"]) for r in theirs]
        for a, b in zip(mine, theirs):
            for key in (k for k in a if k.startswith("logit_")):
                assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-5)


_KILLED_PARENT = '''
import os, pathlib, sys, time

from ser_robot.experiments.launchers import launch


def job(folder):
    pathlib.Path(folder, str(os.getpid())).write_text("")
    time.sleep(120)
    return {}


if __name__ == "__main__":
    launch([sys.argv[1]] * 2, job, lambda record: None, workers=2)
'''


def test_a_killed_experiment_leaves_no_worker_running(tmp_path):
    """SIGKILL to the process of ``ser-robot experiment``: its spawned workers end too (they would otherwise
    go on training for hours, holding the cores)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "experiment.py"
    script.write_text(_KILLED_PARENT)
    folder = tmp_path / "pids"
    folder.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(folder)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [int(p.name) for p in folder.iterdir()]
    assert len(workers) == 2, "the workers did not start"
    parent.kill()
    parent.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        status = pathlib.Path(f"/proc/{pid}/stat")
        return not (status.is_file() and status.read_text().split()[2] == "Z")  # a zombie has ended

    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftover = [pid for pid in workers if alive(pid)]
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, f"workers {leftover} outlived the killed experiment"
