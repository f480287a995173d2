"""Scanning an MCAP file record by record, trusting nothing but the records themselves.

An MCAP file is the magic ``\\x89MCAP0\\r\\n`` followed by records: opcode (u8), body length
(u64, little endian), body. Messages travel inside Chunk records (optionally zstd- or
lz4-compressed); the summary and footer at the end only index them. :func:`scan_mcap` reads
the data section from the start, so it works on a file whose writer was killed (no summary,
no footer, a half-written last record), and it is the ground truth the summary is checked
against. A chunk's records are yielded only once the whole chunk has been read, decompressed
and parsed: a chunk is kept whole or not at all.
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ser_robot.errors import BagError

__all__ = ["MCAP_MAGIC", "McapChannel", "McapMessage", "McapRecordError", "McapSchema", "scan_mcap"]

MCAP_MAGIC = b"\x89MCAP0\r\n"

OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
OP_DATA_END = 0x0F
KEPT_OPS = frozenset({OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK})
# Header, index, attachment, metadata and summary records: valid, nothing to keep from them.
SKIPPED_OPS = frozenset({OP_HEADER, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E})
FIRST_PRIVATE_OP = 0x80  # opcodes 0x80-0xFF are private to a writer: skipped

# Largest uncompressed chunk accepted (bytes): writers use about 1 MiB; a larger declared
# size is a corrupt or hostile length, refused before anything is allocated.
MAX_CHUNK_BYTES = 256 * 2**20
MESSAGE_HEADER = struct.Struct("<HIQQ")  # channel id, sequence, log time (ns), publish time (ns)
CHUNK_HEADER = struct.Struct("<QQQI")  # start (ns), end (ns), uncompressed size (bytes), CRC-32


class McapRecordError(BagError):
    """The file stops being valid MCAP at byte :attr:`offset` (truncated or corrupt record)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True)
class McapSchema:
    """A Schema record: the message type ``name`` and its definition text in ``encoding``."""

    id: int
    name: str
    encoding: str
    data: bytes


@dataclass(frozen=True)
class McapChannel:
    """A Channel record: ``topic`` with messages of schema ``schema_id``, and string metadata."""

    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class McapMessage:
    """A Message record: channel, receive time ``log_time`` (ns) and the serialised message."""

    channel_id: int
    log_time: int
    data: bytes


