import json
import pathlib
import sys

import numpy as np
import pytest

from ser_robot.bag import BagWriter, bag_info, read_messages, ser_robot_typestore
from ser_robot.bag.timing import PlaybackClock
from ser_robot.errors import BagError

MSG_SHARE = pathlib.Path(sys.prefix) / "share" / "ser_robot_msgs" / "msg"


@pytest.mark.parametrize("name", ["AudioFrame", "FeatureFrames", "Emotion"])
def test_type_hashes_equal_those_of_the_ros_build(name):
    """Bags carry the RIHS01 hash that rosidl computed for the built interface."""
    generated = json.loads((MSG_SHARE / f"{name}.json").read_text())
    expected = generated["type_hashes"][0]
    assert expected["type_name"] == f"ser_robot_msgs/msg/{name}"
    assert ser_robot_typestore().hash_rihs01(expected["type_name"]) == expected["hash_string"]


def _audio_frame(seq: int):
    store = ser_robot_typestore()
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    Frame = store.types["ser_robot_msgs/msg/AudioFrame"]
    return Frame(
        header=Header(stamp=Time(sec=seq, nanosec=0), frame_id="head_mics"),
        seq=seq, sample_rate=16000, channels=2, channel_ids=["left_ear", "right_ear"],
        encoding="s16le", data=np.arange(8, dtype=np.uint8) + seq,
    )


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_read_round_trip(tmp_path, storage):
    path = tmp_path / "bag"
    with BagWriter(path, storage=storage) as writer:
        for seq in range(5):
            writer.write_message("/audio", "ser_robot_msgs/msg/AudioFrame", 1_000 + seq * 10_000_000, _audio_frame(seq))
    info = bag_info(path)
    assert info.storage == storage and info.count == 5
    assert info.topics[0].msgtype == "ser_robot_msgs/msg/AudioFrame"
    assert info.duration_s == pytest.approx(0.04)
    messages = list(read_messages(path))
    assert [m.deserialize().seq for m in messages] == list(range(5))
    assert messages[3].deserialize().data.tolist() == list(range(3, 11))
    assert "ser_robot_msgs/msg/AudioFrame" in info.format()


def test_bad_bags_give_clear_errors(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        bag_info(tmp_path / "none")
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        for seq in range(50):
            writer.write_message("/audio", "ser_robot_msgs/msg/AudioFrame", seq * 10_000_000, _audio_frame(seq))
    mcap = next(path.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    with pytest.raises(BagError, match="corrupt|truncated|incomplete"):
        list(read_messages(path))
    (path / "metadata.yaml").write_text("rosbag2_bagfile_information: [broken")
    with pytest.raises(BagError, match="cannot open bag"):
        bag_info(path)
    with pytest.raises(BagError, match="already exists"):
        BagWriter(path)


def test_unknown_topic_and_type_errors(tmp_path):
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        with pytest.raises(BagError, match="unknown to the bag type store"):
            writer.add_topic("/x", "nope_msgs/msg/Nope")
        writer.write_message("/audio", "ser_robot_msgs/msg/AudioFrame", 1, _audio_frame(0))
    with pytest.raises(BagError, match="has no topic\\(s\\) /emotion"):
        list(read_messages(path, ["/emotion"]))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_threaded_writer_may_be_used_from_any_thread(tmp_path, storage):
    """A recorder node opens its bag in the thread that activates it, writes and flushes it in its
    executor's thread and may close it in either: SQLite 3 storage refuses that to a BagWriter."""
    import threading

    from ser_robot.bag.writer import ThreadedBagWriter

    path, errors = tmp_path / "bag", []

    def in_thread(function, *args):
        def target():
            try:
                function(*args)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()

    writer = ThreadedBagWriter(path, storage=storage)
    in_thread(writer.add_topic, "/audio", "ser_robot_msgs/msg/AudioFrame")
    for seq in range(3):
        in_thread(writer.write_message, "/audio", "ser_robot_msgs/msg/AudioFrame", seq * 10_000_000, _audio_frame(seq))
    in_thread(writer.flush)
    with pytest.raises(BagError, match="unknown to the bag type store"):
        writer.add_topic("/x", "nope_msgs/msg/Nope")
    in_thread(writer.close)
    assert errors == []
    assert writer.counts == {"/audio": 3}
    assert [m.deserialize().seq for m in read_messages(path)] == [0, 1, 2]
    with pytest.raises(BagError, match="already exists"):
        ThreadedBagWriter(path, storage=storage)


def test_playback_clock_keeps_spacing_divided_by_rate():
    now = [5.0]
    clock = PlaybackClock(rate=2.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert clock.due(1_000_000_000) == 5.0
    assert clock.due(3_000_000_000) == 6.0
    clock.wait(3_000_000_000)
    assert now[0] == 6.0
    with pytest.raises(ValueError, match="rate must be positive"):
        PlaybackClock(rate=0)
