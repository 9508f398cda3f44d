"""Streaming validation metrics on the training device: Pearson correlation (the confusion
matrix behind mIoU is ``dudes_ros.evaluate.metrics.ConfusionMatrix`` with a ``device``).

The sums accumulate on the training device so that DDP sums them over processes with one
``all_reduce``; the formula that turns them into r is the evaluation suite's
(``dudes_ros.evaluate.metrics``), so training and evaluation report the same numbers.
"""

from __future__ import annotations

import math

import torch

from dudes_ros.evaluate import metrics as mt


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
