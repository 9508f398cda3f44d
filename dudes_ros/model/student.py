"""DeepLabV3+ segmentation network with the DUDES uncertainty head on the shared decoder.

Built on segmentation-models-pytorch's ``DeepLabV3Plus``. The uncertainty head is a 1×1 conv
from the decoder's features to one channel, a sigmoid, and the same ×4 bilinear upsampling as
the segmentation head, so it costs almost nothing on top of the segmentation forward pass.

Pretrained encoder weights (``ModelConfig.encoder_weights``) are either a name of
segmentation-models-pytorch (``imagenet``: downloaded once from the Hugging Face Hub into its
cache) or a local file, for machines that cannot download: a ``.pth``/``.pt`` (``torch.save``)
or ``.safetensors`` state dict of the encoder, torchvision's ImageNet ResNet files included
(their classifier ``fc.*`` is dropped).
"""

from __future__ import annotations

import math
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn

from dudes_ros.errors import DudesError
from dudes_ros.model.config import ModelConfig

WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".safetensors")
TORCHVISION_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}
"""torchvision's ImageNet weights (IMAGENET1K_V1) of the ResNets, named in error messages as a
file a user can fetch on another machine and give with --encoder-weights FILE."""


class EncoderWeightsError(DudesError, ValueError):
    """Pretrained encoder weights cannot be downloaded or read, or do not fit the encoder."""


def _local_file_hint(encoder: str) -> str:
    url = TORCHVISION_URLS.get(encoder)
    example = f" (torchvision's ImageNet {encoder}: {url})" if url else ""
    return (f"give a local weights file instead with --encoder-weights FILE or "
            f"model.encoder_weights: FILE{example}")


def is_weights_file(source: str) -> bool:
    """Whether ``model.encoder_weights`` names a file rather than an smp weights name."""
    return Path(source).suffix in WEIGHT_FILE_SUFFIXES or "/" in source


def encoder_state_dict(encoder: str, source: str) -> dict[str, torch.Tensor]:
    """The pretrained weights ``source`` of ``encoder``: a local file, or an smp name
    (``imagenet``, ...) downloaded through the Hugging Face Hub cache. Raises
    ``EncoderWeightsError`` in one line (what failed, how to give a local file)."""
    if is_weights_file(source):
        return _read_weights_file(Path(source).expanduser(), encoder)
    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {})
    if source not in settings:
        raise EncoderWeightsError(
            f"model.encoder_weights {source!r}: not a weights file (ending in "
            f"{', '.join(WEIGHT_FILE_SUFFIXES)}) nor a pretrained set of encoder {encoder!r} "
            f"(that has {sorted(settings) or 'none'})")
    from huggingface_hub import hf_hub_download
    from safetensors.torch import load_file

    repo = settings[source]["repo_id"]
    try:
        path = hf_hub_download(repo, filename="model.safetensors",
                               revision=settings[source]["revision"])
    except OSError as exc:  # no network, proxy, DNS, HTTP errors: all OSErrors here
        reason = (str(exc).splitlines() or [""])[0].split(". ")[0].rstrip(".")[:200]
        raise EncoderWeightsError(
            f"cannot download the {source} weights of the {encoder} encoder from the Hugging "
            f"Face Hub ({repo}): {type(exc).__name__}: {reason}; "
            f"{_local_file_hint(encoder)}") from exc
    return load_file(path, device="cpu")


def _read_weights_file(path: Path, encoder: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise EncoderWeightsError(f"encoder weights file {path} does not exist; "
                                  f"{_local_file_hint(encoder)}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise EncoderWeightsError(f"encoder weights file {path} cannot be read "
                                  f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]})"
                                  "; expected a state dict saved with torch.save or "
                                  "safetensors") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EncoderWeightsError(f"encoder weights file {path} holds a "
                                  f"{type(state).__name__}, not a state dict")
    return state


def load_encoder_weights(encoder: nn.Module, name: str, source: str) -> None:
    """Load ``source`` (see ``encoder_state_dict``) into the smp ``encoder`` named ``name``;
    a classifier (``fc.*``, absent from smp's encoders) is dropped, every other tensor must
    fit by name and shape."""
    state = {k: v for k, v in encoder_state_dict(name, source).items()
             if not k.startswith("fc.")}
    own = encoder.state_dict()
    wrong = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise EncoderWeightsError(
            f"encoder weights {source} do not fit the {name} encoder: {len(wrong)} tensor(s) "
            f"of another shape, e.g. {wrong[0]} {tuple(state[wrong[0]].shape)} instead of "
            f"{tuple(own[wrong[0]].shape)}")
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise EncoderWeightsError(
            f"encoder weights {source} do not fit the {name} encoder: missing "
            f"{len(missing)} tensor(s) (e.g. {missing[:3]}), unexpected {len(unexpected)} "
            f"(e.g. {unexpected[:3]}); expected a {name} state dict")
    # nn.Module's own loader: smp's encoders override it and return nothing
    nn.Module.load_state_dict(encoder, state, strict=True)


class SegmentationNet(nn.Module):
    """DeepLabV3+; with ``config.uncertainty_head`` it is the DUDES student.

    ``forward(x)`` takes normalised images ``float [B, 3, H, W]`` (H, W multiples of the output
    stride) and returns ``(logits [B, C, H, W], u [B, 1, H, W] in [0, 1])``; ``u`` is None when
    the network has no uncertainty head (a teacher member).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Built with a random encoder, then the weights are loaded here: smp can only
        # download, and a download failure must read as one line, not a traceback.
        net = smp.DeepLabV3Plus(
            encoder_name=config.encoder,
            encoder_weights=None,
            encoder_output_stride=config.output_stride,
            decoder_atrous_rates=config.atrous_rates,
            decoder_channels=config.decoder_channels,
            classes=config.num_classes,
        )
        if config.encoder_weights is not None:
            load_encoder_weights(net.encoder, config.encoder, config.encoder_weights)
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
