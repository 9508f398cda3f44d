"""dudes_node's anomaly outputs against a drive whose truth is known: a synthetic camera with
its camera_info, the bundled student, a held-out photo on the road. The region box must match
the anomaly's visible pixels and ``ood/points`` must stand where the renderer put the object;
a camera_info of the wrong size stops the points (a WARN naming the camera) and nothing else.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from tests.test_node import start_node

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from dudes_ros.anomaly_regions import box_iou  # noqa: E402
from dudes_ros.data.synthetic import render_drive  # noqa: E402
from dudes_ros.demo.sources import ENTRY_HEIGHT  # noqa: E402
from dudes_ros.messages.conversions import array_to_rclpy_image_fields  # noqa: E402
from dudes_ros.resources import bundled_model  # noqa: E402

SIZE = (256, 512)
SEED, FRAMES, ENTER, LEAVE = 0, 72, 24, 48
SENT = range(ENTER - 2, 41)  # before it enters, and while its ground contact is in view
QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
# The goals of the issue: IoU >= 0.5 counts as found; distance error <= 5 % of range.
FOUND_IOU, MAX_DISTANCE_ERROR = 0.5, 0.05
# Found within raise_after (4) frames of entering is the goal; this drive's region comes on
# frame ENTER + 4 (benchmarks/anomaly_regions.py gives the recall over many drives).
FOUND_BY = ENTER + 4


@pytest.fixture(scope="module")
def drive():
    scenes, truth = render_drive(SEED, SIZE, FRAMES, ENTER, LEAVE, "held-out-photo",
                                 entry_height=round(SIZE[0] * ENTRY_HEIGHT))
    return scenes, truth


def truth_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class Planner:
    """The camera (image + camera_info) and a planner reading the anomaly outputs."""

    def __init__(self) -> None:
        self.node = rclpy.create_node("dudes_test_regions")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.image = self.node.create_publisher(Image, "image", QOS)
        self.info = self.node.create_publisher(CameraInfo, "camera_info", QOS)
        self.got: dict[str, dict[str, object]] = {"ood/regions": {}, "ood/points": {},
                                                  "ood/mask": {}, "segmentation": {}}
        self.subs = [self.node.create_subscription(
            {"ood/regions": DiagnosticArray, "ood/points": PointCloud2}.get(name, Image), name,
            lambda m, n=name: self.got[n].__setitem__(m.header.frame_id, m), QOS)
            for name in self.got]
        self.warnings: list[str] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, QOS)

    def _diagnostics(self, msg) -> None:
        self.warnings += [s.message for s in msg.status if s.name.endswith(": inference")]

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not condition():
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def camera_info(self, f: float, cx: float, cy: float, size: tuple[int, int]) -> None:
        msg = CameraInfo(height=size[0], width=size[1], distortion_model="plumb_bob")
        msg.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
        msg.header.frame_id = "camera_optical"
        self.info.publish(msg)

    def send(self, frame_id: str, rgb: np.ndarray, outputs: tuple[str, ...]) -> None:
        msg = Image(**array_to_rclpy_image_fields(rgb, "rgb8"))
        msg.header.frame_id = frame_id
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.image.publish(msg)
        assert self.spin_until(lambda: all(frame_id in self.got[n] for n in outputs), 30), \
            frame_id


@pytest.fixture
def node(ros_context, tmp_path, drive):
    log = tmp_path / "node.log"
    height = drive[1].camera.height  # the renderer's camera: a level road this far below
    process = start_node(dict(os.environ), log, model=str(bundled_model()), device="cpu",
                         backend="onnxruntime", qos__reliability="reliable",
                         diagnostics_period=0.2, max_input_age=0.0,
                         ground__height=height, regions__segmentation_class=250)
    planner = Planner()
    try:
        assert planner.spin_until(
            lambda: planner.image.get_subscription_count() > 0
            and planner.info.get_subscription_count() > 0
            and all(s.get_publisher_count() > 0 for s in planner.subs), 90), log.read_text()
        yield planner, log
    finally:
        planner.node.destroy_node()
        process.terminate()
        process.wait(timeout=20)


def region_boxes(msg) -> list[tuple[int, int, int, int]]:
    boxes = []
    for status in msg.status:
        v = {kv.key: int(kv.value) for kv in status.values if kv.key in ("x", "y", "width",
                                                                         "height")}
        boxes.append((v["x"], v["y"], v["x"] + v["width"], v["y"] + v["height"]))
    return boxes


def test_regions_and_points_match_the_rendered_anomaly(node, drive):
    planner, log = node
    scenes, truth = drive
    camera = truth.camera
    f, cx, cy = camera.intrinsics(SIZE)
    planner.camera_info(f, cx, cy, SIZE)
    planner.spin_until(lambda: False, 0.5)  # camera_info reaches the node first
    outputs = ("ood/regions", "ood/mask", "segmentation", "ood/points")
    for k in SENT:
        planner.send(f"f{k}", np.ascontiguousarray(scenes[k].image), outputs)
    found, errors = [], []
    for k in SENT:
        regions = planner.got["ood/regions"][f"f{k}"]
        stamp = regions.header.stamp
        assert (stamp.sec, stamp.nanosec) == (planner.got["ood/mask"][f"f{k}"].header.stamp.sec,
                                             planner.got["ood/mask"][f"f{k}"].header.stamp.nanosec)
        mask = np.asarray(planner.got["ood/mask"][f"f{k}"].data).reshape(SIZE)
        seg = np.asarray(planner.got["segmentation"][f"f{k}"].data).reshape(SIZE)
        assert set(np.unique(mask)) <= {0, 255}
        assert (seg[mask > 0] == 250).all()  # the nav2 class of anomalous pixels
        if k < ENTER:
            assert regions.status == [], f"frame {k}: a region before the anomaly entered"
            continue
        best = max((box_iou(b, truth_box(scenes[k].anomaly_mask)) for b in
                    region_boxes(regions)), default=0.0)
        if best >= FOUND_IOU:
            found.append(k)
            cloud = planner.got["ood/points"][f"f{k}"]
            assert cloud.header.frame_id == f"f{k}" and cloud.point_step == 12
            points = np.frombuffer(bytes(cloud.data), "<f4").reshape(-1, 3)
            nearest = float(points[:, 2].min())
            errors.append(abs(nearest - truth.distance[k]) / truth.distance[k])
            assert np.allclose(points[:, 1], camera.height, atol=1e-3)  # on the road
    assert found and found[0] <= FOUND_BY, (found, log.read_text()[-2000:])
    assert found == list(range(found[0], SENT[-1] + 1))  # kept once found
    assert max(errors) <= MAX_DISTANCE_ERROR, errors


def test_a_camera_info_of_another_size_stops_the_points_and_says_why(node, drive):
    planner, _ = node
    scenes, truth = drive
    f, cx, cy = truth.camera.intrinsics(SIZE)
    planner.camera_info(f, cx, cy, (480, 640))
    planner.spin_until(lambda: False, 0.5)
    k = ENTER + 8
    planner.send("wrong", np.ascontiguousarray(scenes[k].image), ("ood/regions", "ood/mask"))
    assert region_boxes(planner.got["ood/regions"]["wrong"])  # regions are unaffected
    planner.warnings.clear()
    expected = "camera camera: camera_info is 640x480 but the image is 512x256"
    assert planner.spin_until(lambda: any(expected in w for w in planner.warnings), 5), \
        planner.warnings[-3:]
    planner.spin_until(lambda: False, 0.5)
    assert "wrong" not in planner.got["ood/points"]
    planner.camera_info(f, cx, cy, SIZE)  # fixed: points again, the WARN goes
    planner.spin_until(lambda: False, 0.5)
    planner.send("fixed", np.ascontiguousarray(scenes[k].image), ("ood/points",))
    planner.warnings.clear()
    assert planner.spin_until(lambda: len(planner.warnings) >= 2, 5)
    assert not any("camera_info" in w for w in planner.warnings[1:])
