"""RunningCorrelation: numpy's r and RMSE, on the host and on a torch device, merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dudes_ros.evaluate.metrics import RunningCorrelation
from tests.metrics.merging import check_merge


def test_running_correlation_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    x = rng.random(30_000) * 0.5 + 1e3  # large offset: the naive sum formula loses digits
    y = 0.8 * x + 0.1 * rng.random(30_000)
    rc = RunningCorrelation()
    for part in np.array_split(np.arange(x.size), 7):
        rc.update(x[part], y[part])
    result = rc.compute()
    assert result["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((x - y) ** 2)), abs=1e-9)
    assert result["n"] == x.size


def test_device_sums_give_the_host_numbers() -> None:
    """Summing on a torch device (training's validation, for DDP) reports the evaluation's r."""
    rng = np.random.default_rng(11)
    x, y = rng.random((2, 50)), rng.random((2, 50))
    device = RunningCorrelation(shift=(0.0, 0.0), device=torch.device("cpu"))
    host = RunningCorrelation()
    for a, b in zip(x, y, strict=True):
        device.update(torch.from_numpy(a), torch.from_numpy(b))
        host.update(a, b)
    assert isinstance(device.state(), torch.Tensor) and device.state().shape == (7,)
    r = device.compute()["pearson_r"]
    assert r == pytest.approx(host.compute()["pearson_r"], abs=1e-12)
    assert r == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1], abs=1e-12)


def test_merge_of_two_halves_equals_the_whole() -> None:
    rng = np.random.default_rng(9)
    updates = [(x, 0.7 * x + 0.2 * rng.random(400)) for x in rng.random((4, 400)) + 5.0]
    check_merge(lambda: RunningCorrelation(shift=(5.0, 4.0)), updates)
    tensors = [tuple(torch.from_numpy(a) for a in args) for args in updates]
    check_merge(lambda: RunningCorrelation(shift=(5.0, 4.0), device=torch.device("cpu")),
                tensors)
    # parts centred on their own first batch: merge re-centres the other part's sums
    whole, first, second = RunningCorrelation(), RunningCorrelation(), RunningCorrelation()
    for i, args in enumerate(updates):
        whole.update(*args)
        (first if i < 2 else second).update(*args)
    assert first.shift != second.shift
    merged = first.merge(second).compute()
    for key, value in whole.compute().items():
        assert merged[key] == pytest.approx(value, rel=1e-12), key
    with pytest.raises(ValueError, match="needs its shift"):
        RunningCorrelation().load_state(second.state())
