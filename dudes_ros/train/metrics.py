"""Streaming validation metrics: confusion-matrix mIoU and Pearson correlation.

Kept deliberately small (accumulate on the device, sum over processes, reduce once); the full
evaluation suite lives in ``dudes_ros.evaluate``.
"""

from __future__ import annotations

import math

import torch

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
        m = self.matrix().double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        return [float(t / u) if u > 0 else math.nan for t, u in zip(tp, union, strict=True)]

    def miou(self) -> float:
        """Mean IoU over the classes that occur (in ground truth or prediction)."""
        values = [v for v in self.iou() if not math.isnan(v)]
        return sum(values) / len(values) if values else math.nan


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
        cov = sxy / n - (sx / n) * (sy / n)
        var_x, var_y = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
        if var_x <= 0 or var_y <= 0:
            return math.nan
        return cov / math.sqrt(var_x * var_y)
