"""Recovering a bag whose recorder was killed (``ser-robot bag-reindex``, like ``ros2 bag reindex``).

A recorder killed by SIGKILL or a power cut leaves no ``metadata.yaml`` and a storage file
without summary and footer (MCAP) or with an unfinished transaction (SQLite 3). Reindexing keeps
every record that survived (MCAP: read record by record from the start, whole chunks only, up
to the first truncated or corrupt record; SQLite 3: every committed row) and writes them as a
complete storage file with a new ``metadata.yaml``.

It works in place, safely: the recovered bag is written and fsynced in a temporary folder
inside the bag folder and read back; the original storage file is kept as
``<name>.before-reindex`` (a hard link where the file system allows, else a copy), and so is a
SQLite journal the killed writer left; then the recovered file and ``metadata.yaml`` replace the
old ones with ``os.replace``, so at every moment the storage file's name holds either the
original or the complete recovered file.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ser_robot.bag.layout import METADATA, lock_storage, storage_of
from ser_robot.bag.mcap_records import McapChannel, McapRecordError, McapSchema, scan_mcap
from ser_robot.bag.reader import bag_info
from ser_robot.bag.typestore import definition_hash
from ser_robot.bag.writer import BAG_VERSION
from ser_robot.errors import BagError

__all__ = ["ReindexReport", "reindex_bag"]

SUFFIXES = {"mcap": ".mcap", "sqlite3": ".db3"}
ASIDE_SUFFIX = ".before-reindex"
TMP_FOLDER = ".bag-reindex.tmp"
SQLITE3_SIDE_FILES = ("-journal", "-wal", "-shm")


@dataclass(frozen=True)
class ReindexReport:
    """What :func:`reindex_bag` recovered: messages per topic, what it dropped and why it stopped."""

    storage_file: pathlib.Path
    kept_as: pathlib.Path
    counts: dict[str, int]
    dropped: tuple[str, ...]
    damage: str | None
    size_bytes: int

    def format(self) -> str:
        """Human-readable report for the command line."""
        topics = ", ".join(f"{topic}: {n}" for topic, n in sorted(self.counts.items()))
        lines = [f"recovered {sum(self.counts.values())} messages ({topics}) into {self.storage_file} "
                 f"and {self.storage_file.parent / METADATA}",
                 f"the original storage file is kept as {self.kept_as}; delete it once the bag reads well"]
        if self.damage:
            lines.append(f"the original ({self.size_bytes} bytes) breaks off {self.damage}; nothing after that is kept")
        lines += [f"dropped: {reason}" for reason in self.dropped]
        return "\n".join(lines)


def _storage_file(path: pathlib.Path) -> tuple[pathlib.Path, str]:
    """The one storage file of the bag at ``path`` (a folder or the file itself) and its kind."""
    if not os.path.lexists(path):
        raise BagError(f"bag {path} does not exist")
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES.values())
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise BagError(f"bag-reindex needs exactly one .mcap or .db3 file in {path}, found {found}; "
                           "give the storage file itself")
        path = candidates[0]
    storage = storage_of(path)
    if path.suffix != SUFFIXES[storage]:
        raise BagError(f"{path} holds {storage} data but is not named *{SUFFIXES[storage]}; rename it first")
    return path, storage


class _Recovery:
    """Topics and messages that survived, written into a new bag through rosbags' writer."""

    def __init__(self, folder: pathlib.Path, storage: str) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(folder, version=BAG_VERSION, storage_plugin=plugin)
        self.writer.open()
        self.connections: dict[tuple[str, str], Any] = {}
        self.counts: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def add_topic(self, topic: str, msgtype: str, definition: str, encoding: str, qos: list) -> Any:
        """The connection for ``topic`` of ``msgtype`` defined by ``definition`` (None if unusable)."""
        if (topic, msgtype) in self.connections:
            return self.connections[(topic, msgtype)]
        digest = definition_hash(msgtype, definition) if definition else None
        if digest is None:
            return None
        self.connections[(topic, msgtype)] = self.writer.add_connection(
            topic, msgtype, msgdef=definition, rihs01=digest, serialization_format=encoding,
            offered_qos_profiles=qos)
        return self.connections[(topic, msgtype)]

    def write(self, connection: Any, timestamp_ns: int, data: bytes) -> None:
        self.writer.write(connection, timestamp_ns, data)
        self.counts[connection.topic] += 1

    def drop(self, what: str) -> None:
        """Count a message that cannot be kept; ``what`` says whose and why."""
        self.dropped[what] += 1


def _mcap_connection(channel: McapChannel, schemas: dict[int, McapSchema], recovery: _Recovery) -> Any:
    """The recovered bag's connection for an MCAP channel (None if its type record is unusable)."""
    from rosbags.rosbag2.metadata import parse_qos

    schema = schemas.get(channel.schema_id)
    if schema is None or schema.encoding != "ros2msg":
        return None
    try:
        qos = parse_qos(channel.metadata.get("offered_qos_profiles", ""))
    except Exception:  # ReaderError for bad YAML: the QoS is a hint for players, not needed to recover
        qos = []
    return recovery.add_topic(channel.topic, schema.name, schema.data.decode("utf-8", "replace"),
                              channel.message_encoding, qos)


