"""Metric results as the JSON-ready dicts of ``metrics.json``.

The metrics (``dudes_ros.evaluate.metrics``) return plain numbers and arrays with NaN where a
value is undefined; here they become lists and floats, undefined values ``None`` (JSON has no
NaN), per-class values keyed by class name, and curves thinned to a plottable size.
"""

from __future__ import annotations

import math

import numpy as np

from dudes_ros.evaluate.metrics import BinaryHistogram

CURVE_POINTS = 400
"""Most points kept of each ROC and PR curve in metrics.json."""


def num(v: float | np.floating | None) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def thin(n: int, points: int) -> np.ndarray:
    """Indices ``int64`` of at most ``points`` of ``n`` curve points, evenly spread, ends kept."""
    if n <= points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))


def segmentation(result: dict, class_names: tuple[str, ...]) -> dict:
    """``ConfusionMatrix.compute()``: mIoU, pixel accuracy, IoU per class name, pixels."""
    return {"miou": result["miou"], "pixel_accuracy": result["pixel_accuracy"],
            "iou": {n: num(v) for n, v in zip(class_names, result["iou"], strict=True)},
            "pixels": result["pixels"]}


def reliability(result: dict) -> dict:
    """``CalibrationError.compute()``'s reliability diagram (empty bins None)."""
    return {"edges": result["edges"].tolist(), "accuracy": [num(v) for v in result["accuracy"]],
            "confidence": [num(v) for v in result["confidence"]],
            "count": result["count"].tolist()}


def ranking(result: dict) -> dict:
    """``BinaryHistogram.compute()``: AUROC (and its bin error), AP, FPR@95, sample counts."""
    return {key: num(result[key]) for key in ("auroc", "auroc_bin_error", "average_precision",
                                              "fpr_at_95_tpr")} | {
        "positives": result["positives"], "negatives": result["negatives"]}


def curves(histogram: BinaryHistogram, points: int = CURVE_POINTS) -> dict:
    """ROC and PR curves of ``histogram`` thinned to at most ``points`` points each."""
    fpr, tpr, _ = histogram.roc_curve()
    recall, precision = histogram.pr_curve()
    r = thin(len(fpr), points)
    q = thin(len(recall), points)
    return {"roc": {"fpr": fpr[r].tolist(), "tpr": tpr[r].tolist()},
            "pr": {"recall": recall[q].tolist(), "precision": precision[q].tolist()}}


def uncertainty_errors(result: dict) -> dict:
    """``UncertaintyErrorMetrics.compute()``: misclassification ranking, PAvPU at the
    threshold and over the sweep, the pixels-removed mIoU curve."""
    return {"misclassification": ranking(result["misclassification"]),
            "at_threshold": result["at_threshold"], "sweep": result["sweep"],
            "removal_curve": [point | {"miou": num(point["miou"])}
                              for point in result["removal_curve"]]}


def ood(result: dict) -> dict:
    """``OodMetrics.compute()``: pixel ranking numbers and frame-level numbers."""
    return {"pixel": ranking(result["pixel"]),
            "frame": result["frame"] | {"auroc": num(result["frame"]["auroc"])}}


def agreement(result: dict, class_names: tuple[str, ...]) -> dict:
    """``StudentTeacherAgreement.compute()``: r, RMSE, pixels, per-class means and gaps (the
    class names plus ``void``)."""
    names = (*class_names, "void")
    return {"pearson_r": num(result["pearson_r"]), "rmse": num(result["rmse"]),
            "pixels": result["pixels"],
            "per_class": {n: {"student": num(s), "teacher": num(t), "gap": num(g)}
                          for n, s, t, g in zip(names, result["student"], result["teacher"],
                                                result["gap"], strict=True)},
            "mean_abs_class_gap": num(result["mean_abs_class_gap"])}
