"""The corpus player: the utterances of a manifest laid out on a media timeline and played.

A :class:`Programme` is a selection of labelled utterances (:func:`select_utterances`) with
``pause_s`` of silence before each one and once more after the last (so a voice-activity
detector downstream sees the last utterance end), at one output rate (utterances at another
rate are resampled) and with the mono utterance copied into every output channel. Each
utterance's place on the timeline is a :class:`Cue` (first frame and frame count at the output
rate). :meth:`Programme.chunks` streams the timeline as :class:`AudioChunk` blocks whose stamps
follow the media clock (``start_time + frame / rate``); :meth:`Programme.timeline` gives the
cues in the same order (repeated, shifted by one pass, when looping).

:class:`DevicePlayer` plays such chunks on a PortAudio output device (e.g. the virtual ears'
sink, for a microphone node to capture) and says when each frame reaches the DAC, on the
system clock.
"""

from __future__ import annotations

import collections
import math
import pathlib
import queue
import random
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ser_robot.audio.chunk import AudioChunk
from ser_robot.audio.clock import SampleClock
from ser_robot.audio.devices import OutputDevice, _sounddevice, resolve_output_device, track_stream
from ser_robot.audio.resample import resample
from ser_robot.data.manifest import EMOTIONS, Manifest, Utterance, read_manifest
from ser_robot.errors import AudioDeviceError, AudioError, DataError

__all__ = [
    "ALL_SPEAKERS",
    "Cue",
    "DevicePlayer",
    "Programme",
    "label_set",
    "select_utterances",
]

ALL_SPEAKERS = "*"


def select_utterances(
    manifest: Manifest,
    speakers: Sequence[str] = (ALL_SPEAKERS,),
    limit: int = 0,
    shuffle: bool = False,
    seed: int = 0,
) -> list[Utterance]:
    """The labelled utterances of ``speakers`` (``["*"]`` = all), shuffled by ``seed`` if asked, at most ``limit`` (0 = all).

    Unlabelled utterances are left out (the player exists to publish ground truth). Raises
    :class:`DataError` for an unknown speaker or an empty selection.
    """
    if not speakers:
        raise DataError('no speakers given: list speaker ids, or ["*"] for every speaker')
    if ALL_SPEAKERS in speakers:
        chosen = list(manifest)
    else:
        unknown = [s for s in speakers if s not in manifest.speakers]
        if unknown:
            raise DataError(
                f"speaker(s) {unknown} not in the manifest; its speakers are {manifest.speakers} "
                '(or use ["*"] for all)'
            )
        wanted = set(speakers)
        chosen = [u for u in manifest if u.speaker in wanted]
    labelled = [u for u in chosen if u.label is not None]
    if not labelled:
        raise DataError(
            f"no labelled utterance among the {len(chosen)} selected (speakers {list(speakers)}): "
            "the corpus player needs utterances with a 'label'; choose other speakers or another manifest"
        )
    if shuffle:
        random.Random(seed).shuffle(labelled)
    return labelled[:limit] if limit > 0 else labelled


def label_set(manifest: Manifest) -> tuple[str, ...]:
    """The classes of the ground truth: the manifest's label set, else ``EMOTIONS`` if every label is one, else the sorted labels."""
    if manifest.labels is not None:
        return manifest.labels
    labels = {u.label for u in manifest if u.label is not None}
    return EMOTIONS if labels <= set(EMOTIONS) else tuple(sorted(labels))


@dataclass(frozen=True)
class Cue:
    """One utterance on the media timeline: frames ``[start, end)`` at ``sample_rate`` Hz."""

    utterance: Utterance
    start: int
    frames: int
    sample_rate: int

    @property
    def end(self) -> int:
        """Frame after the utterance's last one."""
        return self.start + self.frames

    @property
    def start_s(self) -> float:
        """Media time of the first sample, seconds from the start of the timeline."""
        return self.start / self.sample_rate

    @property
    def end_s(self) -> float:
        """Media time just after the last sample (``start_s`` + duration), seconds."""
        return self.end / self.sample_rate


