"""The worker's intake: the newest message per camera, with what it replaced counted."""

import time

import pytest

pytestmark = pytest.mark.ros


def test_intake_takes_the_newest_frame_and_counts_the_rest(ros_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Header

    from dudes_ros.ros.intake import Intake, WorkerOwned

    node = rclpy.create_node("intake_test")
    qos = QoSProfile(depth=3, reliability=ReliabilityPolicy.RELIABLE)
    group = WorkerOwned()
    subs = {c: node.create_subscription(Header, f"{c}/image", lambda msg: None, qos,
                                        callback_group=group) for c in ("front", "rear")}
    pubs = {c: node.create_publisher(Header, f"{c}/image", qos) for c in ("front", "rear")}
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    intake = Intake(node.context, subs)
    assert intake.via == "rcl"  # taken through rcl and deserialized: gaps counted everywhere
    try:
        deadline = time.monotonic() + 10
        while not all(p.get_subscription_count() for p in pubs.values()):
            assert time.monotonic() < deadline, "subscriptions not matched"
            time.sleep(0.01)
        # The executor never runs a WorkerOwned subscription's callback, nor takes its messages.
        pubs["front"].publish(Header(frame_id="front:0"))
        executor.spin_once(timeout_sec=0.2)
        taken = intake.take_latest(timeout=2.0)
        assert [(c, m.frame_id) for c, m in taken.messages.items()] == [("front", "front:0")]
        assert (taken.arrived, taken.superseded) == (1, 0)

        # 7 frames on front while the worker is busy: depth 3 keeps 5, 6, 7 and the sequence
        # numbers tell that 1-4 were replaced unseen; rear sends one.
        published = time.monotonic_ns()
        for i in range(1, 8):
            pubs["front"].publish(Header(frame_id=f"front:{i}"))
        pubs["rear"].publish(Header(frame_id="rear:0"))
        time.sleep(0.3)
        before_take = time.monotonic_ns()
        taken = intake.take_latest(timeout=2.0)
        assert {c: m.frame_id for c, m in taken.messages.items()} == {
            "front": "front:7", "rear": "rear:0"}
        assert (taken.arrived, taken.superseded) == (8, 6)
        # arrival = when the middleware received the message (steady clock), not the take, so
        # the time the frames waited for the worker counts in the node's latency
        assert set(taken.arrived_ns) == {"front", "rear"}
        assert all(published <= t <= before_take for t in taken.arrived_ns.values()), (
            published, taken.arrived_ns, before_take)

        # Nothing queued: a wake returns at once, with nothing.
        intake.wake()
        start = time.monotonic()
        taken = intake.take_latest(timeout=5.0)
        assert time.monotonic() - start < 1.0
        assert (taken.messages, taken.arrived, taken.superseded) == ({}, 0, 0)
    finally:
        intake.close()
        node.destroy_node()


@pytest.mark.parametrize("via", ["rcl", "rclpy"])
def test_raw_frames_are_taken_whole_with_their_arrival_and_gaps(ros_context, monkeypatch, via):
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosbags.typesys import get_typestore
    from sensor_msgs.msg import Image

    from dudes_ros.messages.conversions import array_to_image_fields
    from dudes_ros.messages.types import IMAGE, OUTPUT_TYPESTORE
    from dudes_ros.ros import intake as intake_module
    from dudes_ros.ros.distro import current

    if via == "rclpy":  # as where librcl cannot be loaded: rclpy's take into bytes
        monkeypatch.setattr(intake_module, "rcl", lambda: None)
    store = get_typestore(OUTPUT_TYPESTORE)
    types = store.types
    node = rclpy.create_node(f"intake_raw_{via}")
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    sub = node.create_subscription(Image, "raw/image", lambda msg: None, qos,
                                   callback_group=intake_module.WorkerOwned(), raw=True)
    pub = node.create_publisher(Image, "raw/image", qos)
    intake = intake_module.Intake(node.context, {"raw": sub})
    assert intake.via == via
    # rclpy's own take gives the publisher's GID, without which a gap cannot be told from a
    # change of publisher, only from Kilted on
    assert intake.counts_gaps == (via == "rcl" or current().rclpy_info_has_publisher_gid)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48 + 16 * i, 64, 3), dtype=np.uint8) for i in range(5)]

    def send(i):
        header = types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=i, nanosec=7), frame_id=f"f{i}")
        message = types[IMAGE](header=header, **array_to_image_fields(frames[i], "rgb8"))
        cdr = store.serialize_cdr(message, IMAGE)
        pub.publish(bytes(cdr))
        return bytes(cdr)

    try:
        deadline = time.monotonic() + 10
        while not pub.get_subscription_count():
            assert time.monotonic() < deadline, "subscription not matched"
            time.sleep(0.01)
        sent = send(0)
        taken = intake.take_latest(timeout=2.0)
        assert bytes(taken.messages["raw"]) == sent
        assert (taken.arrived, taken.superseded) == (1, 0)
        # 4 more, each larger than the last (the kept buffers grow), while the worker is
        # busy: depth 2 keeps 3 and 4; the newest is returned whole, decoded to the pixels
        published = time.monotonic_ns()
        sent = [send(i) for i in range(1, 5)][-1]
        time.sleep(0.3)
        before_take = time.monotonic_ns()
        taken = intake.take_latest(timeout=2.0)
        assert bytes(taken.messages["raw"]) == sent
        assert (taken.arrived, taken.superseded) == ((4, 3) if intake.counts_gaps else (2, 1))
        msg = store.deserialize_cdr(memoryview(taken.messages["raw"]), IMAGE)
        assert (msg.header.frame_id, msg.header.stamp.sec) == ("f4", 4)
        np.testing.assert_array_equal(msg.data.reshape(frames[4].shape), frames[4])
        assert published <= taken.arrived_ns["raw"] <= before_take
    finally:
        intake.close()
        node.destroy_node()


def test_a_refused_take_names_the_topic_and_rcl_error(ros_context, monkeypatch):
    import dataclasses

    import rclpy
    from sensor_msgs.msg import Image

    from dudes_ros.ros.intake import Intake, WorkerOwned
    from tests.helpers.rcl_errors import error_is_set, refusing

    node = rclpy.create_node("intake_error_test")
    sub = node.create_subscription(Image, "err/image", lambda msg: None, 1,
                                   callback_group=WorkerOwned(), raw=True)
    intake = Intake(node.context, {"err": sub})
    taker = intake._takers["err"]
    monkeypatch.setattr(taker, "_rcl", dataclasses.replace(
        taker._rcl, take_serialized=refusing("subscription is not valid")))
    try:
        intake.wake()
        with pytest.raises(RuntimeError, match=r"rcl_take_serialized_message on /err/image "
                                               r"failed \(1\): subscription is not valid"):
            intake.take_latest(timeout=0.1)
        assert not error_is_set()  # reset for the next rcl call
    finally:
        intake.close()
        node.destroy_node()
