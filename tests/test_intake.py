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
        for i in range(1, 8):
            pubs["front"].publish(Header(frame_id=f"front:{i}"))
        pubs["rear"].publish(Header(frame_id="rear:0"))
        time.sleep(0.3)
        taken = intake.take_latest(timeout=2.0)
        assert {c: m.frame_id for c, m in taken.messages.items()} == {
            "front": "front:7", "rear": "rear:0"}
        assert (taken.arrived, taken.superseded) == (8, 6)
        # arrival = when the middleware received the message (steady clock), so the 0.3 s
        # the frames waited for the worker count in the node's latency
        waited = {c: (time.monotonic_ns() - t) * 1e-9 for c, t in taken.arrived_ns.items()}
        assert set(waited) == {"front", "rear"}
        assert all(0.29 <= w < 2.0 for w in waited.values()), waited

        # Nothing queued: a wake returns at once, with nothing.
        intake.wake()
        start = time.monotonic()
        taken = intake.take_latest(timeout=5.0)
        assert time.monotonic() - start < 1.0
        assert (taken.messages, taken.arrived, taken.superseded) == ({}, 0, 0)
    finally:
        intake.close()
        node.destroy_node()