def _recover_mcap(file: pathlib.Path, recovery: _Recovery) -> str | None:
    """Copy the surviving records of an MCAP file; returns where and why it breaks off (None: intact)."""
    schemas: dict[int, McapSchema] = {}
    channels: dict[int, tuple[str, Any]] = {}
    try:
        with open(file, "rb") as stream:
            for record in scan_mcap(stream):
                if isinstance(record, McapSchema):
                    schemas[record.id] = record
                elif isinstance(record, McapChannel):
                    channels[record.id] = (record.topic, _mcap_connection(record, schemas, recovery))
                elif record.channel_id not in channels:
                    recovery.drop(f"channel {record.channel_id}, whose channel record was lost")
                elif channels[record.channel_id][1] is None:
                    recovery.drop(f"{channels[record.channel_id][0]}, whose type definition is missing or unreadable")
                else:
                    recovery.write(channels[record.channel_id][1], record.log_time, record.data)
    except McapRecordError as exc:
        return str(exc)
    return None


def _recover_sqlite3(file: pathlib.Path, recovery: _Recovery) -> None:
    """Copy the committed rows of a SQLite 3 storage file."""
    import sqlite3

    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

    try:  # an ordinary open rolls back the transaction a killed writer left unfinished
        with contextlib.closing(sqlite3.connect(file)) as database:
            database.execute("SELECT count(*) FROM messages").fetchone()
        reader = Sqlite3Reader(file)
        reader.open()
    except Exception as exc:  # sqlite3.DatabaseError, apsw errors, ReaderError
        raise BagError(f"cannot read the SQLite storage {file}: {exc}; it is damaged beyond a reindex") from None
    try:
        connections = {
            c.id: recovery.add_topic(c.topic, c.msgtype,
                                     c.msgdef.data if c.msgdef.format == MessageDefinitionFormat.MSG else "",
                                     c.ext.serialization_format, c.ext.offered_qos_profiles)
            for c in reader.connections
        }
        for conn, timestamp, data in reader.messages(reader.connections):
            if connections[conn.id] is None:
                recovery.drop(f"{conn.topic}, whose type definition is missing or unreadable")
            else:
                recovery.write(connections[conn.id], timestamp, bytes(data))
    finally:
        reader.close()


def _fsync(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _free_name(path: pathlib.Path) -> pathlib.Path:
    """``path``, or ``path.1``, ``path.2``, ... : the first name not taken."""
    candidate, n = path, 0
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def _verify(folder: pathlib.Path, expected: int) -> None:
    """Read the recovered bag back: it must open and hold the ``expected`` messages."""
    info = bag_info(folder)
    if info.count != expected:
        raise BagError(f"the recovered bag holds {info.count} messages instead of {expected}; the original "
                       "is left untouched")


def reindex_bag(path: str | os.PathLike[str]) -> ReindexReport:
    """Rebuild the bag at ``path`` (its folder or its storage file) from the records that survived.

    Writes a complete storage file and ``metadata.yaml`` in place, keeping the original storage
    file as ``<name>.before-reindex``; raises :class:`BagError` and changes nothing if no
    message survived, the storage is not a bag, or a live writer still holds the file.
    """
    original, storage = _storage_file(pathlib.Path(path))
    lock = lock_storage(original)
    try:
        return _reindex(original, storage)
    finally:
        os.close(lock)


def _reindex(original: pathlib.Path, storage: str) -> ReindexReport:
    """:func:`reindex_bag` on the storage file ``original`` of kind ``storage``, locked."""
    folder = original.parent
    tmp_root = folder / TMP_FOLDER
    shutil.rmtree(tmp_root, ignore_errors=True)  # left by a reindex that was itself interrupted
    try:
        tmp_root.mkdir()
    except OSError as exc:
        raise BagError(f"cannot write into bag folder {folder}: {exc.strerror}; bag-reindex works in place") from None
    try:
        recovered_folder = tmp_root / original.stem
        recovery = _Recovery(recovered_folder, storage)
        damage = None
        try:
            if storage == "mcap":
                damage = _recover_mcap(original, recovery)
            else:
                _recover_sqlite3(original, recovery)
        finally:
            recovery.writer.close()
        if not recovery.counts:
            why = f"it breaks off {damage}" if damage else "it holds none"
            raise BagError(f"no complete message survived in {original} ({why}); there is nothing to recover")
        recovered = recovered_folder / original.name
        _verify(recovered_folder, sum(recovery.counts.values()))
        for file in (recovered, recovered_folder / METADATA):
            _fsync(file)
        aside = _free_name(original.with_name(original.name + ASIDE_SUFFIX))
        try:
            os.link(original, aside)
        except OSError:  # no hard links on this file system
            shutil.copy2(original, aside)
        for suffix in SQLITE3_SIDE_FILES:  # left by the killed writer; would apply to the new database
            side = original.with_name(original.name + suffix)
            if os.path.lexists(side):
                os.replace(side, _free_name(side.with_name(side.name + ASIDE_SUFFIX)))
        os.replace(recovered, original)
        os.replace(recovered_folder / METADATA, folder / METADATA)
        _fsync(folder)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return ReindexReport(
        storage_file=original, kept_as=aside, counts=dict(recovery.counts),
        dropped=tuple(f"{n} messages of {what}" for what, n in sorted(recovery.dropped.items())),
        damage=damage, size_bytes=aside.stat().st_size,
    )
