"""The network's configuration (``ModelConfig``), loaded and checked like every other config
(``dudes_ros.config``): read from recipes, checkpoints and manifests."""

from __future__ import annotations

import dataclasses
from typing import Literal

from dudes_ros.config import check


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network: DeepLabV3+ (segmentation-models-pytorch) with an optional uncertainty head.

    ``input_size`` is (height, width) of the deploy graph's input; both must be multiples of
    ``output_stride`` so the decoder's ×4 upsampling lands exactly on the input size.
    """

    arch: Literal["deeplabv3plus"] = "deeplabv3plus"
    encoder: str = "resnet18"
    encoder_weights: str | None = None
    output_stride: Literal[8, 16] = 16
    atrous_rates: tuple[int, int, int] = (12, 24, 36)
    decoder_channels: int = 256
    num_classes: int = 19
    uncertainty_head: bool = True
    input_size: tuple[int, int] = (512, 1024)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        check(self.decoder_channels > 0, "model.decoder_channels", self.decoder_channels, "> 0")
        check(self.num_classes > 1, "model.num_classes", self.num_classes, "> 1")
        h, w = self.input_size
        check(h > 0 and w > 0 and h % self.output_stride == 0 and w % self.output_stride == 0,
              "model.input_size", self.input_size,
              f"positive multiples of output_stride={self.output_stride}")
        check(all(s > 0 for s in self.std), "model.std", self.std, "positive values")
