"""A manifest played through the whole live pipeline and scored: what ``make demo`` and
``ser-robot evaluate-live`` do.

:func:`play_manifest` runs one ``ser-robot run`` in this process, over real DDS: the corpus player plays
the manifest's files (shuffled, with pauses) into the PulseAudio virtual two-ear device, where the
microphone node captures them (when PulseAudio is not available, or ``virtual_ears`` is off, the corpus
player publishes the audio itself) -> feature node -> inference node (one printed line per emotion) ->
recorder (MCAP bag with audio, features, VAD, emotions, ground truth and diagnostics). All utterances
form one stream, as a robot hears one room. :func:`evaluate_recorded` scores the bag (``evaluate-bag``).
"""

from __future__ import annotations

import pathlib
import shlex
import sys
import time
from collections.abc import Sequence
from typing import Any

from ser_robot.config import RunConfig, validate_node_params
from ser_robot.ros.runner import run

__all__ = ["PAUSE_S", "RECORDED", "START_DELAY_S", "evaluate_recorded", "play_manifest", "programme_seconds"]

RECORDED = ["audio", "features", "vad", "emotion", "ground_truth", "diagnostics"]
PAUSE_S = 1.0  # silence between utterances, s
START_DELAY_S = 3.0  # after activation, before the first utterance, s (the first capture stream of a process
# takes about 2 s to deliver through PulseAudio)


def programme_seconds(utterances: Sequence[Any]) -> float:
    """How long the corpus player takes for ``utterances``, s (start delay, utterances and pauses)."""
    return START_DELAY_S + sum(u.duration_s for u in utterances) + PAUSE_S * (len(utterances) + 1)


def _virtual_ears(log_prefix: str):
    """Started virtual ears, or None (with the reason printed) when PulseAudio is not available."""
    from ser_robot.audio.virtual_ears import VirtualEars

    try:
        return VirtualEars().start()
    except Exception as error:  # noqa: BLE001 - PulseAudio missing or failing: fall back to the topic
        print(f"{log_prefix}: no PulseAudio virtual ears ({error}); the corpus player publishes the audio itself",
              flush=True)
        return None


def play_manifest(manifest: str | pathlib.Path, bag: pathlib.Path, *, gain_db: float = 0.0, model: str = "",
                  virtual_ears: bool = True, log_prefix: str = "replay") -> int:
    """Play ``manifest`` at ``gain_db`` through the live pipeline (``model``: checkpoint, "" the shipped one)
    into ``bag``; returns the exit code."""
    from ser_robot.data.manifest import read_manifest

    programme_s = programme_seconds(read_manifest(manifest))
    ears = _virtual_ears(log_prefix) if virtual_ears else None
    player = {"manifest": str(manifest), "pause_s": PAUSE_S, "start_delay_s": START_DELAY_S, "shuffle": True,
              "channel_ids": ["left_ear", "right_ear"], "gain_db": gain_db}
    params: dict[str, Any] = {
        "inference": {"mode": "utterance", "stdout": True, **({"model": model} if model else {})},
        "recorder": {"output": str(bag), "topics": RECORDED},
    }
    nodes = ["corpus_player", "features", "inference", "recorder"]
    if ears is None:
        params["corpus_player"] = {**player, "output": "topic"}
    else:
        nodes.insert(1, "microphone")
        params["corpus_player"] = {**player, "output": "device", "device": "pulse"}
        params["microphone"] = {"device": "pulse", "sample_rate": 48000}
        print(f"{log_prefix}: playing into the virtual ears at {ears.server}; the microphone node captures them",
              flush=True)
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
        print(f"{log_prefix}: the corpus player failed: {players[0].failure}", file=sys.stderr, flush=True)
        return 1
    return code


def evaluate_recorded(bag: pathlib.Path, report: pathlib.Path | None = None) -> tuple[Any, pathlib.Path]:
    """Score the recorded ``bag`` (``evaluate-bag``) and write its report folder (default: next to the bag);
    returns ``(evaluation, README path)``."""
    from ser_robot.eval.bag_eval import evaluate_bag
    from ser_robot.eval.bag_report import write_bag_report

    evaluation = evaluate_bag(bag)
    path = write_bag_report(evaluation, report or bag.parent / f"{bag.name}_report",
                            command=shlex.join(["ser-robot", "evaluate-bag", str(bag)]))
    return evaluation, path
