"""Set the OOD thresholds the node uses, on in-domain validation data (``dudes calibrate``).

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

``calibrate`` returns both thresholds, the rate reached and a description of the data: the
model manifest's ``ood`` section (``dudes_ros.runtime.manifest.update_ood_calibration``);
``calibrate_model`` runs it on a model file and writes that section (the command line is
``dudes_ros.commands.calibrate``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dudes_ros.errors import UsageError
from dudes_ros.evaluate import metrics as mt
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


@dataclass(frozen=True)
class CalibrationRequest:
    """What ``dudes calibrate`` is asked: ``model`` the deployed ONNX (None: the bundled one,
    read only), ``output`` a new ONNX path for a calibrated copy, ``dry_run`` to write
    nothing; the rest as ``calibrate``'s arguments. Errors name the command line's options."""

    data: str
    split: str = "val"
    model: Path | None = None
    output: Path | None = None
    dry_run: bool = False
    target_rate: float = DEFAULT_FALSE_ALARM_RATE
    pixel_threshold: float | None = None
    pixel_rule: str = "quantile"
    pixel_quantile: float = DEFAULT_PIXEL_QUANTILE
    backend: str = "auto"
    device: str = "auto"
    limit: int | None = None


def calibrate_model(request: CalibrationRequest) -> tuple[dict, Path | None]:
    """Calibrate the model ``request`` names on its data and write the result into the
    manifest of ``request.model`` (in place) or of the copy at ``request.output``; returns the
    calibration and the ONNX whose manifest was written (None with ``dry_run``). Every refusal
    comes before the long run."""
    from datetime import datetime, timezone

    from dudes_ros.data.cityscapes import CityscapesDataset
    from dudes_ros.inference.factory import create_predictor
    from dudes_ros.resources import bundled_model
    from dudes_ros.runtime.manifest import load_manifest, update_ood_calibration

    r = request
    model = r.model or bundled_model()
    if model.suffix != ".onnx" or not model.is_file():
        raise UsageError(f"model {model} is not an existing .onnx file; expected the deployed "
                         "student from dudes export (its manifest beside it is updated)")
    if r.model is None and r.output is None and not r.dry_run:
        raise UsageError(f"no model to write the thresholds into: the bundled model {model} is "
                         "never rewritten; pass --output NEW.onnx for a calibrated copy of it, "
                         "--model STUDENT.onnx to update that model's manifest in place, or "
                         "--dry-run to only print the thresholds")
    if r.output is not None:
        check_output(r.output)
    load_manifest(model)
    dataset = CityscapesDataset(r.data, r.split)
    with create_predictor(model, backend=r.backend, device=r.device) as predictor:
        result = calibrate(predictor, dataset, r.target_rate, r.pixel_threshold, r.limit,
                           r.pixel_rule, r.pixel_quantile)
        result["data"] |= {"root": str(r.data), "split": r.split,
                           "backend": predictor.provenance().get("backend"),
                           "calibrated_at": datetime.now(timezone.utc).isoformat()}
    if r.dry_run:
        return result, None
    target = model if r.output is None else r.output
    try:
        if r.output is not None:
            copy_model(model, r.output)
        update_ood_calibration(target, result)
    except OSError as exc:
        raise UsageError(f"cannot write the manifest beside {target}: {exc}; pass --output "
                         "with a writable NEW.onnx, or use --dry-run") from exc
    return result, target


def check_output(output: Path) -> None:
    """Refuse an ``--output`` that is not a new ``.onnx`` path."""
    from dudes_ros.runtime.manifest import manifest_path

    if output.suffix != ".onnx":
        raise UsageError(f"--output {output}: expected a path ending in .onnx (its manifest "
                         "is written beside it as .json)")
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
