"""``dudes calibrate``: set the pixel and frame OOD thresholds of a deployed model on in-domain
data (the work: ``dudes_ros.evaluate.calibrate.calibrate``).

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
from datetime import datetime, timezone
from pathlib import Path

from dudes_ros.argtypes import positive_int
from dudes_ros.errors import UsageError
from dudes_ros.evaluate.calibrate import (
    DEFAULT_FALSE_ALARM_RATE,
    DEFAULT_PIXEL_QUANTILE,
    PIXEL_RULES,
    calibrate,
)
from dudes_ros.inference.factory import BACKENDS


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
    from dudes_ros.data.cityscapes import CityscapesDataset
    from dudes_ros.inference.factory import create_predictor
    from dudes_ros.resources import bundled_model
    from dudes_ros.runtime.manifest import load_manifest, manifest_path, update_ood_calibration

    if not args.data:
        raise UsageError("no data; pass --data ROOT or set CITYSCAPES_DATASET")
    model = args.model or bundled_model()
    if model.suffix != ".onnx" or not model.is_file():
        raise UsageError(f"model {model} is not an existing .onnx file; expected the deployed "
                         "student from dudes export (its manifest beside it is updated)")
    # checked before the long run, not after it
    if args.model is None and args.output is None and not args.dry_run:
        raise UsageError(f"no model to write the thresholds into: the bundled model {model} is "
                         "never rewritten; pass --output NEW.onnx for a calibrated copy of it, "
                         "--model STUDENT.onnx to update that model's manifest in place, or "
                         "--dry-run to only print the thresholds")
    if args.output is not None:
        check_output(args.output, model)
    load_manifest(model)
    dataset = CityscapesDataset(args.data, args.split)
    with create_predictor(model, backend=args.backend, device=args.device) as predictor:
        result = calibrate(predictor, dataset, args.false_alarm_rate, args.pixel_threshold,
                           args.limit, args.pixel_rule, args.pixel_quantile)
        result["data"] |= {"root": str(args.data), "split": args.split,
                           "backend": predictor.provenance().get("backend"),
                           "calibrated_at": datetime.now(timezone.utc).isoformat()}
    print(f"pixel threshold {result['pixel_threshold']:.6g}, frame threshold "
          f"{result['frame_threshold']:.6g}, in-domain false-alarm rate "
          f"{result['false_alarm_rate']:.4f} (target {args.false_alarm_rate}) on "
          f"{result['data']['frames']} frames")
    if args.dry_run:
        return 0
    target = model if args.output is None else args.output
    try:
        if args.output is not None:
            copy_model(model, args.output)
        update_ood_calibration(target, result)
    except OSError as exc:
        raise UsageError(f"cannot write the manifest beside {target}: {exc}; pass --output "
                         "with a writable NEW.onnx, or use --dry-run") from exc
    if args.output is not None:
        print(f"wrote {args.output} (a copy of {model}) and its calibrated manifest "
              f"{manifest_path(args.output)}")
    else:
        print(f"wrote the ood section of the manifest beside {model}")
    return 0


def check_output(output: Path, model: Path) -> None:
    """Refuse an ``--output`` that is not a new ``.onnx`` path."""
    if output.suffix != ".onnx":
        raise UsageError(f"--output {output}: expected a path ending in .onnx (its manifest "
                         "is written beside it as .json)")
    from dudes_ros.runtime.manifest import manifest_path

    taken = [p for p in (output, manifest_path(output)) if p.exists()]
    if taken:
        raise UsageError(f"--output {output}: {taken[0]} exists already; choose a new path, "
                         "or update that model in place with --model")


def copy_model(model: Path, output: Path) -> None:
    """``model`` and its manifest copied to ``output`` and its ``.json``, each atomically."""
    import shutil

    from dudes_ros.files import staged
    from dudes_ros.runtime.manifest import manifest_path

    for source, target in ((model, output), (manifest_path(model), manifest_path(output))):
        with staged(target) as tmp:
            shutil.copyfile(source, tmp)
