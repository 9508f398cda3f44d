"""Tiny students, checkpoints and exported ONNX files shared by the export/inference tests."""

from __future__ import annotations

from pathlib import Path

import torch

from dudes_ros.export.onnx_export import export_onnx
from dudes_ros.model.checkpoint import save_checkpoint
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.student import SegmentationNet

TINY = ModelConfig(encoder="resnet18", decoder_channels=16, input_size=(64, 128))
METADATA = {"data": "synthetic", "epochs": 0, "metrics": {"miou": 0.0}}


def tiny_student(seed: int = 0, config: ModelConfig = TINY) -> SegmentationNet:
    """A random-init student in eval mode; BatchNorm statistics perturbed away from the
    identity so that the network is not trivially symmetric."""
    torch.manual_seed(seed)
    net = SegmentationNet(config)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def write_student(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """(checkpoint, exported ONNX) for a tiny student in ``folder``."""
    net = tiny_student(seed)
    ckpt = save_checkpoint(folder / "student.pt", net, role="student", metadata=METADATA)
    onnx_path = folder / "student.onnx"
    export_onnx(net, onnx_path, metadata=METADATA,
                parity_shapes=[(1, 64, 128), (2, 50, 70)])
    return ckpt, onnx_path
