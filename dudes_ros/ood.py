"""Frame-level OOD scoring and the debounced alarm (numpy only, so the node needs no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Debounce defaults (frames), used by the node's parameters, the demo and bag processing.
# Rising after 2 frames rather than 3 raises the alarm a frame sooner for a few more alarm
# frames on anomaly-free drives: the trade-off is measured in BENCHMARKS.md, OOD alarm.
DEFAULT_RAISE_AFTER = 2
DEFAULT_CLEAR_AFTER = 5


def uncertain_fraction(uncertainty: np.ndarray, pixel_threshold: float) -> float:
    """Frame-level OOD score: the fraction of pixels of ``float [H, W]`` over the threshold.

    A large uncertain blob (an unknown object) raises it; the thin uncertain lines along class
    boundaries that every in-domain frame has barely do.
    """
    return float(np.count_nonzero(uncertainty > pixel_threshold)) / max(uncertainty.size, 1)


class Hysteresis:
    """Debounced alarm: raise after ``raise_after`` consecutive frames over the threshold,
    clear after ``clear_after`` consecutive frames at or under it."""

    def __init__(self, threshold: float, raise_after: int, clear_after: int) -> None:
        if raise_after < 1 or clear_after < 1:
            raise ValueError(
                f"raise_after and clear_after must be >= 1, got {raise_after}, {clear_after}")
        self.threshold = threshold
        self.raise_after = raise_after
        self.clear_after = clear_after
        self.active = False
        self._run = 0

    def update(self, score: float) -> bool:
        """Feed one frame's score; returns the alarm state after it."""
        over = score > self.threshold
        if over != self.active:
            self._run += 1
            if self._run >= (self.raise_after if over else self.clear_after):
                self.active = over
                self._run = 0
        else:
            self._run = 0
        return self.active

    def restart_count(self) -> None:
        """Forget the current run of frames (new thresholds); the alarm state stays."""
        self._run = 0

    def reset(self) -> None:
        self.active = False
        self._run = 0


def runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` index intervals where ``flags`` is True."""
    intervals, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            intervals.append((start, i))
            start = None
    return intervals
