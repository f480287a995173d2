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
