"""Segmentation confusion matrix: IoU, mIoU and pixel accuracy as cityscapesscripts counts them.

``pred`` and ``gt`` are trainId maps (any integer dtype); ``gt == ignore_index`` (255) marks
void pixels, which are left out exactly as ``cityscapesscripts`` leaves out ignored ground
truth. Training's validation and the evaluation suite use this one class.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dudes_ros.evaluate.metrics.base import Array, StreamingMetric, flat
from dudes_ros.labels import IGNORE_INDEX, NUM_CLASSES


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU ``float64 [C]`` from a ``[C, C]`` (gt rows, prediction columns) matrix;
    NaN for a class absent from both ground truth and prediction (as cityscapesscripts)."""
    conf = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(conf)
    denom = conf.sum(axis=0) + conf.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean of the defined per-class IoUs (NaN when none is defined)."""
    iou = iou_from_confusion(confusion)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan


class ConfusionMatrix(StreamingMetric):
    """Segmentation confusion ``int64 [C, C]`` (rows: ground truth, columns: prediction).

    ``update(pred, gt)`` takes numpy arrays, or torch tensors when counting on ``device``.
    Without ``device`` the counts are a numpy array and class ids outside ``[0, C)`` are
    refused. With a torch ``device`` (training's validation) the counts stay there as an int64
    tensor, the state ``[C * C]`` that DDP sums over processes with one ``all_reduce``; ids
    are then not checked, which would wait for the device every batch.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX,
                 device: Any = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        if device is None:
            self.counts: Array = np.zeros(num_classes * num_classes, dtype=np.int64)
        else:
            import torch

            self.counts = torch.zeros(num_classes * num_classes, dtype=torch.int64,
                                      device=device)

    @property
    def matrix(self) -> np.ndarray:
        """The counts as ``int64 [C, C]`` on the host (a view of them without ``device``)."""
        counts = self.counts if isinstance(self.counts, np.ndarray) else self.counts.cpu().numpy()
        return counts.reshape(self.num_classes, self.num_classes)

    def update(self, pred: Any, gt: Any) -> None:
        """Add images: ``pred``, ``gt`` integer ``[H, W]`` or ``[B, H, W]`` (torch tensors on
        ``device`` when counting there); ignored gt pixels are skipped."""
        c = self.num_classes
        if not isinstance(self.counts, np.ndarray):
            import torch

            valid = gt != self.ignore_index
            self.counts += torch.bincount(gt[valid].long() * c + pred[valid].long(),
                                          minlength=c * c)
            return
        gt_f = flat(gt, "gt").astype(np.int64)
        pred_f = flat(pred, "pred", np.shape(gt)).astype(np.int64)
        valid = gt_f != self.ignore_index
        gt_v, pred_v = gt_f[valid], pred_f[valid]
        if gt_v.size and (gt_v.max() >= c or gt_v.min() < 0):
            raise ValueError(f"gt holds class ids outside [0, {c}) other than the ignore index "
                             f"{self.ignore_index}: {np.unique(gt_v[(gt_v >= c) | (gt_v < 0)])}")
        if pred_v.size and (pred_v.max() >= c or pred_v.min() < 0):
            raise ValueError(f"pred holds class ids outside [0, {c}): "
                             f"{np.unique(pred_v[(pred_v >= c) | (pred_v < 0)])}")
        self.counts += np.bincount(gt_v * c + pred_v, minlength=c * c)

    def compute(self) -> dict:
        """``{"matrix": int64 [C, C], "iou": float64 [C] (NaN: class absent), "miou",
        "pixel_accuracy", "pixels"}``."""
        matrix = self.matrix
        total = int(matrix.sum())
        return {"matrix": matrix, "iou": iou_from_confusion(matrix), "miou": mean_iou(matrix),
                "pixel_accuracy": float(np.trace(matrix) / total) if total else math.nan,
                "pixels": total}

    def state(self) -> Array:
        return self.counts

    def load_state(self, state: Array) -> None:
        if tuple(state.shape) != tuple(self.counts.shape):
            raise ValueError(f"confusion state has shape {tuple(state.shape)}; expected "
                             f"{tuple(self.counts.shape)} ({self.num_classes} classes)")
        self.counts = state
