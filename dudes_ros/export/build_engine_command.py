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
from dudes_ros.runtime.engine_cache import PRECISIONS, EngineBuildError
from dudes_ros.runtime.tensorrt_engine import EngineSettings


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
                        help="images for INT8 entropy calibration (needed for --precision "
                        "int8)")
    parser.add_argument("--workspace-gib", type=float, default=EngineSettings.workspace_gib,
                        help="TensorRT builder workspace limit (engine.workspace_gib)")
    parser.add_argument("--device", default="cuda", help="'cuda' or 'cuda:N'")


def run(args: argparse.Namespace) -> int:
    from dudes_ros.runtime import cuda

    missing = [name for name, ok in (("tensorrt", importlib.util.find_spec("tensorrt")),
                                     ("cuda-python", cuda.bindings_available())) if not ok]
    if missing:
        print(f"dudes build-engine: {' and '.join(missing)} not installed (TensorRT comes with "
              "JetPack or NVIDIA's tensorrt wheels; pip install cuda-python)", file=sys.stderr)
        return 2
    from dudes_ros.runtime.engine_cache import TqdmProgress
    from dudes_ros.runtime.tensorrt_engine import load_engine

    try:
        settings = EngineSettings(
            precision=args.precision, max_batch=args.max_batch, opt_size=args.opt_size,
            max_size=args.max_size, cache_dir=str(args.cache_dir) if args.cache_dir else None,
            calibration_folder=str(args.calibration_folder) if args.calibration_folder
            else None, workspace_gib=args.workspace_gib)
        loaded = load_engine(args.onnx, settings, cuda.parse_device(args.device),
                             progress=TqdmProgress())
    except (OSError, ValueError, EngineBuildError, cuda.CudaError) as exc:  # ConfigError too
        print(f"dudes build-engine: {exc}", file=sys.stderr)
        return 2
    outcome, key = loaded.outcome, loaded.key
    state = f"built in {outcome.build_seconds:.1f} s ({outcome.reason})" if outcome.built \
        else "already cached and valid"
    print(f"{outcome.engine_path}: {state}; {key.precision}, profile {key.profile}, "
          f"TensorRT {key.tensorrt_version} on {key.gpu_name} (sm {key.compute_capability})")
    return 0
