"""``dudes calibrate``: set the pixel and frame OOD thresholds of a deployed model on in-domain
data (the work: ``dudes_ros.evaluate.calibrate.calibrate_model``).

The result is merged into the model manifest's ``ood`` section with
``dudes_ros.runtime.manifest.update_ood_calibration``: of the model named with ``--model`` (in
place), or of a calibrated copy written to ``--output NEW.onnx`` (the ONNX copied, its manifest
beside it). Without either, nothing is written: the command never rewrites a model nobody
named, so the bundled or installed student (the default model read) keeps the calibration it
shipped with, and every node that loads it keeps its thresholds.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dudes_ros.argtypes import positive_int
from dudes_ros.errors import UsageError
from dudes_ros.evaluate.calibrate import (
    DEFAULT_FALSE_ALARM_RATE,
    DEFAULT_PIXEL_QUANTILE,
    PIXEL_RULES,
    CalibrationRequest,
    calibrate_model,
)
from dudes_ros.inference.factory import BACKENDS
from dudes_ros.resources import bundled_model
from dudes_ros.runtime.manifest import manifest_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help="deployed student ONNX to calibrate; its manifest is updated in "
                             "place (default: read the bundled engines/dudes_student.onnx, "
                             "which is never rewritten: give --output or --dry-run with it)")
    parser.add_argument("--output", type=Path, default=None, metavar="NEW.onnx",
                        help="write a calibrated copy instead: the model's ONNX copied to "
                             "NEW.onnx with the calibrated manifest NEW.json beside it (a new "
                             "path; the model read stays as it was)")
    parser.add_argument("--data", default=os.environ.get("CITYSCAPES_DATASET"),
                        help="in-domain Cityscapes-layout root (default: $CITYSCAPES_DATASET)")
    parser.add_argument("--split", default="val", help="split folder (default: val)")
    parser.add_argument("--false-alarm-rate", type=float, default=DEFAULT_FALSE_ALARM_RATE,
                        help="target in-domain frame false-alarm rate (default 0.01)")
    parser.add_argument("--pixel-threshold", type=float, default=None,
                        help="fix the pixel threshold instead of choosing it")
    parser.add_argument("--pixel-rule", choices=PIXEL_RULES, default="quantile",
                        help="how to choose the pixel threshold: the --pixel-quantile of "
                             "in-domain pixel uncertainty (default) or PAvPU-optimal")
    parser.add_argument("--pixel-quantile", type=float, default=DEFAULT_PIXEL_QUANTILE,
                        help=f"with --pixel-rule quantile (default {DEFAULT_PIXEL_QUANTILE})")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="backend that runs the model (default: auto)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="use the first N frames")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the calibration without writing the manifest")


def run(args: argparse.Namespace) -> int:
    if not args.data:
        raise UsageError("no data; pass --data ROOT or set CITYSCAPES_DATASET")
    result, written = calibrate_model(CalibrationRequest(
        data=args.data, split=args.split, model=args.model, output=args.output,
        dry_run=args.dry_run, target_rate=args.false_alarm_rate,
        pixel_threshold=args.pixel_threshold, pixel_rule=args.pixel_rule,
        pixel_quantile=args.pixel_quantile, backend=args.backend, device=args.device,
        limit=args.limit))
    print(f"pixel threshold {result['pixel_threshold']:.6g}, frame threshold "
          f"{result['frame_threshold']:.6g}, in-domain false-alarm rate "
          f"{result['false_alarm_rate']:.4f} (target {args.false_alarm_rate}) on "
          f"{result['data']['frames']} frames")
    if written is not None and args.output is not None:
        print(f"wrote {args.output} (a copy of {args.model or bundled_model()}) and its "
              f"calibrated manifest {manifest_path(args.output)}")
    elif written is not None:
        print(f"wrote the ood section of the manifest beside {written}")
    return 0
