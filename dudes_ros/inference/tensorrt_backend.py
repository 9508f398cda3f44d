"""TensorRT backend: the deploy-graph ONNX compiled to a cached engine, run on a CUDA stream.

The engine comes from ``EngineCache`` (built on first use, rebuilt when the ONNX, TensorRT,
GPU, precision or profile changes). The profile covers batch 1..``max_batch`` and any image
size from ``MIN_IMAGE_SIZE`` up to ``max_image_size`` (default 2160x3840), optimised for
``image_size`` (default: the network's input size): only the in-graph resizes see the image
size, the network itself always runs at its fixed input size, so the wide profile costs little.
Device and pinned host buffers are allocated once for the largest shape and their addresses
bound once; each ``predict`` is the host<->device copies and one ``execute_async_v3`` on the
predictor's own stream.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch

from dudes_ros.export.engine_cache import EngineCache, EngineKey, Progress
from dudes_ros.export.tensorrt_build import (
    build_serialized_engine,
    calibration_id,
    calibration_images,
)
from dudes_ros.inference.onnxruntime_backend import check_onnx_file
from dudes_ros.inference.predictor import Predictor, check_batch

LOG = logging.getLogger(__name__)
MIN_IMAGE_SIZE = (16, 16)
MAX_IMAGE_SIZE = (2160, 3840)


def default_cache_dir(onnx_path: Path) -> Path:
    """Engines are cached in ``cache/`` beside the ONNX."""
    return onnx_path.parent / "cache"


def engine_key(onnx_sha256: str, precision: str, max_batch: int, image_size: tuple[int, int],
               max_image_size: tuple[int, int], device: torch.device,
               calibration: str = "") -> EngineKey:
    """The cache key for this machine's TensorRT and GPU."""
    import tensorrt as trt

    h, w = image_size
    max_h, max_w = max_image_size
    major, minor = torch.cuda.get_device_capability(device)
    return EngineKey(
        onnx_sha256=onnx_sha256, tensorrt_version=trt.__version__,
        gpu_name=torch.cuda.get_device_name(device), compute_capability=f"{major}.{minor}",
        precision=precision,
        profile={"min": [1, *MIN_IMAGE_SIZE, 3], "opt": [max_batch, h, w, 3],
                 "max": [max_batch, max_h, max_w, 3]},
        calibration=calibration)


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.uint8: torch.uint8, trt.int32: torch.int32, trt.int64: torch.int64,
             trt.float32: torch.float32, trt.float16: torch.float16}
    if dtype not in table:
        raise TypeError(f"unsupported engine tensor type {dtype}")
    return table[dtype]


def load_engine(onnx_path: str | Path, *, precision: str = "fp16", max_batch: int = 1,
                image_size: tuple[int, int] | None = None,
                max_image_size: tuple[int, int] | None = None, cache_dir: str | Path | None = None,
                calibration_folder: str | Path | None = None, workspace_gib: float = 4.0,
                device: torch.device | None = None, progress: Progress | None = None):
    """``(engine, CacheOutcome, manifest)`` for ``onnx_path`` — built or from the cache."""
    import tensorrt as trt

    onnx_path = Path(onnx_path)
    manifest, digest = check_onnx_file(onnx_path)
    size = tuple(image_size or manifest["input"]["network_input_size"])
    largest = tuple(max_image_size or (max(size[0], MAX_IMAGE_SIZE[0]),
                                       max(size[1], MAX_IMAGE_SIZE[1])))
    if (max_batch < 1 or len(size) != 2 or len(largest) != 2 or not all(
            lo <= s <= hi for lo, s, hi in zip(MIN_IMAGE_SIZE, size, largest, strict=True))):
        raise ValueError(f"need max_batch >= 1 and {list(MIN_IMAGE_SIZE)} <= image_size <= "
                         f"max_image_size (height, width); got max_batch={max_batch}, "
                         f"image_size={list(size)}, max_image_size={list(largest)}")
    calibration = ""
    if precision == "int8":
        if calibration_folder is None:
            raise ValueError("precision 'int8' needs calibration_folder (a folder of images)")
        calibration = calibration_id(calibration_images(calibration_folder))
    device = device or torch.device("cuda")
    key = engine_key(digest, precision, max_batch, size, largest, device, calibration)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    builder = functools.partial(build_serialized_engine, workspace_gib=workspace_gib,
                                calibration_folder=calibration_folder)
    cache = EngineCache(cache_dir or default_cache_dir(onnx_path), builder,
                        runtime.deserialize_cuda_engine)
    with torch.cuda.device(device):
        loaded = cache.load(onnx_path, key, progress)
    return loaded.engine, loaded.outcome, manifest, key


