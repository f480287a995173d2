"""Reading rosbag2 bags: messages in time order and a summary, both from what the storage holds.

``metadata.yaml`` only says where the storage files are. Topics, types and message counts come
from the storage itself (MCAP records scanned one by one, SQLite tables counted); every claim of
``metadata.yaml`` that disagrees is reported as a warning, and the storage's truth is used.
"""

from __future__ import annotations

import heapq
import pathlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ser_robot.bag.layout import BagLayout, locate_bag
from ser_robot.bag.mcap_records import McapChannel, McapMessage, McapRecordError, McapSchema, scan_mcap
from ser_robot.bag.typestore import definition_hash, ser_robot_typestore
from ser_robot.errors import BagError

__all__ = ["BagMessage", "TopicInfo", "BagInfo", "bag_info", "read_messages"]

REINDEX_HINT = "run `ser-robot bag-reindex {bag}` to recover the messages it holds"


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: topic, ROS type name, receive time (ns) and CDR bytes."""

    topic: str
    msgtype: str
    timestamp_ns: int
    cdr: bytes

    def deserialize(self) -> Any:
        """The message as a rosbags dataclass (fields as in the .msg definition)."""
        store = ser_robot_typestore()
        if self.msgtype not in store.types:
            raise BagError(f"topic {self.topic} holds {self.msgtype}, a type unknown to ser_robot (ROS 2 Kilted "
                           "and ser_robot_msgs); its messages cannot be deserialised")
        return store.deserialize_cdr(self.cdr, self.msgtype)


@dataclass(frozen=True)
class TopicInfo:
    """A topic as the storage holds it: type, message count and RIHS01 hash of its stored definition."""

    name: str
    msgtype: str
    count: int
    type_hash: str


@dataclass(frozen=True)
class BagInfo:
    """A bag's storage kind, time span (receive times, ns), topics, and any ``warnings`` about it."""

    path: pathlib.Path
    storage: str
    start_ns: int
    end_ns: int
    count: int
    topics: tuple[TopicInfo, ...]
    warnings: tuple[str, ...] = ()

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
        lines += [f"Warning:   {warning}" for warning in self.warnings]
        return "\n".join(lines)


@dataclass(frozen=True)
class _StoredTopic:
    """A topic of one storage file: its type, stored definition (``.msg`` text, or "") and count."""

    name: str
    msgtype: str
    definition: str
    count: int


def _unclosed_sqlite3(file: pathlib.Path, bag: pathlib.Path) -> None:
    """:class:`BagError` if a writer left a rollback journal next to ``file`` (it was killed)."""
    journal = file.with_name(file.name + "-journal")
    if journal.exists():
        raise BagError(f"bag {bag} was not closed (its database has a pending {journal.name}); "
                       + REINDEX_HINT.format(bag=bag))


def _open_storage(file: pathlib.Path, storage: str, bag: pathlib.Path):
    """A rosbags storage reader of ``file``, opened."""
    from rosbags.rosbag2.storage_mcap import McapReader
    from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

    if storage == "sqlite3":
        _unclosed_sqlite3(file, bag)
    reader = McapReader(file) if storage == "mcap" else Sqlite3Reader(file)
    try:
        reader.open()
    except Exception as exc:  # ReaderError, and lower-level errors of a damaged file
        reason = " ".join(str(exc).split())
        raise BagError(
            f"cannot open bag {bag}: {file.name}: {reason}. The bag is incomplete or corrupt (was the "
            "recorder killed before it closed the bag?); " + REINDEX_HINT.format(bag=bag)
        ) from None
    return reader


