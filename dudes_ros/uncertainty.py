"""Uncertainty maths (torch): the DUDES teacher target, baselines, the distillation loss.

Conventions: member probabilities are stacked on a leading member axis,
``probs [M, B, C, H, W]``. The teacher target is the standard deviation over members of the
probability of the ensemble's predicted class, with Bessel's correction (divide by M - 1) as
the reference implementation's ``torch.std``: two members putting 1 and 0 on the predicted
class give exactly 1/sqrt(2). That is the largest value for any M (for M = 5 it is 0.548: two
members at 1, three at 0), so ``u_T`` lies inside the student's sigmoid range [0, 1].
Correction 0 (the population std, divide by M) scales every u_T by sqrt((M - 1) / M); recipes
can ask for it (``student.target_std_correction``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

STD_CORRECTION = 1
"""Default correction of the std over members in u_T: 1 (Bessel's, divide by M - 1), as
``torch.std`` in the reference; 0 divides by M."""
STD_CORRECTIONS = (0, 1)

_EPS = 1e-12


@dataclass(frozen=True)
class EnsembleOutput:
    """Ensemble statistics per pixel; every field is ``[B, H, W]`` except ``mean_probs``."""

    mean_probs: torch.Tensor  # [B, C, H, W]
    prediction: torch.Tensor  # int64 [B, H, W]
    target_std: torch.Tensor  # u_T, float [B, H, W] in [0, 1/sqrt(2)]
    entropy: torch.Tensor  # predictive entropy of the mean, nats
    mutual_information: torch.Tensor  # entropy of mean - mean of member entropies, nats
    max_prob: torch.Tensor  # max of the mean probability


def entropy(probs: torch.Tensor, dim: int) -> torch.Tensor:
    """Shannon entropy in nats along ``dim``."""
    return -(probs * torch.log(probs.clamp_min(_EPS))).sum(dim=dim)


def ensemble_statistics(member_probs: torch.Tensor,
                        correction: int = STD_CORRECTION) -> EnsembleOutput:
    """Teacher statistics from member softmaxes ``[M, B, C, H, W]``; ``correction`` of the
    std over members in u_T (1: Bessel's, 0: population)."""
    if member_probs.dim() != 5:
        raise ValueError(f"member_probs must be [M, B, C, H, W], got {tuple(member_probs.shape)}")
    if correction not in STD_CORRECTIONS:
        raise ValueError(f"std correction must be one of {STD_CORRECTIONS}, got {correction!r}")
    if member_probs.shape[0] < 2:
        raise ValueError(f"u_T is a std over members and needs at least 2, got "
                         f"{member_probs.shape[0]}")
    mean = member_probs.mean(dim=0)
    max_prob, pred = mean.max(dim=1)
    index = pred.unsqueeze(0).unsqueeze(2).expand(member_probs.shape[0], -1, 1, -1, -1)
    p_pred = member_probs.gather(2, index).squeeze(2)  # [M, B, H, W]
    std = p_pred.std(dim=0, correction=correction)
    h_mean = entropy(mean, dim=1)
    mi = (h_mean - entropy(member_probs, dim=2).mean(dim=0)).clamp_min(0.0)
    return EnsembleOutput(mean, pred, std, h_mean, mi, max_prob)


def teacher_target(member_logits: torch.Tensor, correction: int = STD_CORRECTION) -> torch.Tensor:
    """u_T ``[B, H, W]`` from member logits ``[M, B, C, H, W]``."""
    return ensemble_statistics(member_logits.softmax(dim=2), correction).target_std


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
