"""sensor_msgs/Image and CompressedImage <-> numpy, without rclpy and without cv_bridge.

Messages are duck-typed: anything with ``height, width, encoding, is_bigendian, step, data``
(rclpy messages, rosbags dataclasses) is an Image; anything with ``format, data`` is a
CompressedImage. Inputs become RGB ``uint8 [H, W, 3]``; 8-bit rgb8 frames without row padding
come back as a zero-copy view of the message buffer. Every rejection raises ``ImageRejected``
whose ``reason`` is a short key (for counting) and whose message says what was wrong and what
was expected.

This is the package's one Image decoder, written by hand on purpose: cv_bridge's package-index
build is broken on numpy 2 and a ROS install's one is not importable from a plain venv, and
rosbags-image (a test dependency, used to cross-check this module) copies and reads rows as
unpadded (ignoring ``step``), where the node needs zero-copy views of the received buffer, ``step``
validation before anything is allocated and rejection reasons it can count. The conversions
themselves are a reshape and a channel swap that numpy and OpenCV do directly.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import cv2
import numpy as np
from PIL import Image as PilImage

DEFAULT_MAX_PIXELS = 4096 * 4096

# encoding -> (channels, bytes per channel, channel order of colour inputs)
INPUT_ENCODINGS: dict[str, tuple[int, int, str]] = {
    "rgb8": (3, 1, "rgb"),
    "bgr8": (3, 1, "bgr"),
    "rgba8": (4, 1, "rgb"),
    "bgra8": (4, 1, "bgr"),
    "mono8": (1, 1, "mono"),
    "rgb16": (3, 2, "rgb"),
    "bgr16": (3, 2, "bgr"),
    "rgba16": (4, 2, "rgb"),
    "bgra16": (4, 2, "bgr"),
    "mono16": (1, 2, "mono"),
}

# What ``image_to_array(..., encodings=RECORDED_ENCODINGS)`` also reads back: every input
# encoding and the uncertainty output (32FC1), e.g. from a bag the node recorded.
RECORDED_ENCODINGS = {**INPUT_ENCODINGS, "32FC1": (1, 4, "mono")}

# Depth images as REP 118 has them: uint16 millimetres or float32 metres.
DEPTH_ENCODINGS = {"16UC1": (1, 2, "mono"), "32FC1": (1, 4, "mono")}

# encoding -> (channels, numpy dtype) for the images this package publishes
OUTPUT_ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "mono8": (1, np.dtype(np.uint8)),
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "32FC1": (1, np.dtype(np.float32)),
}

COMPRESSED_FORMATS = ("jpeg", "png")


class ImageRejected(ValueError):  # noqa: N818 (name fixed by the package contract)
    """A message that cannot be turned into an image; ``reason`` is a short counting key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _check_pixel_count(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageRejected("empty", f"image is {width}x{height}; expected width and height >= 1")
    if height * width > max_pixels:
        raise ImageRejected(
            "too_large", f"image claims {width}x{height} = {width * height} pixels; expected at "
            f"most max_pixels={max_pixels}")


def _buffer(data: Any) -> np.ndarray:
    """The message's byte buffer as a flat uint8 array, without copying when possible."""
    try:
        if isinstance(data, np.ndarray):
            return data.reshape(-1).view(np.uint8)
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageRejected("bad_data", f"data is a {type(data).__name__}; expected bytes, an "
                            "array.array or a numpy array of uint8") from exc


def image_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS,
                   encodings: dict[str, tuple[int, int, str]] = INPUT_ENCODINGS) -> np.ndarray:
    """The pixels of an Image in one of ``encodings`` as ``uint8, uint16 or float32 [H, W, C]``
    in native byte order and the message's own channel order; padding bytes at row ends are
    skipped."""
    encoding = str(msg.encoding)
    if encoding not in encodings:
        raise ImageRejected("unknown_encoding", f"encoding {encoding!r} is not supported; "
                            f"expected one of {sorted(encodings)}")
    channels, depth, _ = encodings[encoding]
    try:
        height, width, step = int(msg.height), int(msg.width), int(msg.step)
    except (TypeError, ValueError) as exc:
        raise ImageRejected("bad_fields", f"height {msg.height!r}, width {msg.width!r}, step "
                            f"{msg.step!r}; expected integers") from exc
    _check_pixel_count(height, width, max_pixels)
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageRejected("bad_step", f"step {step} is smaller than width*channels*bytes = "
                            f"{width}*{channels}*{depth} = {row_bytes} for {encoding}")
    data = _buffer(msg.data)
    if data.size < step * height:
        raise ImageRejected("truncated_data", f"data has {data.size} bytes; expected at least "
                            f"step*height = {step}*{height} = {step * height}")
    if data.size > step * height:  # height, width or step disagree with the buffer
        raise ImageRejected("oversized_data", f"data has {data.size} bytes; expected exactly "
                            f"step*height = {step}*{height} = {step * height}")
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    if depth == 1:
        return rows.reshape(height, width, channels)
    kind = "f" if encoding == "32FC1" else "u"
    dtype = np.dtype(f"{'>' if msg.is_bigendian else '<'}{kind}{depth}")
    if rows.strides[0] % depth or rows.ctypes.data % depth:
        rows = np.ascontiguousarray(rows)  # unaligned step or offset: .view needs aligned rows
    pixels = rows.view(dtype).reshape(height, width, channels)
    native = dtype.newbyteorder("=")
    return pixels.astype(native) if dtype != native else pixels


