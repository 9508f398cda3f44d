"""Pixel-wise Pearson correlation and RMSE of two maps, on the host or the training device."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dudes_ros.evaluate.metrics.base import Array, StreamingMetric, flat


def pearson_from_comoments(m2x: float, m2y: float, cxy: float) -> float:
    """Pearson r from the co-moments sum((x - mean x)^2), sum((y - mean y)^2),
    sum((x - mean x)(y - mean y)); NaN when either map is constant."""
    denom = math.sqrt(m2x * m2y) if m2x > 0 and m2y > 0 else 0.0
    return cxy / denom if denom > 0 else math.nan


class RunningCorrelation(StreamingMetric):
    """Pearson r and RMSE between a map ``x`` (prediction) and ``y`` (target), merged batch by
    batch as float64 sums of the shifted values ``x - a``, ``y - b``.

    State ``float64 [7]``: n, sum dx, sum dy, sum dx^2, sum dy^2, sum dx dy, sum (x - y)^2.
    Shifting by ``(a, b)`` close to the means keeps the sums from cancelling (raw sums lose
    digits on maps far from 0); by default the first batch's means are taken. Sums of one
    shift add up, so processes that ``all_reduce`` the state must share it: training passes
    ``shift=(0.0, 0.0)`` (uncertainties in [0, 1]). ``merge`` re-centres another shift.
    With a torch ``device`` the sums stay there and ``update`` takes tensors.
    """

    def __init__(self, shift: tuple[float, float] | None = None, device: Any = None) -> None:
        self.shift = None if shift is None else (float(shift[0]), float(shift[1]))
        if device is None:
            self.sums: Array = np.zeros(7, dtype=np.float64)
        else:
            import torch

            self.sums = torch.zeros(7, dtype=torch.float64, device=device)

    def update(self, x: Any, y: Any) -> None:
        """Add paired samples ``x``, ``y`` of one shape (flattened; torch tensors on the
        device when counting there)."""
        if isinstance(self.sums, np.ndarray):
            xf = flat(x, "x").astype(np.float64)
            yf = flat(y, "y", np.shape(x)).astype(np.float64)
        else:
            xf, yf = x.reshape(-1).double(), y.reshape(-1).double()
        if not xf.shape[0]:
            return
        if self.shift is None:
            self.shift = (float(xf.mean()), float(yf.mean()))
        dx, dy, d = xf - self.shift[0], yf - self.shift[1], xf - yf
        parts = [dx.sum(), dy.sum(), (dx * dx).sum(), (dy * dy).sum(), (dx * dy).sum(),
                 (d * d).sum()]
        if isinstance(self.sums, np.ndarray):
            self.sums += np.array([xf.shape[0], *parts], dtype=np.float64)
        else:
            import torch

            self.sums += torch.stack([torch.full_like(parts[0], xf.shape[0]), *parts])

    def compute(self) -> dict:
        """``{"pearson_r" (NaN: a constant map), "rmse", "n"}``."""
        n, sx, sy, sxx, syy, sxy, sq_diff = (float(v) for v in self.sums.tolist())
        if not n:
            return {"pearson_r": math.nan, "rmse": math.nan, "n": 0}
        return {"pearson_r": pearson_from_comoments(sxx - sx * sx / n, syy - sy * sy / n,
                                                    sxy - sx * sy / n),
                "rmse": math.sqrt(sq_diff / n), "n": int(n)}

    def state(self) -> Array:
        return self.sums

    def load_state(self, state: Array) -> None:
        if tuple(state.shape) != (7,):
            raise ValueError(f"correlation state has shape {tuple(state.shape)}; expected (7,)")
        if self.shift is None and float(state[0]):
            raise ValueError("a correlation state of another metric needs its shift: build "
                             "this one with that shift (RunningCorrelation(shift=...))")
        self.sums = state

    def merge(self, other: RunningCorrelation) -> RunningCorrelation:
        """Add ``other``'s samples, re-centring its sums on this metric's shift (exactly:
        sum (x - a) = sum (x - a') + n (a' - a), and likewise for the squares)."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a RunningCorrelation")
        n, sx, sy, sxx, syy, sxy, sq_diff = (float(v) for v in other.sums.tolist())
        if not n:
            return self
        if self.shift is None:
            self.shift = other.shift
        ex, ey = other.shift[0] - self.shift[0], other.shift[1] - self.shift[1]
        moved = [n, sx + n * ex, sy + n * ey, sxx + 2 * ex * sx + n * ex * ex,
                 syy + 2 * ey * sy + n * ey * ey, sxy + ex * sy + ey * sx + n * ex * ey, sq_diff]
        if isinstance(self.sums, np.ndarray):
            self.sums = self.sums + np.array(moved)
        else:
            import torch

            self.sums = self.sums + torch.tensor(moved, dtype=torch.float64,
                                                 device=self.sums.device)
        return self
