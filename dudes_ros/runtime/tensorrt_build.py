"""Build a TensorRT 10 engine from the deploy-graph ONNX (the ``Builder`` of the engine cache).

FP16 (default), FP32 or INT8. INT8 uses entropy calibration (``IInt8EntropyCalibrator2``) over
a folder of images at the profile's ``opt`` shape, and saves the calibration cache (named by
the calibration set's digest, so a new set never reuses stale scales) so that later builds
skip the calibration pass. Build progress is reported through TensorRT's ``IProgressMonitor``.
The calibrator's device buffer comes from ``runtime.cuda.DeviceMemory`` (cuda-python).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np

from dudes_ros.files import atomic_write_bytes
from dudes_ros.runtime.engine_cache import EngineBuildError, EngineKey, Progress
from dudes_ros.runtime.manifest import sha256_file

LOG = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def calibration_images(folder: str | Path) -> list[Path]:
    """Image files (png, jpg, bmp) under ``folder``, sorted, recursively."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"INT8 calibration folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"INT8 calibration folder {folder} holds no {IMAGE_SUFFIXES} images")
    return files


def calibration_id(files: list[Path]) -> str:
    """Identifies a calibration set in the engine key: count + digest of names and contents
    (a re-exported image of the same size is a different set)."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}:{sha256_file(f)}\n".encode())
    return f"{len(files)} images, sha256 {digest.hexdigest()[:16]}"


def calibration_cache_path(cache_dir: Path, onnx_path: Path, calibration: str) -> Path:
    """Where the INT8 scales of ``calibration`` (a ``calibration_id``) for ``onnx_path`` are
    kept: one file per model and calibration set."""
    digest = hashlib.sha256(calibration.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{Path(onnx_path).stem}.{digest}.int8.calib"


def load_rgb(path: Path, height: int, width: int) -> np.ndarray:
    """An image file as RGB ``uint8 [height, width, 3]`` (resized bilinearly if needed)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"calibration image {path} cannot be decoded")
    if bgr.shape[:2] != (height, width):
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _make_calibrator(trt, files: list[Path], cache_path: Path, shape: list[int], gpu: int):
    from dudes_ros.runtime.cuda import DeviceMemory

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        """Feeds ``uint8 [B, H, W, 3]`` batches from ``files``; reads/writes the cache."""

        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batch, self.height, self.width = shape[0], shape[1], shape[2]
            self.memory = DeviceMemory(gpu)
            self.host = self.memory.host_array(tuple(shape), np.uint8)
            self.device_buffer = self.memory.device_buffer(self.host.nbytes)
            self.index = 0

        def get_batch_size(self) -> int:
            return self.batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index + self.batch > len(files):
                return None
            chunk = files[self.index:self.index + self.batch]
            self.index += self.batch
            for i, f in enumerate(chunk):
                self.host[i] = load_rgb(f, self.height, self.width)
            self.memory.upload(self.device_buffer, self.host)
            self.memory.synchronize()
            return [self.device_buffer]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: memoryview) -> None:
            atomic_write_bytes(cache_path, bytes(cache))
            LOG.info("INT8 calibration cache written to %s", cache_path)

    return EntropyCalibrator()


def _make_progress_monitor(trt, progress: Progress):
    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            progress(phase_name, 0, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            progress(phase_name, step + 1, 0)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            progress(phase_name, -1, 0)

    return Monitor()


def build_serialized_engine(onnx_path: Path, key: EngineKey, progress: Progress, *,
                            workspace_gib: float = 4.0,
                            calibration_folder: str | Path | None = None,
                            calibration_cache: str | Path | None = None,
                            gpu: int = 0) -> bytes:
    """Parse ``onnx_path`` and build an engine for ``key`` (precision, profile) on GPU
    ``gpu``; INT8 needs ``calibration_folder`` and ``calibration_cache`` (the scales file)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    profile = builder.create_optimization_profile()
    profile.set_shape("image", key.profile["min"], key.profile["opt"], key.profile["max"])
    config.add_optimization_profile(profile)
    if key.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    calibrator = None
    if key.precision == "int8":
        if calibration_folder is None or calibration_cache is None:
            raise EngineBuildError("INT8 needs a calibration image folder and a cache path")
        config.set_flag(trt.BuilderFlag.INT8)
        calibrator = _make_calibrator(trt, calibration_images(calibration_folder),
                                      Path(calibration_cache), list(key.profile["opt"]), gpu)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    config.progress_monitor = _make_progress_monitor(trt, progress)
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.memory.close()
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} "
                               f"({key.precision}); see the TensorRT log above")
    return bytes(serialized)
