"""StudentTeacherAgreement: per-class gaps, RMSE, merging."""

from __future__ import annotations

import numpy as np
import pytest

from dudes_ros.evaluate import report_format
from dudes_ros.evaluate.metrics import StudentTeacherAgreement
from tests.metrics.merging import check_merge


def test_student_teacher_agreement_per_class() -> None:
    gt = np.array([[0, 0, 1, 255]], np.uint8)
    us = np.array([[0.1, 0.3, 0.5, 0.9]])
    ut = np.array([[0.1, 0.1, 0.4, 0.5]])
    ag = StudentTeacherAgreement(num_classes=2)
    ag.update(us, ut, gt)
    s = report_format.agreement(ag.compute(), ("a", "b"))
    assert s["per_class"]["a"]["gap"] == pytest.approx(0.1)
    assert s["per_class"]["b"]["gap"] == pytest.approx(0.1)
    assert s["per_class"]["void"]["student"] == pytest.approx(0.9)
    assert s["mean_abs_class_gap"] == pytest.approx(0.1)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((us - ut) ** 2)))


def test_merge_of_two_halves_equals_the_whole() -> None:
    rng = np.random.default_rng(12)
    updates = []
    for _ in range(4):
        us = rng.random((6, 6))
        updates.append((us, np.clip(us + 0.1 * rng.standard_normal((6, 6)), 0, 1),
                        rng.choice([0, 1, 255], (6, 6)).astype(np.uint8)))
    check_merge(lambda: StudentTeacherAgreement(num_classes=2), updates)
