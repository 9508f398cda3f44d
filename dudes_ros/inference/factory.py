"""``create_predictor``: one entry point for every backend, with the "auto" choice explained.

``model_path`` is a deploy-graph ``.onnx`` (its ``.json`` manifest beside it) or a ``.pt``
student checkpoint. "tensorrt" and "onnxruntime" run the ONNX; "torch" runs a checkpoint, or
the ONNX itself converted to torch (onnx2torch), so the bundled model also runs on a GPU
without TensorRT. "auto" (``choose_backend``), on a machine with a CUDA GPU, takes the first
GPU path that can run the model: TensorRT (with cuda-python for its memory), ONNX Runtime's
CUDA provider, torch on CUDA; the CPU (ONNX Runtime) only when none can, and then the reason
names what each GPU path lacked and ``cpu_fallback`` is set so the node can warn. A GPU count
that fails (cuda-python against too old a driver) is "unknown", and the CPU chosen then, or on
any machine with the NVIDIA driver's device files, is a fallback too. A checkpoint
always runs on torch. The choice and its reason are logged and kept in
``provenance()["selected_because"]``.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dudes_ros.inference.predictor import Predictor
from dudes_ros.runtime import cuda
from dudes_ros.runtime.cuda import DEVICES_HELP, DRIVER_DEVICE_FILES, device_problem

if TYPE_CHECKING:  # only annotated here; the TensorRT pieces load when TensorRT runs
    from dudes_ros.runtime.tensorrt_engine import EngineSettings

LOG = logging.getLogger(__name__)
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


class Probe:
    """What "auto" looks at, each probed once and only when the decision needs it (importing
    torch takes seconds, so it is asked last). Tests substitute fixed answers."""

    @functools.cached_property
    def driver_present(self) -> bool:
        """Whether the NVIDIA driver's device files exist (a GPU machine, working or not)."""
        return cuda.driver_present()

    @functools.cached_property
    def gpus(self) -> tuple[int | None, str]:
        """(number of CUDA GPUs or None = unknown, what counted them or why they could not be
        counted). cuda-python counts first; when it fails (an old driver for the installed
        cuda-bindings) the state is unknown, not 0, and torch is asked next. Without the
        driver's device files the count is 0 and torch is never imported here."""
        failed = ""
        no_driver = f"no NVIDIA driver device ({', '.join(DRIVER_DEVICE_FILES)})"
        if cuda.bindings_available():
            counted = cuda.gpu_count()
            if counted.count is not None:
                return counted.count, "cuda-python"
            if not self.driver_present:  # cuda-python fails as it must without a driver
                return 0, no_driver
            failed = f"cuda-python could not count the GPUs ({counted.error}); "
        if not self.driver_present:
            return 0, no_driver
        if _importable("torch"):
            import torch

            return torch.cuda.device_count(), f"{failed}torch"
        return None, (f"{failed}the NVIDIA driver's device files exist but nothing could "
                      "count the GPUs (neither a working cuda-python nor torch is installed)")

    @functools.cached_property
    def tensorrt(self) -> bool:
        return _importable("tensorrt")

    @functools.cached_property
    def cuda_python(self) -> bool:
        return cuda.bindings_available()

    @functools.cached_property
    def ort_providers(self) -> tuple[str, ...]:
        if not _importable("onnxruntime"):
            return ()
        import onnxruntime

        return tuple(onnxruntime.get_available_providers())

    @functools.cached_property
    def torch_cuda(self) -> bool:
        if not _importable("torch"):
            return False
        import torch

        return torch.cuda.is_available()

    @functools.cached_property
    def onnx2torch(self) -> bool:
        return _importable("torch") and _importable("onnx2torch")


@dataclass(frozen=True)
class Choice:
    backend: str
    device: str
    reason: str
    cpu_fallback: bool = False


def _cpu_choice(path: Path, probe: Probe, why: str, fallback: bool) -> Choice:
    if probe.ort_providers:
        return Choice("onnxruntime", "cpu", f"{why}; ONNX Runtime on the CPU", fallback)
    if probe.onnx2torch:
        return Choice("torch", "cpu", f"{why}; onnxruntime is not installed, so torch runs "
                      "the ONNX on the CPU", fallback)
    raise RuntimeError(f"no backend can run {path}: {why}, and neither onnxruntime nor "
                       "torch with onnx2torch is installed")


