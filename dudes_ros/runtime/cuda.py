"""CUDA device memory and streams through NVIDIA's cuda-python runtime bindings.

The TensorRT backend and the INT8 calibrator need device buffers, page-locked host buffers and
a stream, nothing more. cuda-python provides exactly that and is small, where torch would add
seconds of start-up and hundreds of MiB to a node that never runs a torch op. Every call goes
through ``_call``, which turns cudart's ``(cudaError_t, value...)`` tuples into values or a
``CudaError`` naming the call.

``DeviceMemory(gpu)`` owns what it allocates on one GPU and one stream:
``device_buffer(nbytes) -> address``, ``host_array(shape, dtype) -> numpy view of pinned
memory``, ``free_device``/``free_host``, ``upload``/``download`` (asynchronous on the stream),
``synchronize``, ``close``. CUDA's current device belongs to the calling host thread
(``cudaSetDevice``), and the node builds its predictor in one thread and predicts in another:
``activate`` makes the memory's GPU current and every method that touches CUDA calls it first.

A failing CUDA call is a ``CudaError`` naming the call, CUDA's error name and, for the errors a
user can act on, the cause (a driver older than the installed cuda-bindings needs). Counting GPUs
that way can fail, and a failure means "GPU state unknown", never "no GPU" (``GpuCount``).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import numpy as np


class CudaError(RuntimeError):
    """A CUDA runtime call failed; the message names the call and CUDA's error."""


def bindings_available() -> bool:
    """Whether the cuda-python runtime bindings can be imported."""
    try:
        return importlib.util.find_spec("cuda.bindings.runtime") is not None
    except ModuleNotFoundError:
        return False


def cudart() -> Any:
    """The ``cuda.bindings.runtime`` module; ImportError says what to install."""
    try:
        from cuda.bindings import runtime
    except ImportError as exc:
        raise ImportError("the TensorRT backend needs NVIDIA's cuda-python runtime bindings "
                          "(pip install cuda-python, or JetPack's python3-cuda); "
                          f"import failed: {exc}") from exc
    return runtime


DRIVER_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvhost-ctrl-gpu")  # desktop / Jetson driver


def driver_present() -> bool:
    """Whether the NVIDIA driver's device files exist (a GPU machine, working or not)."""
    return any(os.path.exists(p) for p in DRIVER_DEVICE_FILES)


# Oldest Linux driver each CUDA major's runtime runs on (NVIDIA's CUDA toolkit release notes,
# minor-version compatibility): cuda-bindings N.x needs at least this driver.
MIN_DRIVER = {12: "525.60.13", 13: "580"}


