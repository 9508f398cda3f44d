"""ONNX Runtime backend: runs the exported deploy graph on the CPU or the CUDA provider."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dudes_ros.inference.predictor import Predictor, check_batch
from dudes_ros.runtime.cuda import DEVICES_HELP, device_problem, gpu_index_of
from dudes_ros.runtime.manifest import ModelFileError, check_onnx_file

LOG = logging.getLogger(__name__)


class OnnxRuntimePredictor(Predictor):
    """``predict(uint8 [B, H, W, 3]) -> (uint8 [B, H, W], float32 [B, H, W])`` via ONNX Runtime.

    ``device``: "cpu", "cuda" / "cuda:N" (the CUDA provider must be installed; N is its
    ``device_id``) or "auto" (CUDA GPU 0 when the provider is there, else CPU). ``threads``
    sets the intra-op thread count (0: ORT default).
    """

    backend = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str = "auto", threads: int = 0) -> None:
        import onnxruntime as ort

        self.path = Path(onnx_path)
        self.manifest, self.sha256 = check_onnx_file(self.path)
        available = ort.get_available_providers()
        if device_problem(device):
            raise ValueError(f"device must be {DEVICES_HELP}, got {device!r}")
        gpu = device not in ("auto", "cpu")
        cuda = "CUDAExecutionProvider" in available
        if gpu and not cuda:
            raise RuntimeError(f"device {device!r} asked for, but ONNX Runtime {ort.__version__} "
                               f"has only providers {available}")
        providers: list = []
        if cuda and device != "cpu":
            providers.append(("CUDAExecutionProvider", {"device_id": gpu_index_of(device)}))
        providers.append("CPUExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads would otherwise spin after each run, taking the cores that the
        # node's executor and DDS threads need between frames.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types
            raise ModelFileError(f"ONNX model {self.path} cannot be loaded by ONNX Runtime: "
                                 f"{exc}") from exc
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != ["image"] or sorted(outputs) != ["labels", "uncertainty"]:
            raise ModelFileError(f"ONNX model {self.path} is not a dudes deploy graph: inputs "
                                 f"{inputs}, outputs {outputs}; expected ['image'] -> "
                                 "['labels', 'uncertainty']")
        self.providers = self.session.get_providers()
        LOG.info("onnxruntime: %s on %s", self.path.name, self.providers[0])

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_batch(images)
        labels, uncertainty = self.session.run(["labels", "uncertainty"],
                                               {"image": np.ascontiguousarray(images)})
        return labels.astype(np.uint8, copy=False), uncertainty.astype(np.float32, copy=False)

    def provenance(self) -> dict:
        return {**super().provenance(), "model": str(self.path), "onnx_sha256": self.sha256,
                "providers": list(self.providers),
                "model_name": self.manifest.get("model_name")}

    def close(self) -> None:
        self.session = None
