"""Level meter node: per-period levels and continuity of an ``AudioFrame`` topic, printed and logged."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from ser_robot.audio.levels import LevelReport, StreamMonitor
from ser_robot.errors import SerRobotError
from ser_robot.ros.consumer_node import ConsumerNode
from ser_robot.ros.conversions import MALFORMED_REASONS, AudioFrameRejected, audio_frame_samples
from ser_robot.ros.diagnostics import OK, WARN, diagnostic_array
from ser_robot.ros.params import declare_parameters, read_parameters
from ser_robot.ros.qos import DIAGNOSTICS_QOS, SENSOR_DATA_QOS
from ser_robot_msgs.msg import AudioFrame

__all__ = ["LevelMeterNode", "format_report", "main"]


def format_report(elapsed_s: float, report: LevelReport, channel_ids: list[str]) -> str:
    """One line: time, per-channel RMS level (dBFS), frames, sequence gaps and lost frames."""
    names = channel_ids or [f"ch{i}" for i in range(len(report.rms_dbfs))]
    levels = "  ".join(f"{n} {lvl:6.1f} dBFS" for n, lvl in zip(names, report.rms_dbfs)) or "no audio"
    return (
        f"[{elapsed_s:6.1f} s] {levels}  frames {report.frames:4d}  gaps {report.seq_gaps}  "
        f"lost {report.frames_lost}"
    )


class LevelMeterNode(ConsumerNode):
    """Subscribes to ``topic`` and reports levels every ``period_s`` (diagnostics and a line)."""

    KIND = "level_meter"
    DROP_REASONS = MALFORMED_REASONS = MALFORMED_REASONS  # for ConsumerNode.malformed and .dropped

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(node_name or self.KIND, **kwargs)
        declare_parameters(self, self.KIND)
        self.monitor = StreamMonitor()
        self.counts: Counter[str] = Counter()  # MALFORMED_REASONS
        self.reports: list[LevelReport] = []
        self._channel_ids: list[str] = []
        self._subscription = None
        self._timer = None
        self._diagnostics_publisher = None
        self._elapsed = 0.0

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = read_parameters(self, self.KIND)
        except SerRobotError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "diagnostics", DIAGNOSTICS_QOS)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subscription = self.create_subscription(
            AudioFrame, self.params["topic"], self._on_frame, SENSOR_DATA_QOS
        )
        self._timer = self.create_timer(self.params["period_s"], self._report)
        return super().on_activate(state)

    def _teardown(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None

    def _on_frame(self, msg: AudioFrame) -> None:
        try:
            samples = audio_frame_samples(msg)
        except AudioFrameRejected as exc:
            self.counts[exc.reason] += 1
            self.get_logger().warning(f"dropped malformed AudioFrame: {exc}", throttle_duration_sec=5.0)
            return
        self._channel_ids = list(msg.channel_ids)
        self.monitor.update(msg.seq, samples)

    def _report(self) -> None:
        self._elapsed += self.params["period_s"]
        report = self.monitor.report()
        self.reports.append(report)
        line = format_report(self._elapsed, report, self._channel_ids)
        if self.params["stdout"]:
            print(line, flush=True)
        else:
            self.get_logger().info(line)
        level = WARN if report.seq_gaps or self.malformed or not report.frames else OK
        values = {
            "frames": report.frames,
            "seq_gaps_total": self.monitor.total_gaps,
            "frames_lost_total": self.monitor.total_lost,
            "malformed_total": self.malformed,
            **{f"rms_dbfs_{n}": f"{v:.1f}" for n, v in zip(self._channel_ids, report.rms_dbfs)},
        }
        self._diagnostics_publisher.publish(diagnostic_array(self, level, line, self.params["topic"], values))


def main(args: list[str] | None = None) -> int:
    """``ros2 run ser_robot level_meter_node``."""
    from ser_robot.ros.runner import spin_single

    return spin_single(LevelMeterNode, args if args is not None else sys.argv)
