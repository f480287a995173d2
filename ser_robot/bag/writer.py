"""Writing rosbag2 bags of already-serialised (CDR) messages."""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
from typing import Any, Callable, TypeVar

from ser_robot.bag.layout import lock_storage
from ser_robot.bag.typestore import ser_robot_typestore
from ser_robot.errors import BagError

__all__ = ["BagWriter", "ThreadedBagWriter", "STORAGE_PLUGINS", "BAG_VERSION"]

STORAGE_PLUGINS = ("mcap", "sqlite3")
# rosbag2 metadata version 8 (Jazzy): has type description hashes, read by Jazzy and later.
BAG_VERSION = 8


class BagWriter:
    """A rosbag2 bag being written; use as a context manager or call :meth:`close`.

    Messages are written as the CDR bytes a ROS 2 subscription (``raw=True``) delivers, with
    their receive time in ns. Topics are added on first use with their type's RIHS01 hash.
    Until :meth:`flush` or :meth:`close`, the last messages may exist only in memory: a recorder
    calls :meth:`flush` regularly so that a killed process leaves a recoverable bag
    (``ser-robot bag-reindex``).

    Use it from one thread only: with SQLite 3 storage, rosbags' connection refuses
    (``sqlite3.ProgrammingError``) any thread but the one that created it. Code whose calls come
    from several threads (a ROS node's transitions, timers and subscriptions) uses
    :class:`ThreadedBagWriter`.
    """

    def __init__(self, path: str | pathlib.Path, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

        if storage not in STORAGE_PLUGINS:
            raise BagError(f"unknown bag storage {storage!r}; use one of {', '.join(STORAGE_PLUGINS)}")
        self.path = pathlib.Path(path)
        if self.path.exists():
            raise BagError(f"bag folder {self.path} already exists; choose a new output path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._typestore = ser_robot_typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        try:
            self._writer.open()
        except WriterError as exc:
            raise BagError(f"cannot create bag {self.path}: {exc}") from None
        self._lock = lock_storage(self._writer.storage.path)  # tells bag-reindex the bag is live
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare ``topic`` with ROS type name ``msgtype`` (``pkg/msg/Type``)."""
        if topic in self._connections:
            return
        if msgtype not in self._typestore.types:
            raise BagError(
                f"message type {msgtype} of topic {topic} is unknown to the bag type store; "
                "only ROS 2 standard types and ser_robot_msgs can be recorded"
            )
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self._typestore
        )
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, cdr: bytes) -> None:
        """Append one serialised message of a declared topic."""
        self._writer.write(self._connections[topic], timestamp_ns, cdr)
        self.counts[topic] += 1

    def write_message(self, topic: str, msgtype: str, timestamp_ns: int, message: Any) -> None:
        """Serialise a rosbags message object and append it (declares the topic if needed)."""
        self.add_topic(topic, msgtype)
        self.write(topic, timestamp_ns, bytes(self._typestore.serialize_cdr(message, msgtype)))

    def flush(self) -> None:
        """Put every message written so far on disk: close the pending MCAP chunk and fsync the
        file (SQLite 3: commit). Costs a chunk record with its index and one fsync (docs/bags.md).

        rosbags has no public flush: this uses its storage writers' attributes (rosbags 0.11.9,
        pinned in requirements/base.txt)."""
        from rosbags.rosbag2.storage_mcap import McapWriter
        from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer

        storage = self._writer.storage
        if isinstance(storage, McapWriter):
            if storage.chunk.msgs:  # a chunk without messages has no time range: it waits for one
                storage.close_chunk()
            storage.bio.flush()
            os.fsync(storage.bio.fileno())
        elif isinstance(storage, Sqlite3Writer):
            storage.conn.commit()

    def close(self) -> None:
        self._writer.close()
        os.close(self._lock)

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_T = TypeVar("_T")


class ThreadedBagWriter:
    """A :class:`BagWriter` that lives on a thread of its own: the bag is created, written,
    flushed and closed there whatever thread calls, so it may be used from several threads.

    A SQLite 3 connection works only in the thread that opened it, and rosbags opens it without
    ``check_same_thread=False``; a recorder node's bag is opened by the thread that activates the
    node, written by its executor's thread and closed by either. Each call waits for its result
    and raises what :class:`BagWriter` raises; calls run one at a time, in the order made. After
    :meth:`close` (which stops the thread) the writer cannot be used again.
    """

    def __init__(self, path: str | pathlib.Path, storage: str = "mcap") -> None:
        # One worker: a ThreadPoolExecutor never starts a second thread while the first lives.
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bag-writer")
        try:
            self._writer: BagWriter = self._call(BagWriter, path, storage)
        except BaseException:
            self._thread.shutdown(wait=True)
            raise
        self.path = self._writer.path

    def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        return self._thread.submit(function, *args).result()

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic so far (a copy; also after :meth:`close`)."""
        return dict(self._writer.counts)  # one C-level copy under the GIL: no torn read

    def add_topic(self, topic: str, msgtype: str) -> None:
        self._call(self._writer.add_topic, topic, msgtype)

    def write(self, topic: str, timestamp_ns: int, cdr: bytes) -> None:
        self._call(self._writer.write, topic, timestamp_ns, cdr)

    def write_message(self, topic: str, msgtype: str, timestamp_ns: int, message: Any) -> None:
        self._call(self._writer.write_message, topic, msgtype, timestamp_ns, message)

    def flush(self) -> None:
        self._call(self._writer.flush)

    def close(self) -> None:
        try:
            self._call(self._writer.close)
        finally:
            self._thread.shutdown(wait=True)

    def __enter__(self) -> "ThreadedBagWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