def _mcap_topics(file: pathlib.Path, bag: pathlib.Path) -> tuple[list[_StoredTopic], int, int, list[str]]:
    """Topics, first and last receive time (ns) of an MCAP file, from a scan of all its records."""
    schemas: dict[int, McapSchema] = {}
    channels: dict[int, McapChannel] = {}
    counts: Counter[int] = Counter()
    start, end = None, None
    try:
        with open(file, "rb") as stream:
            for record in scan_mcap(stream):
                if isinstance(record, McapMessage):
                    counts[record.channel_id] += 1
                    start = record.log_time if start is None else min(start, record.log_time)
                    end = record.log_time if end is None else max(end, record.log_time)
                elif isinstance(record, McapSchema):
                    schemas[record.id] = record
                else:
                    channels[record.id] = record
    except McapRecordError as exc:
        raise BagError(f"bag {bag}: {file.name} is truncated or corrupt {exc}; "
                       + REINDEX_HINT.format(bag=bag)) from None
    topics, warnings = [], []
    for cid, channel in channels.items():
        schema = schemas.get(channel.schema_id)
        if schema is None:
            warnings.append(f"topic {channel.topic} has no message type in {file.name} (schema "
                            f"{channel.schema_id} is missing)")
        definition = schema.data.decode("utf-8", "replace") if schema and schema.encoding == "ros2msg" else ""
        topics.append(_StoredTopic(channel.topic, schema.name if schema else "", definition, counts.pop(cid, 0)))
    if counts:
        warnings.append(f"{sum(counts.values())} messages in {file.name} belong to no declared channel "
                        f"(channel ids {sorted(counts)})")
    return topics, start or 0, end or 0, warnings


def _sqlite3_topics(file: pathlib.Path, bag: pathlib.Path) -> tuple[list[_StoredTopic], int, int, list[str]]:
    """Topics, first and last receive time (ns) of a SQLite 3 storage file, from its tables."""
    from rosbags.interfaces import MessageDefinitionFormat

    reader = _open_storage(file, "sqlite3", bag)
    try:
        topics = [_StoredTopic(c.topic, c.msgtype, c.msgdef.data if c.msgdef.format == MessageDefinitionFormat.MSG
                               else "", c.msgcount) for c in reader.connections]
        count = reader.metadata.message_count
        return topics, reader.metadata.start_time if count else 0, reader.metadata.end_time - 1 if count else 0, []
    finally:
        reader.close()


