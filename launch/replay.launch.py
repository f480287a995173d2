"""Replay recorded audio or a corpus through the pipeline and record the results (ROS 2 install).

    ros2 launch ser_robot replay.launch.py bag:=/path/to/bag [output:=bags/replay]
    ros2 launch ser_robot replay.launch.py manifest:=/path/manifest.jsonl [speakers:=s06f_rp_f1,s06m_rms]

With ``bag``: ``ros2 bag play`` republishes the bag's ``audio`` (and ``ground_truth``, when it
has one) into the feature node -> inference node -> recorder. With ``manifest``: the corpus
player publishes the utterances (and their labels on ``ground_truth``) instead. The recorder
writes ``audio``, ``features``, ``vad``, ``emotion``, ``ground_truth`` and ``diagnostics`` to
``output``; then ``ser-robot evaluate-bag <output>`` scores it. The node parameters come from
``config`` (default: the package's ``config/ser.yaml``), validated like ``ser-robot run``'s;
``model`` and ``device`` override the inference node's. The same without a ROS install:
``ser-robot run --config <yaml with nodes [corpus_player, features, inference, recorder]>``
(as ``make demo`` does), or ``ser-robot play BAG`` next to ``ser-robot run``.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

RECORDED = ["audio", "features", "vad", "emotion", "ground_truth", "diagnostics"]


def _actions(context, *args, **kwargs):
    from ser_robot.config import load_config, validate_node_params
    from ser_robot.ros.runner import check_pipeline

    value = {key: LaunchConfiguration(key).perform(context)
             for key in ("config", "bag", "manifest", "speakers", "output", "model", "device")}
    if bool(value["bag"]) == bool(value["manifest"]):
        raise RuntimeError("replay.launch.py: give exactly one of bag:=<bag folder> or manifest:=<manifest.jsonl>")
    inference = {k: value[k] for k in ("model", "device") if value[k]}
    config = load_config(value["config"], {"inference": inference})
    check_pipeline(config)
    recorder = validate_node_params("recorder", {**config.node_params("recorder"), "output": value["output"],
                                                 "topics": RECORDED})
    nodes = {"features": config.node_params("features"), "inference": config.node_params("inference"),
             "recorder": recorder}
    actions = []
    if value["manifest"]:
        player = {**config.node_params("corpus_player"), "manifest": value["manifest"], "output": "topic"}
        if value["speakers"]:
            player["speakers"] = value["speakers"].split(",")
        nodes["corpus_player"] = validate_node_params("corpus_player", player)
    else:
        actions.append(ExecuteProcess(cmd=["ros2", "bag", "play", value["bag"], "--topics", "/audio", "/ground_truth"],
                                      output="screen"))
    executables = {"features": "feature_node", "inference": "inference_node", "recorder": "recorder_node",
                   "corpus_player": "corpus_player_node"}
    return [Node(package="ser_robot", executable=executables[kind], name=kind, parameters=[params], output="screen",
                 emulate_tty=True) for kind, params in nodes.items()] + actions


def generate_launch_description() -> LaunchDescription:
    default_config = os.path.join(get_package_share_directory("ser_robot"), "config", "ser.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default_config, description="parameters YAML"),
        DeclareLaunchArgument("bag", default_value="", description="bag with an audio topic to replay"),
        DeclareLaunchArgument("manifest", default_value="", description="corpus manifest to play instead"),
        DeclareLaunchArgument("speakers", default_value="", description="comma-separated speakers of the manifest"),
        DeclareLaunchArgument("output", default_value="", description="bag to record (empty: bags/ser_robot_<time>)"),
        DeclareLaunchArgument("model", default_value="", description="inference checkpoint (empty: the YAML's)"),
        DeclareLaunchArgument("device", default_value="", description="inference device: auto, cpu, cuda[:N]"),
        OpaqueFunction(function=_actions),
    ])
