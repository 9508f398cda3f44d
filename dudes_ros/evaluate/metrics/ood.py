"""Anomaly (out-of-distribution) detection by one uncertainty score, per pixel and per frame.

Pixel level (SegmentMeIfYouCan / Fishyscapes conventions): positives are anomaly-mask pixels,
negatives are the other pixels with a valid (non-void) label; void in-domain pixels are left
out. Frame level: the frame score is ``uncertain_fraction(u, pixel_threshold)`` (what the node
computes), a frame is positive when its mask has any anomaly pixel.
"""

from __future__ import annotations

import math

import numpy as np

from dudes_ros.evaluate.metrics.base import StreamingMetric, flat
from dudes_ros.evaluate.metrics.histogram import BinaryHistogram, bin_edges, score_bins
from dudes_ros.labels import IGNORE_INDEX
from dudes_ros.ood import uncertain_fraction

FRAME_BINS = 1000
"""Bins of the per-frame uncertainty histograms behind frame scores at any threshold."""


def exact_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of few samples (frames) by average ranks (Mann-Whitney U, ties count half).

    Written out in numpy so the core needs no scikit-learn (an evaluation extra); the tests
    check it against ``sklearn.metrics.roc_auc_score``.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    p, n = int(y.sum()), int((~y).sum())
    if not p or not n:
        return math.nan
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first_rank = np.concatenate([[0], np.cumsum(counts)[:-1]])
    avg_rank = first_rank + (counts + 1) / 2.0  # 1-based average rank of each distinct value
    rank_sum = float(avg_rank[inverse][y].sum())
    return (rank_sum - p * (p + 1) / 2.0) / (p * n)


