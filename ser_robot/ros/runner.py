"""Starting configured nodes in one process, each spun by its own executor thread.

``ser-robot run`` (here and in CI) and ``ros2 run`` entry points use this module; on a full
ROS 2 install ``launch/ser.launch.py`` starts the same nodes with the same parameters.

Why not one ``MultiThreadedExecutor`` for all nodes: rclpy's MultiThreadedExecutor spins hot
while a ready subscription waits for a worker (ros2/rclpy#1223, #1452). Measured here with a
file source and a level meter at 100 frames/s in one process: 100 % of a core and over a
third of the frames lost, against 19 % and none with one ``SingleThreadedExecutor`` per node.
One executor thread per node keeps nodes independent (a slow node delays only itself).
"""

from __future__ import annotations

import functools
import importlib
import signal
import threading
import time
import traceback
from typing import Any, Callable, Mapping, Sequence

import rclpy
import rclpy.logging
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from ser_robot.config import SOURCE_NODES, RunConfig
from ser_robot.ros import middleware
from ser_robot.errors import ConfigError, SerRobotError

__all__ = ["NodeSet", "NODE_CLASSES", "StopOnSignal", "check_pipeline", "create_nodes", "node_class",
           "parameter_overrides", "run", "spin_single"]


NODE_CLASSES = {
    "microphone": "ser_robot.ros.microphone_node:MicrophoneNode",
    "file_source": "ser_robot.ros.file_source_node:FileSourceNode",
    "recorder": "ser_robot.ros.recorder_node:RecorderNode",
    "level_meter": "ser_robot.ros.level_meter_node:LevelMeterNode",
    "features": "ser_robot.ros.feature_node:FeatureNode",
    "corpus_player": "ser_robot.ros.corpus_player_node:CorpusPlayerNode",
    "inference": "ser_robot.ros.inference_node:InferenceNode",
}
"""Node class of each node kind of ``config/ser.yaml``, as ``module:Class`` (imported when used)."""


def node_class(kind: str) -> type:
    """The node class of ``kind`` (its module is imported now: torch only for the nodes that need it)."""
    module, _, name = NODE_CLASSES[kind].partition(":")
    return getattr(importlib.import_module(module), name)


class NodeStartError(SerRobotError):
    """A node failed a lifecycle transition: the message gives what its callback raised, or says
    that the node logged its error (a callback that returned FAILURE)."""


def parameter_overrides(params: Mapping[str, Any]) -> list[Parameter]:
    """rclpy parameter overrides for validated parameter values (string lists typed explicitly)."""
    overrides = []
    for name, value in params.items():
        if isinstance(value, list):
            overrides.append(Parameter(name, Parameter.Type.STRING_ARRAY, list(value)))
        else:
            overrides.append(Parameter(name, value=value))
    return overrides