class TensorRTPredictor(Predictor):
    """``predict(uint8 [B, H, W, 3]) -> (uint8 [B, H, W], float32 [B, H, W])`` with TensorRT;
    B <= ``max_batch``, 16x16 <= (H, W) <= ``max_image_size`` (the engine's profile)."""

    backend = "tensorrt"

    def __init__(self, onnx_path: str | Path, device: str = "cuda", precision: str = "fp16",
                 max_batch: int = 1, image_size: tuple[int, int] | None = None,
                 max_image_size: tuple[int, int] | None = None,
                 cache_dir: str | Path | None = None,
                 calibration_folder: str | Path | None = None, workspace_gib: float = 4.0) -> None:
        import tensorrt as trt

        self.device = torch.device("cuda" if device == "auto" else device)
        if self.device.type != "cuda" or not torch.cuda.is_available():
            raise RuntimeError(f"the TensorRT backend needs a CUDA GPU; device {device!r}, "
                               f"CUDA available: {torch.cuda.is_available()}")
        self.path = Path(onnx_path)
        self.engine, self.outcome, self.manifest, self.key = load_engine(
            self.path, precision=precision, max_batch=max_batch, image_size=image_size,
            max_image_size=max_image_size, cache_dir=cache_dir,
            calibration_folder=calibration_folder, workspace_gib=workspace_gib, device=self.device)
        self.max_batch = max_batch
        self.min_size = tuple(self.key.profile["min"][1:3])
        self.max_size = tuple(self.key.profile["max"][1:3])
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(self.device)
        pixels = max_batch * self.max_size[0] * self.max_size[1]
        numel = {"image": 3 * pixels, "labels": pixels, "uncertainty": pixels}
        # Flat buffers for the largest shape: a [B, H, W, ...] tensor is their first B*H*W*...
        # elements, so every profile shape fits without reallocation or rebinding.
        self.device_buffers: dict[str, torch.Tensor] = {}
        self.host_buffers: dict[str, torch.Tensor] = {}
        for name, n in numel.items():
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            self.device_buffers[name] = torch.empty(n, dtype=dtype, device=self.device)
            self.host_buffers[name] = torch.empty(n, dtype=dtype, pin_memory=True)
            self.context.set_tensor_address(name, self.device_buffers[name].data_ptr())
        LOG.info("tensorrt: %s (%s, batch 1..%d, up to %dx%d, optimised for %s) %s",
                 self.outcome.engine_path.name, precision, max_batch, *self.max_size,
                 self.key.profile["opt"], "built: " + self.outcome.reason
                 if self.outcome.built else "from cache")

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_batch(images)
        batch, h, w = images.shape[:3]
        if (batch > self.max_batch or not self.min_size[0] <= h <= self.max_size[0]
                or not self.min_size[1] <= w <= self.max_size[1]):
            raise ValueError(
                f"this TensorRT engine takes [1..{self.max_batch}, {self.min_size[0]}.."
                f"{self.max_size[0]}, {self.min_size[1]}..{self.max_size[1]}, 3], got "
                f"{list(images.shape)}; rebuild with max_batch/max_image_size to match")
        n = batch * h * w
        self.host_buffers["image"][:3 * n].numpy()[...] = images.reshape(-1)
        with torch.cuda.stream(self.stream):
            self.device_buffers["image"][:3 * n].copy_(self.host_buffers["image"][:3 * n],
                                                       non_blocking=True)
            self.context.set_input_shape("image", (batch, h, w, 3))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            for name in ("labels", "uncertainty"):
                self.host_buffers[name][:n].copy_(self.device_buffers[name][:n],
                                                  non_blocking=True)
        self.stream.synchronize()
        labels = self.host_buffers["labels"][:n].numpy().reshape(batch, h, w)
        uncertainty = self.host_buffers["uncertainty"][:n].numpy().reshape(batch, h, w)
        return labels.astype(np.uint8), uncertainty.astype(np.float32)

    def provenance(self) -> dict:
        return {**super().provenance(), "model": str(self.path),
                "onnx_sha256": self.key.onnx_sha256, "engine": str(self.outcome.engine_path),
                "engine_built_now": self.outcome.built, "engine_reason": self.outcome.reason,
                **{k: v for k, v in self.key.as_dict().items() if k != "onnx_sha256"}}

    def close(self) -> None:
        self.context = None
        self.engine = None
        self.device_buffers.clear()
        self.host_buffers.clear()
        torch.cuda.empty_cache()
