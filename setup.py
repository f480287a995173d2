"""ament_python package ser_robot (the library and its ROS 2 nodes)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ser_robot"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.ros": ["fastdds_profiles.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/models/default", glob("models/default/model.pt") + glob("models/default/MODEL_CARD.md")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ser_robot maintainers",
    maintainer_email="ser-robot@example.org",
    description="Robust speech emotion recognition for robots (ROS 2).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "ser-robot = ser_robot.cli:main",
            "microphone_node = ser_robot.ros.microphone_node:main",
            "file_source_node = ser_robot.ros.file_source_node:main",
            "recorder_node = ser_robot.ros.recorder_node:main",
            "level_meter_node = ser_robot.ros.level_meter_node:main",
            "feature_node = ser_robot.ros.feature_node:main",
            "corpus_player_node = ser_robot.ros.corpus_player_node:main",
            "inference_node = ser_robot.ros.inference_node:main",
        ],
    },
)
