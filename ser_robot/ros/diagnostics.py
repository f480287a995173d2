"""Building ``diagnostic_msgs/DiagnosticArray`` messages for the 1 Hz diagnostics timers."""

from __future__ import annotations

from typing import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

__all__ = ["OK", "WARN", "ERROR", "STALE", "diagnostic_array"]


OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
STALE = DiagnosticStatus.STALE


def diagnostic_array(
    node: Node,
    level: bytes | int,
    message: str,
    hardware_id: str,
    values: Mapping[str, object],
) -> DiagnosticArray:
    """One status named ``ser_robot/<node fully qualified name>`` with ``values`` as key-values."""
    status = DiagnosticStatus()
    status.level = level if isinstance(level, bytes) else bytes([level])
    status.name = f"ser_robot{node.get_fully_qualified_name()}"
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = node.get_clock().now().to_msg()
    array.status = [status]
    return array
