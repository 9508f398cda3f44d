"""ONNX Runtime backend: runs the exported deploy graph on the CPU or the CUDA provider."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dudes_ros.export.manifest import ManifestError, load_manifest, sha256_file
from dudes_ros.inference.predictor import Predictor, check_batch

LOG = logging.getLogger(__name__)


class ModelFileError(ManifestError):
    """A model file is missing, corrupt or does not match its manifest; names the file.
    (A ``ManifestError``, so callers that handle bad model manifests handle this too.)"""


def check_onnx_file(onnx_path: Path) -> tuple[dict, str]:
    """The manifest and sha256 of ``onnx_path``; refuses a missing file or a sha256 mismatch."""
    if not onnx_path.is_file():
        raise ModelFileError(f"ONNX model {onnx_path} not found")
    manifest = load_manifest(onnx_path)
    digest = sha256_file(onnx_path)
    if digest != manifest["onnx_sha256"]:
        raise ModelFileError(
            f"ONNX model {onnx_path} does not match its manifest (sha256 {digest[:16]}…, "
            f"manifest says {str(manifest['onnx_sha256'])[:16]}…): the file is corrupt or was "
            "replaced; re-run `dudes export`")
    return manifest, digest


class OnnxRuntimePredictor(Predictor):
    """``predict(uint8 [B, H, W, 3]) -> (uint8 [B, H, W], float32 [B, H, W])`` via ONNX Runtime.

    ``device``: "cpu", "cuda" (the CUDA provider must be installed) or "auto" (CUDA when the
    provider is there, else CPU). ``threads`` sets the intra-op thread count (0: ORT default).
    """

    backend = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str = "auto", threads: int = 0) -> None:
        import onnxruntime as ort

        self.path = Path(onnx_path)
        self.manifest, self.sha256 = check_onnx_file(self.path)
        available = ort.get_available_providers()
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        cuda = "CUDAExecutionProvider" in available
        if device == "cuda" and not cuda:
            raise RuntimeError(f"device 'cuda' asked for, but ONNX Runtime {ort.__version__} "
                               f"has only providers {available}")
        providers = (["CUDAExecutionProvider"] if cuda and device != "cpu" else [])
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
