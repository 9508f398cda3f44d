"""The demo's camera: publishes a drive to the node, collects every output, records an MCAP bag.

This is the one demo module that imports rclpy (like ``dudes_ros.ros`` it is a ROS adapter);
it runs in the ``dudes demo`` process, the node in another. Pacing: frame i is published at
``start + i / rate`` but never before all outputs of frame i - 1 arrived (or timed out), so
every frame is processed, which the alarm timing needs. Inputs and outputs are recorded from
the serialized bytes as they travel, every message of a frame at the frame's header stamp
(``ood_alarm``, a std_msgs/Bool without header, belongs to the frame in flight).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore
from sensor_msgs.msg import Image
from std_msgs.msg import Bool
from tqdm import tqdm

from dudes_ros.demo.node_process import NodeProcess
from dudes_ros.demo.report import OUTPUTS, FrameRecord
from dudes_ros.demo.sources import Drive
from dudes_ros.messages.conversions import array_to_rclpy_image_fields
from dudes_ros.messages.outputs import OUTPUT_TOPICS
from dudes_ros.messages.types import (
    BOOL,
    DIAGNOSTIC_ARRAY,
    IMAGE,
    OUTPUT_TYPESTORE,
    ROSBAG2_VERSION,
    stamp_ns,
)

LOG = logging.getLogger(__name__)
FRAME_ID = "dudes_demo_camera"
DIAGNOSTICS_WAIT_S = 2.5  # the node's default diagnostics_period is 1 s
# What the demo records: its input and the node's outputs named in OUTPUTS, typed as the node
# publishes them (``OUTPUT_TOPICS``).
MSGTYPES = {"image": IMAGE, **{suffix: OUTPUT_TOPICS[suffix] for suffix in OUTPUTS}}
MESSAGE_CLASSES = {suffix: {IMAGE: Image, DIAGNOSTIC_ARRAY: DiagnosticArray, BOOL: Bool}[t]
                   for suffix, t in MSGTYPES.items()}


class NodeFailed(RuntimeError):
    """The node process exited or never came up; the message holds its log tail."""


@dataclass(frozen=True)
class PlayResult:
    """What ``play`` saw: per-frame records, the node's last ``/diagnostics`` values, output
    messages that matched no published frame (per topic suffix), seconds until the node was
    connected (counted from ``play``'s start) and seconds spent streaming."""

    records: list[FrameRecord]
    diagnostics: dict[str, str]
    unmatched: dict[str, int]
    connect_s: float
    stream_s: float


class _Session:
    """Records of published frames and the bag writer; fed by the subscription callbacks."""

    def __init__(self, writer: Writer, connections: dict[str, Any]) -> None:
        self.writer = writer
        self.connections = connections
        self.records: list[FrameRecord] = []
        self.by_stamp: dict[int, FrameRecord] = {}
        self.in_flight: FrameRecord | None = None
        self.unmatched: Counter[str] = Counter()
        self.diagnostics: dict[str, str] = {}

    def published(self, record: FrameRecord, raw: bytes) -> None:
        self.records.append(record)
        self.by_stamp[record.stamp_ns] = record
        self.in_flight = record
        self.writer.write(self.connections["image"], record.stamp_ns, raw)

    def output(self, suffix: str, raw: bytes) -> None:
        now = time.monotonic()
        if suffix == "ood_alarm":
            record = self.in_flight
            if record is None or suffix in record.received:
                self.unmatched[suffix] += 1
                return
            record.alarm = bool(deserialize_message(raw, Bool).data)
        else:
            msg = deserialize_message(raw, MESSAGE_CLASSES[suffix])
            record = self.by_stamp.get(stamp_ns(msg.header))
            if record is None or suffix in record.received:
                self.unmatched[suffix] += 1
                return
            if suffix == "ood":
                status = msg.status[0]
                level = status.level  # a ROS byte: bytes of length 1 in rclpy
                record.set_ood(ord(level) if isinstance(level, bytes) else int(level),
                               {kv.key: kv.value for kv in status.values})
            elif suffix == "ood/regions":
                record.set_regions([{kv.key: kv.value for kv in status.values}
                                    for status in msg.status])
        record.received[suffix] = now
        self.writer.write(self.connections[suffix], record.stamp_ns, raw)

    def diagnostic(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": inference"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}


def play(drive: Drive, node: NodeProcess, bag_path: Path, *, namespace: str, rate: float,
         startup_timeout: float = 120.0, frame_timeout: float = 30.0,
         progress: bool = True) -> PlayResult:
    """Publish ``drive`` on ``NAMESPACE/image`` to the running ``node`` and record inputs and
    outputs to the MCAP rosbag2 directory ``bag_path``.

    Raises ``NodeFailed`` when the node exits or does not connect within ``startup_timeout``
    seconds.
    """
    begin = time.monotonic()
    typestore = get_typestore(OUTPUT_TYPESTORE)
    context = Context()
    rclpy.init(args=[], context=context)
    ros_node = rclpy.create_node("dudes_demo_camera", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(ros_node)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.RELIABLE)
    try:
        with Writer(bag_path, version=ROSBAG2_VERSION,
                    storage_plugin=StoragePlugin.MCAP) as writer:
            connections = {suffix: writer.add_connection(f"{namespace}/{suffix}", msgtype,
                                                         typestore=typestore)
                           for suffix, msgtype in MSGTYPES.items()}
            session = _Session(writer, connections)
            publisher = ros_node.create_publisher(Image, f"{namespace}/image", qos)
            subscriptions = [
                ros_node.create_subscription(MESSAGE_CLASSES[suffix], f"{namespace}/{suffix}",
                                             lambda raw, s=suffix: session.output(s, raw),
                                             qos, raw=True)
                for suffix in OUTPUTS]
            ros_node.create_subscription(DiagnosticArray, "/diagnostics", session.diagnostic,
                                         qos)
            _wait_until_connected(executor, node, publisher, subscriptions, startup_timeout)
            connected = time.monotonic()
            _publish_all(drive, executor, ros_node, node, publisher, session, rate,
                         frame_timeout, progress)
            stream_s = time.monotonic() - connected
            _await_diagnostics(executor, session, DIAGNOSTICS_WAIT_S)
            return PlayResult(session.records, session.diagnostics, dict(session.unmatched),
                              connected - begin, stream_s)
    finally:
        executor.shutdown()
        ros_node.destroy_node()
        context.try_shutdown()


def _await_diagnostics(executor: SingleThreadedExecutor, session: _Session,
                       timeout: float) -> None:
    """Spin until the node's ``/diagnostics`` counts every frame we saw complete (it reports
    once per ``diagnostics_period``), or ``timeout`` s."""
    done = sum(r.complete for r in session.records)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(session.diagnostics.get("frames_processed", -1)) >= done:
            return
        executor.spin_once(timeout_sec=0.05)


def _check_alive(node: NodeProcess) -> None:
    if not node.alive:
        raise NodeFailed(f"the dudes node exited with code {node.returncode}; its log ends "
                         f"with:\n{node.log_tail()}")


def _wait_until_connected(executor: SingleThreadedExecutor, node: NodeProcess, publisher: Any,
                          subscriptions: list[Any], timeout: float) -> None:
    """Spin until the node subscribes to the image and all its outputs reach us."""
    deadline = time.monotonic() + timeout
    while not (publisher.get_subscription_count() > 0
               and all(s.get_publisher_count() > 0 for s in subscriptions)):
        _check_alive(node)
        if time.monotonic() > deadline:
            raise NodeFailed(f"the dudes node did not connect within {timeout:.0f} s; its log "
                             f"ends with:\n{node.log_tail()}")
        executor.spin_once(timeout_sec=0.05)


def _publish_all(drive: Drive, executor: SingleThreadedExecutor, ros_node: Any,
                 node: NodeProcess, publisher: Any, session: _Session, rate: float,
                 frame_timeout: float, progress: bool) -> None:
    period = 1.0 / rate
    start = time.monotonic()
    frames = drive.frames()
    for index in tqdm(range(drive.count), desc="frames", unit="frame", disable=not progress,
                      dynamic_ncols=True):
        rgb = next(frames)
        due = start + index * period
        while (wait := due - time.monotonic()) > 0:
            executor.spin_once(timeout_sec=wait)
        msg = Image(**array_to_rclpy_image_fields(rgb, "rgb8"))
        msg.header.frame_id = FRAME_ID
        msg.header.stamp = ros_node.get_clock().now().to_msg()
        record = FrameRecord(index, stamp_ns(msg.header), rgb.shape[0], rgb.shape[1],
                             published=time.monotonic())
        session.published(record, serialize_message(msg))
        publisher.publish(msg)
        deadline = record.published + frame_timeout
        while not record.complete:
            _check_alive(node)
            if time.monotonic() > deadline:
                LOG.warning("frame %d: outputs %s missing after %.0f s", index,
                            sorted(set(OUTPUTS) - set(record.received)), frame_timeout)
                break
            executor.spin_once(timeout_sec=0.01)
