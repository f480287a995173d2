"""The per-stream bookkeeping shared by the feature pipeline and both live nodes (ser_robot.streams)."""

from __future__ import annotations

import pytest

from ser_robot.streams import MAX_SEQ_JUMP, StreamLimitReached, StreamTable, classify_seq


def test_seq_policy():
    """Late within the window: out of order; 0, far back, far ahead: reset; ahead: a gap."""
    cases = [(None, 5, "started"), (5, 5, "continued"), (5, 4, "out_of_order"), (5, 1, "out_of_order"),
             (5, 0, "seq_reset"), (20, 3, "seq_reset"), (20, 16, "out_of_order"), (5, 6, "seq_gap"),
             (5, 5 + MAX_SEQ_JUMP, "seq_gap"), (5, 6 + MAX_SEQ_JUMP, "seq_reset"), (5, 2**64 - 1, "seq_reset"),
             (1, 0, "seq_reset")]
    assert [classify_seq(expected, seq, 4) for expected, seq, _ in cases] == [event for *_, event in cases]
    assert classify_seq(5, 4, 0) == "seq_reset"  # no reorder window: every step back is a reset


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stream_table_caps_the_streams_and_lists_the_silent_ones():
    clock = _Clock()
    table: StreamTable[list] = StreamTable(max_streams=2, timeout_s=5.0, clock=clock)
    a, started = table.open("a", list)
    assert started and table.open("a", list) == (a, False)  # the same state, not a new one
    table.open("b", list)
    with pytest.raises(StreamLimitReached, match="max_streams"):
        table.open("c", list)
    assert sorted(table) == ["a", "b"] and table == {"a": [], "b": []}
    clock.now = 4.0
    table.heard("a")
    clock.now = 6.0
    assert table.silent() == ["b"] and table.silent(now=9.5) == ["a", "b"]
    assert table.pop("b") == [] and table.pop("b") is None
    table.open("c", list)  # the slot is free again
    table.replace("c", [1])
    assert table["c"] == [1] and len(table) == 2


def test_stream_table_without_timeout_never_expires_and_refuses_no_slots():
    table: StreamTable[int] = StreamTable(max_streams=1, timeout_s=0.0)
    table.open("a", int)
    assert table.silent(now=1e12) == []
    with pytest.raises(ValueError, match="max_streams"):
        StreamTable(max_streams=0, timeout_s=1.0)
