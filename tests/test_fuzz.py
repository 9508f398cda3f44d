"""Property-based fuzzing of the image conversions and of a running dudes_node.

Malformed sensor_msgs/Image (random encodings, sizes, steps, truncated or oversized data) and
CompressedImage (random format strings, random bytes behind JPEG/PNG signatures, truncated or
bit-flipped files) must either convert exactly as a well-formed message would, or raise
``ImageRejected`` with a counting reason and a message; nothing else may escape. At the node
each rejected message is counted under its reason in /diagnostics, and a good frame sent after
it is still processed correctly.
"""

from __future__ import annotations

import array
import os
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dudes_ros.messages.conversions import (
    INPUT_ENCODINGS,
    ImageRejected,
    compressed_to_rgb,
    image_to_rgb,
)

MAX_PIXELS = 4096 * 4096
IMAGE_REASONS = {"unknown_encoding", "empty", "too_large", "bad_step", "truncated_data",
                 "oversized_data", "bad_data", "bad_fields"}
COMPRESSED_REASONS = {"unknown_format", "empty", "too_large", "undecodable"}
RGB = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
JPEG = cv2.imencode(".jpg", RGB[..., ::-1])[1].tobytes()
PNG = cv2.imencode(".png", RGB[..., ::-1])[1].tobytes()

encodings = st.one_of(st.sampled_from(sorted(INPUT_ENCODINGS)),
                      st.sampled_from(["yuv422", "32FC1", "16UC1", "bayer_rggb8", "RGB8", ""]),
                      st.text(st.characters(codec="utf-8"), max_size=12))