def depth_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A depth Image (``DEPTH_ENCODINGS``) as uint16 millimetres or float32 metres [H, W]."""
    return image_to_array(msg, max_pixels, DEPTH_ENCODINGS)[..., 0]


def image_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8 and their 16-bit forms) as RGB
    ``uint8 [H, W, 3]``; a zero-copy view for unpadded rgb8. 16-bit values are scaled by
    255/65535 like cv_bridge; alpha is dropped; mono is replicated to three channels."""
    pixels = image_to_array(msg, max_pixels)
    _, depth, order = INPUT_ENCODINGS[str(msg.encoding)]
    if depth == 2:
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if order == "mono":
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels[..., 2::-1] if order == "bgr" else pixels[..., :3]
    return rgb if order == "rgb" and pixels.shape[2] == 3 else np.ascontiguousarray(rgb)


def compressed_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG or PNG) as RGB ``uint8 [H, W, 3]``.

    The size written in the file header is checked against ``max_pixels`` before anything is
    decoded, so a small message claiming a huge image cannot exhaust memory.
    """
    fmt = str(msg.format).lower()
    if fmt and not any(name in fmt for name in (*COMPRESSED_FORMATS, "jpg")):
        raise ImageRejected("unknown_format", f"compressed format {msg.format!r} is not "
                            f"supported; expected one containing {list(COMPRESSED_FORMATS)}")
    data = _buffer(msg.data)
    if data.size == 0:
        raise ImageRejected("empty", "compressed image has no data; expected JPEG or PNG bytes")
    try:
        with PilImage.open(io.BytesIO(data.tobytes())) as header:  # reads the header only
            width, height = header.size
            kind = header.format
    except PilImage.DecompressionBombError as exc:
        raise ImageRejected("too_large", f"compressed image header claims too many pixels; "
                            f"expected at most max_pixels={max_pixels}: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise ImageRejected("undecodable", f"compressed data ({data.size} bytes) is not a "
                            f"readable JPEG or PNG: {exc}") from exc
    if kind not in ("JPEG", "PNG"):
        raise ImageRejected("unknown_format", f"compressed data is {kind}; expected JPEG or PNG")
    _check_pixel_count(height, width, max_pixels)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (height, width):
        raise ImageRejected("undecodable", f"OpenCV could not decode the {kind} data "
                            f"({data.size} bytes, header says {width}x{height})")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def array_to_image_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """Fields of a ``rosbags`` Image dataclass from ``[H, W]`` or ``[H, W, C]`` pixels:
    ``height, width, encoding, is_bigendian, step, data``, with ``data`` the pixels as a flat
    ``uint8`` view with unpadded rows (a copy only when ``array`` is not contiguous). For an
    rclpy message use ``array_to_rclpy_image_fields``."""
    if encoding not in OUTPUT_ENCODINGS:
        raise ValueError(f"output encoding {encoding!r} is not supported; expected one of "
                         f"{sorted(OUTPUT_ENCODINGS)}")
    channels, dtype = OUTPUT_ENCODINGS[encoding]
    shaped = array.ndim == 3 and array.shape[2] == channels or array.ndim == 2 and channels == 1
    if array.dtype != dtype or not shaped:
        layout = "[H, W]" if channels == 1 else f"[H, W, {channels}]"
        raise ValueError(f"{encoding} needs {dtype} {layout}, got {array.dtype} {array.shape}")
    height, width = array.shape[:2]
    return {
        "height": int(height),
        "width": int(width),
        "encoding": encoding,
        "is_bigendian": int(sys.byteorder == "big"),
        "step": int(width * channels * dtype.itemsize),
        "data": np.ascontiguousarray(array).reshape(-1).view(np.uint8),
    }


def array_to_rclpy_image_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """``array_to_image_fields`` with ``data`` as bytes, which rclpy's ``Image`` takes directly
    (given an ndarray it would convert element by element)."""
    fields = array_to_image_fields(array, encoding)
    fields["data"] = fields["data"].tobytes()
    return fields
