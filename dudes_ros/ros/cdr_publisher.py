"""Publish ``rosbags`` messages as CDR straight through rcl, from a buffer the publisher keeps.

With ``Typestore.serialize_cdr`` (a fresh zeroed ``bytearray``) and rclpy's ``publish(bytes)``,
which its C++ layer copies once more into a ``std::string`` while holding the GIL, a frame
takes three passes over freshly mapped memory before the middleware's own copy.
``CdrPublisher`` encodes with rosbags' generated encoder (``Msgdef.serialize_cdr_le``, which
writes into any buffer) into a buffer it keeps and hands that to
``rcl_publish_serialized_message`` (``rcl_serialized``), which releases the GIL while the
middleware copies, so a large image reaches the subscriber several times sooner
(``benchmarks/bench_publish.py``, BENCHMARKS.md). Where rcl cannot be called that way it
publishes ``bytes`` through rclpy instead (``via`` says which).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
from rosbags.typesys.store import Typestore

from dudes_ros.ros.rcl_serialized import RCL_RET_OK, SerializedMessage, rcl

# Messages whose CDR ends with their ``uint8[] data`` bytes: only the bytes before it need
# zeroing in a reused buffer (rosbags writes every field but leaves padding and string
# terminators to a zeroed buffer).
TRAILING_DATA = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"})
CDR_LE = np.array([0, 1, 0, 0], np.uint8)  # encapsulation header: plain CDR, little endian


class CdrPublisher:
    """Publishes ``msgtype`` messages of ``typestore`` on an rclpy (or lifecycle) publisher.

    Messages in ``TRAILING_DATA`` are encoded into one buffer kept across calls (grown as
    needed); the middleware has copied it when ``rcl_publish_serialized_message`` returns.
    Not thread-safe: one thread publishes on one ``CdrPublisher``.
    """

    def __init__(self, publisher: Any, typestore: Typestore, msgtype: str) -> None:
        self.publisher = publisher
        self.msgtype = msgtype
        self._typestore = typestore
        self._msgdef = typestore.get_msgdef(msgtype)
        self._buffer = np.zeros(0, np.uint8)
        self._rcl = rcl() if hasattr(publisher.handle, "pointer") else None
        self.via = "rcl" if self._rcl else "rclpy"

    def publish(self, message: Any) -> None:
        """Encode ``message`` (a ``typestore`` dataclass of ``msgtype``) and publish it; a
        lifecycle publisher that is not activated drops it, as its ``publish`` does."""
        if not getattr(self.publisher, "is_activated", True):
            return
        cdr = self.encode(message)
        if self._rcl is None:
            self.publisher.publish(cdr.tobytes())
            return
        serialized = SerializedMessage(cdr.ctypes.data, cdr.nbytes, cdr.nbytes)
        with self.publisher.handle:
            ret = self._rcl.publish_serialized(self.publisher.handle.pointer,
                                               ctypes.byref(serialized), None)
        if ret != RCL_RET_OK:
            raise self._rcl.error("rcl_publish_serialized_message", ret,
                                  self.publisher.topic_name)

    def encode(self, message: Any) -> np.ndarray:
        """``uint8 [N]`` CDR of ``message`` with its encapsulation header, byte for byte what
        ``Typestore.serialize_cdr`` gives; a view of the kept buffer for ``TRAILING_DATA``
        types, valid until the next call."""
        size = 4 + self._msgdef.getsize_cdr(0, message, self._typestore)
        if self.msgtype in TRAILING_DATA:
            if self._buffer.size < size:
                self._buffer = np.zeros(size + size // 4, np.uint8)
            cdr = self._buffer[:size]
            cdr[:size - len(message.data)] = 0
        else:
            cdr = np.zeros(size, np.uint8)
        cdr[:4] = CDR_LE
        self._msgdef.serialize_cdr_le(memoryview(cdr)[4:], 0, message, self._typestore)
        return cdr
