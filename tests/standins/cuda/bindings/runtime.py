"""Stand-in for ``cuda.bindings.runtime`` on host memory (tests only).

Every function returns a tuple starting with a ``cudaError_t``, as cuda-python does.
``DEVICE_COUNT`` and ``DEVICE_NAME`` may be changed by a test (e.g. no GPU at all).
"""

from __future__ import annotations

import ctypes
import enum
import itertools
from dataclasses import dataclass

import numpy as np

DEVICE_COUNT = 1
DEVICE_NAME = b"Stand-in GPU"
CAPABILITY = (8, 7)


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3


class cudaStream_t:
    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.handle = next(self._ids)

    def __int__(self) -> int:
        return self.handle


@dataclass
class cudaDeviceProp:
    name: bytes
    major: int
    minor: int


_allocations: dict[int, np.ndarray] = {}  # address -> the array that owns the memory
_kinds: dict[int, str] = {}  # address -> "device" | "host"
_streams: set[int] = set()
_current_device = 0
ok = cudaError_t.cudaSuccess


def live_allocations(kind: str) -> int:
    """How many buffers of ``kind`` ("device" or "host") are allocated (for leak tests)."""
    return sum(1 for k in _kinds.values() if k == kind)


def _allocate(nbytes: int, kind: str) -> tuple:
    if nbytes <= 0:
        return (cudaError_t.cudaErrorInvalidValue, 0)
    array = np.zeros(nbytes, dtype=np.uint8)
    address = array.ctypes.data
    _allocations[address] = array
    _kinds[address] = kind
    return (ok, address)


def _inside(address: int, nbytes: int) -> bool:
    """Whether [address, address + nbytes) lies in one allocation (or is foreign host memory,
    as numpy arrays the caller owns are)."""
    for start, array in _allocations.items():
        if start <= address < start + array.nbytes:
            return address + nbytes <= start + array.nbytes
    return True


def view(address: int, nbytes: int) -> np.ndarray:
    """The bytes at ``address`` as a writable uint8 array (for the TensorRT stand-in)."""
    if not _inside(address, nbytes):
        raise ValueError(f"{nbytes} bytes at {address:#x} overrun their allocation")
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(address))


def cudaGetDeviceCount() -> tuple:
    return (ok, DEVICE_COUNT)


def cudaGetDeviceProperties(device: int) -> tuple:
    if not 0 <= device < DEVICE_COUNT:
        return (cudaError_t.cudaErrorInvalidDevice, None)
    return (ok, cudaDeviceProp(DEVICE_NAME, *CAPABILITY))


def cudaSetDevice(device: int) -> tuple:
    global _current_device
    if not 0 <= device < DEVICE_COUNT:
        return (cudaError_t.cudaErrorInvalidDevice,)
    _current_device = device
    return (ok,)


def cudaGetErrorString(error: cudaError_t) -> tuple:
    return (ok, cudaError_t(error).name.encode())


def cudaMalloc(nbytes: int) -> tuple:
    return _allocate(nbytes, "device")


def cudaMallocHost(nbytes: int) -> tuple:
    return _allocate(nbytes, "host")


def _free(address: int, kind: str) -> tuple:
    if _kinds.get(address) != kind:
        return (cudaError_t.cudaErrorInvalidValue,)
    del _allocations[address], _kinds[address]
    return (ok,)


def cudaFree(address: int) -> tuple:
    return _free(address, "device")


def cudaFreeHost(address: int) -> tuple:
    return _free(address, "host")


def cudaStreamCreate() -> tuple:
    stream = cudaStream_t()
    _streams.add(int(stream))
    return (ok, stream)


def _stream_ok(stream: cudaStream_t | int) -> bool:
    return int(stream) in _streams


def cudaStreamSynchronize(stream: cudaStream_t) -> tuple:
    return (ok,) if _stream_ok(stream) else (cudaError_t.cudaErrorInvalidResourceHandle,)


def cudaStreamDestroy(stream: cudaStream_t) -> tuple:
    if not _stream_ok(stream):
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    _streams.discard(int(stream))
    return (ok,)


def stream_is_live(handle: int) -> bool:
    return handle in _streams


def cudaMemcpyAsync(dst: int, src: int, nbytes: int, kind: cudaMemcpyKind,
                    stream: cudaStream_t) -> tuple:
    if not _stream_ok(stream):
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    device_side = {cudaMemcpyKind.cudaMemcpyHostToDevice: dst,
                   cudaMemcpyKind.cudaMemcpyDeviceToHost: src}.get(kind)
    if device_side is None or _kinds.get(_owner(device_side)) != "device":
        return (cudaError_t.cudaErrorInvalidValue,)
    if not (_inside(dst, nbytes) and _inside(src, nbytes)):
        return (cudaError_t.cudaErrorInvalidValue,)
    ctypes.memmove(dst, src, nbytes)
    return (ok,)


def _owner(address: int) -> int | None:
    for start, array in _allocations.items():
        if start <= address < start + array.nbytes:
            return start
    return None
