"""How well an uncertainty score flags the segmentation's errors: misclassification ranking,
PAvPU at a threshold and over a sweep, and mIoU with the most uncertain pixels removed.

A pixel is *uncertain* at threshold ``t`` when ``u > t``, as in
``dudes_ros.ood.uncertain_fraction``; void pixels (``gt == ignore_index``) are not scored.
"""

from __future__ import annotations

import math

import numpy as np

from dudes_ros.evaluate.metrics.base import StreamingMetric, flat, split
from dudes_ros.evaluate.metrics.confusion import mean_iou
from dudes_ros.evaluate.metrics.histogram import (
    BinaryHistogram,
    bin_edges,
    quantile_threshold,
    score_bins,
)
from dudes_ros.labels import IGNORE_INDEX, NUM_CLASSES

REMOVAL_BINS = 200
"""Coarse uncertainty bins of the per-bin confusion behind the pixels-removed mIoU curve."""
REMOVED_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(10))
"""Fractions of most-uncertain pixels removed for the mIoU curve (0 % to 90 %)."""
SWEEP_THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(101))


class UncertaintyErrorMetrics(StreamingMetric):
    """How well one uncertainty score flags the segmentation's errors (valid pixels only).

    Keeps the error histogram (positives: wrong pixels), exact accurate/certain counts at the
    operating ``threshold`` (when one is given; otherwise the numbers at a threshold use the
    PAvPU-optimal bin edge of ``choose_pixel_threshold``), and a per-uncertainty-bin
    confusion ``[REMOVAL_BINS, C, C]`` for the most-uncertain-pixels-removed mIoU curve.
    State: ``int64``, the error histogram's, the ``[2, 2]`` counts and that confusion.
    """

    def __init__(self, threshold: float | None = None, num_classes: int = NUM_CLASSES,
                 ignore_index: int = IGNORE_INDEX) -> None:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"pixel threshold must lie in [0, 1], got {threshold}")
        self.threshold = threshold
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.errors = BinaryHistogram()
        self.counts = np.zeros((2, 2), dtype=np.int64)  # [accurate, inaccurate] x [cert, unc]
        c = num_classes
        self.binned_confusion = np.zeros((REMOVAL_BINS, c, c), dtype=np.int64)

    def update(self, pred: np.ndarray, uncertainty: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: ``pred`` integer ``[H, W]``, its ``uncertainty float [H, W]``,
        ``gt`` trainIds ``[H, W]``."""
        gt_f = flat(gt, "gt").astype(np.int64)
        pred_f = flat(pred, "pred", np.shape(gt)).astype(np.int64)
        u = flat(uncertainty, "uncertainty", np.shape(gt))
        valid = gt_f != self.ignore_index
        gt_v, pred_v, u_v = gt_f[valid], pred_f[valid], u[valid]
        wrong = gt_v != pred_v
        self.errors.update(u_v, wrong)
        if self.threshold is not None:
            uncertain = u_v > self.threshold
            self.counts += np.bincount(wrong * 2 + uncertain, minlength=4).reshape(2, 2)
        c = self.num_classes
        coarse = score_bins(u_v, REMOVAL_BINS)
        flat_index = (coarse * c + gt_v) * c + pred_v
        self.binned_confusion += np.bincount(
            flat_index, minlength=REMOVAL_BINS * c * c).reshape(REMOVAL_BINS, c, c)

    def compute(self) -> dict:
        """``{"misclassification": the error histogram's ranking numbers, "at_threshold",
        "sweep", "removal_curve"}`` (see the methods of those names)."""
        return {"misclassification": self.errors.compute(), "at_threshold": self.at_threshold(),
                "sweep": self.sweep(), "removal_curve": self.removal_curve()}

    def state(self) -> np.ndarray:
        return np.concatenate([self.errors.state(), self.counts.reshape(-1),
                               self.binned_confusion.reshape(-1)])

    def load_state(self, state: np.ndarray) -> None:
        c = self.num_classes
        errors, counts, binned = split(np.asarray(state), [
            (2 * self.errors.bins,), (2, 2), (REMOVAL_BINS, c, c)])
        self.errors.load_state(errors)
        self.counts = counts.astype(np.int64)
        self.binned_confusion = binned.astype(np.int64)

    def at_threshold(self) -> dict:
        """p(accurate | certain), p(uncertain | inaccurate) and PAvPU, exact at the given
        threshold; without one, at the PAvPU-optimal bin edge (``"chosen": True``)."""
        if self.threshold is None:
            return self.sweep((choose_pixel_threshold(self.errors),))[0] | {"chosen": True}
        (n_ac, n_au), (n_ic, n_iu) = self.counts
        return pavpu(n_ac, n_au, n_ic, n_iu) | {"threshold": self.threshold, "chosen": False}

    def sweep(self, thresholds: tuple[float, ...] = SWEEP_THRESHOLDS) -> list[dict]:
        """The same three numbers over thresholds, each snapped to the nearest bin edge."""
        edges = bin_edges(self.errors.bins)
        wrong_above = np.concatenate([np.cumsum(self.errors.positive[::-1])[::-1], [0]])
        right_above = np.concatenate([np.cumsum(self.errors.negative[::-1])[::-1], [0]])
        n_i, n_a = int(wrong_above[0]), int(right_above[0])
        out = []
        for t in thresholds:
            k = min(int(round(math.sqrt(t) * self.errors.bins)), self.errors.bins)
            n_iu, n_au = int(wrong_above[k]), int(right_above[k])
            out.append(pavpu(n_a - n_au, n_au, n_i - n_iu, n_iu) | {"threshold": float(edges[k])})
        return out

    def removal_curve(self, fractions: tuple[float, ...] = REMOVED_FRACTIONS) -> list[dict]:
        """mIoU (NaN: no class left) after removing the given fractions of the most
        uncertain valid pixels.

        Whole coarse bins are removed from the top; the bin the cut falls into is removed
        proportionally (as if its pixels were mixed uniformly): ``boundary_bin_share`` is its
        share of all pixels, the most the curve point can be off by in removed pixels.
        """
        per_bin = self.binned_confusion.reshape(REMOVAL_BINS, -1).sum(axis=1)
        total = int(per_bin.sum())
        cum = np.cumsum(per_bin)  # pixels in bins 0..b (least uncertain first)
        out = []
        for f in fractions:
            keep = (1.0 - f) * total
            b = int(np.searchsorted(cum, keep, side="left")) if total else 0
            b = min(b, REMOVAL_BINS - 1)
            before = int(cum[b - 1]) if b > 0 else 0
            share = (keep - before) / per_bin[b] if per_bin[b] else 0.0
            conf = self.binned_confusion[:b].sum(axis=0) + share * self.binned_confusion[b]
            out.append({"removed": f, "miou": mean_iou(conf),
                        "boundary_bin_share": float(per_bin[b] / total) if total else 0.0})
        return out


def choose_pixel_threshold(errors: BinaryHistogram, fallback_quantile: float = 0.99) -> float:
    """The bin edge that maximises PAvPU on an error histogram (positives: wrong pixels).

    That is where flagging a pixel starts to pay: above it, uncertain pixels are more often
    wrong than right. When no such edge exists (a model that is rarely wrong even at its most
    uncertain), the ``fallback_quantile`` of all pixels' uncertainty is used instead.
    """
    neg_below = np.concatenate([[0], np.cumsum(errors.negative)])  # accurate & certain
    pos_above = errors.positive.sum() - np.concatenate([[0], np.cumsum(errors.positive)])
    k = int(np.argmax(neg_below + pos_above))
    if k >= errors.bins:
        return quantile_threshold(errors, fallback_quantile)
    return float(bin_edges(errors.bins)[k])


def pavpu(n_ac: int, n_au: int, n_ic: int, n_iu: int) -> dict:
    """p(accurate | certain), p(uncertain | inaccurate), PAvPU and the uncertain share from
    the accurate/inaccurate x certain/uncertain counts; None where a ratio has no pixels."""
    total = n_ac + n_au + n_ic + n_iu

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {"p_accurate_given_certain": ratio(n_ac, n_ac + n_ic),
            "p_uncertain_given_inaccurate": ratio(n_iu, n_ic + n_iu),
            "pavpu": ratio(n_ac + n_iu, total), "uncertain_share": ratio(n_au + n_iu, total)}
