"""``dudes build-engine MODEL.onnx``: build (or verify) the cached TensorRT engine ahead of time,
so the first start of a node on the vehicle does not spend minutes compiling.

The flags are the node's ``engine.*`` parameters (one ``EngineSettings``), so an engine built
with the node's settings is exactly the file the node then loads from the cache.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from dudes_ros.argtypes import image_size, positive_int
from dudes_ros.runtime.engine_cache import EngineBuildError
from dudes_ros.runtime.precision import PRECISIONS
from dudes_ros.runtime.tensorrt_engine import EngineSettings
from dudes_ros.runtime.tensorrt_support import (
    INSTALL_TENSORRT,
    SUPPORTED_TEXT,
    UnsupportedTensorRT,
    tensorrt_missing,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", type=Path, help="deploy-graph ONNX (manifest beside it)")
    parser.add_argument("--precision", choices=PRECISIONS, default=EngineSettings.precision,
                        help="node parameter engine.precision")
    parser.add_argument("--max-batch", type=positive_int, default=EngineSettings.max_batch,
                        help="largest batch: the node's number of cameras unless its "
                        "engine.max_batch is set")
    parser.add_argument("--opt-size", type=image_size, default=None, metavar="HxW",
                        help="camera size the engine is optimised for (engine.opt_size; "
                        "default: the network input size)")
    parser.add_argument("--max-size", type=image_size, default=None, metavar="HxW",
                        help="largest image size (engine.max_size; default: each side the "
                        "larger of the optimisation size's and 2160x3840's)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="engine cache folder (engine.cache_dir; default: cache/ beside "
                        "the ONNX)")
    parser.add_argument("--calibration-folder", type=Path, default=None,
                        help="in-domain images for int8 post-training calibration (needed for "
                        "--precision int8; every image is used)")
    parser.add_argument("--workspace-gib", type=float, default=EngineSettings.workspace_gib,
                        help="TensorRT builder workspace limit (engine.workspace_gib)")
    parser.add_argument("--device", default="cuda", help="'cuda' or 'cuda:N'")


def run(args: argparse.Namespace) -> int:
    from dudes_ros.runtime import cuda

    if importlib.util.find_spec("tensorrt") is None:
        print(f"dudes build-engine: {tensorrt_missing('no module named tensorrt')}",
              file=sys.stderr)
        return 2
    if not cuda.bindings_available():
        print(f"dudes build-engine: TensorRT's device memory comes from NVIDIA's cuda-python "
              f"runtime bindings, which are not installed. {INSTALL_TENSORRT}", file=sys.stderr)
        return 2
    counted = cuda.gpu_count()
    if not counted.count:
        state = counted.error or "cuda-python sees 0 GPUs"
        print(f"dudes build-engine: TensorRT builds an engine on the GPU that will run it, and "
              f"no GPU is usable here: {state}", file=sys.stderr)
        return 2
    from dudes_ros.commands.progress import TqdmProgress
    from dudes_ros.runtime.tensorrt_engine import load_engine

    try:
        settings = _settings(args)
        loaded = load_engine(args.onnx, settings, cuda.gpu_index_of(args.device),
                             progress=TqdmProgress())
    except (OSError, ValueError, EngineBuildError, cuda.CudaError,
            UnsupportedTensorRT) as exc:  # ConfigError, VariantError too
        print(f"dudes build-engine: {exc}", file=sys.stderr)
        return 2
    outcome, key = loaded.outcome, loaded.key
    state = f"built in {outcome.build_seconds:.1f} s ({outcome.reason})" if outcome.built \
        else "already cached and valid"
    print(f"{outcome.engine_path}: {state}; {key.precision} ({loaded.variant.path.name}), "
          f"profile {key.profile}, TensorRT {key.tensorrt_version} on {key.gpu_name} "
          f"(sm {key.compute_capability}); supported: {SUPPORTED_TEXT}")
    return 0


def _settings(args: argparse.Namespace) -> EngineSettings:
    return EngineSettings(
        precision=args.precision, max_batch=args.max_batch, opt_size=args.opt_size,
        max_size=args.max_size, cache_dir=str(args.cache_dir) if args.cache_dir else None,
        calibration_folder=str(args.calibration_folder) if args.calibration_folder else None,
        workspace_gib=args.workspace_gib)
