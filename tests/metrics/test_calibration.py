"""CalibrationError: hand-computed ECE, torchmetrics' ECE, merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dudes_ros.evaluate.metrics import CalibrationError
from tests.metrics.merging import check_merge


def test_ece_hand_computed_and_torchmetrics() -> None:
    ece = CalibrationError(bins=15)
    # two bins: conf 0.95 (all correct: gap 0.05) and conf 0.55 (half correct: gap 0.05),
    # one sample at exactly 1.0 and wrong (gap 1.0): ECE = (4*.05 + 4*.05 + 1*1) / 9
    ece.update(np.array([0.95] * 4 + [0.55] * 4 + [1.0]),
               np.array([1, 1, 1, 1, 1, 0, 1, 0, 0], bool))
    result = ece.compute()
    assert result["ece"] == pytest.approx((0.2 + 0.2 + 1.0) / 9, abs=1e-12)
    assert result["count"][14] == 5 and result["count"][8] == 4 and sum(result["count"]) == 9

    tm = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(5, 0.3), size=20_000)
    target = np.array([rng.choice(5, p=p) if rng.random() < 0.7 else rng.integers(5)
                       for p in probs])
    ref = tm.multiclass_calibration_error(torch.from_numpy(probs), torch.from_numpy(target),
                                          num_classes=5, n_bins=15, norm="l1")
    ece = CalibrationError(bins=15)
    half = 10_000  # streamed in two parts
    for sl in (slice(0, half), slice(half, None)):
        ece.update(probs[sl].max(1), probs[sl].argmax(1) == target[sl])
    assert ece.compute()["ece"] == pytest.approx(float(ref), abs=1e-6)


def test_merge_of_two_halves_equals_the_whole() -> None:
    rng = np.random.default_rng(4)
    updates = [(np.append(rng.random(500), 1.0), rng.random(501) < 0.6) for _ in range(3)]
    check_merge(CalibrationError, updates)
