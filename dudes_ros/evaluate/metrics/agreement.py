"""Student vs teacher uncertainty: how closely u_S follows u_T, overall and per class."""

from __future__ import annotations

import numpy as np

from dudes_ros.evaluate.metrics.base import StreamingMetric, split
from dudes_ros.evaluate.metrics.correlation import RunningCorrelation
from dudes_ros.evaluate.metrics.per_class import PerClassMean
from dudes_ros.labels import NUM_CLASSES


class StudentTeacherAgreement(StreamingMetric):
    """u_S vs u_T: pixel-wise Pearson r and RMSE over all pixels (void included: the student
    is trained on them too), per-class means of both and their gap (student - teacher).

    State ``float64``: the correlation's, then the two per-class means'. The correlation is
    centred on ``(0, 0)``, uncertainties lying in [0, 1], so states sum like the others.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        self.correlation = RunningCorrelation(shift=(0.0, 0.0))
        self.student = PerClassMean(num_classes)
        self.teacher = PerClassMean(num_classes)

    def update(self, u_student: np.ndarray, u_teacher: np.ndarray, gt: np.ndarray) -> None:
        """``u_student``, ``u_teacher`` float ``[H, W]``; ``gt`` trainIds ``[H, W]``."""
        self.correlation.update(u_student, u_teacher)
        self.student.update(u_student, gt)
        self.teacher.update(u_teacher, gt)

    def compute(self) -> dict:
        """``{"pearson_r", "rmse", "pixels", "student", "teacher", "gap" (float64 [C + 1],
        void last), "mean_abs_class_gap" (over the classes, NaN: none seen)}``."""
        correlation = self.correlation.compute()
        s, t = self.student.compute(), self.teacher.compute()
        gap = s - t
        classes = np.abs(gap[:-1])
        return {"pearson_r": correlation["pearson_r"], "rmse": correlation["rmse"],
                "pixels": correlation["n"], "student": s, "teacher": t, "gap": gap,
                "mean_abs_class_gap": float(np.nanmean(classes))
                if np.isfinite(classes).any() else float("nan")}

    def state(self) -> np.ndarray:
        return np.concatenate([np.asarray(self.correlation.state()), self.student.state(),
                               self.teacher.state()])

    def load_state(self, state: np.ndarray) -> None:
        per_class = (2 * (self.student.num_classes + 1),)
        correlation, student, teacher = split(np.asarray(state), [(7,), per_class, per_class])
        self.correlation.load_state(correlation.copy())
        self.student.load_state(student)
        self.teacher.load_state(teacher)
