"""PerClassMean: means per ground-truth class with void last, merging."""

from __future__ import annotations

import numpy as np

from dudes_ros.evaluate.metrics import PerClassMean
from tests.metrics.merging import check_merge


def test_means_per_class_and_void() -> None:
    pc = PerClassMean(num_classes=3)
    pc.update(np.array([[0.1, 0.3, 0.5, 0.9, 0.7]]), np.array([[0, 0, 1, 255, 9]], np.uint8))
    # class 0: (0.1 + 0.3) / 2; class 1: 0.5; class 2: no pixel; void: ignore and id 9
    np.testing.assert_allclose(pc.compute(), [0.2, 0.5, np.nan, 0.8])


def test_merge_of_two_halves_equals_the_whole() -> None:
    rng = np.random.default_rng(10)
    updates = [(rng.random((5, 5)), rng.choice([0, 1, 2, 255], (5, 5)).astype(np.uint8))
               for _ in range(4)]
    check_merge(lambda: PerClassMean(num_classes=3), updates)
