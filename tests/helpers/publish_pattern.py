"""Publish numbered rgb8 test patterns at a fixed rate (a camera stand-in in its own process).

Usage: python -m tests.helpers.publish_pattern TOPIC COUNT RATE_HZ HEIGHT WIDTH
Frame i carries frame_id "i" and pixel data ``pattern(i)``; it waits for a subscriber first.
"""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def pattern(index: int, height: int, width: int) -> np.ndarray:
    """The expected rgb8 content of frame ``index``: uint8 [H, W, 3]."""
    base = (np.arange(height * width * 3, dtype=np.uint32) % 251).astype(np.uint8)
    return (base + np.uint8(index % 256)).reshape(height, width, 3)


def main() -> None:
    topic, count, rate, height, width = sys.argv[1], *map(int, sys.argv[2:6])
    rclpy.init()
    node = rclpy.create_node("pattern_publisher")
    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    deadline = time.monotonic() + 20.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let discovery settle in both directions
    period = 1.0 / rate
    start = time.monotonic()
    for i in range(count):
        msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
        msg.header.frame_id = str(i)
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.data = pattern(i, height, width).tobytes()
        pub.publish(msg)
        time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
