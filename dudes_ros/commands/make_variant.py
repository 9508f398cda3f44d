"""``dudes make-variant MODEL.onnx --precision fp16|int8``: make a precision variant of the
deploy graph (``runtime.precision``) on any machine, no GPU or TensorRT needed, to evaluate it
on the CPU before a car runs it, or to make it ahead of ``dudes build-engine`` and the node,
which find it in the same cache folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dudes_ros.runtime.precision import PRECISIONS
from dudes_ros.runtime.tensorrt_engine import default_cache_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", type=Path, help="deploy-graph ONNX (manifest beside it)")
    parser.add_argument("--precision", choices=[p for p in PRECISIONS if p != "fp32"],
                        required=True, help="the variant to make")
    parser.add_argument("--calibration-folder", type=Path, default=None,
                        help="in-domain images for int8 calibration (every image is used)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the variant goes (engine.cache_dir; default: cache/ beside "
                        "the ONNX), so the node and build-engine find it")


def run(args: argparse.Namespace) -> int:
    from dudes_ros.commands.progress import TqdmProgress
    from dudes_ros.runtime.precision import ensure_variant

    bars = TqdmProgress()  # the engine build's progress display, one phase

    def progress(done: int, total: int) -> None:
        bars("int8 calibration", done, total)

    try:
        variant = ensure_variant(args.onnx, args.precision,
                                 args.cache_dir or default_cache_dir(args.onnx),
                                 args.calibration_folder, progress)
    except (OSError, ValueError) as exc:  # ManifestError, VariantError
        print(f"dudes make-variant: {exc}", file=sys.stderr)
        return 2
    calibration = f", calibrated on {variant.calibration}" if variant.calibration else ""
    print(f"{variant.path}: {variant.precision} variant of {args.onnx} "
          f"(sha256 {variant.sha256[:16]}{calibration})")
    return 0
