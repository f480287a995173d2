"""rosbag2 bags (MCAP or SQLite storage) with ser_robot's messages, through ``rosbags``.

No ROS install is needed: message definitions come from ``ser_robot_msgs/msg/*.msg`` and the
ROS 2 Kilted type store of rosbags, so type names and RIHS01 type hashes are those a ROS 2
install computes, and ``ros2 bag play`` reads the bags. What a bag holds is read from its storage,
not from ``metadata.yaml``; a bag whose recorder was killed is recovered by :func:`reindex_bag`.
"""

from ser_robot.bag.reader import BagMessage, bag_info, read_messages
from ser_robot.bag.reindex import ReindexReport, reindex_bag
from ser_robot.bag.timing import PlaybackClock
from ser_robot.bag.typestore import message_definition_dir, ser_robot_typestore
from ser_robot.bag.writer import BagWriter, ThreadedBagWriter

__all__ = [
    "BagMessage",
    "BagWriter",
    "bag_info",
    "message_definition_dir",
    "PlaybackClock",
    "read_messages",
    "reindex_bag",
    "ReindexReport",
    "ser_robot_typestore",
    "ThreadedBagWriter",
]
