"""``messages.regions``: ``ood/mask``, ``ood/regions`` and ``ood/points`` carry the input
header verbatim, their fields say what their data holds, and each survives a CDR round trip."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import get_typestore

from dudes_ros.anomaly_regions import Region
from dudes_ros.messages.regions import (
    POINT_CLOUD2,
    REGION_TOPICS,
    mask_message,
    points_message,
    regions_message,
)
from dudes_ros.messages.types import OUTPUT_TYPESTORE

STORE = get_typestore(OUTPUT_TYPESTORE)


def header():
    types = STORE.types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=1_700_000_123, nanosec=999_999_999),
        frame_id="cam_front_optical")


def round_trip(message, msgtype):
    return STORE.deserialize_cdr(STORE.serialize_cdr(message, msgtype), msgtype)


def assert_header(message):
    assert (message.header.stamp.sec, message.header.stamp.nanosec) == (1_700_000_123,
                                                                        999_999_999)
    assert message.header.frame_id == "cam_front_optical"


def test_mask_is_mono8_at_its_size():
    mask = np.zeros((6, 10), dtype=np.uint8)
    mask[2:4, 3:8] = 255
    msg = round_trip(mask_message(STORE, header(), mask), REGION_TOPICS["ood/mask"])
    assert_header(msg)
    assert (msg.height, msg.width, msg.encoding, msg.step) == (6, 10, "mono8", 10)
    assert np.array_equal(np.asarray(msg.data).reshape(6, 10), mask)
    with pytest.raises(ValueError, match="uint8 \\[H, W\\]"):
        mask_message(STORE, header(), mask.astype(bool))


def test_regions_are_one_status_each_with_their_box_and_u():
    regions = [Region(12, 30, 40, 22, 700, 0.61234567, 0.93, label=1, id=7),
               Region(100, 5, 3, 4, 12, 0.5, 0.55, label=2, id=9)]
    msg = round_trip(regions_message(STORE, header(), "front", regions, "/dudes_node"),
                     REGION_TOPICS["ood/regions"])
    assert_header(msg)
    assert [s.name for s in msg.status] == ["/dudes_node: region 7", "/dudes_node: region 9"]
    assert {s.hardware_id for s in msg.status} == {"front"}
    assert {s.level for s in msg.status} == {1}
    values = {kv.key: kv.value for kv in msg.status[0].values}
    assert values == {"id": "7", "x": "12", "y": "30", "width": "40", "height": "22",
                      "area": "700", "mean_u": "0.612346", "max_u": "0.930000"}


def test_no_region_is_an_empty_status_list():
    msg = regions_message(STORE, header(), "front", [], "/dudes_node")
    assert msg.status == [] and msg.header.stamp.sec == 1_700_000_123


def test_points_are_xyz_float32_little_endian():
    points = np.array([[0.5, 1.5, 10.0], [-1.25, 1.5, 12.0]], dtype=np.float32)
    msg = round_trip(points_message(STORE, header(), points), POINT_CLOUD2)
    assert_header(msg)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 2, 12, 24)
    assert not msg.is_bigendian and msg.is_dense
    assert np.array_equal(np.frombuffer(bytes(msg.data), "<f4").reshape(-1, 3), points)


def test_no_point_is_an_empty_cloud_with_its_fields():
    msg = round_trip(points_message(STORE, header(), np.zeros((0, 3), np.float32)),
                     POINT_CLOUD2)
    assert (msg.width, msg.row_step, len(msg.data), len(msg.fields)) == (0, 0, 0, 3)


def test_points_refuse_bad_shapes_and_nan():
    with pytest.raises(ValueError, match="\\[N, 3\\], got shape \\(4,\\)"):
        points_message(STORE, header(), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="finite"):
        points_message(STORE, header(), np.array([[np.nan, 0, 1]], np.float32))
