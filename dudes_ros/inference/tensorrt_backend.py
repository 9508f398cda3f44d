"""TensorRT backend: the deploy-graph ONNX compiled to a cached engine, run on a CUDA stream.

The engine comes from ``runtime.tensorrt_engine.load_engine`` (``EngineSettings``: precision,
max batch, profile, cache folder). Device memory, pinned host buffers and the stream come from
``runtime.cuda.DeviceMemory`` (cuda-python), so this backend needs neither torch nor pycuda.
Buffers grow to the largest batch x height x width seen so far (a camera stream's shape never
changes, so after the first frame nothing is allocated or rebound, and a profile that allows 4K
costs nothing while the cameras send 1 MP): each ``predict`` is an upload, ``set_input_shape``, one
``execute_async_v3`` and two downloads on the predictor's own stream.

The execution context's own scratch memory follows the same rule: the context is created
USER_MANAGED (TensorRT 10 and 11), asked after each new input shape how much that shape needs
(``update_device_memory_size_for_shapes``) and given a buffer that grows to the largest need
seen. The default STATIC strategy would reserve, at creation, what the profile's largest shape
needs (full-resolution [B, 19, H, W] logits at 2160x3840 x max_batch) whatever the cameras send.
The predictor is made in one thread and used in another (the node's worker): ``predict`` and
``close`` make its GPU current first, as CUDA's current device is per host thread.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dudes_ros.inference.predictor import Predictor, check_batch
from dudes_ros.runtime.cuda import DeviceMemory, gpu_index_of
from dudes_ros.runtime.tensorrt_engine import EngineSettings, load_engine
from dudes_ros.runtime.tensorrt_support import cpu_device_for_gpu_backend, tensorrt_missing

LOG = logging.getLogger(__name__)
IO_TENSORS = ("image", "labels", "uncertainty")  # the deploy graph's input and outputs


class TensorRTPredictor(Predictor):
    """``predict(uint8 [B, H, W, 3]) -> (uint8 [B, H, W], float32 [B, H, W])`` with TensorRT;
    B <= ``max_batch``, (H, W) inside the engine's profile (``size_problem`` says why not)."""

    backend = "tensorrt"

    def __init__(self, onnx_path: str | Path, device: str = "cuda",
                 engine: EngineSettings | None = None) -> None:
        if device == "cpu":
            raise ValueError(cpu_device_for_gpu_backend(self.backend))
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise ImportError(tensorrt_missing(str(exc))) from exc

        self.settings = engine or EngineSettings()
        self.gpu = gpu_index_of(device)
        self.path = Path(onnx_path)
        self.memory = DeviceMemory(self.gpu)
        try:
            loaded = load_engine(self.path, self.settings, self.gpu)
            self._runtime, self._logger, self.engine = loaded.runtime, loaded.logger, \
                loaded.engine
            self.outcome, self.manifest, self.key = loaded.outcome, loaded.manifest, loaded.key
            self.variant = loaded.variant
            self._bind(trt)
        except BaseException:
            self.memory.close()
            raise
        self.max_batch = self.settings.max_batch
        LOG.info("tensorrt: %s (%s, batch 1..%d, up to %dx%d, optimised for %s) %s",
                 self.outcome.engine_path.name, self.key.precision, self.max_batch,
                 *self.max_size, self.key.profile["opt"], "built: " + self.outcome.reason
                 if self.outcome.built else "from cache")

    def _bind(self, trt) -> None:
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        if names != set(IO_TENSORS):
            raise RuntimeError(f"engine {self.outcome.engine_path} has tensors {sorted(names)}; "
                               f"a dudes deploy graph has {sorted(IO_TENSORS)}")
        self.min_size = tuple(self.key.profile["min"][1:3])
        self.max_size = tuple(self.key.profile["max"][1:3])
        self.context = self.engine.create_execution_context(
            trt.ExecutionContextAllocationStrategy.USER_MANAGED)
        if self.context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for "
                               f"{self.outcome.engine_path.name} (out of GPU memory, or the "
                               "engine is unusable; see the TensorRT log above)")
        self.dtypes = {name: np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
                       for name in IO_TENSORS}
        self.capacity = 0  # pixels (B * H * W) the buffers hold
        self.host: dict[str, np.ndarray] = {}
        self.device_buffers: dict[str, int] = {}
        self.shape: tuple[int, ...] | None = None  # the input shape the context is set to
        self.scratch, self.scratch_bytes = 0, 0  # the context's own device memory

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        """Set the input shape and give the context the scratch memory that shape needs,
        growing (never shrinking) its buffer."""
        if not self.context.set_input_shape("image", shape):
            raise RuntimeError(f"TensorRT refused input shape {list(shape)}")
        self.shape = None  # set only once the context holds this shape's memory
        need = int(self.context.update_device_memory_size_for_shapes())
        if need > self.scratch_bytes:
            if self.scratch:
                self.memory.free_device(self.scratch)
                self.scratch, self.scratch_bytes = 0, 0
            self.scratch = self.memory.device_buffer(need)
            self.scratch_bytes = need
        if self.scratch:
            self.context.set_device_memory(self.scratch, self.scratch_bytes)
        self.shape = shape

    def _reserve(self, pixels: int) -> None:
        """Host and device buffers for ``pixels`` = B * H * W (3 bytes each for the image),
        reallocated and rebound only when more pixels come than they hold."""
        if pixels <= self.capacity:
            return
        for name in IO_TENSORS:
            if name in self.host:
                self.memory.free_host(self.host.pop(name))
                self.memory.free_device(self.device_buffers.pop(name))
            numel = pixels * (3 if name == "image" else 1)
            self.host[name] = self.memory.host_array((numel,), self.dtypes[name])
            self.device_buffers[name] = self.memory.device_buffer(
                numel * self.dtypes[name].itemsize)
            if not self.context.set_tensor_address(name, self.device_buffers[name]):
                raise RuntimeError(f"TensorRT refused the address of tensor {name!r}")
        self.capacity = pixels

    def size_problem(self, height: int, width: int) -> str | None:
        if (self.min_size[0] <= height <= self.max_size[0]
                and self.min_size[1] <= width <= self.max_size[1]):
            return None
        return (f"image {height}x{width} is outside the TensorRT engine's profile "
                f"{self.min_size[0]}x{self.min_size[1]}..{self.max_size[0]}x{self.max_size[1]}"
                f" ({self.outcome.engine_path.name}); rebuild with engine.max_size to include it")

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_batch(images)
        batch, h, w = images.shape[:3]
        problem = self.size_problem(h, w)
        if batch > self.max_batch or problem:
            raise ValueError(problem or f"batch of {batch} frames; this TensorRT engine takes "
                             f"at most {self.max_batch} (engine.max_batch)")
        n = batch * h * w
        self.memory.activate()  # this thread may not be the one that made the predictor
        self._reserve(n)
        image = self.host["image"][:3 * n]
        image[...] = images.reshape(-1)
        self.memory.upload(self.device_buffers["image"], image)
        if self.shape != (batch, h, w, 3):
            self._set_shape((batch, h, w, 3))
        if not self.context.execute_async_v3(self.memory.stream_handle):
            raise RuntimeError("TensorRT execute_async_v3 failed; see the TensorRT log")
        labels, uncertainty = self.host["labels"][:n], self.host["uncertainty"][:n]
        self.memory.download(labels, self.device_buffers["labels"])
        self.memory.download(uncertainty, self.device_buffers["uncertainty"])
        self.memory.synchronize()
        # Copies: the pinned buffers are overwritten by the next call.
        return (labels.reshape(batch, h, w).astype(np.uint8),
                uncertainty.reshape(batch, h, w).astype(np.float32))

    def provenance(self) -> dict:
        return {**super().provenance(), "model": str(self.path),
                "onnx_sha256": self.variant.source_sha256,
                "variant_sha256": self.variant.sha256, "engine": str(self.outcome.engine_path),
                "engine_built_now": self.outcome.built, "engine_reason": self.outcome.reason,
                "max_batch": self.max_batch, "gpu": self.gpu, "variant": str(self.variant.path),
                "engine_device_memory_max_bytes": int(self.engine.device_memory_size_v2),
                "context_device_memory_bytes": self.scratch_bytes,
                **{k: v for k, v in self.key.as_dict().items() if k != "onnx_sha256"}}

    def close(self) -> None:
        self.memory.activate()
        self.context = None
        self.engine = None
        self._runtime = self._logger = None
        self.host.clear()
        self.device_buffers.clear()
        self.capacity, self.shape, self.scratch, self.scratch_bytes = 0, None, 0, 0
        self.memory.close()
