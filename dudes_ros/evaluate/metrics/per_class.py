"""Mean of a pixel map per ground-truth class."""

from __future__ import annotations

import numpy as np

from dudes_ros.evaluate.metrics.base import StreamingMetric, flat, split
from dudes_ros.labels import IGNORE_INDEX, NUM_CLASSES


class PerClassMean(StreamingMetric):
    """Mean of a pixel map per ground-truth class; void pixels (the ignore index, or any id
    outside ``[0, C)``) form an extra last entry. State ``float64 [2 * (C + 1)]``: the sums,
    then the pixel counts."""

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.sum = np.zeros(num_classes + 1, dtype=np.float64)
        self.count = np.zeros(num_classes + 1, dtype=np.int64)

    def update(self, values: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: ``values float [H, W]``, ``gt`` trainIds ``[H, W]``."""
        g = flat(gt, "gt").astype(np.int64)
        v = flat(values, "values", np.shape(gt)).astype(np.float64)
        g = np.where((g == self.ignore_index) | (g < 0) | (g >= self.num_classes),
                     self.num_classes, g)
        self.sum += np.bincount(g, weights=v, minlength=self.num_classes + 1)
        self.count += np.bincount(g, minlength=self.num_classes + 1)

    def compute(self) -> np.ndarray:
        """Means ``float64 [C + 1]`` (void last; NaN for a class without pixels)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum / np.maximum(self.count, 1), np.nan)

    def state(self) -> np.ndarray:
        return np.concatenate([self.sum, self.count.astype(np.float64)])

    def load_state(self, state: np.ndarray) -> None:
        total, count = split(np.asarray(state), [(self.num_classes + 1,)] * 2)
        self.sum, self.count = total.astype(np.float64), count.astype(np.int64)
