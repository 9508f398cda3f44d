"""Expected calibration error of top-1 confidence, and the reliability diagram's bins."""

from __future__ import annotations

import math

import numpy as np

from dudes_ros.evaluate.metrics.base import StreamingMetric, flat, split

ECE_BINS = 15


class CalibrationError(StreamingMetric):
    """Expected calibration error (L1) of top-1 confidence, ``bins`` equal-width bins.

    Bin assignment follows torchmetrics (``bucketize(right=True)`` on ``linspace(0, 1,
    bins + 1)``): bin ``i`` holds ``edge_i <= p < edge_{i+1}`` and confidence exactly 1.0 has
    a bin of its own. State: ``float64 [3 * (bins + 1)]``, per bin the count, the confidence
    sum and the correct count (counts are exact in float64 up to 2**53 pixels).
    """

    def __init__(self, bins: int = ECE_BINS) -> None:
        self.bins = bins
        self.edges = np.linspace(0.0, 1.0, bins + 1)
        self.count = np.zeros(bins + 1, dtype=np.int64)
        self.confidence_sum = np.zeros(bins + 1, dtype=np.float64)
        self.correct = np.zeros(bins + 1, dtype=np.int64)

    def update(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        """Add pixels: ``confidence float [N]`` in [0, 1], ``correct bool [N]``."""
        conf = flat(confidence, "confidence").astype(np.float64)
        ok = flat(correct, "correct", np.shape(confidence)).astype(bool)
        idx = np.searchsorted(self.edges, conf, side="right") - 1
        idx = np.clip(idx, 0, self.bins)
        n = self.bins + 1
        self.count += np.bincount(idx, minlength=n)
        self.confidence_sum += np.bincount(idx, weights=conf, minlength=n)
        self.correct += np.bincount(idx[ok], minlength=n)

    def compute(self) -> dict:
        """``{"ece", "pixels"}`` and the reliability diagram of the ``bins`` bins (the 1.0 bin
        folded into the last): ``"edges" [bins + 1]``, ``"accuracy"``, ``"confidence"`` (NaN
        for an empty bin) and ``"count"``, each ``[bins]``."""
        count = self.count[:-1].copy()
        conf = self.confidence_sum[:-1].copy()
        correct = self.correct[:-1].copy()
        count[-1] += self.count[-1]
        conf[-1] += self.confidence_sum[-1]
        correct[-1] += self.correct[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(count > 0, correct / np.maximum(count, 1), np.nan)
            mean_conf = np.where(count > 0, conf / np.maximum(count, 1), np.nan)
        return {"ece": self._ece(), "pixels": int(self.count.sum()), "edges": self.edges,
                "accuracy": acc, "confidence": mean_conf, "count": count}

    def _ece(self) -> float:
        total = self.count.sum()
        if not total:
            return math.nan
        seen = self.count > 0
        gap = np.abs(self.correct[seen] / self.count[seen]
                     - self.confidence_sum[seen] / self.count[seen])
        return float((self.count[seen] / total * gap).sum())

    def state(self) -> np.ndarray:
        return np.concatenate([self.count, self.confidence_sum, self.correct]).astype(np.float64)

    def load_state(self, state: np.ndarray) -> None:
        count, conf, correct = split(np.asarray(state), [(self.bins + 1,)] * 3)
        self.count = count.astype(np.int64)
        self.confidence_sum = conf.astype(np.float64)
        self.correct = correct.astype(np.int64)
