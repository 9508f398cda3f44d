"""Publish ``rosbags`` messages as CDR straight through rcl, from a buffer the publisher keeps.

rclpy publishes a serialized message only from ``bytes``, which its C++ layer copies once more
into a ``std::string`` while holding the GIL; with ``Typestore.serialize_cdr`` (a fresh zeroed
``bytearray``) that is three passes over freshly mapped memory before the middleware's own
copy. ``CdrPublisher`` encodes with rosbags' generated encoder (``Msgdef.serialize_cdr_le``,
which writes into any buffer) into a buffer it keeps and hands that to
``rcl_publish_serialized_message`` through ``ctypes``, which releases the GIL while the
middleware copies, so a large image reaches the subscriber several times sooner
(``benchmarks/bench_publish.py``, BENCHMARKS.md). No rclpy call
publishes from a buffer, hence ``ctypes``; the function's signature and
``rcl_serialized_message_t`` are the same from Humble to Kilted, and the publisher handle comes
from rclpy's ``pointer`` property. Where rcl cannot be called that way it publishes ``bytes``
through rclpy instead (``via`` says which).
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from rosbags.typesys.store import Typestore

# Messages whose CDR ends with their ``uint8[] data`` bytes: only the bytes before it need
# zeroing in a reused buffer (rosbags writes every field but leaves padding and string
# terminators to a zeroed buffer).
TRAILING_DATA = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"})
CDR_LE = np.array([0, 1, 0, 0], np.uint8)  # encapsulation header: plain CDR, little endian
RCL_RET_OK = 0


class _Allocator(ctypes.Structure):
    """``rcutils_allocator_t`` (unused by publishing, present for the layout)."""

    _fields_ = [("allocate", ctypes.c_void_p), ("deallocate", ctypes.c_void_p),
                ("reallocate", ctypes.c_void_p), ("zero_allocate", ctypes.c_void_p),
                ("state", ctypes.c_void_p)]


class _SerializedMessage(ctypes.Structure):
    """``rcl_serialized_message_t`` (``rcutils_uint8_array_t``)."""

    _fields_ = [("buffer", ctypes.c_void_p), ("buffer_length", ctypes.c_size_t),
                ("buffer_capacity", ctypes.c_size_t), ("allocator", _Allocator)]


class _ErrorString(ctypes.Structure):
    """``rcutils_error_string_t``."""

    _fields_ = [("str", ctypes.c_char * 1024)]


@dataclass(frozen=True)
class Rcl:
    """``rcl_publish_serialized_message`` and rcutils' error state, typed."""

    publish_serialized: Any
    get_error: Any
    reset_error: Any

    def error(self, ret: int, topic: str) -> RuntimeError:
        """An error naming the topic, the return code and rcl's message (whose error state
        is reset for the next call)."""
        text = self.get_error().str.decode(errors="replace")
        self.reset_error()
        return RuntimeError(f"rcl_publish_serialized_message on {topic} failed ({ret}): {text}")


@functools.cache
def rcl() -> Rcl | None:
    """The functions from the librcl and librcutils rclpy has loaded; None where they cannot
    be found."""
    try:
        librcl, rcutils = ctypes.CDLL("librcl.so"), ctypes.CDLL("librcutils.so")
    except OSError:
        return None
    publish = librcl.rcl_publish_serialized_message
    publish.argtypes = [ctypes.c_void_p, ctypes.POINTER(_SerializedMessage), ctypes.c_void_p]
    publish.restype = ctypes.c_int
    rcutils.rcutils_get_error_string.restype = _ErrorString
    return Rcl(publish, rcutils.rcutils_get_error_string, rcutils.rcutils_reset_error)


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
        serialized = _SerializedMessage(cdr.ctypes.data, cdr.nbytes, cdr.nbytes)
        with self.publisher.handle:
            ret = self._rcl.publish_serialized(self.publisher.handle.pointer,
                                               ctypes.byref(serialized), None)
        if ret != RCL_RET_OK:
            raise self._rcl.error(ret, self.publisher.topic_name)

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
