"""Bags as the field leaves them: writers killed mid-recording, bare storage files, metadata.yaml
that lies, FIFOs and devices in a bag's place. No ROS here (test_record_kill.py has the nodes)."""

import os
import pathlib
import random
import signal
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import yaml

from conftest import ROOT, ser_robot
from ser_robot.bag import BagWriter, bag_info, read_messages, ser_robot_typestore
from ser_robot.bag.reindex import reindex_bag
from ser_robot.errors import BagError

AUDIO = "ser_robot_msgs/msg/AudioFrame"
EMOTION = "ser_robot_msgs/msg/Emotion"


def _audio(seq: int):
    types = ser_robot_typestore().types
    return types[AUDIO](
        header=types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=seq, nanosec=0),
                                            frame_id="head_mics"),
        seq=seq, sample_rate=48000, channels=2, channel_ids=["left_ear", "right_ear"], encoding="s16le",
        data=(np.arange(192) + seq).astype(np.uint8),
    )


def _emotion(seq: int):
    types = ser_robot_typestore().types
    time = types["builtin_interfaces/msg/Time"]
    return types[EMOTION](
        header=types["std_msgs/msg/Header"](stamp=time(sec=seq, nanosec=0), frame_id="head_mics"),
        source_id="ears", window_start=time(sec=seq, nanosec=0), window_end=time(sec=seq + 1, nanosec=0), final=True,
        speech=True, speech_probability=0.9, label="happy", confidence=0.6, labels=["happy", "sad"],
        probabilities=np.array([0.6, 0.4], np.float32), arousal=0.1, valence=float("nan"), model_id="m",
    )


def _written(writer: BagWriter, seq: int) -> tuple[str, int, bytes]:
    """Write message ``seq`` (audio, every fifth also an emotion); return what was written."""
    stamp = 1_700_000_000_000_000_000 + seq * 10_000_000
    if seq % 5 == 4:
        writer.write_message("/emotion", EMOTION, stamp, _emotion(seq))
        return ("/emotion", stamp, bytes(ser_robot_typestore().serialize_cdr(_emotion(seq), EMOTION)))
    writer.write_message("/audio", AUDIO, stamp, _audio(seq))
    return ("/audio", stamp, bytes(ser_robot_typestore().serialize_cdr(_audio(seq), AUDIO)))


def _as_tuples(path) -> list[tuple[str, int, bytes]]:
    return [(m.topic, m.timestamp_ns, m.cdr) for m in read_messages(path)]


def _write_bag(path, count=5, storage="mcap"):
    with BagWriter(path, storage=storage) as writer:
        return [_written(writer, seq) for seq in range(count)]


@pytest.fixture(scope="module")
def killed_recording(tmp_path_factory):
    """A recording flushed every 12 messages, as the recorder does every second, snapshotted
    after the last flush as a SIGKILL leaves it: (file bytes, messages, [(bytes on disk,
    messages written) after each flush])."""
    path = tmp_path_factory.mktemp("killed") / "bag"
    writer = BagWriter(path)
    messages, flushes = [], []
    for seq in range(96):
        messages.append(_written(writer, seq))
        if seq % 12 == 11:
            writer.flush()
            flushes.append(((path / "bag.mcap").stat().st_size, len(messages)))
    snapshot = (path / "bag.mcap").read_bytes()
    writer.close()
    return snapshot, messages, flushes


def _cut_bag(root: pathlib.Path, data: bytes, name: str) -> pathlib.Path:
    bag = root / name
    bag.mkdir()
    (bag / f"{name}.mcap").write_bytes(data)
    return bag


