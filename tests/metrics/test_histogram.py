"""BinaryHistogram: exact ranking metrics, scikit-learn's on quantised and raw scores, the
quantile threshold, merging."""

from __future__ import annotations

import numpy as np
import pytest

from dudes_ros.evaluate.metrics import (
    SCORE_BINS,
    BinaryHistogram,
    quantile_threshold,
    score_bins,
)
from tests.metrics.merging import check_merge


def test_histogram_ranking_metrics_exact_values() -> None:
    h = BinaryHistogram(bins=10)
    # scores at bin centres of the sqrt grid: 0.05**2 ... ; positives high, one tie bin
    s = (np.array([0.05, 0.15, 0.55, 0.55, 0.95, 0.95]) ** 2)
    y = np.array([0, 0, 0, 1, 1, 1], bool)
    h.update(s, y)
    # pairs: 3 pos x 3 neg = 9; pos@0.95 beat all 3 neg (6), pos@0.55 beats 2, ties 1 (2.5)
    assert h.auroc() == pytest.approx(8.5 / 9)
    assert h.auroc_bin_error() == pytest.approx(0.5 * 1 / 9)
    # AP: thresholds 0.95 -> P=1, R=2/3; 0.55 -> P=3/4, R=1 => 2/3 + 1/3 * 3/4
    assert h.average_precision() == pytest.approx(2 / 3 + 0.25)
    assert h.fpr_at_tpr(0.95) == pytest.approx(1 / 3)
    assert h.compute() == {"auroc": h.auroc(), "auroc_bin_error": h.auroc_bin_error(),
                           "average_precision": h.average_precision(),
                           "fpr_at_95_tpr": h.fpr_at_tpr(0.95), "positives": 3, "negatives": 3}


@pytest.mark.parametrize("seed", [0, 1])
def test_histogram_matches_sklearn(seed: int) -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n = 50_000
    y = rng.random(n) < 0.2
    s = np.clip(rng.beta(2, 5, n) + 0.25 * y * rng.random(n), 0, 1)
    h = BinaryHistogram()
    for part in np.array_split(np.arange(n), 3):
        h.update(s[part], y[part])
    # exact on the quantised scores (the bin index is a monotone quantisation)
    q = score_bins(s, SCORE_BINS)
    assert h.auroc() == pytest.approx(skm.roc_auc_score(y, q), abs=1e-9)
    assert h.average_precision() == pytest.approx(skm.average_precision_score(y, q), abs=1e-9)
    fpr, tpr, _ = skm.roc_curve(y, q, drop_intermediate=False)
    assert h.fpr_at_tpr(0.95) == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)
    # against the raw scores: within the stated bin error
    bound = h.auroc_bin_error()
    assert 0 <= bound < 1e-3
    assert abs(h.auroc() - skm.roc_auc_score(y, s)) <= bound + 1e-12
    assert h.average_precision() == pytest.approx(skm.average_precision_score(y, s), abs=1e-3)
    fpr, tpr, _ = skm.roc_curve(y, s)
    assert h.fpr_at_tpr(0.95) == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-3)


def test_quantile_threshold_leaves_the_stated_share_above() -> None:
    h = BinaryHistogram()
    u = np.linspace(0, 1, 100_001)
    h.update(u, u > 0.5)  # positives and negatives alike count
    t = quantile_threshold(h, 0.999)
    assert t == pytest.approx(0.999, abs=2e-3) and np.mean(u > t) <= 0.001
    assert quantile_threshold(BinaryHistogram(), 0.999) == 1.0
    with pytest.raises(ValueError, match=r"quantile must lie in \(0, 1\), got 1.0"):
        quantile_threshold(h, 1.0)


def test_merge_of_two_halves_equals_the_whole() -> None:
    rng = np.random.default_rng(6)
    updates = [(rng.random(2000) ** 2, rng.random(2000) < 0.3) for _ in range(4)]
    check_merge(BinaryHistogram, updates)
    with pytest.raises(ValueError, match=r"shapes \(20,\) and \(\d+,\)"):
        BinaryHistogram().merge(BinaryHistogram(bins=10))
