"""``ser-robot demo`` (``make demo``): held-out speakers through the whole live pipeline, then scored.

1. The shipped default model (``models/default/model.pt``) names the speakers it never trained
   on (its held-out fold); a few of their sentences are synthesised with the same voices
   (``out/demo/heldout``, the synthetic corpus' rules).
2. One ``ser-robot run`` in this process, over real DDS (:func:`ser_robot.ros.replay.play_manifest`):
   the corpus player plays them with pauses into the PulseAudio virtual two-ear device, where the
   microphone node captures them -> feature node -> inference node (one printed line per emotion:
   time, label, confidence, latency) -> recorder (MCAP bag).
3. ``evaluate-bag`` of that bag: metrics printed, report folder written next to it.
4. The microphone's gain must not matter: the same programme is played again ``GAIN_STEP_DB``
   quieter (the first pass is that much hotter; hotter than the corpus' level would clip) into a
   second bag, and the predictions of the two passes are compared utterance by utterance.
"""

from __future__ import annotations

import datetime
import pathlib

from ser_robot.errors import CheckpointError
from ser_robot.eval.bag_report import summary_lines
from ser_robot.ros.replay import evaluate_recorded, play_manifest, programme_seconds

__all__ = ["run_demo"]

GAIN_STEP_DB = 20.0  # the second pass is this much quieter than the first, dB


def _held_out_corpus(out: pathlib.Path, sentences: int) -> tuple[pathlib.Path, list[str], str]:
    """Synthesise ``sentences`` x 4 emotions of the default model's first two held-out speakers (its
    held-out voice pair); returns ``(manifest, speakers, model path)``."""
    from ser_robot.data.synth.corpus import generate_corpus
    from ser_robot.data.synth.voices import VOICES, diverse_voices
    from ser_robot.inference.model import default_model_path
    from ser_robot.train.checkpoint import load_checkpoint

    model = default_model_path()
    if not model.is_file():
        raise CheckpointError(f"the default model {model} is missing: run `make model` (about an hour) or restore it "
                              "from git")
    speakers = list(load_checkpoint(model)["fold"]["test"])[:2]
    voices = "core" if set(speakers) <= {v.id for v in VOICES} else "diverse"
    manifest = out / "manifest.jsonl"
    generate_corpus(out, speakers=len(VOICES) if voices == "core" else len(diverse_voices()), sentences=sentences,
                    seed=0, workers=2, progress=False, only_speakers=speakers, voices=voices)
    return manifest, speakers, str(model)


def run_demo(out_dir: str | pathlib.Path = "out/demo", sentences: int = 2) -> int:
    """Run the demo (see the module docstring); returns the process exit code."""
    from ser_robot.data.manifest import read_manifest

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / f"bag_{datetime.datetime.now().strftime('%Y%m%d_%H%M%S')}"
    manifest, speakers, model = _held_out_corpus(out / "heldout", sentences)
    utterances = read_manifest(manifest)
    print(f"demo: {len(utterances)} utterances ({programme_seconds(utterances):.0f} s) of the held-out speakers "
          f"{', '.join(speakers)}; model {model}", flush=True)
    code = play_manifest(manifest, bag, gain_db=0.0, log_prefix="demo")
    if code != 0:
        return code
    hot = _finish(bag)
    print(f"demo: the same utterances again, {GAIN_STEP_DB:g} dB quieter (a quieter microphone; the first pass was "
          f"{GAIN_STEP_DB:g} dB hotter)", flush=True)
    quiet_bag = bag.with_name(f"{bag.name}_minus{GAIN_STEP_DB:g}dB")
    code = play_manifest(manifest, quiet_bag, gain_db=-GAIN_STEP_DB, log_prefix="demo")
    if code != 0:
        return code
    _compare(hot, _finish(quiet_bag))
    return 0


def _finish(bag: pathlib.Path):
    """Evaluate the recorded ``bag``, print the metrics, write the report; returns the evaluation."""
    evaluation, report = evaluate_recorded(bag)
    print(f"demo: evaluation of {bag.name} (synthetic held-out speakers):", flush=True)
    print("\n".join(summary_lines(evaluation)))
    print(f"demo: report {report}", flush=True)
    return evaluation


def _compare(hot, quiet) -> None:
    """Print how many utterances got the same prediction in both passes (a miss counts as a prediction)."""
    quiet_by_id = {m.ground_truth.id: m.predicted for m in quiet.matches}
    pairs = [(m.predicted, quiet_by_id[m.ground_truth.id]) for m in hot.matches if m.ground_truth.id in quiet_by_id]
    same = sum(a == b for a, b in pairs)
    print(f"demo: {GAIN_STEP_DB:g} dB apart: {same} of {len(pairs)} utterances predicted the same; UAR "
          f"{100 * hot.overall.uar:.1f} % and {100 * quiet.overall.uar:.1f} %", flush=True)
