"""Building ``diagnostic_msgs/DiagnosticArray`` messages for the 1 Hz diagnostics timers."""

from __future__ import annotations

import collections
from typing import Mapping

import numpy as np

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

__all__ = ["OK", "WARN", "ERROR", "STALE", "LatencyStats", "diagnostic_array"]


class LatencyStats:
    """The last ``window`` latencies (s) a node measured, and their percentiles (NaN before the first)."""

    def __init__(self, window: int = 1000) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=window)

    def add(self, latency_s: float) -> None:
        self._values.append(latency_s)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self._values, q)) if self._values else float("nan")

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
