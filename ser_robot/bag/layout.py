"""Where a bag's files are: a rosbag2 folder (``metadata.yaml`` + storage files) or one storage file.

Only regular files are opened: a FIFO or a device in a bag's place would block a reader
forever or feed it endless bytes. A storage file's kind (MCAP or SQLite 3) is told by its
first bytes, never by its name or by ``metadata.yaml``, which are only claims.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import stat
from dataclasses import dataclass
from typing import Any

import yaml

from ser_robot.bag.mcap_records import MCAP_MAGIC
from ser_robot.errors import BagError

__all__ = ["BagLayout", "METADATA", "locate_bag", "lock_storage", "regular_file", "storage_of"]

METADATA = "metadata.yaml"
SQLITE3_MAGIC = b"SQLite format 3\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Largest metadata.yaml read (bytes): one of thousands of topics and files is well below.
MAX_METADATA_BYTES = 16 * 2**20

_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
          stat.S_IFSOCK: "socket", stat.S_IFDIR: "folder"}


@dataclass(frozen=True)
class BagLayout:
    """A bag's files: ``folder``, its storage ``files`` (all of kind ``storage``: ``mcap`` or
    ``sqlite3``) and the parsed ``rosbag2_bagfile_information`` of ``metadata.yaml`` (None for a
    bare storage file)."""

    path: pathlib.Path
    folder: pathlib.Path
    files: tuple[pathlib.Path, ...]
    storage: str
    metadata: dict[str, Any] | None


def regular_file(path: pathlib.Path, what: str) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed); :class:`BagError` unless it is a regular file."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise BagError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise BagError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(status.st_mode):
        kind = _KINDS.get(stat.S_IFMT(status.st_mode), "special file")
        raise BagError(f"{what} {path} is a {kind}, not a regular file; a bag holds regular files only: "
                       "put the real file in its place")
    return status


def lock_storage(path: pathlib.Path) -> int:
    """Open ``path`` and take an exclusive advisory lock (``flock``) on it; returns the descriptor,
    whose closing releases the lock. A bag's writer holds it while recording (the kernel drops it
    when the writer dies), so :class:`BagError` here means a live process is writing the file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BagError(f"{path} is being written by a running process (a recorder); stop it first: a bag is "
                       "reindexed only once its writer has died") from None
    return fd


def storage_of(path: pathlib.Path) -> str:
    """``mcap`` or ``sqlite3``, from the first bytes of the regular file ``path``."""
    regular_file(path, "bag storage file")
    with open(path, "rb") as stream:
        head = stream.read(len(SQLITE3_MAGIC))
    if head.startswith(MCAP_MAGIC):
        return "mcap"
    if head.startswith(SQLITE3_MAGIC):
        return "sqlite3"
    if head.startswith(ZSTD_MAGIC):
        raise BagError(f"bag storage file {path} is zstd-compressed (compression_mode: file); decompress it "
                       "first (zstd -d) and point metadata.yaml at the result")
    raise BagError(f"{path} is neither an MCAP nor a SQLite 3 file (it starts with {head[:8]!r}); "
                   "give a bag folder, a .mcap or a .db3 file")


def _read_metadata(folder: pathlib.Path) -> dict[str, Any]:
    path = folder / METADATA
    if not os.path.lexists(path):
        raise BagError(f"bag {folder} has no {METADATA} (was the recorder killed before it closed the bag?); "
                       f"run `ser-robot bag-reindex {folder}` to rebuild it from the recorded messages")
    size = regular_file(path, "bag metadata").st_size
    if size > MAX_METADATA_BYTES:
        raise BagError(f"bag metadata {path} is {size} bytes, more than {MAX_METADATA_BYTES}; it is not a "
                       f"rosbag2 metadata file: run `ser-robot bag-reindex {folder}` to rebuild it")
    try:
        document = yaml.safe_load(path.read_bytes())
        info = document["rosbag2_bagfile_information"]
        names = info["relative_file_paths"]
        if not isinstance(info, dict) or not isinstance(names, list) or not names \
                or not all(isinstance(n, str) and n for n in names):
            raise ValueError("relative_file_paths is not a list of file names")
    except (yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
        raise BagError(f"cannot open bag {folder}: {path} is not valid rosbag2 metadata "
                       f"({type(exc).__name__}: {exc}); run `ser-robot bag-reindex {folder}` to rebuild it") from None
    compression = info.get("compression_mode") or ""
    if str(compression).lower() not in ("", "none"):
        raise BagError(f"bag {folder} is compressed (compression_mode: {compression}); ser_robot reads "
                       "uncompressed bags and MCAP chunk compression: convert it with `ros2 bag convert`")
    return info


def locate_bag(path: str | os.PathLike[str]) -> BagLayout:
    """The files of the bag at ``path``: a rosbag2 folder, or a bare ``.mcap`` / ``.db3`` file."""
    path = pathlib.Path(path)
    if not os.path.lexists(path):
        raise BagError(f"bag {path} does not exist")
    if not path.is_dir():
        return BagLayout(path, path.parent, (path,), storage_of(path), None)
    info = _read_metadata(path)
    # Names only: metadata.yaml cannot point outside the bag folder.
    files = tuple(dict.fromkeys(path / pathlib.PurePath(name).name for name in info["relative_file_paths"]))
    kinds = set()
    for file in files:
        if not os.path.lexists(file):
            raise BagError(f"bag {path}: storage file {file.name} named in {METADATA} is missing; if the "
                           f"recording was cut short, run `ser-robot bag-reindex {path}`")
        kinds.add(storage_of(file))
    if len(kinds) > 1:
        raise BagError(f"bag {path} mixes storage kinds ({', '.join(sorted(kinds))}); a bag has one")
    return BagLayout(path, path, files, kinds.pop(), info)
