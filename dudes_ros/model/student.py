"""DeepLabV3+ segmentation network with the DUDES uncertainty head on the shared decoder.

Built on segmentation-models-pytorch's ``DeepLabV3Plus``. The uncertainty head is a 1×1 conv
from the decoder's features to one channel, a sigmoid, and the same ×4 bilinear upsampling as
the segmentation head, so it costs almost nothing on top of the segmentation forward pass.
"""

from __future__ import annotations

import math

import segmentation_models_pytorch as smp
import torch
from torch import nn

from dudes_ros.config import ModelConfig


class SegmentationNet(nn.Module):
    """DeepLabV3+; with ``config.uncertainty_head`` it is the DUDES student.

    ``forward(x)`` takes normalised images ``float [B, 3, H, W]`` (H, W multiples of the output
    stride) and returns ``(logits [B, C, H, W], u [B, 1, H, W] in [0, 1])``; ``u`` is None when
    the network has no uncertainty head (a teacher member).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        net = smp.DeepLabV3Plus(
            encoder_name=config.encoder,
            encoder_weights=config.encoder_weights,
            encoder_output_stride=config.output_stride,
            decoder_atrous_rates=config.atrous_rates,
            decoder_channels=config.decoder_channels,
            classes=config.num_classes,
        )
        self.encoder = net.encoder
        self.decoder = net.decoder
        self.segmentation_head = net.segmentation_head
        self.uncertainty_head = (
            nn.Sequential(
                nn.Conv2d(config.decoder_channels, 1, kernel_size=1),
                nn.Sigmoid(),
                nn.UpsamplingBilinear2d(scale_factor=4),
            )
            if config.uncertainty_head
            else None
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.encoder(x)
        decoded = self.decoder(features)
        logits = self.segmentation_head(decoded)
        u = self.uncertainty_head(decoded) if self.uncertainty_head is not None else None
        return logits, u

    def start_uncertainty_at(self, prior: float) -> None:
        """Make the fresh uncertainty head predict about ``prior`` everywhere: bias
        logit(prior), 1×1 weights scaled by 0.1.

        From PyTorch's default init (u ≈ 0.5, while u_T is mostly under 0.1) the first
        large steps of the distillation loss can push the sigmoid into saturation, where its
        gradient vanishes and u_S stays near 0 for good; starting near the targets avoids
        that (engines/MODEL_CARD.md, "How u_S came to follow u_T at r = 0.82").
        """
        if self.uncertainty_head is None:
            raise ValueError("start_uncertainty_at: this network has no uncertainty head")
        if not 0.0 < prior < 1.0:
            raise ValueError(f"uncertainty prior must lie in (0, 1), got {prior}")
        conv = self.uncertainty_head[0]
        with torch.no_grad():
            conv.weight.mul_(0.1)
            conv.bias.fill_(math.log(prior / (1.0 - prior)))

    def parameter_groups(self, base_lr: float, head_lr_factor: float) -> list[dict]:
        """SGD parameter groups: encoder at ``base_lr``; decoder and heads at ×factor."""
        head_params = [p for n, p in self.named_parameters() if not n.startswith("encoder.")]
        return [
            {"params": list(self.encoder.parameters()), "lr": base_lr, "initial_lr": base_lr},
            {"params": head_params, "lr": base_lr * head_lr_factor,
             "initial_lr": base_lr * head_lr_factor},
        ]


def normalization(config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)``, each ``float32 [1, 3, 1, 1]``, with ``x * scale + shift`` =
    ``(x / 255 - mean) / std`` folded into one multiply-add: the one definition of the input
    normalisation, used in training, evaluation and the deploy graph."""
    mean = torch.tensor(config.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32).view(1, 3, 1, 1)
    return 1.0 / (255.0 * std), -mean / std


def normalize(images_uint8: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """RGB ``uint8 [B, H, W, 3]`` -> normalised ``float32 [B, 3, H, W]``."""
    scale, shift = normalization(config)
    x = images_uint8.permute(0, 3, 1, 2).float()
    return x * scale.to(x.device) + shift.to(x.device)
