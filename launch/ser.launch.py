"""Launch the ser_robot nodes of a configuration file on a ROS 2 install (Humble or later).

    ros2 launch ser_robot ser.launch.py [config:=/path/ser.yaml] [namespace:=robot1]
                                        [model:=/path/model.pt] [device:=cuda]

Starts the nodes listed under ``runner.nodes`` of the YAML (by default microphone -> features
-> inference), each with its section's parameters, as ``ser-robot run --config`` does in one
process. ``model`` and ``device`` override the inference node's parameters (empty: the YAML's).
The YAML is validated with the same code, and the inference model checked against the feature
node's feature set, before anything starts. Each node configures and activates itself on start
(they are lifecycle nodes: ``ros2 lifecycle set /<node> deactivate`` etc. work as usual).
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

EXECUTABLES = {
    "microphone": "microphone_node",
    "file_source": "file_source_node",
    "recorder": "recorder_node",
    "level_meter": "level_meter_node",
    "features": "feature_node",
    "corpus_player": "corpus_player_node",
    "inference": "inference_node",
}


def _inference_overrides(context) -> dict:
    values = {key: LaunchConfiguration(key).perform(context) for key in ("model", "device")}
    return {"inference": {k: v for k, v in values.items() if v}}


def _nodes(context, *args, **kwargs):
    from ser_robot.config import load_config
    from ser_robot.ros.runner import check_pipeline

    config = load_config(LaunchConfiguration("config").perform(context), _inference_overrides(context))
    check_pipeline(config)
    namespace = LaunchConfiguration("namespace").perform(context)
    return [
        Node(
            package="ser_robot",
            executable=EXECUTABLES[kind],
            name=kind,
            namespace=namespace,
            parameters=[config.node_params(kind)],
            output="screen",
            emulate_tty=True,
        )
        for kind in config.nodes
    ]


def generate_launch_description() -> LaunchDescription:
    default_config = os.path.join(get_package_share_directory("ser_robot"), "config", "ser.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("config", default_value=default_config, description="parameters YAML"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of every node"),
            DeclareLaunchArgument("model", default_value="", description="inference checkpoint (empty: the YAML's)"),
            DeclareLaunchArgument("device", default_value="", description="inference device: auto, cpu, cuda[:N]"),
            OpaqueFunction(function=_nodes),
        ]
    )
