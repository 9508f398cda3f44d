"""Large images across processes with the shipped Fast DDS profile (DESIGN §4), on either Fast
DDS generation (Kilted's 3.x, Jazzy's 2.x)."""

import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO
from tests.helpers.publish_pattern import pattern

pytestmark = pytest.mark.ros

H, W, RATE, SECONDS = 512, 1024, 30, 5


def test_1024x512_rgb8_at_30hz_across_processes(ros_env):
    rclpy = pytest.importorskip("rclpy")
    from dudes_ros.ros.distro import current

    # the profile is given under the name this distribution's Fast DDS reads (tests/conftest.py)
    variable = current().profile_variable
    assert ros_env.get(variable), f"{variable} is not set: Fast DDS would use its defaults"
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    count = RATE * SECONDS
    received: dict[int, bool] = {}
    rclpy.init()
    try:
        node = rclpy.create_node("pattern_subscriber")

        def on_image(msg):
            index = int(msg.header.frame_id)
            data = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)
            received[index] = (msg.encoding == "rgb8" and msg.step == W * 3
                               and np.array_equal(data, pattern(index, H, W)))

        node.create_subscription(Image, "camera/image", on_image, qos_profile_sensor_data)
        publisher = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.publish_pattern", "camera/image", str(count),
             str(RATE), str(H), str(W)], env=ros_env, cwd=REPO)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        deadline = time.monotonic() + SECONDS + 30
        while publisher.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        for _ in range(20):
            executor.spin_once(timeout_sec=0.01)
        assert publisher.wait(timeout=10) == 0
        node.destroy_node()
    finally:
        rclpy.shutdown()
    print(f"{len(received)}/{count} frames arrived intact: "
          f"{sum(received.values())}")  # shown with -s: the measured figure
    assert len(received) >= 0.95 * count, f"only {len(received)}/{count} frames arrived"
    assert all(received.values()), "some frames arrived with wrong content"
