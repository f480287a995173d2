"""Starting ROS in a ser_robot process: the middleware settings every node of ours runs with.

With Fast DDS (the default RMW), :func:`init` points the process at
``fastdds_profiles.xml`` (next to this module) before ``rclpy.init``: readers allocate each
sample's payload when it arrives and free it when taken (``DYNAMIC`` history memory), so an
oversized frame cannot pin memory in a history slot for the life of the node. A user who sets
``FASTDDS_DEFAULT_PROFILES_FILE`` keeps their own profiles; nothing is changed then.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import rclpy
from rclpy.signals import SignalHandlerOptions

__all__ = ["PROFILES_FILE", "configure_environment", "init"]

PROFILES_FILE = pathlib.Path(__file__).with_name("fastdds_profiles.xml")
"""Fast DDS XML profiles loaded by ser_robot's processes."""


def configure_environment(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """Set the Fast DDS profile variables in ``environ`` unless the user set their own.

    Returns True when ours were set. Must run before the first ``rclpy.init`` of the process:
    the middleware reads them when it creates its participant.
    """
    if not environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps"):
        return False
    if environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or environ.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        return False
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILES_FILE)
    # Without this, rmw_fastrtps overrides the history memory policy given in the XML.
    environ["RMW_FASTRTPS_USE_QOS_FROM_XML"] = "1"
    return True


def init(args: Sequence[str] | None = None) -> None:
    """``rclpy.init`` with ser_robot's middleware settings and without rclpy's signal handlers
    (ours stop the nodes in order; :class:`ser_robot.ros.runner.StopOnSignal`)."""
    configure_environment()
    rclpy.init(args=None if args is None else list(args), signal_handler_options=SignalHandlerOptions.NO)
