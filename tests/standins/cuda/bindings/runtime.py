"""Stand-in for ``cuda.bindings.runtime`` on host memory (tests only).

Every function returns a tuple starting with a ``cudaError_t``, as cuda-python does, and
follows CUDA's rules where the package could get them wrong:

- The current device is per host thread: ``cudaSetDevice`` changes it for the calling thread
  only, and every new thread starts on device 0.
- Device allocations and streams remember the device that was current when they were made
  (the TensorRT stand-in refuses to run with buffers or a stream of another device).
- Device memory is finite: ``FREE_DEVICE_MEMORY`` bytes per device, shared by ``cudaMalloc``
  and what the TensorRT stand-in reserves for engines and execution contexts. Device memory is
  never touched until used (numpy's zeroed allocations are lazy), so large sizes cost nothing.

Knobs a test may set (module globals, read at every call): ``DEVICE_COUNT`` (may be 0 or > 1),
``DEVICE_NAME``, ``CAPABILITY``, ``FREE_DEVICE_MEMORY`` and ``DEVICE_COUNT_ERROR`` (None, or
``cudaErrorInsufficientDriver`` / ``cudaErrorNoDevice``: ``cudaGetDeviceCount`` then fails the
way it does on a machine without a usable driver or GPU).
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import threading
from dataclasses import dataclass

import numpy as np

DEVICE_COUNT = 1
DEVICE_NAME = b"Stand-in GPU"
CAPABILITY = (8, 7)
FREE_DEVICE_MEMORY = 16 << 30  # bytes per device
DEVICE_COUNT_ERROR = None


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400


# cudaGetErrorString's text for each error, as the CUDA runtime words it.
_ERROR_TEXT = {
    cudaError_t.cudaSuccess: b"no error",
    cudaError_t.cudaErrorInvalidValue: b"invalid argument",
    cudaError_t.cudaErrorMemoryAllocation: b"out of memory",
    cudaError_t.cudaErrorInsufficientDriver:
        b"CUDA driver version is insufficient for CUDA runtime version",
    cudaError_t.cudaErrorNoDevice: b"no CUDA-capable device is detected",
    cudaError_t.cudaErrorInvalidDevice: b"invalid device ordinal",
    cudaError_t.cudaErrorInvalidResourceHandle: b"invalid resource handle",
}


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
    totalGlobalMem: int


@dataclass
class _Allocation:
    array: np.ndarray  # owns the bytes
    kind: str  # "device" | "host"
    device: int | None  # the device a device allocation lives on


_allocations: dict[int, _Allocation] = {}  # address -> allocation
_streams: dict[int, int] = {}  # live stream handle -> its device
_reserved: dict[int, tuple[int, int]] = {}  # reservation id -> (device, bytes), for TensorRT
_reservation_ids = itertools.count(1)
_thread = threading.local()  # .device: the calling thread's current device
_lock = threading.Lock()
ok = cudaError_t.cudaSuccess


def current_device() -> int:
    """The calling thread's current device (0 in a thread that never called cudaSetDevice)."""
    return getattr(_thread, "device", 0)


def live_allocations(kind: str) -> int:
    """How many buffers of ``kind`` ("device" or "host") are allocated (for leak tests)."""
    return sum(1 for a in _allocations.values() if a.kind == kind)


def device_bytes_in_use(device: int = 0) -> int:
    """Bytes of ``device`` taken by cudaMalloc and by TensorRT reservations."""
    return (sum(a.array.nbytes for a in _allocations.values()
                if a.kind == "device" and a.device == device)
            + sum(n for d, n in _reserved.values() if d == device))


def reserve(nbytes: int, device: int) -> int | None:
    """Take ``nbytes`` of ``device`` without host memory behind them (what TensorRT allocates
    for itself): a reservation id, or None when they do not fit."""
    with _lock:
        if device_bytes_in_use(device) + nbytes > FREE_DEVICE_MEMORY:
            return None
        rid = next(_reservation_ids)
        _reserved[rid] = (device, int(nbytes))
        return rid


def release(reservation: int) -> None:
    _reserved.pop(reservation, None)


def _allocate(nbytes: int, kind: str) -> tuple:
    if nbytes <= 0:
        return (cudaError_t.cudaErrorInvalidValue, 0)
    device = current_device() if kind == "device" else None
    with _lock:
        if device is not None and device_bytes_in_use(device) + nbytes > FREE_DEVICE_MEMORY:
            return (cudaError_t.cudaErrorMemoryAllocation, 0)
        array = np.zeros(nbytes, dtype=np.uint8)
        _allocations[array.ctypes.data] = _Allocation(array, kind, device)
    return (ok, array.ctypes.data)


def allocation(address: int) -> tuple[int, _Allocation] | None:
    """(start, allocation) of the live allocation holding ``address``, or None."""
    for start, alloc in list(_allocations.items()):
        if start <= address < start + alloc.array.nbytes:
            return start, alloc
    return None


