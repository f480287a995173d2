"""Corpus player node: a manifest's utterances played with pauses, and each one's label as ground truth.

``output: topic`` publishes the programme as ``AudioFrame`` on ``audio`` (paced at ``rate``
times real time, stamps on the media clock from activation); ``output: device`` plays it on an
output device (e.g. the virtual ears, for a microphone node to capture) and publishes no audio.
Either way, once an utterance's last sample has been published (topic) or has reached the
DAC (device), one final ``Emotion`` spanning it goes out on ``ground_truth_topic``.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterator

from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from ser_robot.audio.chunk import AudioChunk
from ser_robot.audio.corpus_player import Cue, DevicePlayer, Programme
from ser_robot.audio.file_source import Pacer
from ser_robot.data.corpora.labels import unit_dimension
from ser_robot.errors import SerRobotError
from ser_robot.ros.audio_source_node import AudioSourceNode
from ser_robot.ros.conversions import seconds_to_time
from ser_robot.ros.diagnostics import ERROR, OK, WARN
from ser_robot.ros.qos import RELIABLE_QOS
from ser_robot_msgs.msg import Emotion

__all__ = ["CorpusPlayerNode", "ground_truth_message", "main"]

DEVICE_POLL_S = 0.01  # device output: how often played frames are checked for finished utterances


def ground_truth_message(cue: Cue, labels: tuple[str, ...], start_s: float, end_s: float, frame_id: str) -> Emotion:
    """The final, certain ``Emotion`` of ``cue``'s label over ``[start_s, end_s]`` (system-clock s)."""
    u = cue.utterance
    msg = Emotion()
    msg.header.stamp = seconds_to_time(end_s)
    msg.header.frame_id = frame_id
    msg.source_id = frame_id
    msg.window_start = seconds_to_time(start_s)
    msg.window_end = msg.header.stamp
    msg.final = True
    msg.speech = True
    msg.speech_probability = 1.0
    msg.label = u.label or ""
    msg.confidence = 1.0
    msg.labels = list(labels)
    msg.probabilities = [1.0 if label == u.label else 0.0 for label in labels]
    msg.arousal = unit_dimension(u.arousal, u.corpus)  # Emotion's scale is [-1, 1]; IEMOCAP rates 1-5
    msg.valence = unit_dimension(u.valence, u.corpus)
    msg.model_id = f"ground_truth:{u.id}"
    return msg