@st.composite
def raw_images(draw, rclpy_types: bool = True):
    """Field values of an Image: mostly near-valid, with one or more fields broken."""
    encoding = draw(encodings)
    channels, depth, _ = INPUT_ENCODINGS.get(encoding, (3, 1, "rgb"))
    height = draw(st.one_of(st.integers(0, 24), st.sampled_from([20000, 2**31 - 1])))
    width = draw(st.one_of(st.integers(0, 40), st.sampled_from([20000, 2**31 - 1])))
    row = width * channels * depth
    step = draw(st.one_of(st.just(row), st.integers(max(0, row - 5), row + 9),
                          st.integers(0, 2**32 - 1)))
    full = min(step * height, 200_000)
    size = draw(st.one_of(st.just(full), st.integers(0, full + 64), st.integers(0, 4096)))
    data = draw(st.binary(min_size=min(size, 64), max_size=min(size, 64)))
    data = (data * (size // max(len(data), 1) + 1))[:size] if data else bytes(size)
    if not rclpy_types:  # duck-typed messages (rosbags dataclasses, user code) are unchecked
        height = draw(st.one_of(st.just(height), st.integers(-5, -1), st.none()))
        data = draw(st.one_of(st.just(data), st.none(), st.lists(st.integers(0, 255),
                                                                 max_size=4)))
    return SimpleNamespace(height=height, width=width, encoding=encoding, step=step,
                           is_bigendian=draw(st.integers(0, 1)), data=data)


def well_formed(f: SimpleNamespace) -> bool:
    """The oracle: what a correct converter must accept."""
    if f.encoding not in INPUT_ENCODINGS or not isinstance(f.height, int):
        return False
    if not isinstance(f.data, (bytes, array.array)):
        return False
    channels, depth, _ = INPUT_ENCODINGS[f.encoding]
    return (0 < f.height * f.width <= MAX_PIXELS and f.height > 0 and f.width > 0
            and f.step >= f.width * channels * depth and len(f.data) == f.step * f.height)


def expected_rgb(f: SimpleNamespace) -> np.ndarray:
    """Reference decoding of an 8-bit well-formed message (row by row, no shortcuts)."""
    channels, _, order = INPUT_ENCODINGS[f.encoding]
    rows = [np.frombuffer(f.data[r * f.step: r * f.step + f.width * channels], np.uint8)
            for r in range(f.height)]
    pixels = np.stack(rows).reshape(f.height, f.width, channels)
    if order == "mono":
        return np.repeat(pixels, 3, axis=2)
    return pixels[..., 2::-1] if order == "bgr" else pixels[..., :3]


def check_image(fields: SimpleNamespace) -> str | None:
    """Convert; returns the rejection reason (None when accepted), asserting the contract."""
    try:
        rgb = image_to_rgb(fields, MAX_PIXELS)
    except ImageRejected as exc:
        assert exc.reason in IMAGE_REASONS and str(exc), (exc.reason, str(exc))
        assert not well_formed(fields), f"a well-formed message was rejected: {exc}"
        return exc.reason
    assert well_formed(fields), "a malformed message was accepted"
    assert rgb.dtype == np.uint8 and rgb.shape == (fields.height, fields.width, 3)
    if INPUT_ENCODINGS[fields.encoding][1] == 1:
        np.testing.assert_array_equal(rgb, expected_rgb(fields))
    return None


@settings(max_examples=300, deadline=None, database=None)
@given(raw_images())
def test_image_conversion_accepts_exactly_the_well_formed(fields):
    from sensor_msgs.msg import Image

    reason = check_image(fields)
    assert check_image(Image(**vars(fields))) == reason  # same verdict for a real rclpy message


@settings(max_examples=150, deadline=None, database=None)
@given(raw_images(rclpy_types=False))
def test_duck_typed_images_with_wrong_field_types_are_rejected(fields):
    check_image(fields)


@st.composite
def compressed(draw):
    """(format, data, must_reject): random bytes, fake signatures, truncated/corrupted files."""
    fmt = draw(st.one_of(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "",
                                          "tiff", "bmp"]),
                           st.text(st.characters(codec="utf-8"), max_size=10)))
    kind = draw(st.sampled_from(["random", "jpeg_soi", "png_sig", "truncated", "flipped",
                                 "valid", "bmp"]))
    source = draw(st.sampled_from([JPEG, PNG]))
    if kind == "random":
        data, reject = draw(st.binary(max_size=300)), True
    elif kind == "jpeg_soi":
        data, reject = b"\xff\xd8\xff\xe0" + draw(st.binary(max_size=300)), True
    elif kind == "png_sig":
        data, reject = b"\x89PNG\r\n\x1a\n" + draw(st.binary(max_size=300)), True
    elif kind == "truncated":
        data, reject = source[: draw(st.integers(0, len(source) - 1))], True
    elif kind == "bmp":
        data, reject = cv2.imencode(".bmp", RGB)[1].tobytes(), True
    elif kind == "flipped":  # corrupted entropy data may still decode (to wrong pixels)
        at = draw(st.integers(len(source) // 4, len(source) - 1))
        data, reject = source[:at] + bytes([source[at] ^ 0xFF]) + source[at + 1:], False
    else:
        data, reject = source, False
    known = fmt == "" or any(name in fmt.lower() for name in ("jpeg", "jpg", "png"))
    return fmt, data, reject or not known


def check_compressed(fmt: str, data: bytes, must_reject: bool) -> str | None:
    try:
        rgb = compressed_to_rgb(SimpleNamespace(format=fmt, data=data), MAX_PIXELS)
    except ImageRejected as exc:
        assert exc.reason in COMPRESSED_REASONS and str(exc), (exc.reason, str(exc))
        return exc.reason
    assert not must_reject, f"accepted {len(data)} bytes of malformed {fmt!r} data"
    assert rgb.dtype == np.uint8 and rgb.shape == RGB.shape
    if data == PNG:  # lossless: exact pixels
        np.testing.assert_array_equal(rgb, RGB)
    return None


@settings(max_examples=250, deadline=None, database=None)
@given(compressed())
def test_compressed_conversion_rejects_malformed_data(case):
    check_compressed(*case)


# --- at a running node -----------------------------------------------------------------------

rclpy = pytest.importorskip("rclpy")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tests.helpers.tiny_models import tiny_onnx

    return tiny_onnx(tmp_path_factory.mktemp("fuzz_model"), "node")


@pytest.fixture(scope="module")
def offline(tiny_model):
    from dudes_ros.inference.factory import create_predictor

    with create_predictor(tiny_model, backend="onnxruntime", device="cpu") as predictor:
        yield lambda rgb: predictor.predict(rgb[None])[0][0]


class FuzzedNode:
    """A node in its own process plus a client; tracks the rejections it must have counted."""

    def __init__(self, model, transport: str, tmp_path) -> None:
        from tests.test_node import Client, start_node

        namespace = f"fuzz_{transport}"
        self.log = tmp_path / "node.log"
        self.process = start_node(dict(os.environ), self.log, namespace=namespace, model=model,
                                  device="cpu", transport=transport, qos__reliability="reliable",
                                  ood__pixel_threshold=0.5, ood__frame_threshold=0.1,
                                  diagnostics_period=0.1, max_input_age=0.0)
        self.client = Client([""], transport=transport, namespace=namespace)
        self.client.wait_ready(self.process, self.log)
        self.expected: dict[str, int] = {}
        self.sent = 0

    def counts(self) -> dict[str, str]:
        return self.client.latest_counts()

    def send_bad(self, msg, reason: str) -> None:
        """Publish a message the conversions reject for ``reason``; wait until it is counted."""
        self.expected[reason] = self.expected.get(reason, 0) + 1
        total = sum(self.expected.values())
        msg.header.frame_id = f"bad{self.sent}"
        self.sent += 1
        self.client.pubs[""].publish(msg)

        def counted():
            latest = self.client.diagnostics[-1:] if self.client.diagnostics else []
            values = {kv.key: kv.value for s in latest for kv in s.values}
            return values.get("frames_rejected") == str(total)
        assert self.client.spin_until(counted, 10.0), (reason, self.client.diagnostics[-1:])

    def send_good(self, msg, expected_labels) -> None:
        from tests.test_node import as_array

        msg.header.frame_id = f"good{self.sent}"
        self.sent += 1
        self.client.send("", msg)
        got = self.client.received[("", "segmentation", msg.header.frame_id)]
        np.testing.assert_array_equal(as_array(got), expected_labels)

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=20)
        assert self.process.returncode in (0, -15), self.log.read_text()


def _rejection(convert, msg) -> str | None:
    try:
        convert(msg, MAX_PIXELS)
    except ImageRejected as exc:
        return exc.reason
    return None


@pytest.fixture(scope="module")
def raw_node(ros_context, tiny_model, tmp_path_factory):
    node = FuzzedNode(tiny_model, "raw", tmp_path_factory.mktemp("fuzz_raw"))
    yield node
    node.close()


@pytest.fixture(scope="module")
def compressed_node(ros_context, tiny_model, tmp_path_factory):
    node = FuzzedNode(tiny_model, "compressed", tmp_path_factory.mktemp("fuzz_compressed"))
    yield node
    node.close()


GOOD = np.ascontiguousarray(np.tile(RGB, (3, 4, 1))[:64, :128])


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fields=raw_images())
def test_node_survives_malformed_images(raw_node, offline, fields):
    from sensor_msgs.msg import Image

    msg = Image(**vars(fields))
    reason = _rejection(image_to_rgb, msg)
    if reason is None:
        return  # well formed by chance: the encoding tests of test_node cover those
    raw_node.send_bad(msg, reason)
    good = Image(height=64, width=128, encoding="rgb8", is_bigendian=0, step=384,
                 data=GOOD.tobytes())
    raw_node.send_good(good, offline(GOOD))


@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=compressed())
def test_node_survives_malformed_compressed_images(compressed_node, offline, case):
    from sensor_msgs.msg import CompressedImage

    fmt, data, _ = case
    msg = CompressedImage(format=fmt, data=data)
    reason = _rejection(compressed_to_rgb, msg)
    if reason is None:
        return
    compressed_node.send_bad(msg, reason)
    good = CompressedImage(format="png", data=cv2.imencode(".png", GOOD[..., ::-1])[1].tobytes())
    compressed_node.send_good(good, offline(GOOD))


@pytest.mark.parametrize("which", ["raw_node", "compressed_node"])
def test_node_counted_every_rejection_by_reason(which, request):
    node = request.getfixturevalue(which)
    assert sum(node.expected.values()) >= 5, node.expected  # most examples are malformed
    time.sleep(0.2)
    counts = node.counts()
    got = {k.removeprefix("rejected_"): int(v) for k, v in counts.items()
           if k.startswith("rejected_")}
    assert got == node.expected, counts
    assert counts["frames_errors"] == "0" and node.process.poll() is None, counts
