"""The deploy graph: the student wrapped so that pre- and post-processing run on the device.

``DeployModel(net)(image uint8 [B, H, W, 3] RGB) -> (labels uint8 [B, H, W] trainIds,
uncertainty float32 [B, H, W] in [0, 1])``. Inside: uint8 -> float first (TensorRT's ONNX
parser accepts UINT8 only as a network input or output, so no op may see the image as uint8
but the cast), normalisation with the model config's mean/std (folded into one multiply-add),
NHWC -> NCHW, a bilinear resize
(align_corners=False) to the network's ``input_size``, the network, a bilinear resize of the
logits and of u back to (H, W), argmax over classes and a clamp of u to [0, 1]. Any H, W is
accepted (not only multiples of the output stride): the in-graph resize handles them. Only the
two small outputs cross back to the host, never the C float channels.

The same module is exported to ONNX (and so compiled by TensorRT) and run eagerly by the torch
backend, so every backend computes the same function.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from dudes_ros.model.student import SegmentationNet, normalization


class DeployModel(nn.Module):
    """``forward(image uint8 [B, H, W, 3]) -> (labels uint8 [B, H, W], u float32 [B, H, W])``.

    ``always_resize`` keeps the input resize in the graph even when the example input already
    has the network's size, which export needs (the traced graph must serve every H, W); the
    eager torch backend leaves it False and skips the identity resize.
    """

    def __init__(self, net: SegmentationNet, always_resize: bool = False) -> None:
        super().__init__()
        if net.uncertainty_head is None:
            raise ValueError("the deploy graph needs a student with an uncertainty head "
                             "(ModelConfig.uncertainty_head=True); got a teacher member")
        self.net = net
        self.input_size = tuple(net.config.input_size)
        self.always_resize = always_resize
        scale, shift = normalization(net.config)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = image.shape[1], image.shape[2]
        x = image.float().permute(0, 3, 1, 2) * self.scale + self.shift
        resize = self.always_resize or (int(height), int(width)) != self.input_size
        if resize:
            x = _bilinear(x, self.input_size)
        logits, u = self.net(x.to(next(self.net.parameters()).dtype))
        if resize:
            logits = _bilinear(logits, (height, width))
            u = _bilinear(u, (height, width))
        # ArgMax's int64 indices go straight to the uint8 network output: the only UINT8
        # tensor TensorRT accepts besides the input.
        labels = logits.argmax(dim=1).to(torch.uint8)
        return labels, u[:, 0].float().clamp(0.0, 1.0)


def _bilinear(x: torch.Tensor, size: tuple) -> torch.Tensor:
    return functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
