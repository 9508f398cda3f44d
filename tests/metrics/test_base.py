"""The protocol: every metric of dudes_ros.evaluate.metrics is a StreamingMetric, and merging
refuses another kind of metric."""

from __future__ import annotations

import inspect

import pytest

from dudes_ros.evaluate import metrics
from dudes_ros.evaluate.metrics import BinaryHistogram, ConfusionMatrix, StreamingMetric


def test_every_metric_follows_the_protocol() -> None:
    classes = [obj for name in metrics.__all__
               if inspect.isclass(obj := getattr(metrics, name)) and obj is not StreamingMetric]
    assert len(classes) == 8
    for cls in classes:
        assert issubclass(cls, StreamingMetric), cls
        assert cls.reduction in ("sum", "cat"), cls


def test_merge_refuses_another_metric() -> None:
    with pytest.raises(TypeError, match="cannot merge a BinaryHistogram into a ConfusionMatrix"):
        ConfusionMatrix().merge(BinaryHistogram())
