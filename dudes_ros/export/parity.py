"""Parity between two implementations of the deploy graph (eager torch vs an exported one).

Used by ``dudes export`` before it reports success and by the tests: labels must agree on at
least ``min_label_agreement`` of the pixels and the uncertainty maps may differ by at most
``max_uncertainty_diff`` anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

MIN_LABEL_AGREEMENT = 0.999
MAX_UNCERTAINTY_DIFF = 1e-3

RunFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class ParityError(RuntimeError):
    """The exported graph does not reproduce the eager model within tolerance."""


@dataclass(frozen=True)
class ParityReport:
    """Agreement of two predictors on one batch of shape ``[B, H, W, 3]``."""

    shape: tuple[int, ...]
    label_agreement: float
    max_uncertainty_diff: float

    def passed(self, min_label_agreement: float = MIN_LABEL_AGREEMENT,
               max_uncertainty_diff: float = MAX_UNCERTAINTY_DIFF) -> bool:
        return (self.label_agreement >= min_label_agreement
                and self.max_uncertainty_diff <= max_uncertainty_diff)

    def as_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}


def default_parity_shapes(input_size: Sequence[int]) -> list[tuple[int, int, int]]:
    """(B, H, W): batch 1 and 3 at the network size, and batch 2 at an odd size that is no
    multiple of 16 (exercises the in-graph resize)."""
    h, w = int(input_size[0]), int(input_size[1])
    return [(1, h, w), (3, h, w), (2, max(9, h * 3 // 4 + 3), max(9, w * 3 // 4 + 5))]


def parity_images(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``uint8 [B, H, W, 3]`` test frames: synthetic street scenes (at least 16x16), else
    smooth coloured noise (blurred so the network sees structure, not only texture)."""
    from dudes_ros.data.synthetic import render_scene

    frames = []
    for i in range(batch):
        if min(height, width) >= 16:  # the street generator's smallest size
            frames.append(render_scene(seed + i, size=(height, width)).image)
            continue
        rng = np.random.default_rng(seed + i)
        coarse = rng.integers(0, 256, size=(max(2, height // 8), max(2, width // 8), 3))
        smooth = cv2.resize(coarse.astype(np.uint8), (width, height),
                            interpolation=cv2.INTER_CUBIC)
        noise = rng.integers(-12, 13, size=smooth.shape)
        frames.append(np.clip(smooth.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return np.stack(frames)


def compare(reference: RunFn, candidate: RunFn, images: np.ndarray) -> ParityReport:
    """Run both on ``images uint8 [B, H, W, 3]`` and measure their agreement."""
    ref_labels, ref_u = reference(images)
    cand_labels, cand_u = candidate(images)
    if ref_labels.shape != cand_labels.shape or ref_u.shape != cand_u.shape:
        raise ParityError(f"output shapes differ: reference labels {ref_labels.shape}, "
                          f"uncertainty {ref_u.shape}; candidate labels {cand_labels.shape}, "
                          f"uncertainty {cand_u.shape}")
    agreement = float(np.mean(ref_labels.astype(np.int64) == cand_labels.astype(np.int64)))
    diff = float(np.max(np.abs(ref_u.astype(np.float64) - cand_u.astype(np.float64))))
    return ParityReport(tuple(images.shape), agreement, diff)


def check_parity(reference: RunFn, candidate: RunFn,
                 shapes: Sequence[tuple[int, int, int]], *,
                 min_label_agreement: float = MIN_LABEL_AGREEMENT,
                 max_uncertainty_diff: float = MAX_UNCERTAINTY_DIFF,
                 what: str = "exported graph") -> list[ParityReport]:
    """Compare on every ``(B, H, W)`` in ``shapes``; raise ``ParityError`` on any failure."""
    reports = [compare(reference, candidate, parity_images(*shape, seed=17 * i))
               for i, shape in enumerate(shapes)]
    failed = [r for r in reports if not r.passed(min_label_agreement, max_uncertainty_diff)]
    if failed:
        lines = "; ".join(f"shape {list(r.shape)}: labels agree on {r.label_agreement:.5%}, "
                          f"max |du| = {r.max_uncertainty_diff:.2e}" for r in failed)
        raise ParityError(f"{what} disagrees with the eager model (need >= "
                          f"{min_label_agreement:.3%} label agreement and max |du| <= "
                          f"{max_uncertainty_diff:g}): {lines}")
    return reports
