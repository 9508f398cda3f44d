"""Image <-> numpy conversions against hand-built messages (rclpy and rosbags classes)."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from dudes_ros.messages.conversions import (
    ImageRejected,
    array_to_image_fields,
    array_to_rclpy_image_fields,
    compressed_to_rgb,
    image_to_rgb,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def pack(rgb: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False):
    """(data bytes, step) for ``rgb`` written in ``encoding`` with ``pad`` bytes per row."""
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    mono = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]
    base = {"rgb": rgb, "bgr": rgb[..., ::-1], "rgba": np.concatenate([rgb, alpha], 2),
            "bgra": np.concatenate([rgb[..., ::-1], alpha], 2), "mono": mono}
    pixels = base[encoding.rstrip("0123456789")]
    if encoding.endswith("16"):
        pixels = pixels.astype(np.uint16) * 257
        pixels = pixels.astype(">u2" if bigendian else "<u2")
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    rows = np.concatenate([rows, np.full((rows.shape[0], pad), 77, np.uint8)], axis=1)
    return rows.tobytes(), rows.shape[1]


def rclpy_image(rgb, encoding, pad=0, bigendian=False):
    from sensor_msgs.msg import Image

    data, step = pack(rgb, encoding, pad, bigendian)
    return Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                 is_bigendian=int(bigendian), step=step, data=data)


def rosbags_image(rgb, encoding, pad=0, bigendian=False):
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    image_cls = store.types["sensor_msgs/msg/Image"]
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam")
    data, step = pack(rgb, encoding, pad, bigendian)
    return image_cls(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                     is_bigendian=int(bigendian), step=step,
                     data=np.frombuffer(data, np.uint8).copy())


def expected_rgb(encoding: str) -> np.ndarray:
    if encoding.startswith("mono"):
        return np.repeat(cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    return RGB


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "rgb16", "bgr16", "rgba16", "bgra16",
             "mono16"]


@pytest.mark.parametrize("make", [rclpy_image, rosbags_image], ids=["rclpy", "rosbags"])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("pad", [0, 3])
def test_every_encoding_and_padding_gives_the_rgb_frame(make, encoding, pad):
    for bigendian in ([False, True] if encoding.endswith("16") else [False]):
        rgb = image_to_rgb(make(RGB, encoding, pad, bigendian))
        assert rgb.dtype == np.uint8 and rgb.shape == (5, 7, 3)
        np.testing.assert_array_equal(rgb, expected_rgb(encoding))


def test_unpadded_rgb8_is_a_zero_copy_view():
    msg = rosbags_image(RGB, "rgb8")
    rgb = image_to_rgb(msg)
    assert np.shares_memory(rgb, msg.data)
    msg = rclpy_image(RGB, "rgb8", pad=5)
    assert np.shares_memory(image_to_rgb(msg), np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize(("change", "reason", "words"), [
    ({"data": b"\x00" * 10}, "truncated_data", ["10 bytes", "step*height"]),
    ({"step": 20}, "bad_step", ["step 20", "21"]),
    ({"encoding": "yuv422"}, "unknown_encoding", ["'yuv422'", "rgb8"]),
    ({"height": 0, "width": 0, "step": 0, "data": b""}, "empty", ["0x0", ">= 1"]),
    ({"height": 20000, "width": 20000, "step": 60000}, "too_large", ["20000x20000",
                                                                     "max_pixels"]),
])
def test_malformed_images_are_rejected_with_a_reason(change, reason, words):
    msg = rclpy_image(RGB, "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageRejected) as info:
        image_to_rgb(msg)
    assert info.value.reason == reason
    assert all(word in str(info.value) for word in words), str(info.value)


def compressed(data: bytes, fmt: str):
    from sensor_msgs.msg import CompressedImage

    return CompressedImage(format=fmt, data=data)


def test_png_and_jpeg_decode_to_rgb():
    png = cv2.imencode(".png", RGB[..., ::-1])[1].tobytes()
    np.testing.assert_array_equal(compressed_to_rgb(compressed(png, "png")), RGB)
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = 200, 60, 90
    jpeg = cv2.imencode(".jpg", smooth[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    decoded = compressed_to_rgb(compressed(jpeg, "rgb8; jpeg compressed bgr8"))
    assert decoded.shape == (32, 48, 3)
    assert np.abs(decoded.astype(int) - smooth).max() <= 3


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header (with a valid CRC) claims ``width x height`` but holds no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(chunk[4:]))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


@pytest.mark.parametrize(("data", "fmt", "reason"), [
    (b"\xff\xd8\xff\xe0garbage" * 10, "jpeg", "undecodable"),
    (b"", "jpeg", "empty"),
    (png_claiming(20000, 20000), "png", "too_large"),
    (png_claiming(64, 32), "png", "undecodable"),
    (b"GIF89a" + b"\x00" * 20, "gif", "unknown_format"),
])
def test_bad_compressed_images_are_rejected(data, fmt, reason):
    with pytest.raises(ImageRejected) as info:
        compressed_to_rgb(compressed(data, fmt))
    assert info.value.reason == reason, str(info.value)


def test_output_fields_round_trip_through_rclpy_messages():
    from sensor_msgs.msg import Image

    u = RNG.random((5, 7), dtype=np.float32)
    msg = Image(**array_to_rclpy_image_fields(u, "32FC1"))
    assert (msg.encoding, msg.step, msg.height, msg.width) == ("32FC1", 28, 5, 7)
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.float32).reshape(5, 7), u)
    msg = Image(**array_to_rclpy_image_fields(RGB, "rgb8"))
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    fields = array_to_image_fields(u, "32FC1")  # for rosbags: a view of the pixels, no copy
    assert fields["data"].dtype == np.uint8 and fields["data"].size == u.nbytes
    assert np.shares_memory(fields["data"], u)
    np.testing.assert_array_equal(fields["data"].view(np.float32).reshape(5, 7), u)
    with pytest.raises(ValueError, match=r"mono8 needs uint8 \[H, W\], got float32"):
        array_to_rclpy_image_fields(u, "mono8")
    with pytest.raises(ValueError, match="'16UC1' is not supported"):
        array_to_rclpy_image_fields(u, "16UC1")


@pytest.mark.parametrize("encoding", [*ENCODINGS, "32FC1"])
@pytest.mark.parametrize("pad", [0, 3])
def test_decoder_agrees_with_rosbags_image(encoding, pad):
    """The hand-written decoder against the pixels and against rosbags-image's decoder on every
    encoding it reads back (big-endian too for the multi-byte ones). rosbags-image 0.10 reads
    padded rows (``step`` > the row) as if unpadded, so it is compared on unpadded ones only:
    one more reason the node keeps its own decoder."""
    from rosbags.image import message_to_cvimage
    from rosbags.typesys import Stores, get_typestore

    from dudes_ros.messages.conversions import RECORDED_ENCODINGS, image_to_array

    store = get_typestore(Stores.ROS2_KILTED)
    rng = np.random.default_rng(len(encoding) + pad)
    channels, depth, _ = RECORDED_ENCODINGS[encoding]
    dtype = {1: np.uint8, 2: np.uint16, 4: np.float32}[depth]
    for bigendian in (False, True) if depth > 1 else (False,):
        pixels = (rng.random((5, 7, channels), dtype=np.float32) if depth == 4 else
                  rng.integers(0, np.iinfo(dtype).max, (5, 7, channels), dtype=dtype))
        raw = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")).tobytes()
        row = 7 * channels * depth
        data = b"".join(raw[r * row:(r + 1) * row] + b"\x00" * pad for r in range(5))
        msg = store.types["sensor_msgs/msg/Image"](
            header=store.types["std_msgs/msg/Header"](
                stamp=store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                frame_id=""), height=5, width=7, encoding=encoding,
            is_bigendian=int(bigendian), step=row + pad,
            data=np.frombuffer(data, np.uint8).copy())
        ours = image_to_array(msg, encodings=RECORDED_ENCODINGS)
        np.testing.assert_array_equal(ours, pixels)
        if pad:
            continue
        theirs = message_to_cvimage(msg)
        np.testing.assert_array_equal(ours.reshape(theirs.shape) if channels == 1 else
                                      ours, theirs.astype(ours.dtype))