def test_reindex_recovers_every_flushed_chunk_whatever_the_cut(tmp_path, killed_recording):
    """A kill (or power cut) can end the file at any byte: every message flushed before the cut
    comes back, in order and byte-exact, and nothing after it; the bag reads normally after."""
    snapshot, messages, flushes = killed_recording
    sizes = [size for size, _ in flushes]
    cuts = sorted({*sizes, *(s - 1 for s in sizes), *(s + 1 for s in sizes if s < len(snapshot)),
                   *random.Random(0).sample(range(len(snapshot)), 25)})
    for cut in cuts:
        bag = _cut_bag(tmp_path, snapshot[:cut], f"cut{cut}")
        with pytest.raises(BagError, match=f"bag-reindex {bag}"):
            bag_info(bag)
        done = max((n for size, n in flushes if size <= cut), default=0)
        next_flush = min((n for size, n in flushes if size > cut), default=len(messages))
        try:
            report = reindex_bag(bag)
        except BagError as exc:
            assert done == 0 and "nothing to recover" in str(exc), (cut, exc)
            assert not (bag / "metadata.yaml").exists()
            continue
        recovered = _as_tuples(bag)
        assert done <= len(recovered) <= next_flush, (cut, len(recovered))
        assert recovered == messages[:len(recovered)], cut
        assert sum(report.counts.values()) == len(recovered) == bag_info(bag).count
        assert not bag_info(bag).warnings
        assert report.kept_as.read_bytes() == snapshot[:cut]


def test_reindex_stops_at_a_zero_filled_tail(tmp_path, killed_recording):
    """After a power cut a file system may extend the file with zeros: the scan stops there."""
    snapshot, messages, flushes = killed_recording
    size, count = flushes[3]
    bag = _cut_bag(tmp_path, snapshot[:size + 100] + bytes(4096), "zeros")
    report = reindex_bag(bag)
    assert _as_tuples(bag) == messages[:count]
    assert report.damage.startswith(f"at byte {size}: ")
    assert "breaks off at byte" in report.format()


def _record(op: int, body: bytes) -> bytes:
    return bytes([op]) + len(body).to_bytes(8, "little") + body


def _string(text: str) -> bytes:
    return len(text.encode()).to_bytes(4, "little") + text.encode()


def _chunk(records: bytes, compression: str, corrupt: bool = False) -> bytes:
    """An MCAP Chunk record as another writer (ros2 bag record's mcap plugin) makes them."""
    import lz4.frame

    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    data = {"zstd": zstd.compress, "lz4": lz4.frame.compress}[compression](records)
    if corrupt:
        data = data[:12] + bytes(b ^ 0x5A for b in data[12:20]) + data[20:]
    header = struct.pack("<QQQI", 0, 0, len(records), zlib.crc32(records))
    return _record(0x06, header + _string(compression) + len(data).to_bytes(8, "little") + data)


def _chatter(seq: int) -> bytes:
    """Message record ``seq`` of channel 1: a std_msgs/msg/String 'hello <seq>' received at ``seq`` s."""
    text = f"hello {seq}".encode() + b"\x00"
    cdr = b"\x00\x01\x00\x00" + len(text).to_bytes(4, "little") + text
    return _record(0x05, struct.pack("<HIQQ", 1, seq, seq * 10**9, seq * 10**9) + cdr)


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_reindex_reads_compressed_chunks_and_stops_at_a_corrupt_one(tmp_path, compression):
    """Chunks compressed as ros2's MCAP writer does are recovered; a chunk whose data is damaged
    (caught by decompression or by its CRC) ends the recovery, even if sound chunks follow."""
    declarations = (_record(0x03, struct.pack("<H", 1) + _string("std_msgs/msg/String") + _string("ros2msg")
                            + _string("string data\n"))
                    + _record(0x04, struct.pack("<HH", 1, 1) + _string("/chatter") + _string("cdr") + bytes(4)))
    good = [_chunk(declarations + b"".join(_chatter(i) for i in range(5)), compression),
            _chunk(b"".join(_chatter(i) for i in range(5, 10)), compression)]
    bad = _chunk(b"".join(_chatter(i) for i in range(10, 15)), compression, corrupt=True)
    head = b"\x89MCAP0\r\n" + _record(0x01, _string("ros2") + _string("another writer"))
    data = head + b"".join(good) + bad + _chunk(b"".join(_chatter(i) for i in range(15, 20)), compression)
    bag = _cut_bag(tmp_path, data, "chatter")
    report = reindex_bag(bag)
    assert report.damage.startswith(f"at byte {len(head) + len(good[0]) + len(good[1])}: corrupt record (opcode 0x06)")
    assert [m.deserialize().data for m in read_messages(bag)] == [f"hello {i}" for i in range(10)]
    assert [m.timestamp_ns for m in read_messages(bag)] == [i * 10**9 for i in range(10)]


