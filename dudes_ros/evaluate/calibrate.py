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
model manifest's ``ood`` section (``dudes_ros.runtime.manifest.update_ood_calibration``), which
the command line, ``dudes_ros.commands.calibrate``, writes.
"""

from __future__ import annotations

import logging
import math

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
