"""Read rosbag2 (sqlite3, MCAP) and ROS 1 bags with ``rosbags`` and find their image topics.

``rosbags.highlevel.AnyReader`` reads every format and builds its typestore from the
definitions embedded in the bag; bags without embedded definitions fall back to the latest
ROS 2 typestore. Every failure surfaces as :class:`BagError` naming the file (and topic):
``rosbags`` reports a damaged file through many exception types (its own reader errors,
``sqlite3.DatabaseError``, ``struct.error``, ``EOFError``, zstd errors), so the read layer
translates them all here rather than letting callers guess.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from rosbags.convert.converter import is_same_wireformat
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection
from rosbags.rosbag1 import ReaderError as Reader1Error
from rosbags.rosbag2 import ReaderError as Reader2Error
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, TypesysError, get_typestore
from rosbags.typesys.store import Typestore

from dudes_ros.messages.types import COMPRESSED_IMAGE, IMAGE, IMAGE_TYPES, OUTPUT_TYPESTORE

# Exceptions through which rosbags and its storage back-ends report unreadable data.
READ_ERRORS = (AnyReaderError, Reader1Error, Reader2Error, SerdeError, TypesysError,
               sqlite3.DatabaseError, struct.error, EOFError, OSError, ValueError, KeyError,
               IndexError, AssertionError)

# Last topic segments that name the image rather than the camera (stripped to find the camera).
_TRANSPORT_SUFFIXES = ("compressed",)


class BagError(ValueError):
    """A bag cannot be read or does not hold what was asked for; the message names the file."""


@dataclass(frozen=True)
class ImageTopic:
    """An image topic of a bag and the camera namespace it belongs to."""

    topic: str
    msgtype: str
    count: int

    @property
    def compressed(self) -> bool:
        return self.msgtype == COMPRESSED_IMAGE

    @property
    def namespace(self) -> str:
        """The camera namespace: the topic without its image name (and ``/compressed``).

        ``/cam_front/image_raw`` and ``/cam_front/image_raw/compressed`` -> ``/cam_front``;
        a top-level ``/image`` -> ``""`` (outputs then go to ``/segmentation`` and so on).
        """
        parts = [p for p in self.topic.split("/") if p]
        if self.compressed and len(parts) > 1 and parts[-1] in _TRANSPORT_SUFFIXES:
            parts = parts[:-1]
        return "/" + "/".join(parts[:-1]) if len(parts) > 1 else ""

    @property
    def camera(self) -> str:
        """Camera name used as the key for the perception core (``camera`` at top level)."""
        return self.namespace.strip("/") or "camera"


@dataclass(frozen=True)
class BagMessage:
    """One raw message: ``timestamp`` is the bag's receive time in ns."""

    topic: str
    msgtype: str
    timestamp: int
    raw: bytes | memoryview
    connection: Connection


