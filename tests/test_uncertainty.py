"""The DUDES uncertainty maths against exact known values (DESIGN §2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dudes_ros.ood import Hysteresis, uncertain_fraction
from dudes_ros.uncertainty import (
    STD_CORRECTION,
    ensemble_statistics,
    max_softmax_uncertainty,
    normalized_entropy,
    rmsle,
    teacher_target,
)


def one_pixel(member_probs: list[list[float]]) -> torch.Tensor:
    """Member probabilities ``[M][C]`` of one pixel -> ``[M, 1, C, 1, 1]``."""
    return torch.tensor(member_probs, dtype=torch.float64)[:, None, :, None, None]


def test_agreeing_members_give_zero_target() -> None:
    probs = one_pixel([[0.7, 0.2, 0.1]] * 4)
    out = ensemble_statistics(probs)
    assert out.target_std.item() == 0.0
    assert out.prediction.item() == 0
    assert out.mutual_information.item() == pytest.approx(0.0, abs=1e-12)
    expected_h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert out.entropy.item() == pytest.approx(expected_h, rel=1e-12)


def test_two_members_one_and_zero_give_one_over_sqrt_two() -> None:
    # the reference's torch.std: Bessel's correction (divide by M - 1)
    assert STD_CORRECTION == 1
    out = ensemble_statistics(one_pixel([[1.0, 0.0], [0.0, 1.0]]))
    # Mean is (0.5, 0.5); argmax picks class 0; its member probabilities are 1 and 0.
    assert out.prediction.item() == 0
    assert out.target_std.item() == pytest.approx(1 / math.sqrt(2), rel=1e-15)
    assert out.entropy.item() == pytest.approx(math.log(2), rel=1e-12)
    # Each member is certain (entropy 0), so MI equals the entropy of the mean: log 2.
    assert out.mutual_information.item() == pytest.approx(math.log(2), rel=1e-12)
    assert out.max_prob.item() == 0.5
    # correction 0 (the population std) is the recipe key's other choice: exactly 0.5
    assert ensemble_statistics(one_pixel([[1.0, 0.0], [0.0, 1.0]]), 0).target_std.item() == 0.5


def test_target_is_sample_std_of_predicted_class() -> None:
    members = [[0.6, 0.4], [0.9, 0.1], [0.3, 0.7]]
    out = ensemble_statistics(one_pixel(members))
    p = np.array([m[0] for m in members])  # class 0 has the highest mean (0.6)
    assert out.prediction.item() == 0
    assert out.target_std.item() == pytest.approx(float(p.std(ddof=1)), rel=1e-12)
    assert out.target_std.item() == pytest.approx(math.sqrt(0.09), rel=1e-12)  # by hand
    population = ensemble_statistics(one_pixel(members), correction=0).target_std.item()
    assert population == pytest.approx(float(p.std(ddof=0)), rel=1e-12)
    assert population == pytest.approx(out.target_std.item() * math.sqrt(2 / 3), rel=1e-12)


def test_target_bound_and_logits_path() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 2, 19, 4, 6, dtype=torch.float64) * 4
    u = teacher_target(logits)
    assert u.shape == (2, 4, 6)
    # the largest sample std of 5 values in [0, 1] is 0.5 * sqrt(5 / 4)
    assert float(u.min()) >= 0.0 and float(u.max()) <= 0.5 * math.sqrt(5 / 4)
    assert torch.equal(u, ensemble_statistics(logits.softmax(dim=2)).target_std)
    assert torch.equal(teacher_target(logits, 0),
                       ensemble_statistics(logits.softmax(dim=2), 0).target_std)


def test_statistics_rejects_wrong_rank_one_member_and_bad_correction() -> None:
    with pytest.raises(ValueError, match=r"\[M, B, C, H, W\]"):
        ensemble_statistics(torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="needs at least 2, got 1"):
        ensemble_statistics(one_pixel([[1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"one of \(0, 1\), got 2"):
        ensemble_statistics(one_pixel([[1.0, 0.0], [0.0, 1.0]]), 2)


def test_rmsle_equal_maps_zero_with_finite_zero_gradient() -> None:
    target = torch.rand(2, 8, 8)
    pred = target.clone().requires_grad_(True)
    loss = rmsle(pred, target)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert torch.count_nonzero(pred.grad) == 0


def test_rmsle_known_value() -> None:
    pred = torch.tensor([1.0, 0.0])
    target = torch.tensor([0.0, 0.0])
    expected = math.sqrt((math.log(2.0) ** 2) / 2)
    assert rmsle(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_softmax_baselines_known_values() -> None:
    uniform = torch.zeros(1, 4, 1, 1)
    assert normalized_entropy(uniform).item() == pytest.approx(1.0, rel=1e-6)
    assert max_softmax_uncertainty(uniform).item() == pytest.approx(0.75, rel=1e-6)
    peaked = torch.tensor([100.0, 0.0, 0.0, 0.0]).view(1, 4, 1, 1)
    assert normalized_entropy(peaked).item() == pytest.approx(0.0, abs=1e-6)
    assert max_softmax_uncertainty(peaked).item() == pytest.approx(0.0, abs=1e-6)


def test_uncertain_fraction_and_hysteresis() -> None:
    u = np.zeros((4, 5), np.float32)
    u[0, :3] = 0.9
    assert uncertain_fraction(u, 0.5) == 3 / 20
    alarm = Hysteresis(threshold=0.1, raise_after=2, clear_after=3)
    states = [alarm.update(s) for s in (0.2, 0.0, 0.2, 0.2, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0)]
    assert states == [False, False, False, True, True, True, True, True, True, False]
