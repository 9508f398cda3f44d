"""The protocol every streaming metric follows, and the input checks they share.

A metric is fed image by image with ``update(prediction..., target...)``: the model's outputs
first, then the reference they are scored against; where ground-truth class ids are needed
(void pixels left out, per-class means) they come last. ``compute()`` returns plain numbers
and arrays (NaN where a value is undefined); turning them into JSON and Markdown is the
report's job (``dudes_ros.evaluate.report_format``).

The whole state of a metric is one array, ``state()``, that ``load_state`` takes back. For a
``reduction = "sum"`` metric the state of two merged parts is the sum of their states, so
DDP combines the processes' metrics with one ``all_reduce`` of ``state()`` (summing) followed
by ``load_state``; ``merge(other)`` is the same sum in one process (two shards, two workers).
A ``"cat"`` metric keeps a row per frame: parts are merged by concatenating their rows (an
``all_gather``), never summed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

import numpy as np

Array = Any
"""A state array: ``numpy.ndarray``, or a ``torch.Tensor`` for metrics counted on a device."""
MetricT = TypeVar("MetricT", bound="StreamingMetric")


class StreamingMetric(ABC):
    """Bounded state updated by ``update``, read by ``compute``, combined by ``merge``."""

    reduction: ClassVar[str] = "sum"
    """``"sum"``: merged state = sum of the states (``all_reduce``); ``"cat"``: rows joined."""

    @abstractmethod
    def update(self, *args: Any) -> None:
        """Add samples: model outputs first, then their reference, ground-truth ids last."""

    @abstractmethod
    def compute(self) -> Any:
        """The metric's values as plain numbers and numpy arrays."""

    @abstractmethod
    def state(self) -> Array:
        """The whole state as one array (the live one where the metric keeps a single array,
        so an in-place ``all_reduce`` of it updates the metric)."""

    @abstractmethod
    def load_state(self, state: Array) -> None:
        """Replace the state by ``state`` (shaped as ``state()`` returns it)."""

    def merge(self: MetricT, other: MetricT) -> MetricT:
        """Add ``other``'s samples to this metric (in place); returns ``self``."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a "
                            f"{type(self).__name__}")
        mine, theirs = self.state(), other.state()
        if self.reduction == "cat":
            self.load_state(np.concatenate([np.asarray(mine), np.asarray(theirs)]))
            return self
        if tuple(mine.shape) != tuple(theirs.shape):
            raise ValueError(f"cannot merge {type(self).__name__} states of shapes "
                             f"{tuple(theirs.shape)} and {tuple(mine.shape)}; expected metrics "
                             "built with the same settings (classes, bins)")
        self.load_state(mine + theirs)
        return self


def flat(a: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``a`` as a flat numpy array, refused unless it has ``shape`` (when given)."""
    a = np.asarray(a)
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {shape} like the ground truth, got {a.shape}")
    return a.reshape(-1)


def split(state: Array, shapes: list[tuple[int, ...]]) -> list[Array]:
    """``state`` cut into consecutive parts of the given shapes (``load_state``'s inverse of
    concatenating flattened parts)."""
    sizes = [int(np.prod(s)) for s in shapes]
    if int(state.shape[0]) != sum(sizes) or len(state.shape) != 1:
        raise ValueError(f"state has shape {tuple(state.shape)}; expected ({sum(sizes)},)")
    out, start = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        out.append(state[start:start + size].reshape(shape))
        start += size
    return out