class OodMetrics(StreamingMetric):
    """Anomaly detection by one uncertainty score: the pixel histograms of anomaly and valid
    in-domain pixels, and one row per frame.

    Each frame keeps a ``FRAME_BINS`` histogram (4 kB), so frame scores can be recomputed at
    any threshold on that grid; at the given ``pixel_threshold`` they are exact. State
    ``float64``: the pixel histogram's, then per frame ``[exact score (NaN without a
    threshold), positive, histogram]``. Frames are rows, not sums (``reduction = "cat"``):
    ``merge`` adds the pixel histograms and appends the other metric's frames.
    """

    reduction = "cat"

    def __init__(self, pixel_threshold: float | None = None,
                 frame_threshold: float | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        self.pixel_threshold = pixel_threshold
        self.frame_threshold = frame_threshold
        self.ignore_index = ignore_index
        self.pixels = BinaryHistogram()
        self.frame_histograms: list[np.ndarray] = []
        self.exact_scores: list[float] = []
        self.frame_positive: list[bool] = []

    def update(self, uncertainty: np.ndarray, anomaly: np.ndarray | None,
               gt: np.ndarray) -> None:
        """``uncertainty float [H, W]``, ``anomaly bool [H, W]`` or None (no mask: an
        in-domain frame without pixel-level anomaly labels), ``gt`` trainIds ``[H, W]``."""
        u = np.asarray(uncertainty)
        if self.pixel_threshold is not None:
            self.exact_scores.append(uncertain_fraction(u, self.pixel_threshold))
        hist = np.bincount(score_bins(u.reshape(-1), FRAME_BINS), minlength=FRAME_BINS)
        self.frame_histograms.append(hist.astype(np.uint32))
        if anomaly is None:
            self.frame_positive.append(False)
            return
        a = flat(anomaly, "anomaly", u.shape).astype(bool)
        g = flat(gt, "gt", u.shape)
        keep = a | (g != self.ignore_index)
        self.pixels.update(u.reshape(-1)[keep], a[keep])
        self.frame_positive.append(bool(a.any()))

    def frame_scores(self, pixel_threshold: float | None = None) -> tuple[np.ndarray, float]:
        """``(scores float64 [frames], threshold used)``: exact at the constructor's threshold,
        else from the frame histograms at the nearest ``FRAME_BINS`` edge."""
        t = self.pixel_threshold if pixel_threshold is None else pixel_threshold
        if t is None:
            raise ValueError("frame scores need a pixel threshold")
        if t == self.pixel_threshold:
            return np.asarray(self.exact_scores, dtype=np.float64), t
        k = min(int(round(math.sqrt(t) * FRAME_BINS)), FRAME_BINS)
        if not self.frame_histograms:
            return np.zeros(0), float(bin_edges(FRAME_BINS)[k])
        hist = np.stack(self.frame_histograms).astype(np.int64)
        return hist[:, k:].sum(axis=1) / hist.sum(axis=1), float(bin_edges(FRAME_BINS)[k])

    def frames(self, pixel_threshold: float | None = None) -> dict:
        """Frame-level numbers at ``pixel_threshold`` (default: the constructor's):
        ``frames``, ``anomalous_frames``, ``pixel_threshold`` (used), ``auroc``,
        ``frame_threshold`` and, with the latter, ``false_alarm_rate`` on in-domain frames
        and ``detection_rate`` on anomalous ones (None without such frames)."""
        scores, used = self.frame_scores(pixel_threshold)
        positive = np.asarray(self.frame_positive, dtype=bool)
        out = {"frames": int(scores.size), "anomalous_frames": int(positive.sum()),
               "pixel_threshold": used, "auroc": exact_auroc(scores, positive),
               "frame_threshold": self.frame_threshold}
        if self.frame_threshold is not None:
            alarm = scores > self.frame_threshold
            neg, pos = ~positive, positive
            out["false_alarm_rate"] = float(alarm[neg].mean()) if neg.any() else None
            out["detection_rate"] = float(alarm[pos].mean()) if pos.any() else None
        return out

    def compute(self, pixel_threshold: float | None = None) -> dict:
        """``{"pixel": the pixel histogram's ranking numbers, "frame": frames(...)}``."""
        return {"pixel": self.pixels.compute(), "frame": self.frames(pixel_threshold)}

    def state(self) -> np.ndarray:
        rows = np.zeros((len(self.frame_histograms), 2 + FRAME_BINS), dtype=np.float64)
        rows[:, 0] = self.exact_scores if self.exact_scores else np.nan
        rows[:, 1] = self.frame_positive
        if self.frame_histograms:
            rows[:, 2:] = np.stack(self.frame_histograms)
        return np.concatenate([self.pixels.state().astype(np.float64), rows.reshape(-1)])

    def load_state(self, state: np.ndarray) -> None:
        state = np.asarray(state)
        head = 2 * self.pixels.bins
        if state.ndim != 1 or state.size < head or (state.size - head) % (2 + FRAME_BINS):
            raise ValueError(f"OOD state has shape {state.shape}; expected ({head} + frames * "
                             f"{2 + FRAME_BINS},)")
        self.pixels.load_state(state[:head])
        rows = state[head:].reshape(-1, 2 + FRAME_BINS)
        self.exact_scores = ([] if self.pixel_threshold is None
                             else [float(v) for v in rows[:, 0]])
        self.frame_positive = [bool(v) for v in rows[:, 1]]
        self.frame_histograms = [row.astype(np.uint32) for row in rows[:, 2:]]

    def merge(self, other: OodMetrics) -> OodMetrics:
        """Add ``other``'s pixels and append its frames (same thresholds only)."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into an OodMetrics")
        if other.pixel_threshold != self.pixel_threshold:
            raise ValueError(f"cannot merge OOD metrics at pixel threshold "
                             f"{other.pixel_threshold} into ones at {self.pixel_threshold}")
        self.pixels.merge(other.pixels)
        self.frame_histograms += other.frame_histograms
        self.exact_scores += other.exact_scores
        self.frame_positive += other.frame_positive
        return self