def bindings_version() -> str:
    """The installed cuda-bindings (or, before 12.6.1 split it out, cuda-python) version."""
    from importlib import metadata

    for dist in ("cuda-bindings", "cuda-python"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def _cause(error_name: str) -> str:
    """What a user can do about CUDA error ``error_name``, or ''."""
    if error_name == "cudaErrorInsufficientDriver":
        if not driver_present():  # CUDA says "insufficient" when there is no driver at all
            return f"; no NVIDIA driver is loaded here (none of {', '.join(DRIVER_DEVICE_FILES)})"
        version = bindings_version()
        major = int(version.split(".")[0]) if version[:1].isdigit() else None
        need = MIN_DRIVER.get(major)
        return (f"; the NVIDIA driver is too old for cuda-bindings {version}"
                + (f", which needs driver {need} or newer" if need else "")
                + f": update the driver, or install the cuda-python of the driver's CUDA major "
                f"(pip install 'dudes_ros[tensorrt-cu12]' for drivers {MIN_DRIVER[12]}-579)")
    if error_name == "cudaErrorNoDevice":
        return "; no GPU is visible to this process (check CUDA_VISIBLE_DEVICES and nvidia-smi)"
    return ""


def _call(name: str, *args: Any) -> Any:
    rt = cudart()
    result = getattr(rt, name)(*args)
    err, values = result[0], result[1:]
    if err != rt.cudaError_t.cudaSuccess:
        text = rt.cudaGetErrorString(err)[1]
        text = text.decode() if isinstance(text, bytes) else str(text)
        error_name = getattr(err, "name", str(err))
        raise CudaError(f"{name} failed: {error_name} ({text}){_cause(error_name)}")
    return values[0] if len(values) == 1 else values or None


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str  # "major.minor"


@dataclass(frozen=True)
class GpuCount:
    """CUDA GPUs counted through cuda-python: ``count`` None = unknown (the count failed, and
    ``error`` says how), which is not the same as none."""

    count: int | None
    error: str = ""


def gpu_count() -> GpuCount:
    """The CUDA GPUs cuda-python sees (``GpuCount``); unknown when the bindings are missing or
    the count fails (an old driver, a broken install)."""
    if not bindings_available():
        return GpuCount(None, "cuda-python is not installed")
    try:
        return GpuCount(int(_call("cudaGetDeviceCount")))
    except CudaError as exc:
        if "cudaErrorNoDevice" in str(exc):
            return GpuCount(0, str(exc))
        return GpuCount(None, str(exc))
    except (ImportError, OSError) as exc:  # the bindings import but their library does not load
        return GpuCount(None, f"cuda-python does not load: {exc}")


def set_device(index: int) -> None:
    """Make GPU ``index`` current for the calling host thread (CUDA keeps one per thread)."""
    _call("cudaSetDevice", index)


def gpu_info(index: int) -> GpuInfo:
    """Name and compute capability of GPU ``index``; CudaError when there is no such GPU or
    the GPUs cannot be counted."""
    counted = gpu_count()
    if counted.count is None:
        raise CudaError(f"GPU {index} asked for, but the GPUs cannot be counted: {counted.error}")
    if not 0 <= index < counted.count:
        raise CudaError(f"GPU {index} asked for, but cuda-python sees {counted.count} GPU(s)")
    prop = _call("cudaGetDeviceProperties", index)
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else prop.name
    return GpuInfo(index, name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}")


DEVICES_HELP = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def device_problem(device: str) -> str | None:
    """None when ``device`` is a valid device string for any backend, else what was
    expected."""
    if device == "cpu":
        return None
    try:
        gpu_index_of(device)
    except ValueError:
        return DEVICES_HELP
    return None


def gpu_index_of(device: str) -> int:
    """GPU index of "auto", "cuda" (both 0) or "cuda:N"; ValueError for anything else."""
    if device in ("auto", "cuda"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise ValueError(f"device must be 'auto', 'cuda' or 'cuda:N' for a GPU backend, "
                     f"got {device!r}")


class DeviceMemory:
    """Buffers and one stream on GPU ``index``; everything is freed by ``close``."""

    def __init__(self, index: int = 0) -> None:
        gpu_info(index)  # refuses a GPU index cuda-python does not see, naming the count
        self.index = index
        self.activate()
        self.stream = _call("cudaStreamCreate")
        self._device: list[int] = []
        self._host: list[int] = []

    def activate(self) -> None:
        """Make this memory's GPU current in the calling thread (before any CUDA work there)."""
        set_device(self.index)

    @property
    def stream_handle(self) -> int:
        """The stream as the integer handle TensorRT's ``execute_async_v3`` takes."""
        return int(self.stream)

    def device_buffer(self, nbytes: int) -> int:
        """Address of ``nbytes`` of device memory."""
        self.activate()
        address = int(_call("cudaMalloc", nbytes))
        self._device.append(address)
        return address

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A numpy array over page-locked host memory (fast, truly asynchronous copies)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        address = int(_call("cudaMallocHost", nbytes))
        self._host.append(address)
        raw = (ctypes.c_uint8 * nbytes).from_address(address)
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def upload(self, device_address: int, host: np.ndarray) -> None:
        """Copy ``host`` (contiguous) to ``device_address`` on the stream."""
        rt = cudart()
        _call("cudaMemcpyAsync", device_address, host.ctypes.data, host.nbytes,
              rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream)

    def download(self, host: np.ndarray, device_address: int) -> None:
        """Copy ``host.nbytes`` from ``device_address`` into ``host`` on the stream."""
        rt = cudart()
        _call("cudaMemcpyAsync", host.ctypes.data, device_address, host.nbytes,
              rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream)

    def free_device(self, address: int) -> None:
        _call("cudaFree", address)
        self._device.remove(address)

    def free_host(self, array: np.ndarray) -> None:
        """Free the pinned memory under ``array`` (from ``host_array``; unusable after)."""
        address = array.ctypes.data
        _call("cudaFreeHost", address)
        self._host.remove(address)

    def synchronize(self) -> None:
        _call("cudaStreamSynchronize", self.stream)

    def close(self) -> None:
        """Free every buffer and the stream (idempotent)."""
        if self.stream is None:
            return
        self.activate()
        _call("cudaStreamSynchronize", self.stream)
        for address in self._device:
            _call("cudaFree", address)
        for address in self._host:
            _call("cudaFreeHost", address)
        _call("cudaStreamDestroy", self.stream)
        self._device, self._host, self.stream = [], [], None