def storage_format(path: Path) -> str:
    """``"ros1"``, ``"sqlite3"`` or ``"mcap"`` for a bag file or rosbag2 directory."""
    if path.suffix == ".bag":
        return "ros1"
    if path.is_file():
        return {".mcap": "mcap", ".db3": "sqlite3"}.get(path.suffix, path.suffix.lstrip("."))
    metadata = path / "metadata.yaml"
    try:
        info = yaml.safe_load(metadata.read_text())["rosbag2_bagfile_information"]
        return str(info["storage_identifier"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise BagError(f"{path}: not a rosbag2 directory, cannot read {metadata.name} "
                       f"({type(exc).__name__}: {exc})") from exc


class BagReader:
    """Context manager over one bag: ``with BagReader(path) as bag: ...``.

    ``path`` is a ROS 1 ``.bag`` file, a rosbag2 directory, or a single ``.mcap``/``.db3``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag file or directory")
        self.format = storage_format(self.path)
        if self.format not in ("ros1", "sqlite3", "mcap"):
            raise BagError(f"{self.path}: unknown bag storage {self.format!r}; expected a "
                           "ROS 1 .bag file or a rosbag2 sqlite3/MCAP bag")
        self._reader: AnyReader | None = None

    @property
    def is_ros1(self) -> bool:
        return self.format == "ros1"

    def __enter__(self) -> BagReader:
        try:
            reader = AnyReader([self.path], default_typestore=get_typestore(Stores.LATEST))
            reader.open()
        except READ_ERRORS as exc:
            raise BagError(f"{self.path}: cannot open bag, it is corrupted, truncated or not "
                           f"a bag ({type(exc).__name__}: {exc})") from exc
        self._reader = reader
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                reader.close()
            except READ_ERRORS:
                pass  # a reader that failed mid-way may not close cleanly; the error is raised

    @property
    def reader(self) -> AnyReader:
        if self._reader is None:
            raise RuntimeError("BagReader is not open; use it as a context manager")
        return self._reader

    @property
    def typestore(self) -> Typestore:
        """Typestore built from the bag's embedded definitions (deserializes its messages)."""
        return self.reader.typestore

    @property
    def start_time(self) -> int:
        return self.reader.start_time

    @property
    def end_time(self) -> int:
        return self.reader.end_time

    def topics(self) -> dict[str, tuple[str, int]]:
        """``{topic: (msgtype, message count)}`` for every topic."""
        return {name: (info.msgtype or "<mixed types>", info.msgcount)
                for name, info in self.reader.topics.items()}

    def image_topics(self) -> list[ImageTopic]:
        """Every ``sensor_msgs/msg/Image`` or ``CompressedImage`` topic, sorted by name."""
        return [ImageTopic(name, msgtype, count)
                for name, (msgtype, count) in sorted(self.topics().items())
                if msgtype in IMAGE_TYPES]

    def select_image_topics(self, topics: Sequence[str] | None = None) -> list[ImageTopic]:
        """The requested image topics (default: all), refusing unknown or non-image ones."""
        available = self.topics()
        images = {t.topic: t for t in self.image_topics()}
        if not topics:
            if not images:
                listing = ", ".join(f"{n} ({t})" for n, (t, _) in sorted(available.items()))
                raise BagError(f"{self.path}: no {IMAGE} or {COMPRESSED_IMAGE} topic in the "
                               f"bag; it has: {listing or 'no topics at all'}")
            return list(images.values())
        chosen = []
        for topic in topics:
            if topic not in available:
                raise BagError(f"{self.path}: topic {topic!r} is not in the bag; image topics "
                               f"are {sorted(images) or 'none'}")
            if topic not in images:
                raise BagError(f"{self.path}: topic {topic!r} has message type "
                               f"{available[topic][0]!r}; expected {IMAGE} or {COMPRESSED_IMAGE}")
            chosen.append(images[topic])
        return chosen

    def messages(self, topics: Sequence[str] = (),
                 start: int | None = None) -> Iterator[BagMessage]:
        """Raw messages of ``topics`` (all when empty) in bag-time order, from ``start`` ns."""
        wanted = set(topics)
        connections = [c for c in self.reader.connections if not wanted or c.topic in wanted]
        if wanted and not connections:
            return
        iterator = self.reader.messages(connections=connections, start=start)
        while True:
            try:
                connection, timestamp, raw = next(iterator)
            except StopIteration:
                return
            except READ_ERRORS as exc:
                raise BagError(f"{self.path}: cannot read messages, the bag is corrupted or "
                               f"truncated ({type(exc).__name__}: {exc})") from exc
            yield BagMessage(connection.topic, connection.msgtype, timestamp, raw, connection)

    def deserialize(self, message: BagMessage) -> object:
        """The message as a ``rosbags`` dataclass (ROS 1 or ROS 2 layout, as recorded)."""
        try:
            return self.reader.deserialize(message.raw, message.msgtype)
        except READ_ERRORS as exc:
            raise BagError(f"{self.path}: cannot decode a {message.msgtype} message on "
                           f"{message.topic} at t={message.timestamp} ns "
                           f"({type(exc).__name__}: {exc})") from exc


def check_ros2_layout(bag: BagReader, topic: str, msgtype: str, typestore: Typestore) -> None:
    """Refuse a ROS 1 topic whose type has no same-layout ROS 2 type in ``typestore``.

    ``rosbags`` converts ROS 1 wire data to CDR directly (dropping ``Header.seq``) when the
    layouts match, which holds for the standard sensor, std and geometry types.
    """
    if not bag.is_ros1:
        return
    if msgtype not in typestore.fielddefs:
        raise BagError(f"{bag.path}: topic {topic!r} has type {msgtype!r}, unknown to the "
                       f"{OUTPUT_TYPESTORE.value} typestore; it cannot be converted")
    if not is_same_wireformat(bag.typestore, typestore, msgtype, msgtype):
        raise BagError(f"{bag.path}: topic {topic!r}: the ROS 1 layout of {msgtype!r} differs "
                       "from the ROS 2 one; it cannot be converted")


def to_ros2_cdr(bag: BagReader, message: BagMessage, typestore: Typestore) -> bytes | memoryview:
    """The message serialized as ROS 2 CDR (ROS 1 messages are converted; ROS 2 pass through);
    ROS 1 types must pass ``check_ros2_layout`` first."""
    if not bag.is_ros1:
        return message.raw
    try:
        return typestore.ros1_to_cdr(message.raw, message.msgtype)
    except READ_ERRORS as exc:
        raise BagError(f"{bag.path}: cannot convert {message.msgtype} on {message.topic} to "
                       f"ROS 2 ({type(exc).__name__}: {exc})") from exc
