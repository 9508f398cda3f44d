"""dudes_node publishes only the image outputs someone subscribes to (``ood`` and ``ood_alarm``
always), starts one on the frame after a subscriber arrives, and scales image outputs with
``output_scale`` (labels equal to nearest-downsampling of the full-size labels)."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from tests import test_node
from tests.test_node import as_array, drive_frame, image_msg, start_node

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402

model, offline = test_node.model, test_node.offline
QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)


class Planner:
    """Subscribes to a chosen subset of outputs; ``received[(topic, frame_id)]``."""

    def __init__(self) -> None:
        self.node = rclpy.create_node("dudes_test_planner")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.pub = self.node.create_publisher(Image, "image", QOS)
        self.received: dict[tuple[str, str], object] = {}
        self.alarms: list[bool] = []
        self.live: list[str] = []
        self.subs = {}
        self.node.create_subscription(Bool, "ood_alarm", lambda m: self.alarms.append(m.data),
                                      QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, QOS)

    def _diagnostics(self, msg) -> None:
        for status in msg.status:
            self.live += [kv.value for kv in status.values if kv.key == "live_outputs"]

    def subscribe(self, name: str) -> None:
        self.subs[name] = self.node.create_subscription(
            Image, name, lambda m, n=name: self.received.__setitem__((n, m.header.frame_id), m),
            QOS)

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not condition():
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def send(self, frame_id: str, rgb: np.ndarray) -> None:
        msg = image_msg(rgb, frame_id)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        count = len(self.alarms)
        self.pub.publish(msg)
        assert self.spin_until(lambda: len(self.alarms) > count and all(
            (name, frame_id) in self.received for name in self.subs), 10), frame_id


def test_unwatched_outputs_are_not_published_and_a_new_subscriber_starts(
        ros_context, model, offline, tmp_path):
    log = tmp_path / "node.log"
    process = start_node(dict(os.environ), log, model=model, device="cpu", output_scale=0.5,
                         qos__reliability="reliable", diagnostics_period=0.2,
                         ood__pixel_threshold=0.5, ood__frame_threshold=0.1)
    planner = Planner()
    try:
        planner.subscribe("segmentation")
        assert planner.spin_until(lambda: planner.pub.get_subscription_count() > 0, 60), \
            log.read_text()
        rgb = drive_frame(4, True)
        planner.send("first", rgb)
        seg = planner.received[("segmentation", "first")]
        labels, _ = offline(rgb)
        assert (seg.height, seg.width) == (32, 64)  # output_scale 0.5 of 64x128
        np.testing.assert_array_equal(
            as_array(seg), cv2.resize(labels, (64, 32), interpolation=cv2.INTER_NEAREST))
        assert planner.spin_until(lambda: planner.live and planner.live[-1] ==
                                  "camera: segmentation,ood,ood_alarm", 5), planner.live
        planner.subscribe("confidence")
        assert planner.spin_until(
            lambda: planner.subs["confidence"].get_publisher_count() > 0, 10)
        planner.send("second", rgb)
        confidence = as_array(planner.received[("confidence", "second")])
        u = cv2.resize(offline(rgb)[1], (64, 32), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(confidence, np.rint(255 * (1 - u)).astype(np.uint8))
        assert planner.spin_until(lambda: planner.live[-1] ==
                                  "camera: confidence,segmentation,ood,ood_alarm", 5)
        assert process.poll() is None
    finally:
        planner.node.destroy_node()
        process.terminate()
        process.wait(timeout=20)
