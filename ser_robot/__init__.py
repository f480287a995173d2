"""ser_robot: robust speech emotion recognition for robots.

The library (everything but :mod:`ser_robot.ros`) imports and runs without ROS 2; the ROS 2
nodes under :mod:`ser_robot.ros` are thin adapters around it.
"""

__version__ = "0.1.0"
