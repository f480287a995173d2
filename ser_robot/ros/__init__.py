"""ROS 2 nodes of ser_robot: thin lifecycle-node adapters around the library.

Only modules in this package import ``rclpy``. Nodes: :mod:`microphone_node`,
:mod:`file_source_node`, :mod:`recorder_node`, :mod:`level_meter_node`; :mod:`runner` starts a
configured set of them in one process, :mod:`player` replays bags.
"""
