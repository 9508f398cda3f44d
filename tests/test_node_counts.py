"""The node's frame accounting in /diagnostics when frames come faster than it segments: every
frame it never saw is counted as superseded, from the publisher's sequence numbers, on every
distribution (the rcl take gives the publisher's GID on Jazzy too; rclpy's own does not)."""

from __future__ import annotations

import pytest

from tests.helpers.bags import pattern
from tests.test_bag_replay import RunningNode, running_node  # noqa: F401 - the fixture

pytestmark = pytest.mark.ros


def test_a_burst_into_the_node_is_accounted_frame_by_frame(tmp_path, running_node):  # noqa: F811
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from tests.helpers.tiny_models import tiny_onnx

    n, (h, w) = 40, (64, 128)
    run: RunningNode = running_node(tiny_onnx(tmp_path), 1)  # input keeps one frame
    publisher = run.node.create_publisher(
        Image, "/cam/image", QoSProfile(depth=n, reliability=ReliabilityPolicy.RELIABLE))

    def send(i: int) -> None:
        msg = Image(height=h, width=w, encoding="rgb8", step=3 * w,
                    data=pattern(i, (h, w)).tobytes())
        msg.header.frame_id = f"frame_{i}"
        msg.header.stamp = run.node.get_clock().now().to_msg()
        publisher.publish(msg)

    run.wait_ready()
    assert run.spin_until(lambda: publisher.get_subscription_count() > 0, 10)
    # The first frame alone: frames before the first one a node takes are not known to it.
    send(0)
    assert run.spin_until(lambda: len(run.received) == 1, 10), run.log.read_text()
    for i in range(1, n):  # back to back: far faster than the node segments
        send(i)

    def counted(status) -> int:
        return int(status["frames_processed"]) + int(status["frames_dropped_superseded"])

    final = run.final_counts(lambda status: counted(status) >= n)
    processed, superseded = int(final["frames_processed"]), int(final["frames_dropped_superseded"])
    print(f"{n} frames: in {final['frames_in']}, processed {processed}, superseded {superseded}")
    assert (final["frames_in"], processed + superseded) == (str(n), n), final
    assert [final[f"frames_{k}"] for k in ("dropped_stale", "rejected", "errors")] == [
        "0", "0", "0"], final
    assert superseded > 0, final  # the node cannot keep up with a burst: some were replaced
    # one segmentation per processed frame, the last of them the newest frame, never superseded
    assert run.spin_until(lambda: len(run.received) == processed, 5), (final, len(run.received))
    assert run.received[-1][2] == f"frame_{n - 1}"
