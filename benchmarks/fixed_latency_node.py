"""``dudes_node`` with a predictor of fixed latency, for measuring the node's own cost as on a
vehicle GPU (benchmarks/bench_node_fullres.py starts it; not for use on a robot).

    python benchmarks/fixed_latency_node.py --ros-args -p model:=... [-p ...]

Whatever predictor the node asks for is created as usual (ONNX Runtime on the CPU in the
benchmark), runs once per input shape to get real outputs, and from then on each ``predict`` copies
those outputs (a GPU backend returns fresh host arrays) and sleeps until ``DUDES_FIXED_LATENCY_MS``
(default 3.5, the student's 1024x2048 time on an H200 in BENCHMARKS.md) has passed since the call
began. Sleeping releases the GIL as waiting on a CUDA stream does, so the CPU is free for the
node's own work, as on the car. The module imports only what the running ``dudes_ros`` has, so it
also drives older versions of the node for side-by-side runs.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from dudes_ros.inference import factory
from dudes_ros.ros import node


class FixedLatency:
    """Wraps a predictor: real outputs computed once per shape, then fixed-latency copies."""

    def __init__(self, inner, latency_ms: float) -> None:
        self.inner = inner
        self.latency_s = latency_ms / 1e3
        self.cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        outputs = self.cache.get(images.shape)
        if outputs is None:
            outputs = self.cache[images.shape] = self.inner.predict(images)
            start = time.perf_counter()
        labels, uncertainty = outputs[0].copy(), outputs[1].copy()
        remaining = self.latency_s - (time.perf_counter() - start)
        if remaining > 0:
            time.sleep(remaining)
        return labels, uncertainty

    def provenance(self) -> dict:
        return {**self.inner.provenance(), "fixed_latency_ms": self.latency_s * 1e3}


def latency_ms() -> float:
    """The fixed inference latency, ``DUDES_FIXED_LATENCY_MS`` (default 3.5)."""
    return float(os.environ.get("DUDES_FIXED_LATENCY_MS", "3.5"))


def main() -> int:
    latency = latency_ms()
    real = factory.create_predictor

    def create_predictor(*args, **kwargs):
        return FixedLatency(real(*args, **kwargs), latency)

    factory.create_predictor = create_predictor
    return node.main()


if __name__ == "__main__":
    sys.exit(main())
