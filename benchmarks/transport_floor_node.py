"""The floor under ``dudes_node``'s full-resolution cost: a node that does what the node does
on the wire and nothing else (``benchmarks/bench_node_fullres.py --floor`` starts it).

    python benchmarks/transport_floor_node.py --ros-args -p "cameras:=[front]" \
        [-p output_scale:=0.5]

It takes each camera's newest frame as the node does (``Intake``: a raw subscription the worker
waits on, the CDR decoded by rosbags into views), waits the fixed inference latency
(``DUDES_FIXED_LATENCY_MS``, as ``fixed_latency_node.py``), and publishes the node's outputs
through ``CdrPublisher``: those someone subscribes to (asked every frame, as the node does),
built once by ``OutputBuilder`` from one ``FrameResult`` at the output size and sent with the
input's header. Per frame it pays what every rclpy node with these topics pays, the
middleware's copies, the take, the decode and one CDR encode of each output, and none of the
node's own work (checking, scoring, the confidence image, statistics), so the node's overhead
minus this floor's is what the node itself adds. Its ``/diagnostics`` carry the keys the
benchmark reads, under the node's status name.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.typesys import get_typestore
from sensor_msgs.msg import Image

from benchmarks.fixed_latency_node import latency_ms
from dudes_ros.messages.outputs import IMAGE_TOPICS, OUTPUT_TOPICS, OutputBuilder
from dudes_ros.messages.regions import REGION_TOPICS
from dudes_ros.messages.types import IMAGE, OUTPUT_TYPESTORE, stamp_ns
from dudes_ros.perception import FrameResult, OodConfig, scale_outputs
from dudes_ros.ros.camera_geometry import camera_topic
from dudes_ros.ros.cdr_publisher import CdrPublisher
from dudes_ros.ros.intake import Intake, WorkerOwned
from dudes_ros.ros.node import MSG_CLASSES

NODE_NAME = "dudes_node"  # the benchmark reads the status "<node>: inference" of this name


class FloorNode(Node):
    """Take, wait, publish prebuilt outputs with the input's header; count timings."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME, allow_undeclared_parameters=True,
                         automatically_declare_parameters_from_overrides=True)
        cameras = list(self.get_parameter_or(
            "cameras", rclpy.Parameter("cameras", value=[""])).value)
        self.scale = float(self.get_parameter_or(
            "output_scale", rclpy.Parameter("output_scale", value=1.0)).value)
        self.latency_s = latency_ms() / 1e3
        self.store = get_typestore(OUTPUT_TYPESTORE)
        best_effort = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                                 reliability=ReliabilityPolicy.BEST_EFFORT)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                              reliability=ReliabilityPolicy.RELIABLE)
        owned = WorkerOwned()
        self.pubs = {camera: {name: CdrPublisher(self.create_publisher(
            MSG_CLASSES[msgtype], camera_topic(camera, name), reliable), self.store, msgtype)
            for name, msgtype in OUTPUT_TOPICS.items()} for camera in cameras}
        subs = {camera: self.create_subscription(
            Image, camera_topic(camera, "image"), lambda msg: None, best_effort,
            callback_group=owned, raw=True) for camera in cameras}
        self.intake = Intake(self.context, subs)
        self.prebuilt: dict[tuple[tuple[int, int], frozenset[str]], list] = {}
        self.timings: dict[str, list[float]] = {"inference": [], "age": [], "own": []}
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(0.5, self.publish_diagnostics)
        self.stop = threading.Event()
        self.worker = threading.Thread(target=self.work, daemon=True)
        self.worker.start()

    def outputs(self, shape: tuple[int, int], live: frozenset[str]) -> list:
        """``[(name, message)]`` of one frame at ``shape`` (the input's), built once."""
        key = (shape, live)
        if key not in self.prebuilt:
            rng = np.random.default_rng(0)
            labels, u = scale_outputs(rng.integers(0, 19, shape, dtype=np.uint8),
                                      rng.random(shape, dtype=np.float32), self.scale)
            result = FrameResult(labels, u, 0.0, False, self.latency_s * 1e3,
                                 OodConfig(0.5, 0.1))
            header = self.store.types["std_msgs/msg/Header"](
                stamp=self.store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                frame_id="")
            builder = OutputBuilder(self.store, live, node_name=self.get_fully_qualified_name())
            self.prebuilt[key] = [(name, message) for name, _, message
                                  in builder.messages(header, "camera", result)]
        return self.prebuilt[key]

    def work(self) -> None:
        while not self.stop.is_set():
            taken = self.intake.take_latest(timeout=0.25)
            if not taken.messages:
                continue
            now = time.time_ns()
            frames = {camera: self.store.deserialize_cdr(memoryview(raw), IMAGE)
                      for camera, raw in taken.messages.items()}
            start = time.perf_counter()
            time.sleep(self.latency_s)
            inference = time.perf_counter() - start
            for camera, msg in frames.items():
                pubs = self.pubs[camera]
                live = frozenset(name for name in IMAGE_TOPICS - set(REGION_TOPICS)
                                 if pubs[name].publisher.get_subscription_count() > 0)
                for name, message in self.outputs((msg.height, msg.width), live):
                    if hasattr(message, "header"):
                        message = dataclasses.replace(message, header=msg.header)
                    pubs[name].publish(message)
                stamp = stamp_ns(msg.header)
                own = (time.monotonic_ns() - taken.arrived_ns[camera]) * 1e-9 - inference
                self.timings["inference"].append(inference * 1e3)
                self.timings["age"].append((now - stamp) * 1e-6)
                self.timings["own"].append(own * 1e3)

    def publish_diagnostics(self) -> None:
        values = []
        for name, key in (("inference", "inference"), ("age", "header_age"),
                          ("own", "node_overhead")):
            data = self.timings[name][-200:] or [float("nan")]
            values += [KeyValue(key=f"{key}_p50_ms", value=f"{np.percentile(data, 50):.3f}"),
                       KeyValue(key=f"{key}_p95_ms", value=f"{np.percentile(data, 95):.3f}")]
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: inference",
                                  message="transport floor", values=values)
        self.diagnostics.publish(DiagnosticArray(status=[status]))


def main() -> int:
    rclpy.init(args=sys.argv)
    node = FloorNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.stop.set()
        node.intake.wake()
        node.worker.join()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
