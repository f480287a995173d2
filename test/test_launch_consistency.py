"""The launch file and the runner start the same nodes (launch itself needs a ROS install)."""

import ast
import pathlib

from ser_robot.config import NODE_KINDS

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_launch_file_knows_every_node_kind_and_setup_installs_its_executable():
    tree = ast.parse((ROOT / "launch" / "ser.launch.py").read_text())
    executables = next(
        ast.literal_eval(node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXECUTABLES"
    )
    assert set(executables) == set(NODE_KINDS)
    setup = (ROOT / "setup.py").read_text()
    for kind, executable in executables.items():
        assert f"{executable} = ser_robot.ros.{executable}:main" in setup, kind


def test_runner_knows_every_node_kind():
    from ser_robot.ros.runner import NODE_CLASSES, node_class

    assert set(NODE_CLASSES) == set(NODE_KINDS)
    assert node_class("level_meter").KIND == "level_meter"


def test_replay_launch_starts_installed_executables_of_known_kinds():
    tree = ast.parse((ROOT / "launch" / "replay.launch.py").read_text())
    executables = next(
        ast.literal_eval(node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "executables"
    )
    assert set(executables) <= set(NODE_KINDS)
    setup = (ROOT / "setup.py").read_text()
    for kind, executable in executables.items():
        assert f"{executable} = ser_robot.ros.{executable}:main" in setup, kind