class NodeSet:
    """Lifecycle nodes, each spun by a ``SingleThreadedExecutor`` in a background thread.

    :meth:`start` configures every node, then activates consumers before sources so no early
    frame is missed; :meth:`stop` deactivates sources first, so consumers see the last frames.

    rclpy turns an exception raised by a transition callback into ERROR and drops it
    (``LifecycleNodeMixin.__execute_callback``), so each node's callbacks are wrapped: what they
    raise is logged by the node and given by :meth:`start`'s error.
    """

    def __init__(self, nodes: Sequence[LifecycleNode], kinds: Sequence[str]) -> None:
        self.nodes = list(nodes)
        self.kinds = list(kinds)
        self.executors = []
        self._errors: dict[str, str] = {}  # node name -> what its last failed transition raised
        for node in self.nodes:
            for state_id, callback in list(node._callbacks.items()):
                node._callbacks[state_id] = functools.partial(self._guarded, node, callback)
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            self.executors.append(executor)
        self.callback_errors: dict[str, int] = {n.get_name(): 0 for n in self.nodes}
        self._threads = [
            threading.Thread(target=self._spin, args=(e, n), name=f"spin-{n.get_name()}", daemon=True)
            for e, n in zip(self.executors, self.nodes)
        ]
        self._active: list[LifecycleNode] = []

    def _guarded(self, node: LifecycleNode, callback: Callable[[LifecycleState], TransitionCallbackReturn],
                 state: LifecycleState) -> TransitionCallbackReturn:
        """``callback(state)``; an exception is logged, kept for :meth:`start`, and returns ERROR."""
        try:
            return callback(state)
        except Exception as exc:  # noqa: BLE001 - rclpy would drop it without a word
            reason = " ".join(str(exc).split())
            self._errors[node.get_name()] = reason if isinstance(exc, SerRobotError) else \
                f"{type(exc).__name__}: {reason}"
            node.get_logger().error(self._errors[node.get_name()])
            node.get_logger().debug(traceback.format_exc())
            return TransitionCallbackReturn.ERROR

    def _transition(self, node: LifecycleNode, name: str, trigger: Callable[[], TransitionCallbackReturn]) -> None:
        """Run lifecycle transition ``name``; :class:`NodeStartError` with the node's error if it fails."""
        self._errors.pop(node.get_name(), None)
        if trigger() != TransitionCallbackReturn.SUCCESS:
            error = self._errors.pop(node.get_name(), None)
            reason = f": {error}" if error else " (its error is logged above)"
            raise NodeStartError(f"node '{node.get_name()}' failed to {name}{reason}")

    def _spin(self, executor: SingleThreadedExecutor, node: LifecycleNode) -> None:
        """Spin until shutdown. An exception escaping a timer or subscription callback (a bug: nodes
        count bad input themselves) is logged with its traceback and counted in
        :attr:`callback_errors`, and spinning goes on: it would otherwise end this thread, and the
        node would stop while the process runs on."""
        while True:
            try:
                executor.spin()
                return
            except ExternalShutdownException:
                return
            except Exception as exc:  # noqa: BLE001 - keep the node alive, say what happened
                if not executor.context.ok():
                    return
                name = node.get_name()
                self.callback_errors[name] += 1
                count = self.callback_errors[name]
                if count <= 3 or count % 100 == 0:  # the first ones, then every 100th
                    node.get_logger().error(f"callback error #{count} ({type(exc).__name__}: "
                                            f"{' '.join(str(exc).split())}); the node goes on\n"
                                            f"{traceback.format_exc()}")

    def _ordered(self, sources_first: bool) -> list[LifecycleNode]:
        sources = [n for n, k in zip(self.nodes, self.kinds) if k in SOURCE_NODES]
        others = [n for n, k in zip(self.nodes, self.kinds) if k not in SOURCE_NODES]
        return sources + others if sources_first else others + sources

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        for node in self.nodes:
            self._transition(node, "configure", node.trigger_configure)
        for node in self._ordered(sources_first=False):
            self._transition(node, "activate", node.trigger_activate)
            self._active.append(node)

    def sources_finished(self) -> bool:
        """True when there are sources and all of them ran out of audio (non-looping files)."""
        sources = [n for n, k in zip(self.nodes, self.kinds) if k in SOURCE_NODES]
        return bool(sources) and all(n.finished.is_set() for n in sources)

    def recorders_finished(self) -> bool:
        recorders = [n for n, k in zip(self.nodes, self.kinds) if k == "recorder"]
        return bool(recorders) and all(n.finished.is_set() for n in recorders)

    def stop(self, drain_s: float = 0.5) -> None:
        """Deactivate sources, then each consumer in order; after each, wait until its reliable
        messages are acknowledged and give the receivers ``drain_s`` to handle them (a consumer
        publishes what it still holds when it stops); then shut every node down."""
        for node in self._ordered(sources_first=True):
            if node in self._active:
                node.trigger_deactivate()
                _wait_for_acks(node, timeout_s=2.0)
                time.sleep(drain_s)
        self._active = []
        for node in self.nodes:
            node.trigger_shutdown()
        for executor in self.executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5.0)
        for node in self.nodes:
            node.destroy_node()