class CorpusPlayerNode(AudioSourceNode):
    """Plays a manifest's selected utterances with pauses; see ``config/ser.yaml`` (``corpus_player``)."""

    KIND = "corpus_player"

    def __init__(self, node_name: str | None = None, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.programme: Programme | None = None
        self.player: DevicePlayer | None = None
        self.utterances_played = 0
        self.failure = ""  # why the programme stopped early, if it did
        self._ground_truth_publisher = None
        self._chunks: Iterator[AudioChunk] | None = None
        self._timeline: Iterator[Cue] | None = None
        self._cue: Cue | None = None  # the next utterance to end
        self._due: list[tuple[Cue, float, float, float]] = []  # (cue, start, end, publish at), system clock s
        self._pacer: Pacer | None = None
        self._start_time = 0.0
        self._position = 0  # frames published (topic) or handed to the device

    @property
    def device_output(self) -> bool:
        return self.params.get("output") == "device"

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_configure(state)
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        if self.device_output:  # the audio reaches 'audio' through a microphone node, not from here
            self.destroy_lifecycle_publisher(self._publisher)
            self._publisher = None
        self._ground_truth_publisher = self.create_lifecycle_publisher(
            Emotion, self.params["ground_truth_topic"], RELIABLE_QOS
        )
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_ground_truth_publisher()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_shutdown(state)
        self._destroy_ground_truth_publisher()
        return result

    def _destroy_ground_truth_publisher(self) -> None:
        if self._ground_truth_publisher is not None:
            self.destroy_lifecycle_publisher(self._ground_truth_publisher)
            self._ground_truth_publisher = None

    # -- source ----------------------------------------------------------------------------
    def open_source(self) -> None:
        p = self.params
        self.programme = Programme.from_manifest(
            p["manifest"], speakers=p["speakers"], limit=p["limit"], shuffle=p["shuffle"], seed=p["seed"],
            pause_s=p["pause_s"], channels=len(p["channel_ids"]), chunk_ms=p["chunk_ms"], loop=p["loop"],
            gain_db=p["gain_db"],
        )
        programme = self.programme
        where = f"rate x{p['rate']:g}"
        self.player = None
        if self.device_output:
            self.player = DevicePlayer(p["device"], programme.sample_rate, programme.channels, p["chunk_ms"])
            where = f"output device {self.player.resolve().describe()}"
            if p["rate"] != 1.0:
                self.get_logger().warning(f"rate {p['rate']:g} is ignored with output=device: a device plays in real time")
        speakers = len({cue.utterance.speaker for cue in programme.cues})
        self.get_logger().info(
            f"{len(programme.cues)} utterance(s) of {speakers} speaker(s), {programme.duration_s:.1f} s at "
            f"{programme.sample_rate} Hz, {where}, loop={p['loop']}"
        )

    def start_source(self) -> None:
        assert self.programme is not None
        p = self.params
        self.finished.clear()
        self.utterances_played, self.failure, self._position, self._due = 0, "", 0, []
        self._timeline = self.programme.timeline()
        self._cue = next(self._timeline, None)
        if self.player is not None:
            self._chunks = self.programme.chunks()
            self.player.start(self._chunks, lead_in_s=p["start_delay_s"] + DevicePlayer.SETTLE_S)
        else:
            delay = p["start_delay_s"]
            self._pacer = Pacer(p["rate"], start=time.monotonic() + delay, sleep=self._stop.wait)
            self._start_time = time.time() + delay
            self._chunks = self.programme.chunks(self._start_time)

    def stop_source(self) -> None:
        if self.player is not None:
            self.player.close()
        elif self._chunks is not None:
            self._advance(self._position, self._media_times)  # the last frames were published
        self._chunks = None

    def read_chunk(self) -> tuple[AudioChunk, float] | None:
        try:
            if self.player is not None:
                self._serve_device()
                return None
            return self._next_chunk()
        except SerRobotError as exc:  # an audio file became unreadable mid-programme
            self._fail(str(exc))
            return None

    def _fail(self, reason: str) -> None:
        """Stop the programme early, saying why (log and diagnostics)."""
        self.failure = reason
        self.get_logger().error(f"{reason}; stopping the programme")
        self.finished.set()

    def _next_chunk(self) -> tuple[AudioChunk, float] | None:
        """Topic output: the next chunk, when it is due; first the ground truth of what was published."""
        assert self._chunks is not None and self._pacer is not None
        self._advance(self._position, self._media_times)
        chunk = next(self._chunks, None)
        if chunk is None:
            self.finished.set()
            self.get_logger().info(f"end of the programme: {self.utterances_played} utterance(s) played")
            return None
        # Publish when the chunk's last sample would have been captured, as a microphone does.
        self._pacer.wait_until(chunk.time - self._start_time + chunk.duration)
        if self._stop.is_set():
            return None
        self._position += chunk.num_frames
        return chunk, time.monotonic()

    def _serve_device(self) -> None:
        """Device output: keep the device fed and publish the ground truth of what it played."""
        player = self.player
        assert player is not None and self._chunks is not None
        player.feed(self._chunks)
        self._position = player.played
        self._advance(self._position, self._device_times)
        if player.drained and self._cue is None and not self._due:
            player.close()
            self.finished.set()
            self.get_logger().info(f"end of the programme: {self.utterances_played} utterance(s) played")
        elif not player.running:
            self._fail(f"the output stream stopped (no audio callback for {DevicePlayer.STALL_S:g} s: device lost?)")
        else:
            self._stop.wait(DEVICE_POLL_S)

    # -- ground truth ----------------------------------------------------------------------
    def _media_times(self, cue: Cue) -> tuple[float, float, float]:
        """Topic output: (start, end) on the AudioFrame stamps' media clock; publish now."""
        rate = cue.sample_rate
        return self._start_time + cue.start / rate, self._start_time + cue.end / rate, 0.0

    def _device_times(self, cue: Cue) -> tuple[float, float, float]:
        """Device output: (start, end) when the first and last samples reach the DAC; publish at the end."""
        assert self.player is not None
        start = self.player.dac_time(cue.start)
        end = self.player.dac_time(cue.end - 1) + 1.0 / cue.sample_rate
        return start, end, end

    def _advance(self, position: int, times: Callable[[Cue], tuple[float, float, float]]) -> None:
        """Queue the ground truth of the utterances ending by frame ``position``; publish what is due."""
        while self._cue is not None and self._cue.end <= position:
            self._due.append((self._cue, *times(self._cue)))
            self._cue = next(self._timeline, None)
        now = time.time()
        while self._due and self._due[0][3] <= now:
            cue, start, end, _ = self._due.pop(0)
            self._ground_truth_publisher.publish(
                ground_truth_message(cue, self.programme.labels, start, end, self.params["frame_id"])
            )
            self.utterances_played += 1

    # -- diagnostics -----------------------------------------------------------------------
    def health(self):
        programme = self.programme
        if programme is None:
            return ERROR, "not configured", "", {}
        cue, player = self._cue, self.player
        values: dict[str, object] = {
            "output": self.params["output"],
            "utterances_played": self.utterances_played,
            "utterances_total": len(programme.cues),
            "current_utterance": cue.utterance.id if cue is not None and cue.start < self._position else "",
            "loop": self.params["loop"],
        }
        if player is None:
            hardware, values["rate"] = "corpus", self.params["rate"]
        else:
            hardware = player.device.describe() if player.device else self.params["device"]
            values["device"], values["underflows"] = hardware, player.underflows
        if self.failure:
            return ERROR, self.failure, hardware, values
        if self.finished.is_set():
            return OK, "finished", hardware, values
        if self._chunks is None:
            return OK, "inactive", hardware, values
        if player is not None and player.underflows:
            return WARN, f"{player.underflows} output underflow(s)", hardware, values
        return OK, "playing", hardware, values


def main(args: list[str] | None = None) -> int:
    """``ros2 run ser_robot corpus_player_node`` (lifecycle node: configure and activate it)."""
    from ser_robot.ros.runner import spin_single

    return spin_single(CorpusPlayerNode, args if args is not None else sys.argv)
