"""Streaming evaluation metrics with bounded memory (confusion matrices and fixed-bin histograms).

Every metric keeps a fixed-size state that is updated image by image with vectorised
``np.bincount`` calls, so evaluating 500 images of 2 Mpx needs no more memory than one. No
list of pixels is ever kept; only frame-level OOD scores (one float per frame) are stored.

Conventions:

- ``pred`` and ``gt`` are trainId maps ``[H, W]`` (any integer dtype); ``gt == ignore_index``
  (255) marks void pixels, which are excluded from segmentation and error metrics exactly as
  ``cityscapesscripts`` excludes ignored ground truth.
- Uncertainty scores lie in [0, 1] (larger = less certain); callers scale unbounded scores
  (entropy, mutual information) into that range. A pixel is *uncertain* at threshold ``t``
  when ``u > t``, as in ``dudes_ros.ood.uncertain_fraction``.
- Score histograms use ``SCORE_BINS`` bins spaced uniformly in ``sqrt(u)`` (edges
  ``(k / B) ** 2``): fine resolution near 0, where most pixels of a good model lie, and still
  at most ``2 / B`` wide near 1. Metrics from them are *exact* for scores quantised to those
  bins and differ from unbinned values only through pixels that share a bin; for AUROC that
  difference is bounded by ``BinaryHistogram.auroc_bin_error()``, computed from the data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dudes_ros.labels import IGNORE_INDEX, NUM_CLASSES
from dudes_ros.ood import uncertain_fraction

SCORE_BINS = 10_000
"""Bins of the uncertainty histograms behind AUROC, AP, FPR@95 and the threshold sweeps."""
REMOVAL_BINS = 200
"""Coarse uncertainty bins of the per-bin confusion behind the pixels-removed mIoU curve."""
ECE_BINS = 15
REMOVED_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(10))
"""Fractions of most-uncertain pixels removed for the mIoU curve (0 % to 90 %)."""
FRAME_BINS = 1000
"""Bins of the per-frame uncertainty histograms behind frame scores at any threshold."""
SWEEP_THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(101))


def score_bins(scores: np.ndarray, bins: int) -> np.ndarray:
    """Bin index ``int64 [N]`` of scores in [0, 1] (clipped) on the sqrt-spaced grid."""
    root = np.sqrt(np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0))
    return np.minimum((root * bins).astype(np.int64), bins - 1)


def bin_edges(bins: int) -> np.ndarray:
    """Lower edges ``float64 [bins + 1]`` of the sqrt-spaced grid: ``(k / bins) ** 2``."""
    return (np.arange(bins + 1, dtype=np.float64) / bins) ** 2


def _flat(a: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(a)
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {shape} like the ground truth, got {a.shape}")
    return a.reshape(-1)


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


class ConfusionMatrix:
    """Segmentation confusion ``int64 [C, C]`` (rows: ground truth, columns: prediction).

    ``update(pred, gt)`` takes numpy arrays, or torch tensors when counting on ``device``.
    Without ``device`` the counts are a numpy array and class ids outside ``[0, C)`` are
    refused. With a torch ``device`` (training's validation) the counts stay there as an int64
    tensor ``counts [C * C]`` so that DDP sums them over processes with one ``all_reduce``;
    ids are then not checked, which would wait for the device every batch.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX,
                 device: Any = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        if device is None:
            self.counts: Any = np.zeros(num_classes * num_classes, dtype=np.int64)
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
        gt_f = _flat(gt, "gt").astype(np.int64)
        pred_f = _flat(pred, "pred", np.shape(gt)).astype(np.int64)
        valid = gt_f != self.ignore_index
        gt_v, pred_v = gt_f[valid], pred_f[valid]
        if gt_v.size and (gt_v.max() >= c or gt_v.min() < 0):
            raise ValueError(f"gt holds class ids outside [0, {c}) other than the ignore index "
                             f"{self.ignore_index}: {np.unique(gt_v[(gt_v >= c) | (gt_v < 0)])}")
        if pred_v.size and (pred_v.max() >= c or pred_v.min() < 0):
            raise ValueError(f"pred holds class ids outside [0, {c}): "
                             f"{np.unique(pred_v[(pred_v >= c) | (pred_v < 0)])}")
        self.counts += np.bincount(gt_v * c + pred_v, minlength=c * c)

    def iou(self) -> np.ndarray:
        return iou_from_confusion(self.matrix)

    def miou(self) -> float:
        return mean_iou(self.matrix)

    def pixel_accuracy(self) -> float:
        matrix = self.matrix
        total = matrix.sum()
        return float(np.trace(matrix) / total) if total else math.nan

    def summary(self, class_names: tuple[str, ...] | None = None) -> dict:
        iou = self.iou()
        names = class_names or tuple(str(i) for i in range(self.num_classes))
        return {"miou": self.miou(), "pixel_accuracy": self.pixel_accuracy(),
                "iou": {n: _num(v) for n, v in zip(names, iou, strict=True)},
                "pixels": int(self.matrix.sum())}


class CalibrationError:
    """Expected calibration error (L1) of top-1 confidence, ``bins`` equal-width bins.

    Bin assignment follows torchmetrics (``bucketize(right=True)`` on ``linspace(0, 1,
    bins + 1)``): bin ``i`` holds ``edge_i <= p < edge_{i+1}`` and confidence exactly 1.0 has
    a bin of its own.
    """

    def __init__(self, bins: int = ECE_BINS) -> None:
        self.bins = bins
        self.edges = np.linspace(0.0, 1.0, bins + 1)
        self.count = np.zeros(bins + 1, dtype=np.int64)
        self.confidence_sum = np.zeros(bins + 1, dtype=np.float64)
        self.correct = np.zeros(bins + 1, dtype=np.int64)

    def update(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        """Add pixels: ``confidence float [N]`` in [0, 1], ``correct bool [N]``."""
        conf = _flat(confidence, "confidence").astype(np.float64)
        ok = _flat(correct, "correct", np.shape(confidence)).astype(bool)
        idx = np.searchsorted(self.edges, conf, side="right") - 1
        idx = np.clip(idx, 0, self.bins)
        n = self.bins + 1
        self.count += np.bincount(idx, minlength=n)
        self.confidence_sum += np.bincount(idx, weights=conf, minlength=n)
        self.correct += np.bincount(idx[ok], minlength=n)

    def ece(self) -> float:
        total = self.count.sum()
        if not total:
            return math.nan
        seen = self.count > 0
        gap = np.abs(self.correct[seen] / self.count[seen]
                     - self.confidence_sum[seen] / self.count[seen])
        return float((self.count[seen] / total * gap).sum())

    def reliability(self) -> dict:
        """Reliability diagram data for the ``bins`` bins (the 1.0 bin folded into the last)."""
        count = self.count[:-1].copy()
        conf = self.confidence_sum[:-1].copy()
        correct = self.correct[:-1].copy()
        count[-1] += self.count[-1]
        conf[-1] += self.confidence_sum[-1]
        correct[-1] += self.correct[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(count > 0, correct / np.maximum(count, 1), np.nan)
            mean_conf = np.where(count > 0, conf / np.maximum(count, 1), np.nan)
        return {"edges": self.edges.tolist(), "accuracy": [_num(v) for v in acc],
                "confidence": [_num(v) for v in mean_conf], "count": count.tolist()}


class BinaryHistogram:
    """Score histograms of positives and negatives; ranking metrics without pixel lists.

    ``auroc()`` and ``average_precision()`` equal scikit-learn's ``roc_auc_score`` and
    ``average_precision_score`` on scores quantised to the bins (ties count half), and
    ``fpr_at_tpr`` equals ``fpr[argmax(tpr >= level)]`` of ``roc_curve`` on those scores.
    """

    def __init__(self, bins: int = SCORE_BINS) -> None:
        self.bins = bins
        self.positive = np.zeros(bins, dtype=np.int64)
        self.negative = np.zeros(bins, dtype=np.int64)

    def update(self, scores: np.ndarray, positive: np.ndarray) -> None:
        """Add samples: ``scores float [N]`` in [0, 1], ``positive bool [N]``."""
        idx = score_bins(_flat(scores, "scores"), self.bins)
        pos = _flat(positive, "positive", np.shape(scores)).astype(np.int64)
        counts = np.bincount(idx * 2 + pos, minlength=2 * self.bins).reshape(self.bins, 2)
        self.negative += counts[:, 0]
        self.positive += counts[:, 1]

    def add(self, other: BinaryHistogram) -> None:
        self.positive += other.positive
        self.negative += other.negative

    @property
    def totals(self) -> tuple[int, int]:
        return int(self.positive.sum()), int(self.negative.sum())

    def _descending(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cumulative (tp, fp) when thresholding at each bin's lower edge, high to low."""
        keep = (self.positive + self.negative) > 0
        order = np.nonzero(keep)[0][::-1]
        return np.cumsum(self.positive[order]), np.cumsum(self.negative[order]), order

    def auroc(self) -> float:
        p, n = self.totals
        if not p or not n:
            return math.nan
        tp, fp, order = self._descending()
        pos, neg = self.positive[order], self.negative[order]
        tp_before = tp - pos
        # Trapezoids of the ROC curve: each bin's negatives rank below the positives above the
        # bin and tie (half credit) with those inside it.
        return float(np.sum(neg * (tp_before + 0.5 * pos)) / (p * n))

    def auroc_bin_error(self) -> float:
        """Largest possible |binned AUROC - unbinned AUROC|: half the share of
        (positive, negative) pairs that fall into one bin, whose order the bins lose."""
        p, n = self.totals
        if not p or not n:
            return math.nan
        return float(0.5 * np.sum(self.positive * self.negative) / (p * n))

    def average_precision(self) -> float:
        p, _ = self.totals
        if not p:
            return math.nan
        tp, fp, order = self._descending()
        pos = self.positive[order]
        return float(np.sum(pos / p * tp / (tp + fp)))

    def roc_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fpr, tpr, thresholds) from the strictest to the loosest threshold (bin edges)."""
        p, n = self.totals
        tp, fp, order = self._descending()
        thresholds = bin_edges(self.bins)[order]
        return (np.concatenate([[0.0], fp / max(n, 1)]), np.concatenate([[0.0], tp / max(p, 1)]),
                np.concatenate([[np.inf], thresholds]))

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) from the strictest to the loosest threshold."""
        p, _ = self.totals
        tp, fp, _ = self._descending()
        return tp / max(p, 1), tp / np.maximum(tp + fp, 1)

    def fpr_at_tpr(self, level: float = 0.95) -> float:
        p, n = self.totals
        if not p or not n:
            return math.nan
        fpr, tpr, _ = self.roc_curve()
        return float(fpr[int(np.argmax(tpr >= level))])

    def summary(self) -> dict:
        p, n = self.totals
        return {"auroc": _num(self.auroc()), "auroc_bin_error": _num(self.auroc_bin_error()),
                "average_precision": _num(self.average_precision()),
                "fpr_at_95_tpr": _num(self.fpr_at_tpr(0.95)), "positives": p, "negatives": n}

    def curves(self, points: int = 400) -> dict:
        """ROC and PR curves thinned to at most ``points`` points each (for plots / JSON)."""
        fpr, tpr, _ = self.roc_curve()
        recall, precision = self.pr_curve()
        r = _thin(len(fpr), points)
        q = _thin(len(recall), points)
        return {"roc": {"fpr": fpr[r].tolist(), "tpr": tpr[r].tolist()},
                "pr": {"recall": recall[q].tolist(), "precision": precision[q].tolist()}}


class UncertaintyErrorMetrics:
    """How well one uncertainty score flags the segmentation's errors (valid pixels only).

    Keeps the error histogram (positives: wrong pixels), exact accurate/certain counts at the
    operating ``threshold`` (when one is given; otherwise ``at_threshold`` uses the
    PAvPU-optimal bin edge of ``choose_pixel_threshold``), and a per-uncertainty-bin
    confusion ``[REMOVAL_BINS, C, C]`` for the most-uncertain-pixels-removed mIoU curve.
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

    def update(self, pred: np.ndarray, gt: np.ndarray, uncertainty: np.ndarray) -> None:
        """Add one image: ``pred``, ``gt`` integer ``[H, W]``, ``uncertainty float [H, W]``."""
        gt_f = _flat(gt, "gt").astype(np.int64)
        pred_f = _flat(pred, "pred", np.shape(gt)).astype(np.int64)
        u = _flat(uncertainty, "uncertainty", np.shape(gt))
        valid = gt_f != self.ignore_index
        gt_v, pred_v, u_v = gt_f[valid], pred_f[valid], u[valid]
        wrong = gt_v != pred_v
        self.errors.update(u_v, wrong)
        if self.threshold is not None:
            uncertain = u_v > self.threshold
            self.counts += np.bincount(wrong * 2 + uncertain, minlength=4).reshape(2, 2)
        c = self.num_classes
        coarse = score_bins(u_v, REMOVAL_BINS)
        flat = (coarse * c + gt_v) * c + pred_v
        self.binned_confusion += np.bincount(flat, minlength=REMOVAL_BINS * c * c).reshape(
            REMOVAL_BINS, c, c)

    def at_threshold(self) -> dict:
        """p(accurate | certain), p(uncertain | inaccurate) and PAvPU, exact at the given
        threshold; without one, at the PAvPU-optimal bin edge (``"chosen": True``)."""
        if self.threshold is None:
            return self.sweep((choose_pixel_threshold(self.errors),))[0] | {"chosen": True}
        (n_ac, n_au), (n_ic, n_iu) = self.counts
        return _pavpu(n_ac, n_au, n_ic, n_iu) | {"threshold": self.threshold, "chosen": False}

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
            out.append(_pavpu(n_a - n_au, n_au, n_i - n_iu, n_iu) | {"threshold": float(edges[k])})
        return out

    def removal_curve(self, fractions: tuple[float, ...] = REMOVED_FRACTIONS) -> list[dict]:
        """mIoU after removing the given fractions of the most uncertain valid pixels.

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
            out.append({"removed": f, "miou": _num(mean_iou(conf)),
                        "boundary_bin_share": float(per_bin[b] / total) if total else 0.0})
        return out

    def summary(self) -> dict:
        return {"misclassification": self.errors.summary(), "at_threshold": self.at_threshold(),
                "sweep": self.sweep(), "removal_curve": self.removal_curve()}


def quantile_threshold(histogram: BinaryHistogram, quantile: float) -> float:
    """The smallest bin edge that at most ``1 - quantile`` of the histogram's pixels (positive
    and negative alike) lie above; 1.0 for an empty histogram."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    counts = np.cumsum(histogram.positive + histogram.negative)
    if not counts[-1]:
        return 1.0
    k = int(np.searchsorted(counts, quantile * counts[-1], side="left")) + 1
    return float(bin_edges(histogram.bins)[min(k, histogram.bins)])


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


def _pavpu(n_ac: int, n_au: int, n_ic: int, n_iu: int) -> dict:
    total = n_ac + n_au + n_ic + n_iu

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {"p_accurate_given_certain": ratio(n_ac, n_ac + n_ic),
            "p_uncertain_given_inaccurate": ratio(n_iu, n_ic + n_iu),
            "pavpu": ratio(n_ac + n_iu, total), "uncertain_share": ratio(n_au + n_iu, total)}


def pearson_from_comoments(m2x: float, m2y: float, cxy: float) -> float:
    """Pearson r from the co-moments sum((x - mean x)^2), sum((y - mean y)^2),
    sum((x - mean x)(y - mean y)); NaN when either map is constant."""
    denom = math.sqrt(m2x * m2y) if m2x > 0 and m2y > 0 else 0.0
    return cxy / denom if denom > 0 else math.nan


class RunningCorrelation:
    """Pearson r and RMSE between two pixel maps, merged image by image (Chan et al.'s
    pairwise update of means and co-moments, numerically stable over billions of pixels)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean_x = self.mean_y = 0.0
        self.m2x = self.m2y = self.cxy = 0.0
        self.sq_diff = 0.0

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add paired samples ``x``, ``y`` of one shape (flattened)."""
        xf = _flat(x, "x").astype(np.float64)
        yf = _flat(y, "y", np.shape(x)).astype(np.float64)
        nb = xf.size
        if not nb:
            return
        mx, my = xf.mean(), yf.mean()
        dx, dy = xf - mx, yf - my
        m2x, m2y, cxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
        n = self.n + nb
        delta_x, delta_y = mx - self.mean_x, my - self.mean_y
        w = self.n * nb / n
        self.m2x += m2x + delta_x * delta_x * w
        self.m2y += m2y + delta_y * delta_y * w
        self.cxy += cxy + delta_x * delta_y * w
        self.mean_x += delta_x * nb / n
        self.mean_y += delta_y * nb / n
        self.n = n
        d = xf - yf
        self.sq_diff += float(d @ d)

    def pearson(self) -> float:
        return pearson_from_comoments(self.m2x, self.m2y, self.cxy)

    def rmse(self) -> float:
        return math.sqrt(self.sq_diff / self.n) if self.n else math.nan


class PerClassMean:
    """Mean of a pixel map per ground-truth class; void pixels form an extra last entry."""

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.sum = np.zeros(num_classes + 1, dtype=np.float64)
        self.count = np.zeros(num_classes + 1, dtype=np.int64)

    def update(self, values: np.ndarray, gt: np.ndarray) -> None:
        g = _flat(gt, "gt").astype(np.int64)
        v = _flat(values, "values", np.shape(gt)).astype(np.float64)
        g = np.where((g == self.ignore_index) | (g < 0) | (g >= self.num_classes),
                     self.num_classes, g)
        self.sum += np.bincount(g, weights=v, minlength=self.num_classes + 1)
        self.count += np.bincount(g, minlength=self.num_classes + 1)

    def means(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum / np.maximum(self.count, 1), np.nan)


class StudentTeacherAgreement:
    """u_S vs u_T: pixel-wise Pearson r and RMSE over all pixels (void included: the student
    is trained on them too), per-class means of both and their gap (student - teacher)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        self.correlation = RunningCorrelation()
        self.student = PerClassMean(num_classes)
        self.teacher = PerClassMean(num_classes)

    def update(self, u_student: np.ndarray, u_teacher: np.ndarray, gt: np.ndarray) -> None:
        """``u_student``, ``u_teacher`` float ``[H, W]``; ``gt`` trainIds ``[H, W]``."""
        self.correlation.update(u_student, u_teacher)
        self.student.update(u_student, gt)
        self.teacher.update(u_teacher, gt)

    def summary(self, class_names: tuple[str, ...]) -> dict:
        s, t = self.student.means(), self.teacher.means()
        names = (*class_names, "void")
        gap = s - t
        return {"pearson_r": _num(self.correlation.pearson()),
                "rmse": _num(self.correlation.rmse()), "pixels": self.correlation.n,
                "per_class": {n: {"student": _num(a), "teacher": _num(b), "gap": _num(a - b)}
                              for n, a, b in zip(names, s, t, strict=True)},
                "mean_abs_class_gap": _num(np.nanmean(np.abs(gap[:-1])))
                if np.isfinite(gap[:-1]).any() else None}


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


class OodMetrics:
    """Anomaly detection by one uncertainty score.

    Pixel level (SegmentMeIfYouCan / Fishyscapes conventions): positives are anomaly-mask
    pixels, negatives are the other pixels with a valid (non-void) label; void in-domain pixels
    are left out. Frame level: the frame score is ``uncertain_fraction(u, pixel_threshold)``
    (what the node computes), a frame is positive when its mask has any anomaly pixel. Each
    frame keeps a ``FRAME_BINS`` histogram (4 kB), so frame scores can be recomputed at any
    threshold on that grid; at the given ``pixel_threshold`` they are exact.
    """

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

    def update(self, uncertainty: np.ndarray, gt: np.ndarray, anomaly: np.ndarray | None) -> None:
        """``uncertainty float [H, W]``, ``gt`` trainIds ``[H, W]``, ``anomaly bool [H, W]``
        or None (no mask: an in-domain frame without pixel-level anomaly labels)."""
        u = np.asarray(uncertainty)
        if self.pixel_threshold is not None:
            self.exact_scores.append(uncertain_fraction(u, self.pixel_threshold))
        hist = np.bincount(score_bins(u.reshape(-1), FRAME_BINS), minlength=FRAME_BINS)
        self.frame_histograms.append(hist.astype(np.uint32))
        if anomaly is None:
            self.frame_positive.append(False)
            return
        a = _flat(anomaly, "anomaly", u.shape).astype(bool)
        g = _flat(gt, "gt", u.shape)
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

    def frame_summary(self, pixel_threshold: float | None = None) -> dict:
        scores, used = self.frame_scores(pixel_threshold)
        positive = np.asarray(self.frame_positive, dtype=bool)
        out = {"frames": int(scores.size), "anomalous_frames": int(positive.sum()),
               "pixel_threshold": used, "auroc": _num(exact_auroc(scores, positive)),
               "frame_threshold": self.frame_threshold}
        if self.frame_threshold is not None:
            alarm = scores > self.frame_threshold
            neg, pos = ~positive, positive
            out["false_alarm_rate"] = float(alarm[neg].mean()) if neg.any() else None
            out["detection_rate"] = float(alarm[pos].mean()) if pos.any() else None
        return out

    def summary(self, pixel_threshold: float | None = None) -> dict:
        return {"pixel": self.pixels.summary(), "frame": self.frame_summary(pixel_threshold)}


def _thin(n: int, points: int) -> np.ndarray:
    if n <= points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))


def _num(v: float | np.floating | None) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None
