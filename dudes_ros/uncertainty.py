"""Uncertainty maths: the DUDES teacher target, baselines, the distillation loss, OOD scoring.

Conventions: member probabilities are stacked on a leading member axis,
``probs [M, B, C, H, W]``. The teacher target is the **population** standard deviation over
members (correction 0, divide by M) of the probability of the ensemble's predicted class:
two members putting 1 and 0 on the predicted class give exactly 0.5, and the value is bounded
by 0.5 for any M, so ``u_T`` lies in [0, 0.5] while the student's sigmoid covers [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

STD_CORRECTION = 0
"""Bessel correction used for u_T everywhere (0: population std over members)."""

_EPS = 1e-12


@dataclass(frozen=True)
class EnsembleOutput:
    """Ensemble statistics per pixel; every field is ``[B, H, W]`` except ``mean_probs``."""

    mean_probs: torch.Tensor  # [B, C, H, W]
    prediction: torch.Tensor  # int64 [B, H, W]
    target_std: torch.Tensor  # u_T, float [B, H, W] in [0, 0.5]
    entropy: torch.Tensor  # predictive entropy of the mean, nats
    mutual_information: torch.Tensor  # entropy of mean - mean of member entropies, nats
    max_prob: torch.Tensor  # max of the mean probability


def entropy(probs: torch.Tensor, dim: int) -> torch.Tensor:
    """Shannon entropy in nats along ``dim``."""
    return -(probs * torch.log(probs.clamp_min(_EPS))).sum(dim=dim)


def ensemble_statistics(member_probs: torch.Tensor) -> EnsembleOutput:
    """Teacher statistics from member softmaxes ``[M, B, C, H, W]``."""
    if member_probs.dim() != 5:
        raise ValueError(f"member_probs must be [M, B, C, H, W], got {tuple(member_probs.shape)}")
    mean = member_probs.mean(dim=0)
    max_prob, pred = mean.max(dim=1)
    index = pred.unsqueeze(0).unsqueeze(2).expand(member_probs.shape[0], -1, 1, -1, -1)
    p_pred = member_probs.gather(2, index).squeeze(2)  # [M, B, H, W]
    std = p_pred.std(dim=0, correction=STD_CORRECTION)
    h_mean = entropy(mean, dim=1)
    mi = (h_mean - entropy(member_probs, dim=2).mean(dim=0)).clamp_min(0.0)
    return EnsembleOutput(mean, pred, std, h_mean, mi, max_prob)


def teacher_target(member_logits: torch.Tensor) -> torch.Tensor:
    """u_T ``[B, H, W]`` from member logits ``[M, B, C, H, W]``."""
    return ensemble_statistics(member_logits.softmax(dim=2)).target_std


def rmsle(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Root mean squared logarithmic error over all elements (both inputs >= 0)."""
    mse = torch.mean((torch.log1p(prediction) - torch.log1p(target)) ** 2)
    # sqrt has an infinite derivative at 0: take it only where the error is non-zero, so equal
    # maps give exactly 0 with a finite (zero) gradient instead of NaN.
    return torch.where(mse > 0, torch.sqrt(mse.clamp_min(1e-20)), mse)


def max_softmax_uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """1 - max softmax probability ``[B, H, W]`` from logits ``[B, C, H, W]`` (baseline)."""
    return 1.0 - logits.softmax(dim=1).amax(dim=1)


def normalized_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Softmax entropy divided by log(C), in [0, 1]; ``[B, H, W]`` from ``[B, C, H, W]``."""
    return entropy(logits.softmax(dim=1), dim=1) / math.log(logits.shape[1])


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

    def reset(self) -> None:
        self.active = False
        self._run = 0