def _wait_for_acks(node: LifecycleNode, timeout_s: float) -> None:
    """Wait (at most ``timeout_s``) until every subscriber acknowledged ``node``'s reliable messages."""
    from rclpy.duration import Duration
    from rclpy.qos import ReliabilityPolicy

    for publisher in node.publishers:
        if publisher.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
            publisher.wait_for_all_acked(Duration(seconds=timeout_s))


def create_nodes(config: RunConfig, namespace: str = "") -> NodeSet:
    """Instantiate ``config.nodes`` with their validated parameters (rclpy must be initialised)."""
    services = bool(config.node_params("runner")["parameter_services"])
    nodes = [
        node_class(kind)(kind, namespace=namespace, parameter_overrides=parameter_overrides(config.node_params(kind)),
                         start_parameter_services=services)
        for kind in config.nodes
    ]
    return NodeSet(nodes, config.nodes)


class StopOnSignal:
    """SIGINT / SIGTERM set :attr:`event`, so nodes stop in order and bags are closed properly
    (rclpy's own handlers would shut the context down under the running nodes).

    ``with StopOnSignal() as stop:`` gives the event; the previous handlers are restored on exit.
    Outside the main thread (where Python allows no signal handler) nothing is installed and
    the event is only set by whoever holds it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous = {}

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, lambda *_: self.event.set())
        return self.event

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def check_pipeline(config: RunConfig) -> None:
    """Refuse, before any node starts, an inference node that cannot work with the feature node:
    a model trained on other features, or no VAD (both modes need the speech probability)."""
    if "inference" in config.nodes and "features" in config.nodes:
        from ser_robot.inference.model import check_model_for_features

        if not config.node_params("features")["vad"]:
            raise ConfigError(
                "the inference node needs the feature node's speech probability (utterance mode segments "
                "with it, window mode tells speech from silence with it), but features.vad is false: set "
                "features.vad: true, or leave the inference node out of runner.nodes")
        check_model_for_features(config.node_params("inference")["model"], config.node_params("features")["feature_set"])


def run(
    config: RunConfig,
    namespace: str = "",
    duration_s: float = 0.0,
    on_started: Callable[[NodeSet], None] | None = None,
    until: Callable[[], bool] | None = None,
) -> int:
    """Run the configured nodes until SIGINT/SIGTERM, ``duration_s`` (if > 0), the sources
    running out (non-looping files), the recorder finishing or ``until()`` returning True.
    Returns a process exit code (0); a :class:`SerRobotError` (a pipeline refused, a node that
    failed to start) is raised after the nodes are stopped, for the command to report."""
    middleware.init()
    nodes: NodeSet | None = None
    try:
        with StopOnSignal() as stop:
            check_pipeline(config)
            nodes = create_nodes(config, namespace)
            nodes.start()
            if on_started:
                on_started(nodes)
            deadline = time.monotonic() + duration_s if duration_s > 0 else float("inf")
            while not stop.is_set() and time.monotonic() < deadline:
                if nodes.sources_finished() or nodes.recorders_finished() or (until is not None and until()):
                    break
                stop.wait(0.05)
        return 0
    finally:
        if nodes is not None:
            nodes.stop()
        if rclpy.ok():
            rclpy.shutdown()


def spin_single(node_class: type, argv: Sequence[str]) -> int:
    """Entry point of one node for ``ros2 run`` / launch: init with ``argv`` (``--ros-args``
    included), configure and activate, spin until SIGINT/SIGTERM."""
    middleware.init(argv)
    nodes: NodeSet | None = None
    try:
        with StopOnSignal() as stop:
            nodes = NodeSet([node_class()], [node_class.KIND])  # a bad --ros-args -p value raises here
            nodes.start()
            while not stop.is_set() and not (nodes.sources_finished() or nodes.recorders_finished()):
                stop.wait(0.1)
        return 0
    except (SerRobotError, ParameterException) as exc:
        rclpy.logging.get_logger(node_class.KIND).fatal(" ".join(str(exc).split()))
        return 1
    finally:
        if nodes is not None:
            nodes.stop()
        if rclpy.ok():
            rclpy.shutdown()
