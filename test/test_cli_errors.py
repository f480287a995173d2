"""Errors as users meet them: one line, ``ser-robot <command>: error: <what was wrong>; <what to do>``,
a non-zero exit status and no traceback (issue 16, field reliability)."""

import argparse
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, ser_robot
from ser_robot.cli import _number, _remaps, build_parser
from ser_robot.config import PLAY_RATE
from ser_robot.errors import CheckpointError, ConfigError
from ser_robot.train.checkpoint import load_checkpoint


def one_line_error(result, command: str) -> str:
    """The single line of stderr of a failed ``ser-robot <command>``."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ser-robot {command}: error: "), result.stderr
    return lines[0]


# --- numeric options: finite and within their documented range ---------------------------------


@pytest.mark.parametrize("text, message", [
    ("0", "0 is below its minimum 0.01; use a value from 0.01 to 1000.0"),
    ("-1", "-1 is below its minimum 0.01"),
    ("1e-300", "1e-300 is below its minimum 0.01"),
    ("1e300", "1e300 is above its maximum 1000.0"),
    ("nan", "nan is not a finite number; use a value from 0.01 to 1000.0"),
    ("inf", "inf is not a finite number"),
    ("fast", "'fast' is not a number; use a value from 0.01 to 1000.0"),
])
def test_play_rate_must_be_finite_and_in_range(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{message}"):
        _number(PLAY_RATE)(text)


def test_numbers_within_range_are_accepted():
    assert _number(PLAY_RATE)("0.01") == 0.01 and _number(PLAY_RATE)("2") == 2.0
    args = build_parser().parse_args(["play", "bag", "--rate", "1e2", "--wait-for-subscribers", "5"])
    assert (args.rate, args.wait_for_subscribers) == (100.0, 5.0)


@pytest.mark.parametrize("argv, message", [
    (["play", "bag", "--rate", "nan"], "ser-robot play: error: argument --rate: nan is not a finite number; use"),
    (["play", "bag", "--wait-for-subscribers", "-1"], "argument --wait-for-subscribers: -1 is below its minimum 0.0"),
    (["record", "--duration", "nan"], "ser-robot record: error: argument --duration: nan is not a finite number"),
    (["record", "--duration", "1e300"], "argument --duration: 1e300 is above its maximum 10000000.0; use a value"),
    (["run", "--duration=-inf"], "ser-robot run: error: argument --duration: -inf is not a finite number"),
    (["play"], "ser-robot play: error: the following arguments are required: bag; see ser-robot play --help"),
    (["run", "--namespace", "bad ns"], "ser-robot run: error: argument --namespace: 'bad ns' is not a valid ROS "
                                       "namespace (it contains ' '); use"),
])
def test_argument_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "usage:" not in err


def test_remap_targets_must_be_topic_names():
    assert _remaps(["audio:=/robot1/audio"]) == {"audio": "/robot1/audio"}
    with pytest.raises(ConfigError, match=r"^--remap audio:=bad topic: 'bad topic' is not a valid ROS topic name "
                                          r"\(it contains ' '\); use"):
        _remaps(["audio:=bad topic"])


# --- as users meet them: the real command -------------------------------------------------------


@pytest.mark.parametrize("args, command, message", [
    (["run", "--set", "features.output_topic=bad topic!"], "run",
     "--set features.output_topic=bad topic!: node 'features': key 'output_topic' got 'bad topic!': not a "
     "valid ROS topic name (it contains ' ', '!'); use letters, digits"),
    (["run", "--set", "features.max_frame_s=.nan"], "run",
     "--set features.max_frame_s=.nan: node 'features': key 'max_frame_s' must be a number from 0.001 to 60.0, "
     "got nan"),
    (["run", "--set", "inference.window_s=!!python/object:os.system x"], "run",
     "--set inference.window_s=!!python/object:os.system x: VALUE is not plain YAML data"),
    (["record", "no spaces allowed"], "record",
     "node 'recorder': key 'topics' got 'no spaces allowed': not a valid ROS topic name"),
    (["record", "audio", "-o", "/proc/self/bag"], "record",
     "node 'recorder': key 'output' got '/proc/self/bag': no folder can be created in /proc/self"),
    (["play", "bag", "--rate", "0"], "play", "argument --rate: 0 is below its minimum 0.01"),
])
def test_the_command_refuses_bad_values_in_one_line(args, command, message):
    assert message in one_line_error(ser_robot(*args, timeout=60), command)


def test_an_empty_checkpoint_is_named_before_any_node_starts(tmp_path):
    empty = tmp_path / "model.pt"
    empty.touch()
    line = one_line_error(ser_robot("run", "--set", "runner.nodes=[features,inference]",
                                    "--set", f"inference.model={empty}", timeout=60), "run")
    assert f"checkpoint {empty} is empty (0 bytes); " in line


# --- checkpoints: our reason, never torch's advice to load unsafely -----------------------------


def test_checkpoint_load_errors_say_why_and_never_advise_an_unsafe_load(tmp_path):
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"args": argparse.Namespace(lr=0.1)}, unsafe)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(unsafe)
    message = str(error.value)
    assert message.startswith(f"cannot load checkpoint {unsafe} safely: it holds a Python object "
                              "(argparse.Namespace) that only an unsafe load could build")
    assert "weights_only" not in message and "safe_globals" not in message and "\n" not in message

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(unsafe.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"safely: it is damaged or not a PyTorch checkpoint \(RuntimeError: "
                                              r".*\); write it again"):
        load_checkpoint(truncated)


# --- lifecycle: an exception in a transition callback is never silent --------------------------


@pytest.mark.ros
def test_an_exception_in_configure_is_reported_not_swallowed(rclpy_context):
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    from ser_robot.ros.runner import NodeSet, NodeStartError

    class Raises(LifecycleNode):
        def on_configure(self, state):
            raise RuntimeError("disk\non fire")

    class Fails(LifecycleNode):
        def on_configure(self, state):
            return TransitionCallbackReturn.FAILURE

    for node, message in [(Raises("raises_in_configure"), "failed to configure: RuntimeError: disk on fire$"),
                          (Fails("fails_in_configure"), r"failed to configure \(its error is logged above\)$")]:
        nodes = NodeSet([node], ["level_meter"])
        try:
            with pytest.raises(NodeStartError, match=f"^node '{node.get_name()}' {message}"):
                nodes.start()
        finally:
            nodes.stop(drain_s=0.0)


@pytest.mark.ros
def test_an_exception_in_a_callback_is_logged_and_the_node_goes_on(rclpy_context):
    import threading

    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    from ser_robot.ros.runner import NodeSet

    class Flaky(LifecycleNode):
        """A timer whose first two calls raise (a bug), then count."""

        def __init__(self):
            super().__init__("flaky_timer")
            self.calls, self.fine = 0, threading.Event()

        def on_configure(self, state):
            self.create_timer(0.01, self._tick)
            return TransitionCallbackReturn.SUCCESS

        def _tick(self):
            self.calls += 1
            if self.calls <= 2:
                raise ZeroDivisionError("a bug in a callback")
            if self.calls >= 5:
                self.fine.set()

    node = Flaky()
    nodes = NodeSet([node], ["level_meter"])
    try:
        nodes.start()
        assert node.fine.wait(10.0), f"the node stopped after {node.calls} calls"
        assert nodes.callback_errors == {"flaky_timer": 2}
    finally:
        nodes.stop(drain_s=0.0)


def test_record_reports_a_node_that_fails_to_start_as_record(tmp_path):
    """What the nodes raise once started (a full disk, say) is reported by the command the user ran."""
    code = ("import sys; import ser_robot.ros.runner as runner; from ser_robot.cli import main\n"
            "def start(self): raise runner.NodeStartError(\"node 'recorder' failed to activate: OSError: disk full\")\n"
            "runner.NodeSet.start = start\n"
            f"sys.exit(main(['record', 'audio', '-o', {str(tmp_path / 'bag')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = one_line_error(result, "record")
    assert line == "ser-robot record: error: node 'recorder' failed to activate: OSError: disk full"
    assert "bag:" not in result.stdout


def test_train_refuses_a_tagged_set_value_in_one_line(tmp_path):
    """`ser-robot train --set` reads values as `run --set` does: a YAML tag is one line naming the pair,
    before any manifest is read or model trained."""
    line = one_line_error(ser_robot("train", "--config", "config/train/lakomkin.yaml", "--manifest",
                                    str(tmp_path / "none.jsonl"), "--fold", "0",
                                    "--set", "optimizer.lr=!!python/object:os.system x", timeout=120), "train")
    assert line.startswith("ser-robot train: error: --set optimizer.lr=!!python/object:os.system x: VALUE is not "
                           "plain YAML data (could not determine a constructor for the tag")


def test_stop_on_signal_is_public_and_the_cli_imports_no_private_name():
    """cmd_play used the runner's private _StopOnSignal; it is public now, and the CLI imports only
    public names of ser_robot's modules."""
    import ast
    import os
    import signal

    import ser_robot.ros.runner as runner

    assert "StopOnSignal" in runner.__all__ and not hasattr(runner, "_StopOnSignal")
    before = signal.getsignal(signal.SIGTERM)
    with runner.StopOnSignal() as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    assert signal.getsignal(signal.SIGTERM) is before

    tree = ast.parse((ROOT / "ser_robot" / "cli.py").read_text())
    private = [f"{node.module}.{alias.name}" for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ser_robot")
               for alias in node.names if alias.name.startswith("_")]
    assert private == []
