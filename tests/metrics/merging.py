"""The merge check every metric's test file runs: updating two parts and merging them equals
updating on the whole, and for a summed state, so does loading the sum of the parts' states
(what DDP's ``all_reduce`` does)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dudes_ros.evaluate.metrics import StreamingMetric


def _assert_same(a, b, path: str = "result") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list | tuple) and not isinstance(a, str):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    elif a is None or isinstance(a, str | bool):
        assert a == b, path
    else:
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64),
                                   np.asarray(b, dtype=np.float64), rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=path)


def check_merge(make: Callable[[], StreamingMetric], updates: Sequence[tuple],
                compute: Callable[[StreamingMetric], object] = lambda m: m.compute()) -> None:
    """``make()`` builds an empty metric, ``updates`` are the argument tuples of ``update``;
    the first half goes into one metric, the rest into another."""
    whole, first, second = make(), make(), make()
    half = len(updates) // 2
    assert 0 < half < len(updates), "give at least two updates"
    for i, args in enumerate(updates):
        whole.update(*args)
        (first if i < half else second).update(*args)
    if whole.reduction == "sum":
        summed = make()
        summed.load_state(np.asarray(first.state()) + np.asarray(second.state()))
        _assert_same(compute(summed), compute(whole))
    assert first.merge(second) is first
    _assert_same(compute(first), compute(whole))
    np.testing.assert_allclose(np.asarray(first.state(), dtype=np.float64),
                               np.asarray(whole.state(), dtype=np.float64), rtol=1e-9,
                               atol=1e-9, equal_nan=True)
