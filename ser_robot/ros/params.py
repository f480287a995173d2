"""Declaring a node's :class:`~ser_robot.config.ParamSpec` list as ROS 2 parameters."""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.node import Node

from ser_robot.config import NODE_PARAMS, ParamSpec, ParamValue, validate_node_params

__all__ = ["descriptor", "declare_parameters", "read_parameters"]

_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
    list: ParameterType.PARAMETER_STRING_ARRAY,
}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The full ROS descriptor of ``spec``: type, description, range or choices, read-only."""
    desc = ParameterDescriptor(
        name=spec.name,
        type=_TYPES[spec.kind],
        description=spec.description,
        read_only=spec.read_only,
    )
    if spec.choices:
        desc.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.kind is int and (spec.min is not None or spec.max is not None):
        desc.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=0)]
    if spec.kind is float and (spec.min is not None or spec.max is not None):
        desc.floating_point_range = [
            FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max), step=0.0)
        ]
    return desc


def declare_parameters(node: Node, kind: str) -> None:
    """Declare the parameters of node kind ``kind`` (a key of ``NODE_PARAMS``) on ``node``.

    rclpy rejects an override of the wrong type or outside the range here, naming the parameter.
    """
    for spec in NODE_PARAMS[kind]:
        node.declare_parameter(spec.name, spec.default, descriptor(spec))


def read_parameters(node: Node, kind: str) -> dict[str, ParamValue]:
    """Current parameter values of ``node``, validated like a configuration file.

    Raises :class:`~ser_robot.errors.ConfigError` naming the bad parameter.
    """
    values = {}
    for spec in NODE_PARAMS[kind]:
        value = node.get_parameter(spec.name).value
        values[spec.name] = list(value) if isinstance(value, (list, tuple)) else value
    return validate_node_params(kind, values)
