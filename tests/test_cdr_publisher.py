"""CdrPublisher: the bytes rosbags would write, delivered through rcl from a kept buffer."""

import time

import numpy as np
import pytest

from dudes_ros.messages.types import IMAGE, OUTPUT_TYPESTORE

pytestmark = pytest.mark.ros

BOOL = "std_msgs/msg/Bool"


def _typestore():
    from rosbags.typesys import get_typestore

    return get_typestore(OUTPUT_TYPESTORE)


def _image(store, frame_id: str, array: np.ndarray, encoding: str):
    from dudes_ros.messages.conversions import array_to_image_fields

    types = store.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=17, nanosec=42), frame_id=frame_id)
    return types[IMAGE](header=header, **array_to_image_fields(array, encoding))


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_encoding_matches_serialize_cdr_while_the_kept_buffer_is_reused(ros_context):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from dudes_ros.ros.cdr_publisher import CdrPublisher

    store = _typestore()
    node = rclpy.create_node("cdr_encode_test")
    try:
        images = CdrPublisher(node.create_publisher(Image, "enc/image", 1), store, IMAGE)
        rng = np.random.default_rng(0)
        # A long frame id and encoding first, then shorter ones and a smaller image: the bytes
        # the longer message left in the buffer must not show through padding or terminators.
        for frame_id, shape, encoding in [("a_rather_long_frame_id", (4, 5), "32FC1"),
                                          ("cam", (3, 2), "mono8"),
                                          ("c", (64, 48), "32FC1"),
                                          ("", (2, 2), "mono8")]:
            dtype = np.float32 if encoding == "32FC1" else np.uint8
            array = (rng.random(shape) * 200).astype(dtype)
            message = _image(store, frame_id, array, encoding)
            assert images.encode(message).tobytes() == bytes(store.serialize_cdr(message, IMAGE))

        ood = CdrPublisher(node.create_publisher(DiagnosticArray, "enc/ood", 1), store,
                           "diagnostic_msgs/msg/DiagnosticArray")
        types = store.types
        status = types["diagnostic_msgs/msg/DiagnosticStatus"](
            level=1, name="n", message="m", hardware_id="front",
            values=[types["diagnostic_msgs/msg/KeyValue"](key="score", value="0.5")])
        message = types["diagnostic_msgs/msg/DiagnosticArray"](
            header=_image(store, "f", np.zeros((1, 1), np.uint8), "mono8").header,
            status=[status])
        assert ood.encode(message).tobytes() == bytes(
            store.serialize_cdr(message, "diagnostic_msgs/msg/DiagnosticArray"))
    finally:
        node.destroy_node()


@pytest.mark.parametrize("via", ["rcl", "rclpy"])
def test_published_messages_arrive_intact(ros_context, monkeypatch, via):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool

    from dudes_ros.ros import cdr_publisher

    if via == "rclpy":  # as where librcl cannot be loaded
        monkeypatch.setattr(cdr_publisher, "rcl", lambda: None)
    store = _typestore()
    node = rclpy.create_node(f"cdr_publish_test_{via}")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received = []
    node.create_subscription(Image, f"{via}/image", received.append, qos)
    node.create_subscription(Bool, f"{via}/alarm", received.append, qos)
    images = cdr_publisher.CdrPublisher(node.create_publisher(Image, f"{via}/image", qos),
                                        store, IMAGE)
    alarm = cdr_publisher.CdrPublisher(node.create_publisher(Bool, f"{via}/alarm", qos),
                                       store, BOOL)
    assert images.via == alarm.via == via
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        _wait(lambda: images.publisher.get_subscription_count() and
              alarm.publisher.get_subscription_count())
        u = np.random.default_rng(1).random((512, 1024), dtype=np.float32)
        images.publish(_image(store, "front:0", u, "32FC1"))
        images.publish(_image(store, "front:1", u[:8, :16], "32FC1"))
        alarm.publish(store.types[BOOL](data=True))
        deadline = time.monotonic() + 10
        while len(received) < 3:
            assert time.monotonic() < deadline, f"received only {len(received)} of 3"
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
    first, second, flag = sorted(received, key=lambda m: type(m).__name__ == "Bool")
    assert (first.header.frame_id, first.header.stamp.sec, first.header.stamp.nanosec) == (
        "front:0", 17, 42)
    assert (first.height, first.width, first.encoding, first.step) == (512, 1024, "32FC1", 4096)
    np.testing.assert_array_equal(np.frombuffer(first.data, np.float32).reshape(512, 1024), u)
    assert (second.header.frame_id, second.height, second.width) == ("front:1", 8, 16)
    np.testing.assert_array_equal(np.frombuffer(second.data, np.float32).reshape(8, 16),
                                  u[:8, :16])
    assert flag.data is True


def test_an_inactive_lifecycle_publisher_drops_the_message(ros_context):
    import rclpy
    from rclpy.lifecycle import Node
    from std_msgs.msg import Bool

    from dudes_ros.ros.cdr_publisher import CdrPublisher

    store = _typestore()
    node = Node("cdr_lifecycle_test")
    listener = rclpy.create_node("cdr_lifecycle_listener")
    received = []
    listener.create_subscription(Bool, "lc/alarm", received.append, 10)
    alarm = CdrPublisher(node.create_lifecycle_publisher(Bool, "lc/alarm", 10), store, BOOL)
    try:
        _wait(lambda: alarm.publisher.get_subscription_count())
        alarm.publish(store.types[BOOL](data=True))  # the node was never activated
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            rclpy.spin_once(listener, timeout_sec=0.05)
        assert received == []
    finally:
        node.destroy_node()
        listener.destroy_node()


def test_a_refused_publish_names_the_topic_and_rcl_error(ros_context, monkeypatch):
    import dataclasses

    import rclpy
    from std_msgs.msg import Bool

    from dudes_ros.ros import cdr_publisher
    from tests.helpers.rcl_errors import error_is_set, refusing

    node = rclpy.create_node("cdr_error_test")
    alarm = cdr_publisher.CdrPublisher(node.create_publisher(Bool, "err/alarm", 10),
                                       _typestore(), BOOL)
    assert alarm.via == "rcl"

    monkeypatch.setattr(alarm, "_rcl", dataclasses.replace(
        alarm._rcl, publish_serialized=refusing("publisher is not valid")))
    try:
        with pytest.raises(RuntimeError, match=r"rcl_publish_serialized_message on /err/alarm "
                                               r"failed \(1\): publisher is not valid"):
            alarm.publish(_typestore().types[BOOL](data=True))
        assert not error_is_set()  # reset for the next rcl call
    finally:
        node.destroy_node()
    with pytest.raises(Exception, match="destruction was requested"):  # as rclpy's publish
        alarm.publish(_typestore().types[BOOL](data=True))
