"""``dudes calibrate``: set the OOD thresholds the node uses, on in-domain validation data.

The deployed predictor (the same ONNX / TensorRT / torch backend the node runs) is applied to
in-domain frames; frames whose anomaly mask marks anything are left out. Then:

1. **pixel threshold**: by default the ``--pixel-quantile`` (0.9999) of the in-domain pixels'
   uncertainty, so a pixel counts as uncertain when it is more uncertain than 99.99 % of
   in-domain pixels and an in-domain frame scores about 0.0001 on average (an unknown object
   is a blob of such pixels; ``metrics.quantile_threshold``). The high quantile keeps the
   in-domain frame tail low enough for a small object to pass it (the effect on the frame
   threshold and on alarm delays is measured in BENCHMARKS.md, OOD alarm); with
   ``--pixel-rule pavpu`` the PAvPU-optimal uncertainty
   instead (above it a pixel is more often wrong than right,
   ``metrics.choose_pixel_threshold``: a rule about in-domain errors, which puts boundaries
   over the threshold too); or the value given with ``--pixel-threshold``. Chosen values lie
   on the frame-histogram grid;
2. **frame threshold**: on the frame scores ``uncertain_fraction(u, pixel_threshold)``, the
   smallest value that at most ``floor(rate * frames)`` in-domain frames exceed, so the
   in-domain false-alarm rate reached is at most the target (default 1 % of frames).

Both, the rate reached and a description of the data, are merged into the model manifest's
``ood`` section with ``dudes_ros.runtime.manifest.update_ood_calibration``: of the model named
with ``--model`` (in place), or of a calibrated copy written to ``--output NEW.onnx`` (the ONNX
copied, its manifest beside it). Without either, nothing is written: the command never
rewrites a model nobody named, so the bundled or installed student (the default model read)
keeps the calibration it shipped with, and every node that loads it keeps its thresholds.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dudes_ros.argtypes import positive_int
from dudes_ros.errors import UsageError
from dudes_ros.evaluate import metrics as mt
from dudes_ros.inference.factory import BACKENDS
from dudes_ros.inference.predictor import Predictor
from dudes_ros.labels import IGNORE_INDEX

LOG = logging.getLogger(__name__)
DEFAULT_FALSE_ALARM_RATE = 0.01
DEFAULT_PIXEL_QUANTILE = 0.9999
PIXEL_RULES = ("quantile", "pavpu")


def choose_frame_threshold(scores: np.ndarray, target_rate: float) -> tuple[float, float]:
    """``(threshold, rate reached)``: the smallest threshold that at most
    ``floor(target_rate * n)`` of the in-domain ``scores`` exceed (alarm when score > t)."""
    if not 0.0 < target_rate < 1.0:
        raise UsageError(f"target false-alarm rate (--false-alarm-rate) must lie in (0, 1), "
                         f"got {target_rate}")
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if s.size == 0:
        raise UsageError("no in-domain frames to calibrate on")
    allowed = math.floor(target_rate * s.size)
    threshold = float(s[min(allowed, s.size - 1)])
    return threshold, float(np.mean(s > threshold))


def calibrate(predictor: Predictor, dataset, target_rate: float = DEFAULT_FALSE_ALARM_RATE,
              pixel_threshold: float | None = None, limit: int | None = None,
              pixel_rule: str = "quantile",
              pixel_quantile: float = DEFAULT_PIXEL_QUANTILE) -> dict:
    """Thresholds from ``dataset`` (items ``{"image", "labels", "anomaly", "path"}``).

    ``pixel_threshold`` fixes the pixel threshold; otherwise ``pixel_rule`` chooses it
    (``"quantile"``: the ``pixel_quantile`` of in-domain pixel uncertainty; ``"pavpu"``).

    Returns the calibration dict for the manifest: ``pixel_threshold``, ``frame_threshold``,
    ``false_alarm_rate`` (reached on the in-domain frames), ``target_false_alarm_rate`` and
    ``data`` (frames used / skipped, pixels, rule).
    """
    if pixel_threshold is not None and not 0.0 <= pixel_threshold <= 1.0:
        raise UsageError(f"pixel threshold (--pixel-threshold) must lie in [0, 1], got "
                         f"{pixel_threshold}")
    if pixel_rule not in PIXEL_RULES:
        raise UsageError(f"pixel rule must be one of {PIXEL_RULES}, got {pixel_rule!r}")
    if not 0.0 < pixel_quantile < 1.0:
        raise UsageError(f"pixel quantile (--pixel-quantile) must lie in (0, 1), got "
                         f"{pixel_quantile}")
    errors = mt.BinaryHistogram()
    frames = mt.OodMetrics(pixel_threshold=pixel_threshold)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    skipped = 0
    for index in tqdm(range(count), desc="calibrate", unit="frame"):
        item = dataset[index]
        anomaly = item.get("anomaly")
        if anomaly is not None and anomaly.any():
            skipped += 1
            continue
        labels, uncertainty = predictor.predict(np.ascontiguousarray(item["image"])[None])
        gt = item["labels"]
        if labels.shape[1:] != gt.shape:
            raise UsageError(f"{item.get('path')}: predictor returned {labels.shape[1:]} "
                              f"labels for a {gt.shape} label image")
        valid = gt != IGNORE_INDEX
        errors.update(uncertainty[0][valid], (labels[0] != gt)[valid])
        frames.update(uncertainty[0], None, gt)
    used = count - skipped
    if used == 0:
        raise UsageError(f"all {count} frames hold anomalies; calibration needs in-domain "
                         "frames (anomaly masks empty or absent)")
    if pixel_threshold is None and pixel_rule == "pavpu":
        rule = "PAvPU-optimal on in-domain pixels"
        scores, pixel_threshold = frames.frame_scores(mt.choose_pixel_threshold(errors))
    elif pixel_threshold is None:
        rule = f"{pixel_quantile} quantile of in-domain pixel uncertainty"
        scores, pixel_threshold = frames.frame_scores(
            mt.quantile_threshold(errors, pixel_quantile))
    else:
        rule = "given"
        scores, _ = frames.frame_scores()
    frame_threshold, rate = choose_frame_threshold(scores, target_rate)
    if used * target_rate < 1.0:
        LOG.warning("only %d in-domain frames: a %.2g %% false-alarm rate cannot be resolved; "
                    "the frame threshold is the largest in-domain score (no false alarm here)",
                    used, 100 * target_rate)
    p, n = errors.totals
    return {"pixel_threshold": float(pixel_threshold), "frame_threshold": frame_threshold,
            "false_alarm_rate": rate, "target_false_alarm_rate": target_rate,
            "data": {"frames": used, "skipped_anomalous_frames": skipped, "pixels": p + n,
                     "pixel_error_rate": p / (p + n) if p + n else None,
                     "pixel_threshold_rule": rule,
                     "frame_score": "fraction of pixels with uncertainty > pixel_threshold",
                     "frame_score_max": float(scores.max()),
                     "frame_score_median": float(np.median(scores))}}


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
