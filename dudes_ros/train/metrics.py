"""Streaming validation metrics: confusion-matrix mIoU and Pearson correlation.

The counts and sums accumulate on the training device so that DDP sums them over processes
with one ``all_reduce`` each; the formulas that turn them into IoU and r are the evaluation
suite's (``dudes_ros.evaluate.metrics``), so training and evaluation report the same numbers.
"""

from __future__ import annotations

import math

import torch

from dudes_ros.evaluate import metrics as mt
from dudes_ros.labels import IGNORE_INDEX


class ConfusionMatrix:
    """``[C, C]`` counts of (ground truth, prediction), ignoring ``IGNORE_INDEX``."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.counts = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)

    def update(self, target: torch.Tensor, prediction: torch.Tensor) -> None:
        """``target`` and ``prediction``: integer ``[B, H, W]``."""
        valid = target != IGNORE_INDEX
        flat = target[valid].long() * self.num_classes + prediction[valid].long()
        self.counts += torch.bincount(flat, minlength=self.num_classes ** 2)

    def matrix(self) -> torch.Tensor:
        return self.counts.view(self.num_classes, self.num_classes)

    def iou(self) -> list[float]:
        """Per-class IoU; NaN for classes absent from both ground truth and prediction."""
        return [float(v) for v in mt.iou_from_confusion(self.matrix().cpu().numpy())]

    def miou(self) -> float:
        """Mean IoU over the classes that occur (in ground truth or prediction)."""
        return mt.mean_iou(self.matrix().cpu().numpy())


class PearsonAccumulator:
    """Pixel-wise Pearson correlation of two maps, accumulated in float64 over batches."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(6, dtype=torch.float64, device=device)  # n, x, y, xx, yy, xy

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.reshape(-1).double(), y.reshape(-1).double()
        self.sums += torch.stack([torch.tensor(float(x.numel()), dtype=torch.float64,
                                               device=x.device),
                                  x.sum(), y.sum(), (x * x).sum(), (y * y).sum(),
                                  (x * y).sum()])

    def value(self) -> float:
        n, sx, sy, sxx, syy, sxy = self.sums.tolist()
        if n == 0:
            return math.nan
        return mt.pearson_from_comoments(sxx - sx * sx / n, syy - sy * sy / n, sxy - sx * sy / n)
