"""``create_predictor``: one entry point for every backend, with the "auto" choice explained.

``model_path`` is a deploy-graph ``.onnx`` (its ``.json`` manifest beside it) or a ``.pt``
student checkpoint. Backends: "tensorrt" and "onnxruntime" run the ONNX, "torch" runs the
checkpoint, "auto" picks TensorRT when it is importable and a CUDA GPU is visible, else ONNX
Runtime for an ONNX; a checkpoint always runs on torch. The choice and its reason are logged and
kept in ``provenance()["selected_because"]``.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from pathlib import Path

from dudes_ros.inference.predictor import Predictor

LOG = logging.getLogger(__name__)
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def _cuda_visible() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def choose_backend(model_path: Path, device: str = "auto") -> tuple[str, str]:
    """``(backend, reason)`` for "auto"."""
    if model_path.suffix in CHECKPOINT_SUFFIXES:
        return "torch", f"{model_path.name} is a checkpoint; only the torch backend runs those"
    has_trt = importlib.util.find_spec("tensorrt") is not None
    # Only look for a GPU (importing torch, seconds) when TensorRT could use one.
    gpu = has_trt and device != "cpu" and _cuda_visible()
    if has_trt and gpu:
        return "tensorrt", "tensorrt is importable and a CUDA GPU is visible"
    missing = ("device is 'cpu'" if device == "cpu" else
               "tensorrt is not installed" if not has_trt else "no CUDA GPU is visible")
    if importlib.util.find_spec("onnxruntime") is not None:
        return "onnxruntime", f"TensorRT unusable ({missing}); ONNX Runtime is installed"
    raise RuntimeError(f"no backend can run {model_path}: TensorRT unusable ({missing}) and "
                       "onnxruntime is not installed; install onnxruntime or pass a .pt "
                       "student checkpoint for the torch backend")


def _backend_class(backend: str) -> type[Predictor]:
    if backend == "tensorrt":
        from dudes_ros.inference.tensorrt_backend import TensorRTPredictor
        return TensorRTPredictor
    if backend == "onnxruntime":
        from dudes_ros.inference.onnxruntime_backend import OnnxRuntimePredictor
        return OnnxRuntimePredictor
    from dudes_ros.inference.torch_backend import TorchPredictor
    return TorchPredictor


def _check_options(cls: type[Predictor], backend: str, options: dict) -> None:
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "onnx_path", "net",
                                                                  "device", "source"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for backend {backend!r}; "
                         f"valid options: {sorted(accepted)}")


def create_predictor(model_path: str | Path, backend: str = "auto", device: str = "auto",
                     **options) -> Predictor:
    """A ready ``Predictor`` for ``model_path`` (see module doc); ``options`` go to the
    backend (e.g. ``precision``/``max_batch`` for TensorRT, ``threads`` for ONNX Runtime,
    ``fp16``/``cuda_graphs`` for torch) and unknown ones are refused."""
    path = Path(model_path)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    if path.suffix not in ONNX_SUFFIXES + CHECKPOINT_SUFFIXES:
        raise ValueError(f"model file {path}: expected a .onnx deploy graph or a .pt/.pth "
                         f"student checkpoint, got suffix {path.suffix!r}")
    if backend == "auto":
        backend, reason = choose_backend(path, device)
        LOG.info("backend auto: chose %s because %s", backend, reason)
    else:
        reason = "asked for explicitly"
    is_checkpoint = path.suffix in CHECKPOINT_SUFFIXES
    if is_checkpoint != (backend == "torch"):
        raise ValueError(f"backend {backend!r} cannot run {path}: tensorrt and onnxruntime "
                         "take a .onnx, torch takes a .pt student checkpoint")
    cls = _backend_class(backend)
    _check_options(cls, backend, options)
    if backend == "torch":
        predictor = cls.from_checkpoint(path, device=device, **options)
    else:
        predictor = cls(path, device=device, **options)
    predictor.selected_because = reason
    return predictor