def test_reindex_refuses_what_is_not_a_bag(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        reindex_bag(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="exactly one .mcap or .db3 file .* found none"):
        reindex_bag(tmp_path / "empty")
    text = _cut_bag(tmp_path, b"just some text, not a bag", "text")
    with pytest.raises(BagError, match="neither an MCAP nor a SQLite 3 file"):
        reindex_bag(text)
    live = tmp_path / "live"
    writer = BagWriter(live)
    _written(writer, 0)
    writer.flush()
    with pytest.raises(BagError, match="being written by a running process"):
        reindex_bag(live)  # bag-info says to reindex a bag without metadata.yaml: not while it is recorded
    writer.close()
    assert sorted(p.name for p in live.iterdir()) == ["live.mcap", "metadata.yaml"]
    header_only = _cut_bag(tmp_path, b"\x89MCAP0\r\n\x01", "header_only")
    with pytest.raises(BagError, match="nothing to recover"):
        reindex_bag(header_only)
    assert sorted(p.name for p in header_only.iterdir()) == ["header_only.mcap"]


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {test_dir!r})
    from test_bag_recovery import _written
    from ser_robot.bag import BagWriter
    writer = BagWriter({bag!r}, storage={storage!r})
    for seq in range(60):
        _written(writer, seq)
        if seq == 39:
            writer.flush()
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_killed_writer_loses_only_what_it_had_not_flushed(tmp_path, storage):
    """A real process writes 60 messages, flushes after 40 and is SIGKILLed: no metadata.yaml,
    the bag refuses to open and names the fix; bag-reindex brings back exactly the 40."""
    bag = tmp_path / "bag"
    script = KILLED_WRITER.format(test_dir=str(ROOT / "test"), bag=str(bag), storage=storage)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert not (bag / "metadata.yaml").exists()
    info = ser_robot("bag-info", str(bag))
    assert info.returncode == 2 and f"run `ser-robot bag-reindex {bag}`" in info.stderr
    reindexed = ser_robot("bag-reindex", str(bag))
    assert reindexed.returncode == 0, reindexed.stderr
    assert "recovered 40 messages (/audio: 32, /emotion: 8)" in reindexed.stdout
    with BagWriter(tmp_path / "reference", storage=storage) as writer:
        expected = [_written(writer, seq) for seq in range(40)]
    assert _as_tuples(bag) == expected
    assert bag_info(bag).storage == storage


