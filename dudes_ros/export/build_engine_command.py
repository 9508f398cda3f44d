"""``dudes build-engine MODEL.onnx``: build (or verify) the cached TensorRT engine ahead of time,
so the first start of a node on the vehicle does not spend minutes compiling."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from dudes_ros.argtypes import image_size
from dudes_ros.export.engine_cache import PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", type=Path, help="deploy-graph ONNX (manifest beside it)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16")
    parser.add_argument("--max-batch", type=int, default=1,
                        help="largest batch (number of cameras) the engine accepts")
    parser.add_argument("--image-size", type=image_size, metavar="HxW", default=None,
                        help="camera image size, e.g. 480x640 (default: the network input "
                             "size)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="engine cache folder (default: cache/ beside the ONNX)")
    parser.add_argument("--calibration-folder", type=Path, default=None,
                        help="images for INT8 entropy calibration (needed for --precision int8)")
    parser.add_argument("--workspace-gib", type=float, default=4.0,
                        help="TensorRT builder workspace limit")


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("tensorrt") is None:
        print("dudes build-engine: the tensorrt Python package is not installed "
              "(it comes with JetPack or NVIDIA's TensorRT wheels)", file=sys.stderr)
        return 2
    import torch

    from dudes_ros.export.engine_cache import TqdmProgress
    from dudes_ros.inference.tensorrt_backend import load_engine

    if not torch.cuda.is_available():
        print("dudes build-engine: no CUDA GPU is visible", file=sys.stderr)
        return 2
    try:
        _, outcome, _, key = load_engine(
            args.onnx, precision=args.precision, max_batch=args.max_batch,
            image_size=args.image_size,
            cache_dir=args.cache_dir, calibration_folder=args.calibration_folder,
            workspace_gib=args.workspace_gib, progress=TqdmProgress())
    except (OSError, ValueError) as exc:
        print(f"dudes build-engine: {exc}", file=sys.stderr)
        return 2
    state = f"built in {outcome.build_seconds:.1f} s ({outcome.reason})" if outcome.built \
        else "already cached and valid"
    print(f"{outcome.engine_path}: {state}; {key.precision}, profile {key.profile}, "
          f"TensorRT {key.tensorrt_version} on {key.gpu_name} (sm {key.compute_capability})")
    return 0
