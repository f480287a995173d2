"""`make demo` end to end: held-out speech played and captured in one `ser-robot run`, then scored."""

import json
import pathlib
import re

import pytest

from conftest import ser_robot

pytestmark = [pytest.mark.ros, pytest.mark.audio]


def test_demo_plays_captures_recognises_and_scores_in_one_run(tmp_path):
    done = ser_robot("demo", "--out", str(tmp_path), "--sentences", "1", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "the microphone node captures them" in out, out  # the PulseAudio path, not the fallback
    emotions = re.findall(r"^\d\d:\d\d:\d\d\.\d{3}\s+head_mics\s.*latency", out, flags=re.M)
    assert len(emotions) >= 6, out  # 8 utterances (2 speakers x 4 emotions); live segmentation may merge some
    report = pathlib.Path(re.search(r"^demo: report (.+)$", out, flags=re.M).group(1))
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert metrics["ground_truth_utterances"] == 8 and metrics["coverage"] >= 0.75, metrics
    assert (report.parent / "timeline.png").stat().st_size > 0
    # the same utterances 20 dB quieter: the predictions do not follow the microphone's gain
    same, total = map(int, re.search(r"^demo: 20 dB apart: (\d+) of (\d+) utterances predicted the same", out,
                                     flags=re.M).groups())
    assert total == 8 and same >= 6, out


def test_evaluate_live_plays_a_manifest_through_the_pipeline_and_scores_it(tiny_corpus, tiny_checkpoint, tmp_path):
    from ser_robot.data.manifest import read_manifest, write_manifest

    utterances = read_manifest(tiny_corpus)
    chosen = [next(u for u in utterances if u.label == label) for label in ("angry", "happy", "neutral", "sad")]
    manifest = write_manifest(tmp_path / "four.jsonl", chosen)
    model = tiny_checkpoint("lakomkin_rnn", "egemaps")
    done = ser_robot("evaluate-live", str(manifest), "--out", str(tmp_path / "live"), "--model", str(model),
                     timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "the microphone node captures them" in done.stdout
    metrics = json.loads((tmp_path / "live" / "report" / "metrics.json").read_text())
    assert metrics["ground_truth_utterances"] == 4 and metrics["coverage"] >= 0.75, metrics
    assert str(model) in (tmp_path / "live" / "command.txt").read_text()
    again = ser_robot("evaluate-live", str(manifest), "--out", str(tmp_path / "live"), timeout=60)
    assert again.returncode != 0 and "never overwritten" in again.stderr
