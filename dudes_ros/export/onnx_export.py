"""Export the student's deploy graph to ONNX, check it, and write its manifest.

The ONNX is written to a temporary file beside the target, validated with ``onnx.checker`` and
against TensorRT's parser rules for tensor types (``runtime.onnx_rules``), compared against the
eager model with ONNX Runtime (see ``parity``), and only then renamed into place and described
by its manifest: a failed export leaves nothing behind and never replaces a previous good file.
"""

from __future__ import annotations

import datetime
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dudes_ros import labels
from dudes_ros.config import to_dict
from dudes_ros.export.parity import (
    MAX_UNCERTAINTY_DIFF,
    MIN_LABEL_AGREEMENT,
    ParityReport,
    check_parity,
    default_parity_shapes,
)
from dudes_ros.files import staged
from dudes_ros.model.student import SegmentationNet
from dudes_ros.runtime.deploy import DeployModel
from dudes_ros.runtime.manifest import (
    FORMAT_VERSION,
    describe_training_data,
    empty_ood_section,
    sha256_file,
    write_manifest,
)
from dudes_ros.runtime.onnx_rules import tensorrt_type_problems

LOG = logging.getLogger(__name__)
DEFAULT_OPSET = 17
DYNAMIC_AXES = {
    "image": {0: "batch", 1: "height", 2: "width"},
    "labels": {0: "batch", 1: "height", 2: "width"},
    "uncertainty": {0: "batch", 1: "height", 2: "width"},
}


@dataclass(frozen=True)
class ExportResult:
    """What ``export_onnx`` wrote and measured."""

    onnx_path: Path
    manifest_path: Path
    onnx_sha256: str
    parity: list[ParityReport]


def eager_runner(deploy: DeployModel):
    """``uint8 [B, H, W, 3] numpy -> (labels, uncertainty) numpy`` with the eager module."""
    def run(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            lab, unc = deploy(torch.from_numpy(images))
        return lab.numpy(), unc.numpy()
    return run


def onnxruntime_runner(onnx_path: str | Path):
    """The same signature, running ``onnx_path`` on ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lab, unc = session.run(["labels", "uncertainty"], {"image": images})
        return lab, unc
    return run


def _versions() -> dict:
    import onnx
    import onnxruntime
    import segmentation_models_pytorch

    return {"torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "segmentation_models_pytorch": segmentation_models_pytorch.__version__}


def build_manifest(net: SegmentationNet, *, model_name: str, onnx_sha256: str, opset: int,
                   metadata: dict | None, source: dict | None,
                   parity: list[ParityReport]) -> dict:
    """The manifest dict for an exported student (see ``dudes_ros.runtime.manifest``)."""
    config = net.config
    return {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "role": "student",
        "model_config": to_dict(config),
        "classes": labels.as_manifest(),
        "ignore_index": labels.IGNORE_INDEX,
        "input": {
            "name": "image", "dtype": "uint8", "shape": ["batch", "height", "width", 3],
            "layout": "NHWC", "color": "RGB",
            "network_input_size": list(config.input_size),
            "resize": "any height and width: bilinear (align_corners=False) to "
                      "network_input_size inside the graph, outputs resized back",
        },
        "normalization": {"mean": list(config.mean), "std": list(config.std),
                          "formula": "(image / 255 - mean) / std, per RGB channel"},
        "outputs": {
            "labels": {"dtype": "uint8", "shape": ["batch", "height", "width"],
                       "semantics": "Cityscapes trainIds (argmax of the logits resized to the "
                                    "input resolution); see classes"},
            "uncertainty": {"dtype": "float32", "shape": ["batch", "height", "width"],
                            "range": [0.0, 1.0],
                            "semantics": "DUDES student uncertainty u_S, distilled from the "
                                         "ensemble's std over members of the predicted "
                                         "class probability; higher = less certain"},
        },
        "ood": empty_ood_section(),
        "trained_on": describe_training_data(metadata),
        "training": metadata or {},
        "source": source or {},
        "onnx_sha256": onnx_sha256,
        "opset": opset,
        "parity": {"min_label_agreement": MIN_LABEL_AGREEMENT,
                   "max_uncertainty_diff": MAX_UNCERTAINTY_DIFF,
                   "checks": [r.as_dict() for r in parity]},
        "exporter": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def export_onnx(net: SegmentationNet, output: str | Path, *, model_name: str | None = None,
                metadata: dict | None = None, source: dict | None = None,
                opset: int = DEFAULT_OPSET,
                parity_shapes: list[tuple[int, int, int]] | None = None) -> ExportResult:
    """Export ``net``'s deploy graph to ``output`` (.onnx) plus ``output``.json.

    Raises ``ParityError`` (and writes nothing) when ONNX Runtime does not reproduce the eager
    model on ``parity_shapes`` (default: batch 1 and 3 at the network size, batch 2 at an odd
    size).
    """
    import onnx

    output = Path(output)
    if output.suffix != ".onnx":
        raise ValueError(f"export target must end in .onnx, got {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    deploy = DeployModel(net.float().cpu(), always_resize=True).eval()
    h, w = net.config.input_size
    example = torch.zeros(2, h, w, 3, dtype=torch.uint8)
    with staged(output) as tmp:  # nothing reaches ``output`` unless parity holds
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(deploy, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["image"], output_names=["labels", "uncertainty"],
                              dynamic_axes=DYNAMIC_AXES)
        onnx.checker.check_model(str(tmp), full_check=True)
        problems = tensorrt_type_problems(tmp)
        if problems:  # every TensorRT build would stop at parse: never ship such a graph
            raise ValueError(f"the exported graph would not parse in TensorRT: "
                             f"{'; '.join(problems)}")
        deploy.always_resize = False  # the eager reference takes the torch backend's path
        reports = check_parity(eager_runner(deploy), onnxruntime_runner(tmp),
                               parity_shapes or default_parity_shapes(net.config.input_size))
        for r in reports:  # debug: callers report them (dudes export prints each once)
            LOG.debug("parity %s: labels agree on %.4f%%, max |du| %.2e", list(r.shape),
                     100 * r.label_agreement, r.max_uncertainty_diff)
        digest = sha256_file(tmp)
    manifest = build_manifest(net, model_name=model_name or output.stem, onnx_sha256=digest,
                              opset=opset, metadata=metadata, source=source, parity=reports)
    manifest_file = write_manifest(output, manifest)
    return ExportResult(output, manifest_file, digest, reports)
