"""Per-stream bookkeeping of the live path, without ROS: the table of open streams (its cap and
expiry) and what a sequence number means for its stream.

A *stream* is one source of audio, named by the ``frame_id`` of its messages. The feature
pipeline (:mod:`ser_robot.features.pipeline`), the feature node and the inference node keep
their per-stream state in a :class:`StreamTable` and read sequence numbers with
:func:`classify_seq`, so the three agree on what a lost, late, repeated or restarted message is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from ser_robot.errors import SerRobotError

__all__ = ["MAX_SEQ_JUMP", "MAX_STAMP_SEC", "SEQ_EVENTS", "StreamLimitReached", "StreamTable", "classify_seq"]

MAX_SEQ_JUMP = 1_000_000  # messages; a longer jump forward is a reset, not a loss (2.8 h of 10 ms chunks)
MAX_STAMP_SEC = 2**31 - 2**24  # s; leaves ~194 days before builtin_interfaces/Time.sec (int32) overflows
SEQ_EVENTS = ("started", "continued", "out_of_order", "seq_reset", "seq_gap")

T = TypeVar("T")


def classify_seq(expected: int | None, seq: int, reorder_window: int) -> str:
    """What ``seq`` means for a stream whose next sequence number is ``expected`` (None: nothing yet).

    One of :data:`SEQ_EVENTS`:

    - ``started``: nothing came before;
    - ``continued``: ``seq == expected``;
    - ``out_of_order``: ``expected - reorder_window <= seq < expected`` and ``seq != 0``: late or
      repeated, to be dropped without touching the stream;
    - ``seq_reset``: ``seq == 0`` (the source restarted), further back than ``reorder_window``, or
      more than :data:`MAX_SEQ_JUMP` ahead (not a plausible loss);
    - ``seq_gap``: ahead by at most :data:`MAX_SEQ_JUMP`: messages were lost.
    """
    if expected is None:
        return "started"
    behind = expected - seq
    if behind == 0:
        return "continued"
    if 0 < behind <= reorder_window and seq != 0:
        return "out_of_order"
    if seq == 0 or behind > 0 or -behind > MAX_SEQ_JUMP:
        return "seq_reset"
    return "seq_gap"


class StreamLimitReached(SerRobotError):
    """A new stream arrived while ``max_streams`` streams are open."""


@dataclass
class _Entry(Generic[T]):
    state: T
    heard: float  # clock() of the stream's last usable message, s


class StreamTable(Mapping[str, T]):
    """Open streams by name, each with its state ``T`` and when it was last heard.

    At most ``max_streams`` are open: :meth:`open` refuses more with :class:`StreamLimitReached`
    until one is closed. A stream silent for more than ``timeout_s`` (0: never) is listed by
    :meth:`silent`, for its owner to finish and :meth:`pop`. ``clock`` gives seconds
    (``time.monotonic`` by default). Reads as a ``Mapping`` of the states.
    """

    def __init__(self, max_streams: int, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, got {max_streams}")
        self.max_streams = max_streams
        self.timeout_s = timeout_s
        self.clock = clock
        self._entries: dict[str, _Entry[T]] = {}

    def __getitem__(self, name: str) -> T:
        return self._entries[name].state

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def open(self, name: str, make: Callable[[], T]) -> tuple[T, bool]:
        """``(state, started)``: the open stream's state, or a new one from ``make()`` (``started`` True).

        Raises :class:`StreamLimitReached` for a new stream when ``max_streams`` are open.
        """
        entry = self._entries.get(name)
        if entry is not None:
            return entry.state, False
        if len(self._entries) >= self.max_streams:
            raise StreamLimitReached(f"{len(self._entries)} streams open already (max_streams); new streams wait "
                                     "for one to expire")
        self._entries[name] = _Entry(make(), self.clock())
        return self._entries[name].state, True

    def replace(self, name: str, state: T) -> None:
        """Give the open stream ``name`` a new state (a restart), keeping its slot."""
        self._entries[name].state = state

    def heard(self, name: str) -> None:
        """Mark the open stream ``name`` as heard now."""
        self._entries[name].heard = self.clock()

    def silent(self, now: float | None = None) -> list[str]:
        """The streams not heard for more than ``timeout_s`` at ``now`` (``clock()`` s; default: now)."""
        if self.timeout_s <= 0:
            return []
        now = self.clock() if now is None else now
        return [name for name, entry in self._entries.items() if now - entry.heard > self.timeout_s]

    def pop(self, name: str, default: T | None = None) -> T | None:
        """Close the stream ``name``; its state, or ``default`` if it was not open."""
        entry = self._entries.pop(name, None)
        return default if entry is None else entry.state
