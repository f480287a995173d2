"""Point the CMake exports of the PyPI ROS 2 wheels at this interpreter's include folders.

The ``ros-*`` wheels were built under ``/opt/python/cp311-cp311`` and their exported CMake
targets (e.g. ``std_msgs__rosidl_generator_py``) name that prefix's Python and NumPy include
folders. Building an interface package against them fails unless those paths exist, so this
script rewrites them, inside the virtual environment only, to the running interpreter's
folders. It is idempotent and needs no root.

Usage: python scripts/fix_ros_wheel_cmake.py   (run with the venv's python)
"""

from __future__ import annotations

import pathlib
import sys
import sysconfig

import numpy

BUILD_PYTHON_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILD_NUMPY_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def main() -> int:
    prefix = pathlib.Path(sys.prefix)
    replacements = {
        BUILD_PYTHON_INCLUDE: sysconfig.get_paths()["include"],
        BUILD_NUMPY_INCLUDE: numpy.get_include(),
    }
    changed = 0
    for path in sorted((prefix / "share").glob("*/cmake/*.cmake")):
        text = path.read_text()
        new = text
        for old, replacement in replacements.items():
            new = new.replace(old, replacement)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"fix_ros_wheel_cmake: rewrote {changed} CMake file(s) under {prefix / 'share'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
