"""The rosbags type store: ROS 2 Kilted's standard types plus ``ser_robot_msgs``."""

from __future__ import annotations

import functools
import os
import pathlib

from ser_robot.errors import BagError

__all__ = ["definition_hash", "message_definition_dir", "ser_robot_typestore"]

PACKAGE = "ser_robot_msgs"


def message_definition_dir() -> pathlib.Path:
    """Folder holding ``ser_robot_msgs``'s ``.msg`` files: the source tree's, else an installed share folder."""
    source = pathlib.Path(__file__).resolve().parents[2] / PACKAGE / "msg"
    if source.is_dir():
        return source
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        installed = pathlib.Path(prefix) / "share" / PACKAGE / "msg"
        if prefix and installed.is_dir():
            return installed
    raise BagError(
        f"cannot find the {PACKAGE} message definitions (msg/*.msg) in the source tree or in "
        "AMENT_PREFIX_PATH; source ./setup.bash (or your ROS workspace's setup) first"
    )


@functools.lru_cache(maxsize=1)
def ser_robot_typestore():
    """A rosbags ``Typestore`` knowing ROS 2 Kilted's types and ``ser_robot_msgs/msg/*``."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict = {}
    for path in sorted(message_definition_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


def definition_hash(msgtype: str, definition: str) -> str | None:
    """RIHS01 hash of ``msgtype`` as defined by ``definition``, the concatenated ``.msg`` text a bag
    stores with a topic (the type and every type it uses); None if the text does not define it."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    try:
        store.register(get_types_from_msg(definition, msgtype))
        return store.hash_rihs01(msgtype)
    except Exception:  # TypesysError for bad text, KeyError for a type it uses but does not define
        return None