def device_span_problem(address: int, nbytes: int, device: int) -> str | None:
    """None when [address, address + nbytes) lies in one live device allocation on ``device``,
    else what is wrong (for the TensorRT stand-in's checks)."""
    found = allocation(address)
    if found is None:
        return f"{address:#x} is not in a live device allocation"
    start, alloc = found
    if alloc.kind != "device":
        return f"{address:#x} is page-locked host memory, not device memory"
    if alloc.device != device:
        return f"{address:#x} lives on device {alloc.device}, not device {device}"
    if address + nbytes > start + alloc.array.nbytes:
        return (f"{nbytes} bytes at {address:#x} overrun their allocation of "
                f"{alloc.array.nbytes} bytes")
    return None


def _inside(address: int, nbytes: int) -> bool:
    """Whether [address, address + nbytes) lies in one allocation (or is foreign host memory,
    as numpy arrays the caller owns are)."""
    found = allocation(address)
    if found is None:
        return True
    start, alloc = found
    return address + nbytes <= start + alloc.array.nbytes


def view(address: int, nbytes: int) -> np.ndarray:
    """The bytes at ``address`` as a writable uint8 array (for the TensorRT stand-in)."""
    if not _inside(address, nbytes):
        raise ValueError(f"{nbytes} bytes at {address:#x} overrun their allocation")
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(address))


def cudaGetDeviceCount() -> tuple:
    if DEVICE_COUNT_ERROR is not None:
        return (cudaError_t(DEVICE_COUNT_ERROR), 0)
    if DEVICE_COUNT == 0:
        return (cudaError_t.cudaErrorNoDevice, 0)
    return (ok, DEVICE_COUNT)


def _device_ok(device: int) -> bool:
    return DEVICE_COUNT_ERROR is None and 0 <= device < DEVICE_COUNT


def cudaGetDeviceProperties(device: int) -> tuple:
    if not _device_ok(device):
        return (cudaError_t.cudaErrorInvalidDevice, None)
    return (ok, cudaDeviceProp(DEVICE_NAME, *CAPABILITY, FREE_DEVICE_MEMORY))


def cudaSetDevice(device: int) -> tuple:
    if not _device_ok(device):
        return (cudaError_t.cudaErrorInvalidDevice,)
    _thread.device = int(device)
    return (ok,)


def cudaGetDevice() -> tuple:
    return (ok, current_device())


def cudaMemGetInfo() -> tuple:
    """(err, free, total) bytes of the calling thread's current device."""
    used = device_bytes_in_use(current_device())
    return (ok, FREE_DEVICE_MEMORY - used, FREE_DEVICE_MEMORY)


def cudaGetErrorString(error: cudaError_t) -> tuple:
    return (ok, _ERROR_TEXT.get(cudaError_t(error), b"unknown error"))


def cudaMalloc(nbytes: int) -> tuple:
    return _allocate(nbytes, "device")


def cudaMallocHost(nbytes: int) -> tuple:
    return _allocate(nbytes, "host")


def _free(address: int, kind: str) -> tuple:
    alloc = _allocations.get(address)
    if alloc is None or alloc.kind != kind:
        return (cudaError_t.cudaErrorInvalidValue,)
    del _allocations[address]
    return (ok,)


def cudaFree(address: int) -> tuple:
    return _free(address, "device")


def cudaFreeHost(address: int) -> tuple:
    return _free(address, "host")


def cudaStreamCreate() -> tuple:
    stream = cudaStream_t()
    _streams[int(stream)] = current_device()
    return (ok, stream)


def _stream_ok(stream: cudaStream_t | int) -> bool:
    """A live stream, or 0: the legacy default stream, always valid."""
    return int(stream) == 0 or int(stream) in _streams


def stream_device(handle: int) -> int | None:
    """The device of stream ``handle`` (the default stream 0 belongs to the calling thread's
    current device); None when it is not a live stream."""
    if int(handle) == 0:
        return current_device()
    return _streams.get(int(handle))


def cudaStreamSynchronize(stream: cudaStream_t) -> tuple:
    return (ok,) if _stream_ok(stream) else (cudaError_t.cudaErrorInvalidResourceHandle,)


def cudaStreamDestroy(stream: cudaStream_t) -> tuple:
    if int(stream) not in _streams:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    del _streams[int(stream)]
    return (ok,)


def cudaMemcpyAsync(dst: int, src: int, nbytes: int, kind: cudaMemcpyKind,
                    stream: cudaStream_t) -> tuple:
    if not _stream_ok(stream):
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    device_side = {cudaMemcpyKind.cudaMemcpyHostToDevice: dst,
                   cudaMemcpyKind.cudaMemcpyDeviceToHost: src}.get(kind)
    found = None if device_side is None else allocation(device_side)
    if found is None or found[1].kind != "device":
        return (cudaError_t.cudaErrorInvalidValue,)
    if not (_inside(dst, nbytes) and _inside(src, nbytes)):
        return (cudaError_t.cudaErrorInvalidValue,)
    ctypes.memmove(dst, src, nbytes)
    return (ok,)
