"""Which TensorRT and CUDA this package runs with, and the one wording of what to do when the
machine has something else: the node, ``dudes build-engine`` and ``dudes doctor`` all say it
from here.

Supported TensorRT: 10.x from 10.3 (JetPack 6.1 and 6.2 ship 10.3; the context memory API the
backend uses, ``update_device_memory_size_for_shapes`` and ``set_device_memory(ptr, size)``,
came in 10.1) and 11.x (``pip install tensorrt`` today). Both build the same strongly typed
networks from the precision variants; the API surfaces of 10.13.0.35 and 11.4.0.106 are held
against the package's every TensorRT call in the tests.
"""

from __future__ import annotations

SUPPORTED_TENSORRT = {10: (10, 3), 11: (11, 0)}  # major -> oldest supported (major, minor)
SUPPORTED_TEXT = "TensorRT 10.3 or newer 10.x (JetPack 6.1/6.2) or 11.x"
INSTALL_TENSORRT = (
    "on x86_64: pip install 'dudes_ros[tensorrt-cu12]' tensorrt-cu12 (TensorRT 11 with CUDA 12 "
    "drivers 525-579) or 'dudes_ros[tensorrt-cu13]' tensorrt-cu13 (driver 580 or newer); "
    "on Jetson: JetPack 6.1 or 6.2 (apt install nvidia-tensorrt python3-libnvinfer) and "
    "pip install 'dudes_ros[tensorrt-cu12]'")


class UnsupportedTensorRT(RuntimeError):
    """The installed TensorRT is not one this package supports; names both."""


def check_tensorrt_version(version: str) -> None:
    """Refuse a TensorRT ``version`` (``tensorrt.__version__``) outside ``SUPPORTED_TENSORRT``."""
    parts = version.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise UnsupportedTensorRT(f"TensorRT version {version!r} cannot be read; this package "
                                  f"supports {SUPPORTED_TEXT}") from None
    oldest = SUPPORTED_TENSORRT.get(major)
    if oldest is None or (major, minor) < oldest:
        raise UnsupportedTensorRT(f"TensorRT {version} is installed; this package supports "
                                  f"{SUPPORTED_TEXT}. Install one: {INSTALL_TENSORRT}")


def tensorrt_missing(detail: str) -> str:
    """What to say when ``import tensorrt`` fails with ``detail``."""
    return (f"the TensorRT backend needs NVIDIA's TensorRT Python package ({SUPPORTED_TEXT}), "
            f"which does not import here ({detail}). Install it: {INSTALL_TENSORRT}; or use "
            "backend onnxruntime or torch")


def cpu_device_for_gpu_backend(backend: str) -> str:
    """What to say when a GPU-only backend is asked to run on device 'cpu'."""
    return (f"backend {backend!r} runs only on a CUDA GPU, but device is 'cpu': use backend "
            "'onnxruntime' (or 'auto') for the CPU, or device 'cuda'/'cuda:N' for the GPU")
