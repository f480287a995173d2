"""``ser-robot demo`` (``make demo``): held-out speakers through the whole live pipeline, then scored.

1. The shipped default model (``models/default/model.pt``) names the speakers it never trained
   on (its held-out fold); a few of their sentences are synthesised with the same voices
   (``out/demo/heldout``, the synthetic corpus' rules).
2. One ``ser-robot run`` in this process, over real DDS: the corpus player plays them with
   pauses into the PulseAudio virtual two-ear device, where the microphone node captures them
   (when PulseAudio is not available: the corpus player publishes the audio itself) -> feature
   node -> inference node (one printed line per emotion: time, label, confidence, latency) ->
   recorder (MCAP bag with audio, features, VAD, emotions, ground truth and diagnostics).
3. ``evaluate-bag`` of that bag: metrics printed, report folder written next to it.
4. The microphone's gain must not matter: the same programme is played again ``GAIN_STEP_DB``
   quieter (the first pass is that much hotter; hotter than the corpus' level would clip) into a
   second bag, and the predictions of the two passes are compared utterance by utterance.
"""

from __future__ import annotations

import datetime
import pathlib
import shlex
import sys
import time

from ser_robot.config import RunConfig, validate_node_params
from ser_robot.errors import CheckpointError
from ser_robot.ros.runner import run

__all__ = ["run_demo"]

RECORDED = ["audio", "features", "vad", "emotion", "ground_truth", "diagnostics"]
PAUSE_S = 1.0  # silence between utterances, s
GAIN_STEP_DB = 20.0  # the second pass is this much quieter than the first, dB
START_DELAY_S = 3.0  # after activation, before the first utterance, s (the first capture stream of a process
# takes about 2 s to deliver through PulseAudio)


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


def _virtual_ears():
    """Started virtual ears, or None (with the reason printed) when PulseAudio is not available."""
    from ser_robot.audio.virtual_ears import VirtualEars

    try:
        return VirtualEars().start()
    except Exception as error:  # noqa: BLE001 - PulseAudio missing or failing: fall back to the topic
        print(f"demo: no PulseAudio virtual ears ({error}); the corpus player publishes the audio itself", flush=True)
        return None


def run_demo(out_dir: str | pathlib.Path = "out/demo", sentences: int = 2) -> int:
    """Run the demo (see the module docstring); returns the process exit code."""
    from ser_robot.data.manifest import read_manifest

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / f"bag_{datetime.datetime.now().strftime('%Y%m%d_%H%M%S')}"
    manifest, speakers, model = _held_out_corpus(out / "heldout", sentences)
    utterances = read_manifest(manifest)
    programme_s = START_DELAY_S + sum(u.duration_s for u in utterances) + PAUSE_S * (len(utterances) + 1)
    print(f"demo: {len(utterances)} utterances ({programme_s:.0f} s) of the held-out speakers {', '.join(speakers)}; "
          f"model {model}", flush=True)
    code = _play(manifest, bag, programme_s, gain_db=0.0)
    if code != 0:
        return code
    hot = _finish(bag)
    print(f"demo: the same utterances again, {GAIN_STEP_DB:g} dB quieter (a quieter microphone; the first pass was "
          f"{GAIN_STEP_DB:g} dB hotter)", flush=True)
    quiet_bag = bag.with_name(f"{bag.name}_minus{GAIN_STEP_DB:g}dB")
    code = _play(manifest, quiet_bag, programme_s, gain_db=-GAIN_STEP_DB)
    if code != 0:
        return code
    _compare(hot, _finish(quiet_bag))
    return 0


def _play(manifest: pathlib.Path, bag: pathlib.Path, programme_s: float, gain_db: float) -> int:
    """One ``ser-robot run`` of the programme at ``gain_db`` into ``bag``; returns the exit code."""
    ears = _virtual_ears()
    player = {"manifest": str(manifest), "pause_s": PAUSE_S, "start_delay_s": START_DELAY_S, "shuffle": True,
              "channel_ids": ["left_ear", "right_ear"], "gain_db": gain_db}
    params = {
        "inference": {"mode": "utterance", "stdout": True},
        "recorder": {"output": str(bag), "topics": RECORDED},
    }
    nodes = ["corpus_player", "features", "inference", "recorder"]
    if ears is None:
        params["corpus_player"] = {**player, "output": "topic"}
    else:
        nodes.insert(1, "microphone")
        params["corpus_player"] = {**player, "output": "device", "device": "pulse"}
        params["microphone"] = {"device": "pulse", "sample_rate": 48000}
        print(f"demo: playing into the virtual ears at {ears.server}; the microphone node captures them", flush=True)
    params = {kind: validate_node_params(kind, values) for kind, values in params.items()}
    params["runner"] = validate_node_params("runner", {"nodes": nodes})
    config = RunConfig(path=None, nodes=nodes, params=params)
    players: list = []
    ended: list[float] = []

    def find_player(started) -> None:
        players.extend(node for node, kind in zip(started.nodes, started.kinds) if kind == "corpus_player")

    def player_done() -> bool:  # then one hangover and a margin for the last segment's result
        if players and players[0].finished.is_set() and not ended:
            ended.append(time.monotonic())
        return bool(ended) and time.monotonic() - ended[0] > 1.0

    try:
        code = run(config, on_started=find_player, until=player_done, duration_s=programme_s + 60.0)
    finally:
        if ears is not None:
            ears.stop()
    if players and players[0].failure:
        print(f"demo: the corpus player failed: {players[0].failure}", file=sys.stderr, flush=True)
        return 1
    return code


def _finish(bag: pathlib.Path):
    """Evaluate the recorded ``bag``, print the metrics, write the report; returns the evaluation."""
    from ser_robot.eval.bag_eval import evaluate_bag
    from ser_robot.eval.bag_report import summary_lines, write_bag_report

    evaluation = evaluate_bag(bag)
    report = write_bag_report(evaluation, bag.parent / f"{bag.name}_report",
                              command=shlex.join(["ser-robot", "evaluate-bag", str(bag)]))
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
