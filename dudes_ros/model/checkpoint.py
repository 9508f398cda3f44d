"""Checkpoints that rebuild their own network and load with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict (nothing but tensors, dicts, lists, str, int, float, bool and None,
so the safe unpickler accepts it):

``format``          ``"dudes_ros.checkpoint/1"``
``role``            ``"member"`` (teacher ensemble member) or ``"student"``
``model_config``    ``to_dict(ModelConfig)``; the network is rebuilt from it
``labels``          ``labels.as_manifest()``: the class table the logits are indexed by
``metadata``        training metadata (recipe, data, seed, epochs, metrics, ...)
``state_dict``      the network weights
``training_state``  optional: optimizer / scheduler / GradScaler / RNG states for resuming

Files are written atomically (temporary file in the same folder, fsync, ``os.replace``), so a
kill during a save leaves the previous checkpoint intact, with the mode a plain ``open()`` gives
(0644 under umask 022).
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from dudes_ros import labels
from dudes_ros.config import ConfigError, load_config, to_dict
from dudes_ros.errors import DudesError
from dudes_ros.files import atomic_write
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.student import SegmentationNet

FORMAT = "dudes_ros.checkpoint/1"
EXPECTED = "expected a .pt file written by dudes train-teacher or train-student"
ZIP_MAGIC = b"PK\x03\x04"
"""How every ``torch.save`` file (a zip archive since PyTorch 1.6) begins."""
ROLES = ("member", "student")
ARCHITECTURE_FIELDS = ("arch", "encoder", "output_stride", "atrous_rates", "decoder_channels",
                       "num_classes", "uncertainty_head")
"""ModelConfig fields that change the weights' shapes or meaning (input size, normalisation and
pretrained-weight source do not)."""


class CheckpointError(DudesError, ValueError):
    """A checkpoint is unreadable, malformed or does not fit the network it is loaded into."""


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside a DistributedDataParallel (or similar ``.module``) wrapper."""
    return getattr(model, "module", model)


def _check_plain(value: Any, key: str) -> None:
    """Refuse values the ``weights_only`` unpickler would reject, naming the offending key."""
    if value is None or isinstance(value, (str, int, float, bool, torch.Tensor)):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(f"{key}: key {k!r} must be a str or int")
            _check_plain(v, f"{key}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{key}[{i}]")
        return
    raise CheckpointError(f"{key}: {type(value).__name__} cannot be stored in a checkpoint; "
                          "use dicts, lists, str, int, float, bool, None or tensors")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (``files.atomic_write``: mode 0666 less the
    umask)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(path: str | Path, model: nn.Module, *, role: Literal["member", "student"],
                    metadata: dict, training_state: dict | None = None) -> Path:
    """Write ``model`` (a ``SegmentationNet``, possibly DDP-wrapped) atomically to ``path``."""
    net = unwrap(model)
    if not isinstance(net, SegmentationNet):
        raise TypeError(f"expected a SegmentationNet, got {type(net).__name__}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    _check_plain(metadata, "metadata")
    if training_state is not None:
        _check_plain(training_state, "training_state")
    payload = {
        "format": FORMAT,
        "role": role,
        "model_config": to_dict(net.config),
        "labels": labels.as_manifest(),
        "metadata": metadata,
        "state_dict": net.state_dict(),
        "training_state": training_state,
    }
    return atomic_torch_save(payload, path)


def _unreadable(path: Path, exc: Exception) -> str:
    """Why a file that should be a PyTorch (zip) checkpoint does not open as a zip archive."""
    if isinstance(exc, OSError):
        return str(exc)
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "the file is empty"
    if head == ZIP_MAGIC:
        return f"the file is truncated or damaged ({exc})"
    return "it is not a PyTorch checkpoint (no zip archive)"


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dict, validated for format and label table."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; {EXPECTED}")
    # torch.load does not verify the archive's CRC-32s: flipped weight bytes would load silently
    try:
        with zipfile.ZipFile(path) as archive:
            bad_record = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {_unreadable(path, exc)}; "
                              f"{EXPECTED}") from exc
    if bad_record is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: record {bad_record} fails its "
                              "CRC-32 check")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"checkpoint {path} cannot be read: {first_line}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a dudes_ros checkpoint (format {found!r}, "
                              f"expected {FORMAT!r})")
    if ckpt["labels"] != labels.as_manifest():
        raise CheckpointError(f"{path} was trained with a different class table than "
                              "dudes_ros.labels; its logits would be mislabelled")
    return ckpt


def model_config_of(ckpt: dict, path: str | Path = "checkpoint") -> ModelConfig:
    """The ``ModelConfig`` stored in a checkpoint dict."""
    try:
        return load_config(ModelConfig, ckpt["model_config"], where="model")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: stored model config is invalid: {exc}") from exc


def architecture_mismatch(a: ModelConfig, b: ModelConfig) -> list[str]:
    """Names of the architecture fields in which ``a`` and ``b`` differ."""
    return [f for f in ARCHITECTURE_FIELDS if getattr(a, f) != getattr(b, f)]


def describe_differences(found: ModelConfig, expected: ModelConfig, fields: list[str]) -> str:
    """``"decoder_channels 16 instead of 8, encoder 'resnet34' instead of 'resnet18'"``."""
    return ", ".join(f"{f} {getattr(found, f)!r} instead of {getattr(expected, f)!r}"
                     for f in fields)


def require_same_architecture(found: ModelConfig, expected: ModelConfig, what: str,
                              against: str = "the network expected here") -> None:
    """Raise ``CheckpointError`` naming ``what`` and each differing field when the
    architectures differ (``against`` names where ``expected`` comes from)."""
    diff = architecture_mismatch(found, expected)
    if diff:
        raise CheckpointError(f"{what} has another architecture than {against}: "
                              f"{describe_differences(found, expected, diff)}")


def load_model(path: str | Path, map_location: str | torch.device = "cpu",
               expected: ModelConfig | None = None) -> tuple[SegmentationNet, dict]:
    """Rebuild the network stored at ``path``; returns ``(model in eval mode, checkpoint)``.

    The returned dict is the whole checkpoint (``role``, ``metadata``, ``training_state``, ...)
    minus ``state_dict``. With ``expected``, a checkpoint of another architecture is refused,
    naming the file and the fields that differ.
    """
    ckpt = read_checkpoint(path, map_location)
    config = model_config_of(ckpt, path)
    if expected is not None:
        require_same_architecture(config, expected, f"checkpoint {path}")
    # The stored weights replace any pretrained ones: never fetch encoder weights here.
    model = SegmentationNet(dataclasses.replace(config, encoder_weights=None))
    model.config = config
    state = ckpt.pop("state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored model config "
                              f"{to_dict(config)}: {exc}") from exc
    model.to(map_location).eval()
    return model, ckpt
