"""What a TensorRT engine is built for, and getting one: ``EngineSettings`` -> ``load_engine``.

``EngineSettings`` is the one description of an engine that the node's ``engine.*``
parameters, ``dudes build-engine`` and the backend share, so an engine built ahead of time is
exactly the file the node loads. ``load_engine`` checks the TensorRT version, gets the ONNX
variant of the chosen precision (``runtime.precision``: made on first use and cached beside the
engines), turns it, this machine's TensorRT and GPU into an ``EngineKey`` (keyed on the
variant's sha256) and gets the engine from the ``EngineCache`` (building it on a miss). The
optimisation profile covers batch 1..``max_batch`` and any image size from
16x16 to ``max_size``, optimised for ``max_batch`` frames of ``opt_size``: only the in-graph
resizes see the image size (the network runs at its fixed input size), so a wide profile
costs little.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dudes_ros.argtypes import MIN_SIDE
from dudes_ros.config import check
from dudes_ros.runtime.cuda import gpu_info, set_device
from dudes_ros.runtime.engine_cache import CacheOutcome, EngineCache, EngineKey, Progress
from dudes_ros.runtime.manifest import load_manifest
from dudes_ros.runtime.precision import PRECISIONS, Variant, ensure_variant
from dudes_ros.runtime.tensorrt_build import build_serialized_engine
from dudes_ros.runtime.tensorrt_support import check_tensorrt_version

MIN_IMAGE_SIZE = (MIN_SIDE, MIN_SIDE)
DEFAULT_MAX_IMAGE_SIZE = (2160, 3840)


def _size_ok(size: Any) -> bool:
    return (isinstance(size, tuple) and len(size) == 2
            and all(isinstance(v, int) and v >= MIN_SIDE for v in size))


@dataclass(frozen=True)
class EngineSettings:
    """How to build the engine. ``max_batch`` 0 = one slot per camera: the node fills it in
    before building (``profile`` refuses it); ``opt_size`` None = the model's network input
    size; ``max_size`` None = the larger of ``opt_size`` and 2160x3840; ``cache_dir`` None =
    cache/ beside the ONNX (or the user cache folder when that is not writable). Checked here
    once, for the node's ``engine.*`` parameters and ``dudes build-engine`` alike."""

    precision: str = "fp16"
    max_batch: int = 1
    opt_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    cache_dir: str | None = None
    calibration_folder: str | None = None
    workspace_gib: float = 4.0

    def __post_init__(self) -> None:
        check(self.precision in PRECISIONS, "engine.precision", self.precision,
              f"one of {list(PRECISIONS)}")
        check(isinstance(self.max_batch, int) and self.max_batch >= 0, "engine.max_batch",
              self.max_batch, "an integer >= 1, or 0 for one slot per camera")
        for name in ("opt_size", "max_size"):
            value = getattr(self, name)
            check(value is None or _size_ok(value), f"engine.{name}", value,
                  f"HEIGHTxWIDTH with both sides >= {MIN_SIDE}")
        if self.opt_size and self.max_size:
            check(all(o <= m for o, m in zip(self.opt_size, self.max_size, strict=True)),
                  "engine.opt_size", self.opt_size,
                  f"a size within engine.max_size {self.max_size}")
        check(self.workspace_gib > 0, "engine.workspace_gib", self.workspace_gib,
              "a number > 0 (GiB)")
        if self.precision == "int8":
            check(bool(self.calibration_folder), "engine.calibration_folder",
                  self.calibration_folder,
                  "a folder of calibration images: precision 'int8' needs one")
        else:
            check(not self.calibration_folder, "engine.calibration_folder",
                  self.calibration_folder,
                  f"empty: calibration images are only used with precision 'int8', "
                  f"not {self.precision!r}")

    def profile(self, network_input_size: tuple[int, int]) -> dict[str, list[int]]:
        """The optimisation profile ``{"min", "opt", "max": [B, H, W, 3]}``."""
        check(self.max_batch >= 1, "engine.max_batch", self.max_batch,
              "an integer >= 1 to build an engine (0, one slot per camera, is the node's "
              "to fill in)")
        opt = self.opt_size or tuple(network_input_size)
        largest = self.max_size or (max(opt[0], DEFAULT_MAX_IMAGE_SIZE[0]),
                                    max(opt[1], DEFAULT_MAX_IMAGE_SIZE[1]))
        check(all(o <= m for o, m in zip(opt, largest, strict=True)), "engine.max_size",
              largest, f"a size that holds the optimisation size {list(opt)}")
        return {"min": [1, *MIN_IMAGE_SIZE, 3], "opt": [self.max_batch, *opt, 3],
                "max": [self.max_batch, *largest, 3]}


def default_cache_dir(onnx_path: Path) -> Path:
    """cache/ beside the ONNX when that folder is writable (a source checkout), else the user
    cache folder (an installed package's share folder usually is not writable)."""
    beside = onnx_path.parent / "cache"
    if os.access(beside if beside.is_dir() else onnx_path.parent, os.W_OK):
        return beside
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dudes_ros" / "engines"


@dataclass(frozen=True)
class LoadedTensorRTEngine:
    engine: Any  # tensorrt.ICudaEngine
    runtime: Any  # its tensorrt.Runtime, kept alive as long as the engine
    logger: Any  # the runtime's tensorrt.Logger, kept alive as long as the runtime
    outcome: CacheOutcome
    manifest: dict
    key: EngineKey
    variant: Variant


def load_engine(onnx_path: str | Path, settings: EngineSettings, gpu: int = 0,
                progress: Progress | None = None) -> LoadedTensorRTEngine:
    """The engine for ``onnx_path`` and ``settings`` on GPU ``gpu``: from the cache or built
    (GPU ``gpu`` is made current in the calling thread). ``UnsupportedTensorRT`` for a TensorRT
    this package does not support, ``VariantError`` when the precision variant cannot be
    made."""
    import tensorrt as trt

    check_tensorrt_version(trt.__version__)
    onnx_path = Path(onnx_path)
    manifest = load_manifest(onnx_path)  # ensure_variant checks the file against it
    profile = settings.profile(tuple(manifest["input"]["network_input_size"]))
    cache_dir = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir(onnx_path)
    variant = ensure_variant(onnx_path, settings.precision, cache_dir,
                             settings.calibration_folder, _calibration_progress(progress))
    info = gpu_info(gpu)
    set_device(gpu)
    key = EngineKey(onnx_sha256=variant.sha256, tensorrt_version=trt.__version__,
                    gpu_name=info.name, compute_capability=info.compute_capability,
                    precision=settings.precision, profile=profile,
                    calibration=variant.calibration)
    logger = trt.Logger(trt.Logger.WARNING)  # the runtime keeps only a pointer to it
    runtime = trt.Runtime(logger)
    builder = functools.partial(build_serialized_engine, workspace_gib=settings.workspace_gib,
                                gpu=gpu)
    loaded = EngineCache(cache_dir, builder, runtime.deserialize_cuda_engine).load(
        variant.path, key, progress)
    return LoadedTensorRTEngine(loaded.engine, runtime, logger, loaded.outcome, manifest, key,
                                variant)


def _calibration_progress(progress: Progress | None):
    if progress is None:
        return None
    return lambda done, total: progress("int8 calibration", done, total)