class _Body:
    """Reads the fields of one record body; a field running past the end is a ``ValueError``."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data, self.pos = memoryview(data), 0

    def take(self, size: int) -> memoryview:
        if size < 0 or self.pos + size > len(self.data):
            raise ValueError(f"a field of {size} bytes runs past the end of its record")
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "little")

    def string(self) -> str:
        return str(self.take(self.u32()), "utf-8")

    def string_map(self) -> dict[str, str]:
        entries = _Body(self.take(self.u32()))
        result = {}
        while entries.pos < len(entries.data):
            key = entries.string()
            result[key] = entries.string()
        return result


def _schema(body: _Body) -> McapSchema:
    return McapSchema(body.u16(), body.string(), body.string(), bytes(body.take(body.u32())))


def _channel(body: _Body) -> McapChannel:
    return McapChannel(body.u16(), body.u16(), body.string(), body.string(), body.string_map())


def _message(body: memoryview) -> McapMessage:
    if len(body) < MESSAGE_HEADER.size:
        raise ValueError(f"message record of {len(body)} bytes is shorter than its header")
    channel_id, _sequence, log_time, _publish_time = MESSAGE_HEADER.unpack_from(body)
    return McapMessage(channel_id, log_time, bytes(body[MESSAGE_HEADER.size:]))


def _decompress(data: memoryview, compression: str, size: int) -> bytes:
    """The chunk's records, at most ``size + 1`` bytes of them (none, zstd or lz4);
    ``ValueError`` if the compressed data is corrupt."""
    if compression == "":
        return bytes(data)
    if compression == "zstd":
        if sys.version_info >= (3, 14):
            from compression import zstd
        else:
            from backports import zstd
        try:
            return zstd.ZstdDecompressor().decompress(data, max_length=size + 1)
        except zstd.ZstdError as exc:
            raise ValueError(f"zstd data does not decompress: {exc}") from None
    if compression == "lz4":
        from lz4.frame import LZ4FrameDecompressor

        try:
            return LZ4FrameDecompressor().decompress(bytes(data), max_length=size + 1)
        except RuntimeError as exc:  # what lz4 raises for corrupt frames
            raise ValueError(f"lz4 data does not decompress: {exc}") from None
    raise ValueError(f"unknown chunk compression {compression!r}")


def _chunk_records(body: _Body) -> list[McapSchema | McapChannel | McapMessage]:
    """Every record of a Chunk body, or ``ValueError`` if any part of the chunk is bad."""
    _start, _end, size, crc = CHUNK_HEADER.unpack(body.take(CHUNK_HEADER.size))
    compression = body.string()
    if size > MAX_CHUNK_BYTES:
        raise ValueError(f"chunk declares {size} uncompressed bytes (more than {MAX_CHUNK_BYTES})")
    records = _decompress(body.take(body.u64()), compression, size)
    if len(records) != size:
        raise ValueError(f"chunk holds {len(records)} bytes, its header says {size}")
    if crc and zlib.crc32(records) != crc:
        raise ValueError("chunk CRC-32 does not match its records")
    result: list[McapSchema | McapChannel | McapMessage] = []
    inner = _Body(records)
    while inner.pos < size:
        op = inner.take(1)[0]
        record = inner.take(inner.u64())
        if op == OP_SCHEMA:
            result.append(_schema(_Body(record)))
        elif op == OP_CHANNEL:
            result.append(_channel(_Body(record)))
        elif op == OP_MESSAGE:
            result.append(_message(record))
        else:
            raise ValueError(f"record of opcode {op:#04x} inside a chunk")
    return result


def scan_mcap(stream: BinaryIO) -> Iterator[McapSchema | McapChannel | McapMessage]:
    """Schema, Channel and Message records of the data section, in file order.

    Ends at the Footer record (the summary section before it is only checked for framing).
    Raises :class:`McapRecordError`, with the offset where the valid part ends, at the first
    truncated or corrupt record or at an end of file without a footer (a writer that was
    killed), after yielding everything before it.
    """
    size = stream.seek(0, 2)
    stream.seek(0)
    if stream.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
        raise McapRecordError(0, "no MCAP magic (not an MCAP file)")
    offset, in_summary = len(MCAP_MAGIC), False
    while offset < size:
        head = stream.read(9)
        if len(head) < 9:
            raise McapRecordError(offset, "truncated record header")
        op, length = head[0], int.from_bytes(head[1:], "little")
        if op == OP_FOOTER:
            return
        if op not in KEPT_OPS and op not in SKIPPED_OPS and op != OP_DATA_END and op < FIRST_PRIVATE_OP:
            raise McapRecordError(offset, f"invalid record opcode {op:#04x}")
        if offset + 9 + length > size:
            raise McapRecordError(offset, f"truncated record (opcode {op:#04x}: {length} bytes declared, "
                                          f"{size - offset - 9} left in the file)")
        in_summary = in_summary or op == OP_DATA_END
        if in_summary or op not in KEPT_OPS:
            stream.seek(length, 1)
            offset += 9 + length
            continue
        body = _Body(stream.read(length))
        try:
            if op == OP_CHUNK:
                yield from _chunk_records(body)
            elif op == OP_SCHEMA:
                yield _schema(body)
            elif op == OP_CHANNEL:
                yield _channel(body)
            else:
                yield _message(body.data)
        except (ValueError, UnicodeDecodeError, struct.error) as exc:
            raise McapRecordError(offset, f"corrupt record (opcode {op:#04x}): {exc}") from None
        offset += 9 + length
    raise McapRecordError(offset, "the file ends without a footer: its writer did not close it")
