"""OodMetrics: pixel and frame anomaly scores, the frame AUROC against scikit-learn, merging."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dudes_ros.evaluate.metrics import OodMetrics, exact_auroc
from tests.metrics.merging import check_merge


def test_exact_auroc_matches_sklearn() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    s = rng.integers(0, 20, 300) / 20.0  # many ties
    y = rng.random(300) < 0.3
    assert exact_auroc(s, y) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert math.isnan(exact_auroc(s, np.zeros(300, bool)))


def test_ood_metrics_pixel_and_frame() -> None:
    ood = OodMetrics(pixel_threshold=0.5, frame_threshold=0.1)
    gt = np.zeros((4, 4), np.uint8)
    gt[0, 0] = 255  # void in-domain pixel: left out of the pixel metrics
    clean_u = np.full((4, 4), 0.2)
    clean_u[0, 0] = 0.99
    ood.update(clean_u, np.zeros((4, 4), bool), gt)
    anomaly = np.zeros((4, 4), bool)
    anomaly[2:, 2:] = True
    u = np.where(anomaly, 0.8, 0.2)
    ood.update(u, anomaly, gt)
    s = ood.compute()
    assert s["pixel"]["auroc"] == 1.0 and s["pixel"]["fpr_at_95_tpr"] == 0.0
    # the void pixel is left out in both frames
    assert s["pixel"]["positives"] == 4 and s["pixel"]["negatives"] == 15 + 11
    assert s["frame"]["auroc"] == 1.0
    assert s["frame"]["false_alarm_rate"] == 0.0 and s["frame"]["detection_rate"] == 1.0
    scores, used = ood.frame_scores()
    np.testing.assert_allclose(scores, [1 / 16, 4 / 16])
    # from the per-frame histograms at another threshold (0.81 = 0.9**2 is a grid edge)
    scores, used = ood.frame_scores(0.81)
    assert used == pytest.approx(0.81) and scores.tolist() == [1 / 16, 0.0]


@pytest.mark.parametrize("pixel_threshold", [0.3, None])
def test_merge_of_two_halves_equals_the_whole(pixel_threshold: float | None) -> None:
    rng = np.random.default_rng(13)
    updates = []
    for i in range(5):
        anomaly = None if i == 2 else rng.random((6, 8)) < 0.2 * (i % 2)
        u = rng.random((6, 8)) * 0.5 + (0.5 * anomaly if anomaly is not None else 0.0)
        updates.append((u, anomaly, rng.choice([0, 1, 255], (6, 8)).astype(np.uint8)))
    check_merge(lambda: OodMetrics(pixel_threshold, frame_threshold=0.2), updates,
                lambda m: m.compute(0.25))
    restored = OodMetrics(pixel_threshold, frame_threshold=0.2)
    whole = OodMetrics(pixel_threshold, frame_threshold=0.2)
    for args in updates:
        whole.update(*args)
    restored.load_state(whole.state())
    assert restored.compute(0.25) == whole.compute(0.25)
    if pixel_threshold is not None:
        np.testing.assert_array_equal(restored.frame_scores()[0], whole.frame_scores()[0])
    with pytest.raises(ValueError, match="pixel threshold 0.1 into ones at"):
        whole.merge(OodMetrics(0.1))
