"""Message type names and the typestore this package writes with (rosbags, ROS 2 Kilted)."""

from __future__ import annotations

from typing import Any

from rosbags.typesys import Stores

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
BOOL = "std_msgs/msg/Bool"

OUTPUT_TYPESTORE = Stores.ROS2_KILTED
"""Typestore for everything this package writes (output bags, ROS 1 -> ROS 2 conversion)."""
ROSBAG2_VERSION = 9
"""The rosbag2 metadata version Kilted's rosbag2 writes (and so do we)."""


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
