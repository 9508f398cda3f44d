"""Streaming evaluation metrics with bounded memory, one module per metric.

Every metric follows ``base.StreamingMetric``: ``update(prediction..., target...)`` image by
image with vectorised ``bincount`` calls, ``compute()`` to plain numbers and arrays,
``merge(other)``, and one state array (``state()``, ``load_state``) that DDP sums over
processes with one ``all_reduce``. No list of pixels is ever kept; only frame-level OOD data
(one row per frame) grows with the data. Training's validation uses the same classes.

``pred`` and ``gt`` are trainId maps ``[H, W]``; ``gt == ignore_index`` (255) marks void
pixels, excluded from segmentation and error metrics as ``cityscapesscripts`` excludes
ignored ground truth.
"""

from dudes_ros.evaluate.metrics.agreement import StudentTeacherAgreement
from dudes_ros.evaluate.metrics.base import StreamingMetric
from dudes_ros.evaluate.metrics.calibration import ECE_BINS, CalibrationError
from dudes_ros.evaluate.metrics.confusion import ConfusionMatrix, iou_from_confusion, mean_iou
from dudes_ros.evaluate.metrics.correlation import RunningCorrelation, pearson_from_comoments
from dudes_ros.evaluate.metrics.histogram import (
    SCORE_BINS,
    BinaryHistogram,
    bin_edges,
    quantile_threshold,
    score_bins,
)
from dudes_ros.evaluate.metrics.ood import FRAME_BINS, OodMetrics, exact_auroc
from dudes_ros.evaluate.metrics.per_class import PerClassMean
from dudes_ros.evaluate.metrics.uncertainty_error import (
    REMOVAL_BINS,
    REMOVED_FRACTIONS,
    SWEEP_THRESHOLDS,
    UncertaintyErrorMetrics,
    choose_pixel_threshold,
    pavpu,
)

__all__ = [
    "ECE_BINS", "FRAME_BINS", "REMOVAL_BINS", "REMOVED_FRACTIONS", "SCORE_BINS",
    "SWEEP_THRESHOLDS", "BinaryHistogram", "CalibrationError", "ConfusionMatrix", "OodMetrics",
    "PerClassMean", "RunningCorrelation", "StreamingMetric", "StudentTeacherAgreement",
    "UncertaintyErrorMetrics", "bin_edges", "choose_pixel_threshold", "exact_auroc",
    "iou_from_confusion", "mean_iou", "pavpu", "pearson_from_comoments", "quantile_threshold",
    "score_bins",
]