class Programme:
    """Utterances separated by silences, at one output rate, as ``channels`` identical channels.

    Args:
        utterances: in play order (see :func:`select_utterances`).
        labels: the ground truth's class set (see :func:`label_set`).
        pause_s: silence before each utterance and after the last one, seconds.
        channels: output channels; each carries the (mono) utterance.
        chunk_ms: duration of a chunk of :meth:`chunks`, ms (the last one may be shorter).
        loop: start again after the last utterance, forever.
        sample_rate: output rate in Hz; None = the rate most utterances have (the highest of a tie).
        gain_db: gain applied to every utterance, dB (a quieter or hotter microphone).

    Raises :class:`AudioError` if an audio file cannot be read.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        labels: Sequence[str] = EMOTIONS,
        pause_s: float = 1.0,
        channels: int = 2,
        chunk_ms: float = 10.0,
        loop: bool = False,
        sample_rate: int | None = None,
        gain_db: float = 0.0,
    ) -> None:
        import soundfile

        if not utterances:
            raise DataError("the programme has no utterances: select at least one")
        if channels < 1 or pause_s < 0 or chunk_ms <= 0:
            raise ValueError(f"need channels >= 1, pause_s >= 0, chunk_ms > 0; got {channels}, {pause_s}, {chunk_ms}")
        self.labels = tuple(labels)
        self.gain = np.float32(10 ** (gain_db / 20))
        outside = sorted({u.label for u in utterances} - set(self.labels) - {None})
        if outside:
            raise DataError(f"label(s) {outside} are not in the label set {list(self.labels)}")
        source_frames = []
        for u in utterances:
            try:
                info = soundfile.info(u.path)
            except Exception as exc:  # soundfile.LibsndfileError, RuntimeError
                raise AudioError(f"cannot read audio file {u.path} of utterance {u.id!r}: {exc}") from None
            if info.frames == 0:
                raise AudioError(f"audio file {u.path} of utterance {u.id!r} has no samples; remove it from the manifest")
            source_frames.append((info.frames, int(info.samplerate)))
        if sample_rate is None:
            counts = collections.Counter(rate for _, rate in source_frames)
            sample_rate = max(counts, key=lambda rate: (counts[rate], rate))
        self.sample_rate = int(sample_rate)
        self.channels = channels
        self.loop = loop
        self.blocksize = max(1, int(round(self.sample_rate * chunk_ms / 1000.0)))
        self.pause_frames = int(round(pause_s * self.sample_rate))
        self.cues: list[Cue] = []
        position = 0
        for u, (frames, rate) in zip(utterances, source_frames):
            position += self.pause_frames
            length = -(-frames * self.sample_rate // rate)  # what resample() returns
            self.cues.append(Cue(u, position, length, self.sample_rate))
            position += length
        self.pass_frames = position  # one pass: a pause and an utterance, for every utterance

    @classmethod
    def from_manifest(
        cls,
        path: str | pathlib.Path,
        speakers: Sequence[str] = (ALL_SPEAKERS,),
        limit: int = 0,
        shuffle: bool = False,
        seed: int = 0,
        **layout: Any,
    ) -> "Programme":
        """Read a manifest, select its utterances and lay them out (``layout``: the other arguments of the class)."""
        if not str(path).strip():
            raise DataError(
                "no manifest given: set it to a JSON Lines manifest (make one with "
                "'ser-robot synth-corpus' or 'ser-robot corpus-manifest')"
            )
        manifest = read_manifest(path)
        return cls(select_utterances(manifest, speakers, limit, shuffle, seed), labels=label_set(manifest), **layout)

    @property
    def total_frames(self) -> float:
        """Frames of the whole stream: one pass and the final pause, or ``inf`` when looping."""
        return math.inf if self.loop else self.pass_frames + self.pause_frames

    @property
    def duration_s(self) -> float:
        """Seconds of the whole stream (``inf`` when looping)."""
        return self.total_frames / self.sample_rate

    def timeline(self) -> Iterator[Cue]:
        """The cues in play order; when looping, pass ``k`` is shifted by ``k * pass_frames``."""
        offset = 0
        while True:
            for cue in self.cues:
                yield Cue(cue.utterance, cue.start + offset, cue.frames, cue.sample_rate)
            if not self.loop:
                return
            offset += self.pass_frames

    def load(self, cue: Cue) -> np.ndarray:
        """The utterance of ``cue`` as mono float32 ``(cue.frames,)`` at the output rate (channels averaged)."""
        import soundfile

        try:
            audio, rate = soundfile.read(cue.utterance.path, dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile.LibsndfileError, RuntimeError
            raise AudioError(f"cannot read audio file {cue.utterance.path} of utterance {cue.utterance.id!r}: {exc}") from None
        mono = audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]
        if rate != self.sample_rate:
            mono = resample(mono, rate, self.sample_rate)
        out = np.zeros(cue.frames, np.float32)
        out[: min(len(mono), cue.frames)] = mono[: cue.frames] * self.gain
        return out

    def _pieces(self) -> Iterator[np.ndarray]:
        """The mono stream as consecutive pieces: silences and utterances."""
        silence = np.zeros(self.pause_frames, np.float32)
        for cue in self.timeline():
            yield silence
            yield self.load(cue)
        yield silence

    def chunks(self, start_time: float = 0.0) -> Iterator[AudioChunk]:
        """The stream as float32 ``(frames, channels)`` chunks of ``blocksize`` frames (the last may be shorter).

        A chunk whose first frame is frame ``n`` of the timeline is stamped ``start_time + n / sample_rate`` (s).
        """
        pending = np.zeros(0, np.float32)
        emitted = 0
        for piece in self._pieces():
            pending = np.concatenate([pending, piece])
            while len(pending) >= self.blocksize:
                yield self._chunk(pending[: self.blocksize], start_time + emitted / self.sample_rate)
                pending, emitted = pending[self.blocksize:], emitted + self.blocksize
        if len(pending):
            yield self._chunk(pending, start_time + emitted / self.sample_rate)

    def _chunk(self, mono: np.ndarray, stamp: float) -> AudioChunk:
        return AudioChunk(samples=np.repeat(mono[:, None], self.channels, axis=1), sample_rate=self.sample_rate, time=stamp)


class DevicePlayer:
    """Plays chunks on a PortAudio output stream and tells when each frame reached the DAC.

    The stream callback only copies queued blocks out (silence if none is queued: an
    underflow, counted) and records, per callback, the first frame it played and that frame's
    DAC time mapped to the system clock, smoothed by a :class:`SampleClock` (so times advance
    with the frame count, without the callbacks' jitter). :meth:`feed` keeps ``buffer_s`` of
    audio queued; :meth:`dac_time` turns a frame index (counted from the first fed frame) into
    a time.

    Args:
        device: output device spec (see :func:`resolve_output_device`).
        sample_rate: Hz; channels: of the stream; chunk_ms: PortAudio block duration, ms.
        buffer_s: audio kept queued ahead of the callback, seconds.
    """

    HISTORY_S = 120.0  # how far back dac_time() can look, seconds
    STALL_S = 2.0  # a stream whose callback has not run for this long is lost (a new PulseAudio stream may pause ~1 s)
    SETTLE_S = 1.0
    """Default lead-in. Measured with PulseAudio's ALSA plugin: during a new stream's first ~0.5 s
    the audio is heard up to 0.35 s away from the reported DAC times; after 1 s of lead-in
    silence, within 1 ms."""

    def __init__(self, device: str, sample_rate: int, channels: int, chunk_ms: float = 10.0,
                 buffer_s: float = 0.3) -> None:
        self.device_spec = device
        self.sample_rate = sample_rate
        self.channels = channels
        self.blocksize = max(1, int(round(sample_rate * chunk_ms / 1000.0)))
        self.buffer_frames = int(buffer_s * sample_rate)
        self.device: OutputDevice | None = None
        self._stream: Any = None
        self._reset(0.0)

    def _reset(self, lead_in_s: float) -> None:
        self.underflows = 0
        self._latency = 0.0  # the stream's output latency, s (DAC time when PortAudio gives none)
        self._lead_in = int(lead_in_s * self.sample_rate)  # silent frames still to play before the first fed one
        self._clock = SampleClock(self.sample_rate)
        self._last_callback = time.monotonic()
        self._blocks: collections.deque[np.ndarray] = collections.deque()
        self._head = 0  # frames of _blocks[0] already played
        self._fed = 0  # frames queued so far (feeder thread)
        self._played = 0  # frames handed to the device (callback thread)
        self._exhausted = False
        self._records: queue.SimpleQueue[tuple[int, float]] = queue.SimpleQueue()  # (first frame, its DAC time)
        self._history: collections.deque[tuple[int, float]] = collections.deque(
            maxlen=max(1, int(self.HISTORY_S * self.sample_rate / self.blocksize)))

    def resolve(self) -> OutputDevice:
        """Find the device and check it has enough channels; :class:`AudioDeviceError` otherwise."""
        self.device = resolve_output_device(self.device_spec)
        if self.channels > self.device.max_output_channels:
            raise AudioDeviceError(
                f"output device {self.device.describe()} has {self.device.max_output_channels} output "
                f"channel(s); the programme has {self.channels} (one per name in channel_ids)"
            )
        return self.device

    def start(self, chunks: Iterator[AudioChunk], lead_in_s: float = SETTLE_S) -> None:
        """Play ``chunks`` from frame 0 after ``lead_in_s`` of silence (s); :class:`AudioDeviceError` if the stream cannot open.

        Closes a stream still open, so a player can be started again.
        """
        sd = _sounddevice()
        self.close()
        device = self.device or self.resolve()
        self._reset(lead_in_s)
        self.feed(chunks)
        try:
            stream = sd.OutputStream(
                device=device.index, samplerate=self.sample_rate, channels=self.channels,
                dtype="float32", blocksize=self.blocksize, callback=self._callback,
            )
            self._latency = float(stream.latency)
            stream.start()
            track_stream(stream)
        except Exception as exc:  # PortAudioError, ValueError for unsupported settings
            raise AudioDeviceError(
                f"cannot open output device {device.describe()} at {self.sample_rate} Hz with "
                f"{self.channels} channel(s): {exc}"
            ) from None
        self._stream = stream

    def close(self) -> None:
        """Stop the stream now (queued audio is dropped)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001 - a lost device may fail to close; it is gone anyway
                pass

    def feed(self, chunks: Iterator[AudioChunk]) -> None:
        """Queue chunks until ``buffer_s`` is ahead of the device or ``chunks`` ends."""
        while not self._exhausted and self._fed - self._played < self.buffer_frames:
            chunk = next(chunks, None)
            if chunk is None:
                self._exhausted = True
                break
            self._blocks.append(np.ascontiguousarray(chunk.samples, dtype=np.float32))
            self._fed += chunk.num_frames

    @property
    def played(self) -> int:
        """Frames handed to the device so far."""
        return self._played

    @property
    def drained(self) -> bool:
        """True when the chunks ended and every frame was handed to the device."""
        return self._exhausted and self._played >= self._fed

    @property
    def running(self) -> bool:
        """True while the stream is open and its callback runs (False after a device loss)."""
        stream = self._stream
        if stream is None or time.monotonic() - self._last_callback > self.STALL_S:
            return False
        try:
            return bool(stream.active)
        except Exception:  # noqa: BLE001 - PortAudioError: the stream is gone
            return False

    def dac_time(self, frame: int) -> float | None:
        """System-clock time (s) at which ``frame`` reaches the DAC, or None if not handed to the device yet."""
        if frame >= self._played:
            return None
        while True:
            try:
                self._history.append(self._records.get_nowait())
            except queue.Empty:
                break
        if not self._history:
            return None
        best = self._history[0]
        for record in reversed(self._history):
            if record[0] <= frame:
                best = record
                break
        first, dac = best
        return dac + (frame - first) / self.sample_rate

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.time()
        self._last_callback = time.monotonic()
        if status.output_underflow:
            self.underflows += 1
        filled = lead = min(frames, self._lead_in)
        outdata[:lead] = 0.0
        self._lead_in -= lead
        while filled < frames and self._blocks:
            block = self._blocks[0]
            take = min(frames - filled, len(block) - self._head)
            outdata[filled:filled + take] = block[self._head:self._head + take]
            filled += take
            self._head += take
            if self._head == len(block):
                self._blocks.popleft()
                self._head = 0
        if filled < frames:
            outdata[filled:] = 0.0
            if not self._exhausted:
                self.underflows += 1
        if filled > lead:
            dac = time_info.outputBufferDacTime
            measured = (dac + (now - time_info.currentTime) if dac > 0 else now + self._latency) + lead / self.sample_rate
            self._records.put((self._played, self._clock.stamp(filled - lead, measured)))
            self._played += filled - lead
