"""The JSON manifest that lies beside every exported ONNX (``model.onnx`` -> ``model.json``).

It says everything a deployment needs to trust and use the file: model name and config, the
class table, input spec and normalisation, output semantics, the OOD calibration (null until
``dudes calibrate`` fills it), what the model was trained on (``trained_on``: dataset,
description, whether it ever saw real camera images), the training summary from the
checkpoint, the ONNX sha256 and the exporter versions. Writes are atomic (temp file +
``os.replace``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from dudes_ros.errors import DudesError
from dudes_ros.files import atomic_write_bytes

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_name", "model_config", "classes", "input", "outputs",
                 "ood", "onnx_sha256")
OOD_KEYS = ("pixel_threshold", "frame_threshold", "false_alarm_rate", "data")
TRAINED_ON_KEYS = {"dataset": (str,), "description": (str,), "real_images": (bool, type(None))}
"""``trained_on`` keys and their JSON types (``real_images`` null: unknown)."""


class ManifestError(DudesError, ValueError):
    """A manifest is missing, unreadable or incomplete; the message names the file."""


def manifest_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.json`` (same folder)."""
    return Path(onnx_path).with_suffix(".json")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def empty_ood_section() -> dict:
    """The OOD calibration before calibration: thresholds unknown (null)."""
    return {key: None for key in OOD_KEYS}


def load_manifest(onnx_path: str | Path) -> dict:
    """Read and check the manifest beside ``onnx_path``; raises ``ManifestError`` naming it."""
    path = manifest_path(onnx_path)
    if not path.is_file():
        raise ManifestError(f"model manifest {path} not found (expected beside {onnx_path}; "
                            "re-run `dudes export`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"model manifest {path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ManifestError(f"model manifest {path} must hold a JSON object, "
                            f"got {type(manifest).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ManifestError(f"model manifest {path} lacks key(s) {missing}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise ManifestError(f"model manifest {path} has format_version "
                            f"{manifest['format_version']!r}; this code reads {FORMAT_VERSION}")
    if "trained_on" in manifest:
        _check_trained_on(manifest["trained_on"], path)
    return manifest


def _check_trained_on(value: object, path: Path) -> None:
    """Refuse a ``trained_on`` that is not ``{"dataset": str, "description": str,
    "real_images": bool or null}``, naming the file and the key."""
    if not isinstance(value, dict):
        raise ManifestError(f"model manifest {path}: trained_on must be an object "
                            f"{{dataset, description, real_images}}, got {value!r}")
    for key, kind in TRAINED_ON_KEYS.items():
        if key not in value or not isinstance(value[key], kind):
            expected = " or ".join("null" if k is type(None) else k.__name__ for k in kind)
            raise ManifestError(f"model manifest {path}: trained_on.{key} must be "
                                f"{expected}, got {value.get(key)!r}")


def describe_training_data(metadata: dict | None) -> dict:
    """``{"dataset", "description", "real_images"}`` from a checkpoint's training metadata
    (``metadata["data"]`` as ``dudes_ros.train.data.build_datasets`` describes it, and
    ``metadata["recipe"]``): synthetic scenes -> ``"synthetic"``, no real images; a
    Cityscapes-layout folder -> ``"cityscapes"``, real images (a user's own data in that
    layout is recorded the same way). Without that metadata: dataset ``"unknown"`` and
    ``real_images`` None (nothing says the model ever saw a real camera image)."""
    metadata = metadata or {}
    data = metadata.get("data") or {}
    if isinstance(data, str):  # a bare source name
        data = {"source": data}
    source = data.get("source") or {"synthetic": "synthetic",
                                    "cityscapes": "cityscapes"}.get(metadata.get("recipe"))
    train = data.get("train_images")
    count = f"{train} training images" if train else "training images"
    if source == "synthetic":
        size = (data.get("synthetic") or {}).get("size")
        at = f" at {size[0]}x{size[1]}" if size else ""
        return {"dataset": "synthetic",
                "description": f"synthetic street scenes rendered by dudes_ros ({count}{at}); "
                               "no real camera image",
                "real_images": False}
    if source == "cityscapes":
        split = data.get("train_split", "train")
        return {"dataset": "cityscapes",
                "description": f"real street images in the Cityscapes layout (split {split}, "
                               f"{count}; the Cityscapes dataset unless your own data was "
                               "given in its layout)",
                "real_images": True}
    return {"dataset": "unknown",
            "description": "the checkpoint does not say what the model was trained on",
            "real_images": None}


def trained_on(manifest: dict) -> dict:
    """What the model was trained on: ``{"dataset": str, "description": str,
    "real_images": bool | None}``. The manifest's ``trained_on`` where it has one; for a
    manifest written before that key existed, derived from its ``training`` section
    (``describe_training_data``; ``real_images`` None when even that is silent)."""
    given = manifest.get("trained_on")
    if isinstance(given, dict):
        return dict(given)
    return describe_training_data(manifest.get("training"))


def model_trained_on(model: Path) -> dict:
    """``trained_on`` of a model file: an ONNX's manifest (``trained_on``), a .pt checkpoint's
    training metadata described by ``describe_training_data``."""
    if model.suffix == ".onnx":
        return trained_on(load_manifest(model))
    from dudes_ros.model.checkpoint import read_checkpoint

    return describe_training_data(read_checkpoint(model).get("metadata"))


class ModelFileError(ManifestError):
    """A model file is missing, corrupt or does not match its manifest; names the file.
    (A ``ManifestError``, so callers that handle bad model manifests handle this too.)"""


def check_onnx_file(onnx_path: str | Path) -> tuple[dict, str]:
    """The manifest and sha256 of ``onnx_path``; refuses a missing file or a sha256 mismatch."""
    onnx_path = Path(onnx_path)
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


def ood_calibration(model: str | Path) -> dict | None:
    """The ``"ood"`` section of an ONNX model's manifest (None for a .pt checkpoint, which has
    no manifest): the one place the node, ``process-bag`` and the demo read thresholds from."""
    if Path(model).suffix != ".onnx":
        return None
    return load_manifest(model).get("ood")


def write_manifest(onnx_path: str | Path, manifest: dict) -> Path:
    """Write ``manifest`` atomically beside ``onnx_path``; returns the manifest's path."""
    path = manifest_path(onnx_path)
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, text.encode())
    return path


def update_ood_calibration(onnx_path: str | Path, calibration: dict) -> dict:
    """Merge ``calibration`` into the manifest's ``ood`` section and write it back.

    ``pixel_threshold`` and ``frame_threshold`` must be numbers in [0, 1] when given,
    ``false_alarm_rate`` in [0, 1]; other keys (curves, data description) are stored as given.
    Returns the updated manifest.
    """
    manifest = copy.deepcopy(load_manifest(onnx_path))
    for key in ("pixel_threshold", "frame_threshold", "false_alarm_rate"):
        value = calibration.get(key)
        if value is not None and not (isinstance(value, (int, float))
                                      and not isinstance(value, bool) and 0.0 <= value <= 1.0):
            raise ValueError(f"ood calibration {key}: expected a number in [0, 1], got {value!r}")
    ood = dict(manifest.get("ood") or empty_ood_section())
    ood.update(calibration)
    manifest["ood"] = ood
    write_manifest(onnx_path, manifest)
    return manifest
