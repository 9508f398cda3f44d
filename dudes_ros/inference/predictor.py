"""The Predictor interface every backend implements (TensorRT, ONNX Runtime, PyTorch).

A predictor maps a batch of RGB frames to per-pixel labels and uncertainty at the frames' own
resolution; resizing to the network's input size happens inside the deploy graph.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Predictor(ABC):
    """``predict(images uint8 [B, H, W, 3] RGB) -> (labels uint8 [B, H, W] trainIds,
    uncertainty float32 [B, H, W] in [0, 1])``."""

    backend: str = "abstract"
    selected_because: str = ""
    """Why this backend was chosen (set by ``create_predictor``)."""
    cpu_fallback: bool = False
    """True when "auto" chose the CPU although a CUDA GPU is visible (set by
    ``create_predictor``; the node warns and reports it)."""
    max_batch: int | None = None
    """The largest batch ``predict`` accepts (None: any); callers split larger ones."""

    @abstractmethod
    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the student on a batch; raises ``ValueError`` naming expected and actual input."""

    def size_problem(self, height: int, width: int) -> str | None:
        """Why frames of ``height`` x ``width`` cannot be run (None when they can)."""
        return None

    def provenance(self) -> dict:
        """Where the model came from (file, sha256, backend details) for diagnostics."""
        return {"backend": self.backend, "selected_because": self.selected_because}

    def close(self) -> None:
        """Release device memory and sessions; the predictor is unusable afterwards."""

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_batch(images: np.ndarray) -> None:
    """Refuse anything but ``uint8 [B, H, W, 3]`` with B, H, W >= 1, naming what was given."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"expected a numpy array uint8 [B, H, W, 3], got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"expected dtype uint8 [B, H, W, 3], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[3] != 3 or min(images.shape[:3]) < 1:
        raise ValueError(f"expected shape [B, H, W, 3] with B, H, W >= 1, got {images.shape}")
