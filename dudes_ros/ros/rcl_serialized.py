"""rcl's serialized-message calls through ``ctypes``: publish from a buffer the caller keeps and
take into buffers kept across takes.

rclpy publishes a serialized message only from ``bytes`` and takes one only into fresh
``bytes``: one more pass over a 6 MiB frame each way, into freshly allocated memory, while
holding the GIL (BENCHMARKS.md). No rclpy call publishes from or takes into a buffer, hence
``ctypes``. ``rcl_publish_serialized_message``, ``rcl_take_serialized_message`` and
``rcl_serialized_message_t`` are the same from Humble to Kilted; the handles come from rclpy's
``pointer`` properties. ``rmw_message_info_t`` is laid out per distribution
(``message_info_type``: the publisher GID's storage is 24 bytes in Humble, 16 since Iron),
with the size from ``distro.current()``. Where the libraries cannot be loaded, ``rcl()`` is
None and callers fall back to rclpy.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from dudes_ros.ros.distro import current

RCL_RET_OK = 0
RCL_RET_SUBSCRIPTION_TAKE_FAILED = 401  # nothing to take


class Allocator(ctypes.Structure):
    """``rcutils_allocator_t``."""

    _fields_ = [("allocate", ctypes.c_void_p), ("deallocate", ctypes.c_void_p),
                ("reallocate", ctypes.c_void_p), ("zero_allocate", ctypes.c_void_p),
                ("state", ctypes.c_void_p)]


class SerializedMessage(ctypes.Structure):
    """``rcl_serialized_message_t`` (``rcutils_uint8_array_t``)."""

    _fields_ = [("buffer", ctypes.c_void_p), ("buffer_length", ctypes.c_size_t),
                ("buffer_capacity", ctypes.c_size_t), ("allocator", Allocator)]


# rmw's "this middleware gives no sequence numbers" (RMW_MESSAGE_INFO_SEQUENCE_NUMBER_UNSUPPORTED)
SEQUENCE_NUMBER_UNSUPPORTED = 2**64 - 1
# Zeroed bytes after the struct (SerializedTaker): a take writes within them, not past the
# block, should the loaded rmw's struct be larger than that of the distribution detected.
_SPARE_BYTES = 32


class MessageInfoBase(ctypes.Structure):
    """Reading of an ``rmw_message_info_t`` whatever its GID size (``message_info_type``)."""

    def as_dict(self) -> dict[str, Any]:
        """What rclpy's ``take_message`` gives (Kilted's keys: the sequence numbers are None
        where the middleware gives none, as rclpy has them)."""
        def sequence(value: int) -> int | None:
            return None if value == SEQUENCE_NUMBER_UNSUPPORTED else value

        return {"source_timestamp": self.source_timestamp,
                "received_timestamp": self.received_timestamp,
                "publication_sequence_number": sequence(self.publication_sequence_number),
                "reception_sequence_number": sequence(self.reception_sequence_number),
                "publisher_gid": {"data": bytes(self.gid_data)}}


@functools.cache
def message_info_type(gid_size: int) -> type[MessageInfoBase]:
    """``rmw_message_info_t`` with ``RMW_GID_STORAGE_SIZE`` = ``gid_size`` (rmw/types.h):
    two ``int64`` timestamps, two ``uint64`` sequence numbers, ``rmw_gid_t`` (identifier
    pointer, ``gid_size`` bytes) and ``bool from_intra_process``; the same fields from Humble
    (24) to Kilted (16)."""
    fields = [("source_timestamp", ctypes.c_int64), ("received_timestamp", ctypes.c_int64),
              ("publication_sequence_number", ctypes.c_uint64),
              ("reception_sequence_number", ctypes.c_uint64),
              ("gid_implementation", ctypes.c_void_p), ("gid_data", ctypes.c_uint8 * gid_size),
              ("from_intra_process", ctypes.c_bool)]
    return type(f"MessageInfo{gid_size}", (MessageInfoBase,), {"_fields_": fields})


class _ErrorString(ctypes.Structure):
    """``rcutils_error_string_t``."""

    _fields_ = [("str", ctypes.c_char * 1024)]


@dataclass(frozen=True)
class Rcl:
    """The rcl and rcutils functions used here, typed."""

    publish_serialized: Any
    take_serialized: Any
    get_error: Any
    reset_error: Any
    default_allocator: Any
    array_init: Any
    array_fini: Any

    def error(self, call: str, ret: int, topic: str) -> RuntimeError:
        """An error naming the call, the topic, the return code and rcl's message (whose
        error state is reset for the next call)."""
        text = self.get_error().str.decode(errors="replace")
        self.reset_error()
        return RuntimeError(f"{call} on {topic} failed ({ret}): {text}")


@functools.cache
def rcl() -> Rcl | None:
    """The functions from the librcl and librcutils rclpy has loaded; None where they cannot
    be found."""
    try:
        librcl, rcutils = ctypes.CDLL("librcl.so"), ctypes.CDLL("librcutils.so")
    except OSError:
        return None
    message = ctypes.POINTER(SerializedMessage)
    publish = librcl.rcl_publish_serialized_message
    publish.argtypes = [ctypes.c_void_p, message, ctypes.c_void_p]
    publish.restype = ctypes.c_int
    take = librcl.rcl_take_serialized_message
    take.argtypes = [ctypes.c_void_p, message, ctypes.c_void_p, ctypes.c_void_p]
    take.restype = ctypes.c_int
    rcutils.rcutils_get_error_string.restype = _ErrorString
    rcutils.rcutils_get_default_allocator.restype = Allocator
    init = rcutils.rcutils_uint8_array_init
    init.argtypes = [message, ctypes.c_size_t, ctypes.POINTER(Allocator)]
    init.restype = ctypes.c_int
    fini = rcutils.rcutils_uint8_array_fini
    fini.argtypes = [message]
    fini.restype = ctypes.c_int
    return Rcl(publish, take, rcutils.rcutils_get_error_string, rcutils.rcutils_reset_error,
               rcutils.rcutils_get_default_allocator, init, fini)


class SerializedTaker:
    """Takes the CDR of an rclpy subscription's messages into two buffers owned by rcutils
    and kept across takes (rmw grows them when a message is larger).

    ``take`` fills the buffer the previous successful take did not, so the message it returned
    stays intact through a failed take and through one more successful one: a caller that takes
    until nothing is left keeps the newest message without a copy. Not thread-safe.
    """

    def __init__(self, subscription: Any, lib: Rcl) -> None:
        self.subscription = subscription
        self._rcl = lib
        allocator = lib.default_allocator()
        self._buffers = [SerializedMessage(), SerializedMessage()]
        for buffer in self._buffers:
            ret = lib.array_init(ctypes.byref(buffer), 0, ctypes.byref(allocator))
            if ret != RCL_RET_OK:
                raise lib.error("rcutils_uint8_array_init", ret, subscription.topic_name)
        self._next = 0
        info_type = message_info_type(current().gid_storage_size)
        self._info_block = (ctypes.c_uint8 * (ctypes.sizeof(info_type) + _SPARE_BYTES))()
        self._info = info_type.from_buffer(self._info_block)

    def take(self) -> tuple[np.ndarray, dict[str, Any]] | None:
        """``(uint8 [N] CDR, message info)`` of the next message, or None when none waits.
        The array views a kept buffer: valid until the second take after this one."""
        buffer, info = self._buffers[self._next], self._info
        ctypes.memset(self._info_block, 0, ctypes.sizeof(self._info_block))
        with self.subscription.handle:
            ret = self._rcl.take_serialized(self.subscription.handle.pointer,
                                            ctypes.byref(buffer), ctypes.byref(info), None)
        if ret == RCL_RET_SUBSCRIPTION_TAKE_FAILED:
            self._rcl.reset_error()
            return None
        if ret != RCL_RET_OK:
            raise self._rcl.error("rcl_take_serialized_message", ret,
                                  self.subscription.topic_name)
        self._next ^= 1
        size = buffer.buffer_length
        cdr = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(buffer.buffer))
        return cdr, info.as_dict()

    def close(self) -> None:
        """Free both buffers (views of them must be gone)."""
        for buffer in self._buffers:
            self._rcl.array_fini(ctypes.byref(buffer))
        self._buffers = []
