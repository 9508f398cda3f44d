"""UncertaintyErrorMetrics: PAvPU at a threshold and over the sweep, the pixels-removed mIoU
curve, the PAvPU-optimal threshold, merging."""

from __future__ import annotations

import numpy as np
import pytest

from dudes_ros.evaluate.metrics import (
    BinaryHistogram,
    UncertaintyErrorMetrics,
    choose_pixel_threshold,
    mean_iou,
)
from tests.metrics.merging import check_merge


def test_uncertainty_error_metrics_exact() -> None:
    gt = np.array([[0, 0, 1, 1, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 0, 0]], np.uint8)
    u = np.array([[0.1, 0.9, 0.2, 0.3, 1.0]], np.float32)
    um = UncertaintyErrorMetrics(threshold=0.25, num_classes=2)
    um.update(pred, u, gt)
    at = um.at_threshold()
    # accurate: u=.1 (certain), .2 (certain); inaccurate: .9 (uncertain), .3 (uncertain)
    assert at["p_accurate_given_certain"] == 1.0
    assert at["p_uncertain_given_inaccurate"] == 1.0
    assert at["pavpu"] == 1.0 and at["uncertain_share"] == 0.5
    assert um.errors.auroc() == 1.0
    sweep = {round(r["threshold"], 4): r for r in um.sweep((0.0, 0.25, 1.0))}
    assert sweep[0.0]["pavpu"] == 0.5 and sweep[1.0]["pavpu"] == 0.5
    assert sweep[0.25]["pavpu"] == 1.0
    curve = {r["removed"]: r["miou"] for r in um.removal_curve((0.0, 0.5))}
    # all 4 valid pixels: class0 IoU 1/3, class1 IoU 1/3 ; after removing the 2 most
    # uncertain (both errors) everything left is right
    assert curve[0.0] == pytest.approx(1 / 3)
    assert curve[0.5] == pytest.approx(1.0)
    result = um.compute()
    assert result["at_threshold"] == at and result["misclassification"]["auroc"] == 1.0


def test_removal_curve_monotone_for_informative_uncertainty() -> None:
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 4, (64, 64)).astype(np.uint8)
    wrong = rng.random((64, 64)) < 0.3
    pred = np.where(wrong, (gt + 1) % 4, gt).astype(np.uint8)
    u = np.clip(0.5 * wrong + 0.3 * rng.random((64, 64)), 0, 1)
    um = UncertaintyErrorMetrics(threshold=0.4, num_classes=4)
    um.update(pred, u, gt)
    mious = [r["miou"] for r in um.removal_curve()]
    assert mious[0] == pytest.approx(mean_iou(np.bincount(
        gt.ravel().astype(int) * 4 + pred.ravel(), minlength=16).reshape(4, 4)), abs=1e-9)
    assert all(b >= a - 1e-9 for a, b in zip(mious, mious[1:], strict=False))
    assert mious[-1] == pytest.approx(1.0)  # 90 % removed leaves only the certain-right pixels


def test_choose_pixel_threshold_pavpu_optimum_and_fallback() -> None:
    h = BinaryHistogram()
    # right pixels at u=0.04, wrong pixels at u=0.64: any edge in between separates them
    h.update(np.array([0.04] * 90 + [0.64] * 10), np.array([False] * 90 + [True] * 10))
    t = choose_pixel_threshold(h)
    assert 0.04 < t <= 0.64
    rare = BinaryHistogram()  # never more often wrong than right: quantile fallback
    u = np.linspace(0, 1, 1001)
    rare.update(np.concatenate([u, u, u]), np.repeat([False, False, True], u.size))
    assert choose_pixel_threshold(rare, fallback_quantile=0.99) == pytest.approx(0.99, abs=2e-3)


@pytest.mark.parametrize("threshold", [0.3, None])
def test_merge_of_two_halves_equals_the_whole(threshold: float | None) -> None:
    rng = np.random.default_rng(8)
    updates = []
    for _ in range(4):
        gt = rng.integers(0, 3, (8, 8)).astype(np.uint8)
        gt[:, 0] = 255
        pred = rng.integers(0, 3, (8, 8)).astype(np.uint8)
        updates.append((pred, np.clip(0.4 * (pred != gt) + 0.5 * rng.random((8, 8)), 0, 1),
                        gt))
    check_merge(lambda: UncertaintyErrorMetrics(threshold, num_classes=3), updates)
