"""Resolving message types of topics: ROS type names <-> generated Python classes."""

from __future__ import annotations

import importlib
from typing import Any

from ser_robot.errors import BagError
from ser_robot.ros.qos import RELIABLE_QOS, SENSOR_DATA_QOS

__all__ = ["message_class", "qos_for_type", "SENSOR_DATA_TYPES"]

# Message types that travel with sensor-data QoS (best effort); everything else is reliable.
SENSOR_DATA_TYPES = ("ser_robot_msgs/msg/AudioFrame", "ser_robot_msgs/msg/FeatureFrames")


def message_class(msgtype: str) -> Any:
    """The Python class of ROS type ``pkg/msg/Type``; :class:`BagError` if it is not importable."""
    try:
        package, kind, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ValueError, ImportError, AttributeError):
        raise BagError(
            f"message type {msgtype} is not importable in this environment; source the "
            "workspace that provides it (./setup.bash for ser_robot_msgs)"
        ) from None


def qos_for_type(msgtype: str):
    return SENSOR_DATA_QOS if msgtype in SENSOR_DATA_TYPES else RELIABLE_QOS