def _declared_topics(metadata: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{topic: (type, count)}`` as ``metadata.yaml`` claims them."""
    declared = {}
    for entry in metadata.get("topics_with_message_count") or []:
        topic = entry["topic_metadata"]
        declared[str(topic["name"])] = (topic.get("type"), entry.get("message_count"))
    return declared


def _metadata_warnings(layout: BagLayout, topics: dict[str, TopicInfo], count: int) -> list[str]:
    """Every claim of ``metadata.yaml`` that the storage contradicts."""
    metadata, bag = layout.metadata, layout.path
    if metadata is None:
        return []
    fix = f"the storage's truth is reported (run `ser-robot bag-reindex {bag}` to rewrite metadata.yaml)"
    warnings = []
    if metadata.get("storage_identifier") != layout.storage:
        warnings.append(f"metadata.yaml says storage {metadata.get('storage_identifier')!r}, the files are "
                        f"{layout.storage}; {fix}")
    try:
        declared = _declared_topics(metadata)
    except (TypeError, KeyError, AttributeError):
        return [*warnings, f"metadata.yaml's topic list is malformed; {fix}"]
    for name in sorted(set(declared) | set(topics)):
        if name not in topics:
            warnings.append(f"metadata.yaml lists topic {name}, which the storage does not hold; {fix}")
            continue
        if name not in declared:
            warnings.append(f"topic {name} is in the storage but not in metadata.yaml; {fix}")
            continue
        msgtype, claimed = declared[name]
        if msgtype != topics[name].msgtype:
            warnings.append(f"metadata.yaml says topic {name} holds {msgtype}, the storage says "
                            f"{topics[name].msgtype}; {fix}")
        if claimed != topics[name].count:
            warnings.append(f"metadata.yaml says topic {name} has {claimed} messages, the storage holds "
                            f"{topics[name].count}; {fix}")
    if metadata.get("message_count") != count:
        warnings.append(f"metadata.yaml says {metadata.get('message_count')} messages in all, the storage "
                        f"holds {count}; {fix}")
    return warnings


def _type_warnings(topics: dict[str, TopicInfo]) -> list[str]:
    """Topics whose type ser_robot cannot deserialise, or whose stored definition differs from ours."""
    store = ser_robot_typestore()
    warnings = []
    for topic in topics.values():
        if topic.msgtype not in store.types:
            warnings.append(f"topic {topic.name} holds {topic.msgtype or 'no type'}, unknown to ser_robot (ROS 2 "
                            "Kilted and ser_robot_msgs): it cannot be deserialised or played")
        elif topic.type_hash and topic.type_hash != store.hash_rihs01(topic.msgtype):
            warnings.append(f"topic {topic.name} was recorded with another definition of {topic.msgtype} than "
                            "this ser_robot_msgs (type hashes differ): deserialising it may fail")
    return warnings


def bag_info(path: str | pathlib.Path) -> BagInfo:
    """Summary of a bag from its storage: kind, time span, per-topic type, count and type hash,
    and warnings where ``metadata.yaml`` disagrees or a type is unknown."""
    layout = locate_bag(path)
    scan = _mcap_topics if layout.storage == "mcap" else _sqlite3_topics
    topics: dict[str, TopicInfo] = {}
    starts, ends, warnings = [], [], []
    for file in layout.files:
        stored, start, end, file_warnings = scan(file, layout.path)
        warnings += file_warnings
        if any(t.count for t in stored):
            starts.append(start)
            ends.append(end)
        for topic in stored:
            first = topics.get(topic.name)
            if first is None:
                digest = definition_hash(topic.msgtype, topic.definition) if topic.definition else None
                topics[topic.name] = TopicInfo(topic.name, topic.msgtype, topic.count, digest or "")
                continue
            if first.msgtype != topic.msgtype:
                warnings.append(f"topic {topic.name} holds two types, {first.msgtype} and {topic.msgtype}")
            topics[topic.name] = TopicInfo(topic.name, first.msgtype, first.count + topic.count, first.type_hash)
    count = sum(t.count for t in topics.values())
    warnings += _type_warnings(topics) + _metadata_warnings(layout, topics, count)
    return BagInfo(
        path=layout.path,
        storage=layout.storage,
        start_ns=min(starts) if count else 0,
        end_ns=max(ends) if count else 0,
        count=count,
        topics=tuple(sorted(topics.values(), key=lambda t: t.name)),
        warnings=tuple(warnings),
    )


def read_messages(path: str | pathlib.Path, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
    """Messages of ``topics`` (all if None) in timestamp order, with the types the storage gives.

    Raises :class:`BagError` for a missing topic or a bag that breaks off while reading.
    """
    layout = locate_bag(path)
    readers = []
    try:
        for file in layout.files:
            readers.append(_open_storage(file, layout.storage, layout.path))
        available = {c.topic for reader in readers for c in reader.connections}
        if topics:
            missing = sorted(set(topics) - available)
            if missing:
                raise BagError(
                    f"bag {path} has no topic(s) {', '.join(missing)}; it has {', '.join(sorted(available))}"
                )
        streams = []
        for reader in readers:
            connections = [c for c in reader.connections if not topics or c.topic in topics]
            if connections:
                streams.append(reader.messages(connections))
        try:
            for conn, timestamp, raw in heapq.merge(*streams, key=lambda item: item[1]):
                yield BagMessage(conn.topic, conn.msgtype, timestamp, bytes(raw))
        except Exception as exc:  # truncated chunk, bad record
            raise BagError(f"bag {path} is corrupt or truncated: {exc}; " + REINDEX_HINT.format(bag=path)) from None
    finally:
        for reader in readers:
            reader.close()
