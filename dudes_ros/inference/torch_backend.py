"""PyTorch backend: the deploy graph run eagerly, from a student checkpoint or from the ONNX.

From a checkpoint it runs the very ``DeployModel`` that is exported to ONNX, so its outputs match
the ONNX backends. From an ONNX (``from_onnx``) it runs the exported graph itself, converted to
torch operations by onnx2torch: that is how the bundled model, shipped only as ONNX, runs on a GPU
that has no TensorRT and no ONNX Runtime CUDA provider (fp32; the graph fixes its dtypes). On CUDA
it uses fp16 weights (checkpoints), channels-last memory and, per static input shape, a captured
CUDA graph with pinned host buffers (the shape of a camera stream never changes, so after the first
frame each call is one graph replay plus the host<->device copies). ``compile=True`` additionally
compiles the network with TorchInductor before capture (opt-in: compiling takes minutes at
start-up).
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from dudes_ros.inference.predictor import Predictor, check_batch
from dudes_ros.model.student import SegmentationNet
from dudes_ros.runtime.deploy import DeployModel

LOG = logging.getLogger(__name__)
MAX_GRAPHS = 4
"""Captured CUDA graphs kept (one per input shape, least recently used dropped)."""


def torch_device_of(device: str) -> torch.device:
    """"auto" -> cuda when available else cpu; "cpu", "cuda", "cuda:N" as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but torch {torch.__version__} sees "
                           "no CUDA GPU")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return resolved


class TorchPredictor(Predictor):
    """``predict(uint8 [B, H, W, 3]) -> (uint8 [B, H, W], float32 [B, H, W])`` with PyTorch.

    ``fp16`` and ``cuda_graphs`` default to True on CUDA and are refused on the CPU;
    ``compile`` (default False) runs ``torch.compile`` on the network.
    """

    backend = "torch"

    def __init__(self, net: SegmentationNet | None = None, device: str = "auto",
                 fp16: bool | None = None, cuda_graphs: bool | None = None,
                 compile: bool = False, source: dict | None = None,
                 graph: torch.nn.Module | None = None) -> None:
        if (net is None) == (graph is None):
            raise ValueError("give either net (a SegmentationNet) or graph (a deploy graph)")
        if graph is not None and fp16:
            raise ValueError("fp16 needs a student checkpoint; an ONNX graph runs in fp32")
        self.device = torch_device_of(device)
        cuda = self.device.type == "cuda"
        self.fp16 = (cuda and graph is None) if fp16 is None else fp16
        # Capture is on for DeployModel, whose ops are all capture-safe; an onnx2torch graph
        # may hold modules that are not (host syncs, dynamic shapes), so it stays uncaptured
        # unless asked for.
        self.cuda_graphs = (cuda and graph is None) if cuda_graphs is None else cuda_graphs
        if not cuda and (self.fp16 or self.cuda_graphs):
            raise ValueError(f"fp16 and cuda_graphs need a CUDA device; got device {self.device}"
                             f" with fp16={self.fp16}, cuda_graphs={self.cuda_graphs}")
        if cuda:
            torch.backends.cudnn.benchmark = True
        if graph is not None:
            self.deploy = graph.eval().to(self.device).requires_grad_(False)
        else:
            net = net.eval().to(self.device)
            if cuda:
                net = net.to(memory_format=torch.channels_last)
            if self.fp16:
                net = net.half()
            net.requires_grad_(False)
            self.deploy = DeployModel(net).to(self.device).eval()
        self.compiled = compile
        if compile:
            compiled = functools.partial(torch.compile, mode="max-autotune-no-cudagraphs",
                                         dynamic=False)
            if graph is not None:
                self.deploy = compiled(self.deploy)
            else:
                self.deploy.net = compiled(self.deploy.net)
        self.source = source or {}
        self._graphs: OrderedDict[tuple, tuple] = OrderedDict()
        self._host: dict[tuple, torch.Tensor] = {}
        LOG.info("torch: %s on %s (fp16=%s, cuda_graphs=%s)",
                 self.source.get("model", "in-memory student"), self.device, self.fp16,
                 self.cuda_graphs)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options) -> TorchPredictor:
        """Load a student checkpoint written by ``save_checkpoint``."""
        from dudes_ros.model.checkpoint import load_model

        net, ckpt = load_model(path)
        if ckpt.get("role") != "student":
            raise ValueError(f"checkpoint {path} holds a {ckpt.get('role')!r}; the predictor "
                             "needs a 'student' (with an uncertainty head)")
        return cls(net, source={"model": str(path), "role": "student"}, **options)

    @classmethod
    def from_onnx(cls, path: str | Path, **options) -> TorchPredictor:
        """Run an exported deploy-graph ONNX (checked against its manifest) on torch."""
        import onnx
        from onnx2torch import convert

        from dudes_ros.runtime.manifest import check_onnx_file

        manifest, digest = check_onnx_file(Path(path))
        with warnings.catch_warnings():
            # onnx2torch warns that some resize and slice modes may convert inexactly; this
            # graph's converted outputs equal ONNX Runtime's, so here the warning is noise.
            warnings.simplefilter("ignore", UserWarning)
            graph = convert(onnx.load(str(path)))
        return cls(graph=graph, source={"model": str(path), "onnx_sha256": digest,
                                        "model_name": manifest.get("model_name"),
                                        "role": "student", "runs": "onnx2torch"}, **options)

    def _run(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch`` uint8 [B, H, W, 3] on the host (pinned on CUDA) -> device outputs."""
        if not self.cuda_graphs:
            return self.deploy(batch.to(self.device, non_blocking=True))
        key = tuple(batch.shape)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(batch)
            self._graphs[key] = entry
            while len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        graph, static_in, static_out = entry
        static_in.copy_(batch, non_blocking=True)
        graph.replay()
        return static_out

    def _capture(self, batch: torch.Tensor) -> tuple:
        static_in = torch.empty_like(batch, device=self.device).copy_(batch)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: cuDNN autotuning must not happen during capture
                self.deploy(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.deploy(static_in)
        LOG.info("torch: captured a CUDA graph for input shape %s", list(batch.shape))
        return graph, static_in, static_out

    def _host_buffers(self, shape: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Page-locked (image, labels, uncertainty) host buffers for input ``shape``, kept per
        shape so uploads and downloads are fast DMA copies without per-frame allocation."""
        buffers = self._host.get(shape)
        if buffers is None:
            pinned = functools.partial(torch.empty, pin_memory=True)
            buffers = self._host[shape] = (pinned(shape, dtype=torch.uint8),
                                           pinned(shape[:3], dtype=torch.uint8),
                                           pinned(shape[:3], dtype=torch.float32))
            while len(self._host) > MAX_GRAPHS:
                self._host.pop(next(iter(self._host)))
        return buffers

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_batch(images)
        with torch.inference_mode():
            if self.device.type == "cpu":
                labels, uncertainty = self._run(torch.from_numpy(np.ascontiguousarray(images)))
                return labels.numpy(), uncertainty.numpy()
            host_in, host_labels, host_u = self._host_buffers(images.shape)
            host_in.numpy()[...] = images
            labels, uncertainty = self._run(host_in)
            host_labels.copy_(labels, non_blocking=True)
            host_u.copy_(uncertainty, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            return host_labels.numpy().copy(), host_u.numpy().copy()

    def provenance(self) -> dict:
        return {**super().provenance(), **self.source, "device": str(self.device),
                "fp16": self.fp16, "cuda_graphs": self.cuda_graphs, "compile": self.compiled}

    def close(self) -> None:
        self._graphs.clear()
        self._host.clear()
        self.deploy = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
