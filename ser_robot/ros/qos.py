"""Named QoS profiles of ser_robot's topics."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

__all__ = ["SENSOR_DATA_QOS", "RELIABLE_QOS", "DIAGNOSTICS_QOS", "for_streams"]

# audio, features: the newest data matters more than every sample (best effort, keep last).
SENSOR_DATA_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

# emotion, ground_truth: every result must arrive.
RELIABLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

DIAGNOSTICS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


def for_streams(profile: QoSProfile, streams: int) -> QoSProfile:
    """``profile`` with its depth multiplied by ``streams``: a KEEP_LAST history is shared by every
    stream on the topic, so a node taking several streams needs that much more room (measured: with
    depth 50, a feature node taking 4 audio streams lost frames at 46 % of a core; bench/pipeline_dds_bench.py)."""
    return QoSProfile(history=profile.history, depth=profile.depth * max(1, streams),
                      reliability=profile.reliability, durability=profile.durability)
