"""``FrameGate``: the node's worker and ``process-bag`` judge the same malformed frames the same.

The node gates the CDR bytes it takes (``admit_cdr`` of ``ros.worker.frame_gate``'s gate);
``process_bag`` gates the messages its reader decodes. Both get the same bytes here and must
give the same reason and the same text for every frame; a good frame passes both.
"""

from __future__ import annotations

import math
from collections import Counter

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from dudes_ros.bag.process import ProcessOptions, process_bag
from dudes_ros.inference.predictor import Predictor
from dudes_ros.messages.frame_gate import DROPPED_STALE, REJECTED, Frame, FrameGate, Verdict
from dudes_ros.messages.types import COMPRESSED_IMAGE, IMAGE
from dudes_ros.perception import OodConfig

KILTED = get_typestore(Stores.ROS2_KILTED)
H, W = 8, 16
STAMP_S = 100


class FixedSizePredictor(Predictor):
    """Accepts only ``H`` x ``W`` frames (as a TensorRT engine outside its profile refuses);
    labels 0, uncertainty 0."""

    backend = "fixed-size"

    def size_problem(self, height: int, width: int) -> str | None:
        if (height, width) == (H, W):
            return None
        return f"frames of {width}x{height} are outside the engine profile; expected {W}x{H}"

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b, h, w, _ = images.shape
        return np.zeros((b, h, w), np.uint8), np.zeros((b, h, w), np.float32)


def _header(frame_id: str, sec: int = STAMP_S):
    types = KILTED.types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=0), frame_id=frame_id)


def _image(frame_id: str, h: int = H, w: int = W, encoding: str = "rgb8", step: int | None = None,
           size: int | None = None, sec: int = STAMP_S):
    step = w * 3 if step is None else step
    data = np.full(step * h if size is None else size, 7, np.uint8)
    msg = KILTED.types[IMAGE](header=_header(frame_id, sec), height=h, width=w,
                              encoding=encoding, is_bigendian=0, step=step, data=data)
    return KILTED.serialize_cdr(msg, IMAGE)


def _compressed(frame_id: str, data: bytes):
    msg = KILTED.types[COMPRESSED_IMAGE](header=_header(frame_id), format="jpeg",
                                         data=np.frombuffer(data, np.uint8))
    return KILTED.serialize_cdr(msg, COMPRESSED_IMAGE)


def _jpeg(h: int, w: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((h, w, 3), 90, np.uint8))
    assert ok
    return data.tobytes()


RAW = {  # frame_id -> (CDR bytes, the reason both must give; None: passes)
    "good": (_image("good"), None),
    "bayer": (_image("bayer", encoding="bayer_rggb8"), "unknown_encoding"),
    "short_step": (_image("short_step", step=W * 3 - 1), "bad_step"),
    "truncated": (_image("truncated", size=W * 3 * H - 5), "truncated_data"),
    "too_big_for_engine": (_image("too_big_for_engine", h=H * 2, w=W * 2), "size"),
}
COMPRESSED = {
    "good_jpeg": (_compressed("good_jpeg", _jpeg(H, W)), None),
    "corrupt_jpeg": (_compressed("corrupt_jpeg", _jpeg(H, W)[:40] + b"\x00" * 40),
                     "undecodable"),
    "jpeg_wrong_size": (_compressed("jpeg_wrong_size", _jpeg(H, W + 8)), "size"),
}
TOPICS = {"/raw/image_raw": (IMAGE, RAW), "/jpeg/image_raw/compressed": (COMPRESSED_IMAGE,
                                                                         COMPRESSED)}


def node_gate(msgtype: str) -> FrameGate:
    """The gate the node's worker builds (``ros.worker.frame_gate``) for this transport, with
    the default parameters (max_input_age 0.5 s)."""
    pytest.importorskip("rclpy")
    from dudes_ros.ros.params import NodeConfig
    from dudes_ros.ros.worker import frame_gate

    config = NodeConfig.from_values(
        {"transport": "compressed" if msgtype == COMPRESSED_IMAGE else "raw"})
    gate = frame_gate(config, FixedSizePredictor(), KILTED)
    assert (gate.msgtype, gate.max_input_age) == (msgtype, 0.5)
    return gate


def node_verdicts(msgtype: str, frames: dict) -> dict[str, Frame | Verdict]:
    now_ns = STAMP_S * 10**9 + 10**8  # 0.1 s after the stamps: fresh
    return {frame_id: node_gate(msgtype).admit_cdr(raw, now_ns)
            for frame_id, (raw, _) in frames.items()}


@pytest.mark.parametrize("topic", list(TOPICS))
def test_node_gate_gives_each_malformed_frame_its_reason(topic):
    msgtype, frames = TOPICS[topic]
    verdicts = node_verdicts(msgtype, frames)
    for frame_id, (_, reason) in frames.items():
        verdict = verdicts[frame_id]
        if reason is None:
            assert isinstance(verdict, Frame) and verdict.rgb.shape == (H, W, 3), frame_id
            assert verdict.age_s == pytest.approx(0.1) and verdict.header.frame_id == frame_id
        else:
            assert isinstance(verdict, Verdict), frame_id
            assert (verdict.outcome, verdict.reason) == (REJECTED, reason), verdict
            assert f"frame_id {frame_id!r}" in verdict.text


def test_process_bag_and_the_node_give_the_same_verdicts(tmp_path):
    with Writer(tmp_path / "in", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, (msgtype, frames) in TOPICS.items():
            conn = writer.add_connection(topic, msgtype, typestore=KILTED)
            for k, (raw, _) in enumerate(frames.values()):
                writer.write(conn, 10**9 * (k + 1), raw)
    summary = process_bag(tmp_path / "in", tmp_path / "out", FixedSizePredictor(),
                          OodConfig(pixel_threshold=0.5, frame_threshold=0.5),
                          ProcessOptions(progress=False))
    for topic, (msgtype, frames) in TOPICS.items():
        verdicts = node_verdicts(msgtype, frames)
        rejected = {v.reason: v.text for v in verdicts.values() if isinstance(v, Verdict)}
        bag = summary["topics"][topic]
        assert bag["rejected"] == dict(Counter(r for _, r in frames.values() if r)), topic
        assert bag["rejection_examples"] == rejected, topic
        assert bag["frames"] == sum(isinstance(v, Frame) for v in verdicts.values())


def test_bytes_that_are_not_cdr_and_a_stale_stamp():
    gate = node_gate(IMAGE)
    verdict = gate.admit_cdr(b"\x00\x01\x00\x00garbage")
    assert (verdict.outcome, verdict.reason) == (REJECTED, "cdr")
    assert f"not a CDR-encoded {IMAGE}" in verdict.text
    stale = gate.admit_cdr(_image("old", sec=STAMP_S - 2), now_ns=STAMP_S * 10**9)
    assert (stale.outcome, stale.reason) == (DROPPED_STALE, "stale")
    assert "2.000 s old (frame_id 'old'): older than max_input_age 0.5 s" in stale.text
    # recorded data is judged without a clock: no staleness, age unknown
    passed = gate.admit(KILTED.deserialize_cdr(_image("old", sec=1), IMAGE))
    assert isinstance(passed, Frame) and math.isnan(passed.age_s)


def test_a_gate_of_another_type_is_refused():
    with pytest.raises(ValueError, match="expected sensor_msgs/msg/Image or"):
        FrameGate("sensor_msgs/msg/CameraInfo")
