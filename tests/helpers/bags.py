"""Small image bags written with ``rosbags`` (rosbag2 sqlite3/MCAP with Kilted types, ROS 1).

``write_image_bag`` records, for each camera topic, ``n_frames`` deterministic frames and
returns what a reader must find: per message the topic, bag time, header stamp, frame id and
the RGB pixels the frame decodes to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

KILTED = get_typestore(Stores.ROS2_KILTED)
NOETIC = get_typestore(Stores.ROS1_NOETIC)
T0_NS = 1_700_000_000 * 10**9  # bag time of the first frame
STAMP0_S = 1_000  # header stamp seconds of the first frame (differs from bag time on purpose)


@dataclass(frozen=True)
class Camera:
    """An image topic: ``kind`` is rgb8, bgr8, mono8 (raw Image) or png (CompressedImage)."""

    topic: str
    kind: str = "rgb8"
    size: tuple[int, int] = (64, 128)


@dataclass(frozen=True)
class Frame:
    topic: str
    timestamp: int  # bag time, ns
    sec: int
    nanosec: int
    frame_id: str
    rgb: np.ndarray  # uint8 [H, W, 3] the message decodes to


def pattern(index: int, size: tuple[int, int], salt: int = 0) -> np.ndarray:
    """Frame ``index``: smooth gradients plus a moving square, uint8 [H, W, 3] RGB."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([(xx * 255 // max(w - 1, 1) + 9 * index) % 256,
                      (yy * 255 // max(h - 1, 1) + 5 * salt) % 256,
                      ((xx + yy + 17 * index) * 3) % 256], axis=-1).astype(np.uint8)
    top, left = (3 * index) % max(h - 8, 1), (7 * index) % max(w - 8, 1)
    image[top:top + 8, left:left + 8] = (255, 255 - 20 * salt % 256, 0)
    return image


def _header(typestore, sec: int, nanosec: int, frame_id: str, seq: int):
    types = typestore.types
    stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    extra = {"seq": seq} if "seq" in types["std_msgs/msg/Header"].__dataclass_fields__ else {}
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id, **extra)


def image_message(typestore, camera: Camera, rgb: np.ndarray, header) -> tuple[str, object]:
    """``(msgtype, message)`` carrying ``rgb`` encoded as ``camera.kind``."""
    types = typestore.types
    if camera.kind == "png":
        ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return "sensor_msgs/msg/CompressedImage", types["sensor_msgs/msg/CompressedImage"](
            header=header, format="rgb8; png compressed bgr8", data=data.ravel())
    pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": rgb[..., :1]}[camera.kind]
    h, w, c = pixels.shape
    return "sensor_msgs/msg/Image", types["sensor_msgs/msg/Image"](
        header=header, height=h, width=w, encoding=camera.kind, is_bigendian=0, step=w * c,
        data=np.ascontiguousarray(pixels).ravel())


def expected_rgb(camera: Camera, rgb: np.ndarray) -> np.ndarray:
    return np.repeat(rgb[..., :1], 3, axis=2) if camera.kind == "mono8" else rgb


def bag_writer(path: Path, storage: str):
    """An unopened rosbags writer: a ROS 1 ``.bag`` for ``storage`` "ros1", else a rosbag2
    directory of the storage plugin "sqlite3" or "mcap"."""
    if storage == "ros1":
        return Writer1(path)
    plugin = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}[storage]
    return Writer(path, version=9, storage_plugin=plugin)


def write_image_bag(path: Path, cameras: list[Camera], n_frames: int, storage: str = "mcap",
                    period_ns: int = 100_000_000, extra_string_topic: bool = True) -> list[Frame]:
    """Write ``n_frames`` per camera (cameras interleaved, ``period_ns`` apart) to ``path``:
    a rosbag2 directory for ``storage`` sqlite3/mcap, a ROS 1 ``.bag`` for ``ros1``. With
    ``extra_string_topic`` a std_msgs/String ``/note`` topic is recorded too."""
    ros1 = storage == "ros1"
    typestore = NOETIC if ros1 else KILTED
    frames: list[Frame] = []
    with bag_writer(path, storage) as writer:
        def add(topic: str, msgtype: str):
            return writer.add_connection(topic, msgtype, typestore=typestore)

        connections = {}
        for camera in cameras:
            msgtype = "sensor_msgs/msg/CompressedImage" if camera.kind == "png" else \
                "sensor_msgs/msg/Image"
            connections[camera.topic] = add(camera.topic, msgtype)
        note = add("/note", "std_msgs/msg/String") if extra_string_topic else None
        serialize = typestore.serialize_ros1 if ros1 else typestore.serialize_cdr
        for i in range(n_frames):
            for k, camera in enumerate(cameras):
                timestamp = T0_NS + i * period_ns + k * 1000
                sec, nanosec = STAMP0_S + i, 1000 * k + 7
                frame_id = f"{camera.topic.strip('/').split('/')[0]}_{i}"
                rgb = pattern(i, camera.size, salt=k)
                msgtype, msg = image_message(typestore, camera, rgb,
                                             _header(typestore, sec, nanosec, frame_id, i))
                writer.write(connections[camera.topic], timestamp, serialize(msg, msgtype))
                frames.append(Frame(camera.topic, timestamp, sec, nanosec, frame_id,
                                    expected_rgb(camera, rgb)))
            if note is not None:
                text = typestore.types["std_msgs/msg/String"](data=f"note {i}")
                writer.write(note, T0_NS + i * period_ns + 500,
                             serialize(text, "std_msgs/msg/String"))
    return frames
