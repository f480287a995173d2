"""Reading rosbag2 bags: messages in time order and a summary, with clear errors for bad bags."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ser_robot.bag.typestore import ser_robot_typestore
from ser_robot.errors import BagError

__all__ = ["BagMessage", "TopicInfo", "BagInfo", "bag_info", "read_messages"]


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: topic, ROS type name, receive time (ns) and CDR bytes."""

    topic: str
    msgtype: str
    timestamp_ns: int
    cdr: bytes

    def deserialize(self) -> Any:
        """The message as a rosbags dataclass (fields as in the .msg definition)."""
        return ser_robot_typestore().deserialize_cdr(self.cdr, self.msgtype)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int
    type_hash: str


@dataclass(frozen=True)
class BagInfo:
    path: pathlib.Path
    storage: str
    start_ns: int
    end_ns: int
    count: int
    topics: tuple[TopicInfo, ...]

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9 if self.count else 0.0

    def format(self) -> str:
        """Human-readable summary, like ``ros2 bag info``."""
        lines = [
            f"Bag:       {self.path}",
            f"Storage:   {self.storage}",
            f"Duration:  {self.duration_s:.3f} s",
            f"Messages:  {self.count}",
            "Topics:",
        ]
        width = max((len(t.name) for t in self.topics), default=0)
        for topic in self.topics:
            lines.append(
                f"  {topic.name:<{width}}  {topic.count:>8} msgs  {topic.msgtype}  {topic.type_hash}"
            )
        return "\n".join(lines)


def _open(path: str | pathlib.Path):
    from rosbags.rosbag2 import Reader

    path = pathlib.Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # ReaderError, and lower-level errors of a damaged file
        raise BagError(
            f"cannot open bag {path}: {exc}. The bag is incomplete or corrupt (was the "
            "recorder killed before it closed the bag?)"
        ) from None
    return reader


def bag_info(path: str | pathlib.Path) -> BagInfo:
    """Summary of a bag: storage, time span, and per-topic type, count and type hash."""
    reader = _open(path)
    try:
        topics = {}
        for conn in reader.connections:
            digest = getattr(conn, "digest", "") or ""
            prev = topics.get(conn.topic)
            count = conn.msgcount + (prev.count if prev else 0)
            topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count, digest)
        storage = "mcap" if any(pathlib.Path(path).glob("*.mcap")) else "sqlite3"
        return BagInfo(
            path=pathlib.Path(path),
            storage=storage,
            start_ns=reader.start_time if reader.message_count else 0,
            end_ns=reader.end_time if reader.message_count else 0,
            count=reader.message_count,
            topics=tuple(sorted(topics.values(), key=lambda t: t.name)),
        )
    finally:
        reader.close()


def read_messages(path: str | pathlib.Path, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
    """Messages of ``topics`` (all if None) in timestamp order.

    Raises :class:`BagError` for a missing topic or a bag that breaks off while reading.
    """
    reader = _open(path)
    try:
        available = {c.topic for c in reader.connections}
        if topics:
            missing = sorted(set(topics) - available)
            if missing:
                raise BagError(
                    f"bag {path} has no topic(s) {', '.join(missing)}; it has {', '.join(sorted(available))}"
                )
        connections = [c for c in reader.connections if not topics or c.topic in topics]
        try:
            for conn, timestamp, raw in reader.messages(connections=connections):
                yield BagMessage(conn.topic, conn.msgtype, timestamp, bytes(raw))
        except Exception as exc:  # truncated chunk, bad record
            raise BagError(f"bag {path} is corrupt or truncated: {exc}") from None
    finally:
        reader.close()