@pytest.mark.parametrize("storage, suffix", [("mcap", ".mcap"), ("sqlite3", ".db3")])
def test_bare_storage_files_name_their_storage(tmp_path, storage, suffix):
    written = _write_bag(tmp_path / "bag", storage=storage)
    file = tmp_path / "bag" / f"bag{suffix}"
    info = bag_info(file)
    assert info.storage == storage and info.count == 5 and info.path == file
    assert _as_tuples(file) == written
    result = ser_robot("bag-info", str(file))
    assert result.returncode == 0 and f"Storage:   {storage}\n" in result.stdout
    fake = tmp_path / "fake.mcap"
    fake.write_text("rosbag2_bagfile_information: {}\n")
    result = ser_robot("bag-info", str(fake))
    assert result.returncode == 2 and "neither an MCAP nor a SQLite 3 file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_metadata_claims_are_checked_against_the_storage(tmp_path, storage):
    """A metadata.yaml claiming 99999999999999999999 messages of evil_msgs/msg/Nope does not
    change what is reported or read: the storage's count and type, with a warning naming the topic."""
    bag = tmp_path / "bag"
    written = _write_bag(bag, storage=storage)
    path = bag / "metadata.yaml"
    metadata = yaml.safe_load(path.read_text())
    info = metadata["rosbag2_bagfile_information"]
    info["message_count"] = 99999999999999999999
    info["storage_identifier"] = "sqlite3" if storage == "mcap" else "mcap"
    for topic in info["topics_with_message_count"]:
        topic["message_count"] = 99999999999999999999
        topic["topic_metadata"]["type"] = "evil_msgs/msg/Nope"
    path.write_text(yaml.safe_dump(metadata))
    report = bag_info(bag)
    assert report.storage == storage and report.count == 5
    assert {(t.name, t.msgtype, t.count) for t in report.topics} == {("/audio", AUDIO, 4), ("/emotion", EMOTION, 1)}
    text = "\n".join(report.warnings)
    assert "topic /audio holds evil_msgs/msg/Nope, the storage says ser_robot_msgs/msg/AudioFrame" in text
    assert "topic /emotion has 99999999999999999999 messages, the storage holds 1" in text
    assert f"storage {info['storage_identifier']!r}, the files are {storage}" in text
    assert _as_tuples(bag) == written
    assert [m.deserialize().seq for m in read_messages(bag, ["/audio"])] == [0, 1, 2, 3]
    printed = ser_robot("bag-info", str(bag))
    assert printed.returncode == 0 and "99999999999999999999 messages, the storage holds 4" in printed.stdout
    assert "Messages:  5\n" in printed.stdout


def test_a_type_unknown_to_ser_robot_is_named(tmp_path):
    """The storage's own type records are what count: an unknown type is reported with its topic,
    and its messages refuse to deserialise with a clear error."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ser_robot.bag.typestore import definition_hash

    bag = tmp_path / "bag"
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/evil", "evil_msgs/msg/Nope", msgdef="int32 x\n",
                                           rihs01=definition_hash("evil_msgs/msg/Nope", "int32 x\n"))
        writer.write(connection, 1, b"\x00\x01\x00\x00\x2a\x00\x00\x00")
    info = bag_info(bag)
    assert [(t.name, t.msgtype, t.count) for t in info.topics] == [("/evil", "evil_msgs/msg/Nope", 1)]
    assert any("topic /evil holds evil_msgs/msg/Nope, unknown to ser_robot" in w for w in info.warnings)
    message = next(read_messages(bag))
    with pytest.raises(BagError, match="topic /evil holds evil_msgs/msg/Nope, a type unknown"):
        message.deserialize()


def _fifo_bag(tmp_path: pathlib.Path, where: str) -> pathlib.Path:
    """A bag whose metadata.yaml, or whose storage file, is a FIFO or a link to /dev/zero."""
    bag = tmp_path / where
    _write_bag(bag)
    target = bag / ("metadata.yaml" if where == "metadata_fifo" else f"{where}.mcap")
    target.unlink()
    if where == "storage_zero":
        target.symlink_to("/dev/zero")
    else:
        os.mkfifo(target)
    return bag


@pytest.mark.parametrize("where, kind", [("metadata_fifo", "FIFO"), ("storage_fifo", "FIFO"),
                                         ("storage_zero", "character device")])
def test_special_files_are_refused_at_once(tmp_path, where, kind):
    """A FIFO never written to blocks an open() forever, /dev/zero never ends: both are refused
    before they are opened, in one line naming the file."""
    bag = _fifo_bag(tmp_path, where)
    commands = ("bag-info", "evaluate-bag") if where == "metadata_fifo" else ("bag-info", "evaluate-bag", "bag-reindex")
    for command in commands:
        result = ser_robot(command, str(bag), timeout=60)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"is a {kind}, not a regular file" in result.stderr, (command, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    if where == "metadata_fifo":  # the storage is sound: reindexing writes a real metadata.yaml
        assert ser_robot("bag-reindex", str(bag), timeout=60).returncode == 0
        assert bag_info(bag).count == 5 and (bag / "metadata.yaml").is_file()