def choose_backend(model_path: Path, device: str = "auto", probe: Probe | None = None) -> Choice:
    """The backend and device "auto" uses for ``model_path`` (see the module doc)."""
    probe = probe or Probe()
    if Path(model_path).suffix in CHECKPOINT_SUFFIXES:
        return Choice("torch", device, f"{Path(model_path).name} is a checkpoint; only the "
                      "torch backend runs those")
    if device == "cpu":
        return _cpu_choice(model_path, probe, "device is 'cpu'", False)
    count, counted_by = probe.gpus
    if count is None:
        if device != "auto":
            raise RuntimeError(f"device {device!r} asked for, but the GPU state is unknown: "
                               f"{counted_by}")
        return _cpu_choice(model_path, probe, f"the GPU state is unknown: {counted_by}", True)
    if count == 0:
        if device != "auto":
            raise RuntimeError(f"device {device!r} asked for, but no CUDA GPU is visible "
                               f"(counted by {counted_by})")
        # On a machine with the NVIDIA driver, running on the CPU is a fault to warn about.
        return _cpu_choice(model_path, probe, f"no CUDA GPU is visible (counted by "
                           f"{counted_by})", probe.driver_present)
    index = cuda.gpu_index_of(device)
    if index >= count:
        raise RuntimeError(f"device {device!r} asked for, but {count} CUDA GPU(s) are visible")
    gpu = f"cuda:{index}"
    lacking = []
    if probe.tensorrt and probe.cuda_python and counted_by == "cuda-python":
        return Choice("tensorrt", gpu, f"tensorrt and cuda-python are importable and {count} "
                      "CUDA GPU(s) are visible")
    lacking.append("tensorrt is not installed" if not probe.tensorrt else
                   "tensorrt is installed but cuda-python (its device memory) is not"
                   if not probe.cuda_python else
                   f"tensorrt is installed but cuda-python does not work ({counted_by})")
    if "CUDAExecutionProvider" in probe.ort_providers:
        return Choice("onnxruntime", gpu, f"{'; '.join(lacking)}; ONNX Runtime has the CUDA "
                      "provider")
    lacking.append(f"ONNX Runtime has no CUDA provider ({list(probe.ort_providers)})"
                   if probe.ort_providers else "onnxruntime is not installed")
    if probe.torch_cuda and probe.onnx2torch:
        return Choice("torch", gpu, f"{'; '.join(lacking)}; torch with CUDA runs the ONNX "
                      "(onnx2torch)")
    lacking.append("torch with CUDA and onnx2torch are not both installed")
    return _cpu_choice(model_path, probe, f"a CUDA GPU is visible but no GPU path can run the "
                       f"model ({'; '.join(lacking)})", True)


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
    accepted = set(inspect.signature(cls.__init__).parameters) - {
        "self", "onnx_path", "net", "device", "source", "engine", "graph"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for backend {backend!r}; "
                         f"valid options: {sorted(accepted)}")


def create_predictor(model_path: str | Path, backend: str = "auto", device: str = "auto",
                     engine: EngineSettings | None = None, **options) -> Predictor:
    """A ready ``Predictor`` for ``model_path`` (see module doc). ``engine`` configures the
    TensorRT engine and is used only when TensorRT runs; ``options`` go to the backend
    (``threads`` for ONNX Runtime, ``fp16``/``cuda_graphs``/``compile`` for torch) and unknown
    ones are refused."""
    path = Path(model_path)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device_problem(device):
        raise ValueError(f"device must be {DEVICES_HELP}, got {device!r}")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    if path.suffix not in ONNX_SUFFIXES + CHECKPOINT_SUFFIXES:
        raise ValueError(f"model file {path}: expected a .onnx deploy graph or a .pt/.pth "
                         f"student checkpoint, got suffix {path.suffix!r}")
    fallback = False
    if backend == "auto":
        choice = choose_backend(path, device)
        backend, device, reason, fallback = (choice.backend, choice.device, choice.reason,
                                             choice.cpu_fallback)
        (LOG.warning if fallback else LOG.info)("backend auto: chose %s on %s because %s",
                                                backend, device, reason)
    else:
        reason = "asked for explicitly"
    is_checkpoint = path.suffix in CHECKPOINT_SUFFIXES
    if is_checkpoint and backend != "torch":
        raise ValueError(f"backend {backend!r} cannot run {path}: tensorrt and onnxruntime "
                         "take a .onnx; a .pt student checkpoint runs on torch")
    cls = _backend_class(backend)
    _check_options(cls, backend, options)
    if backend == "tensorrt":
        predictor = cls(path, device=device, engine=engine, **options)
    elif backend == "torch":
        load = cls.from_checkpoint if is_checkpoint else cls.from_onnx
        predictor = load(path, device=device, **options)
    else:
        predictor = cls(path, device=device, **options)
    predictor.selected_because = reason
    predictor.cpu_fallback = fallback
    return predictor
